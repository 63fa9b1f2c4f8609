// A persistent (copy-on-write) map from string keys to values: copying it is O(1), and an
// update copies one of 256 buckets plus the bucket table, so every published database snapshot
// shares almost all of its memory with the previous one and readers never wait for writers.
#pragma once

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xapid::storage {

template <class V>
class cow_map {
 public:
  using entry = std::pair<std::string, V>;
  using bucket = std::vector<entry>;  // sorted by key

  const V* find(std::string_view key) const {
    if (!buckets_) return nullptr;
    const auto& b = (*buckets_)[slot(key)];
    if (!b) return nullptr;
    auto it = std::lower_bound(b->begin(), b->end(), key, [](const entry& e, std::string_view k) { return e.first < k; });
    return it != b->end() && it->first == key ? &it->second : nullptr;
  }

  void set(std::string key, V value) {
    auto& b = writable_bucket(slot(key));
    auto it = std::lower_bound(b.begin(), b.end(), key, [](const entry& e, const std::string& k) { return e.first < k; });
    if (it != b.end() && it->first == key) {
      it->second = std::move(value);
    } else {
      b.emplace(it, std::move(key), std::move(value));
      ++size_;
    }
  }

  bool erase(std::string_view key) {
    if (!find(key)) return false;
    auto& b = writable_bucket(slot(key));
    auto it = std::lower_bound(b.begin(), b.end(), key, [](const entry& e, std::string_view k) { return e.first < k; });
    b.erase(it);
    --size_;
    return true;
  }

  std::size_t size() const noexcept { return size_; }

  // Visits every entry; stops early when fn returns false.
  template <class F>
  void for_each(F&& fn) const {
    if (!buckets_) return;
    for (const auto& b : *buckets_)
      if (b)
        for (const auto& [k, v] : *b)
          if (!fn(k, v)) return;
  }

 private:
  static constexpr std::size_t slots = 256;
  using table = std::array<std::shared_ptr<bucket>, slots>;

  static std::size_t slot(std::string_view key) noexcept { return std::hash<std::string_view>{}(key) % slots; }

  // Makes the table and the bucket unshared before writing: what a snapshot holds is never touched.
  bucket& writable_bucket(std::size_t s) {
    if (!buckets_) buckets_ = std::make_shared<table>();
    else if (buckets_.use_count() > 1) buckets_ = std::make_shared<table>(*buckets_);
    auto& b = (*buckets_)[s];
    if (!b) {
      b = std::make_shared<bucket>();
    } else if (b.use_count() > 1) {
      // A copy with a little room: the writer usually adds a few entries before the next
      // snapshot, and a vector that doubles would leave half of every bucket unused.
      auto copy = std::make_shared<bucket>();
      copy->reserve(b->size() + b->size() / 8 + 4);
      copy->assign(b->begin(), b->end());
      b = std::move(copy);
    }
    return *b;
  }

  std::shared_ptr<table> buckets_;
  std::size_t size_ = 0;
};

}  // namespace xapid::storage
