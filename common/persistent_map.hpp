// A persistent map from string keys to values: a hash array mapped trie (32 ways per level,
// keyed hash). Copying a map is O(1); an update copies only the nodes on one key's path, so it
// costs O(log32 N) whatever the size (about 4 nodes at 100,000 keys) and every published
// database snapshot shares all but that path with the one before. A node the map alone holds
// (use count 1: no snapshot can reach it) is changed in place, so a writer that updates many keys
// before publishing copies each path once. Iteration order is the hashes' order: arbitrary, and
// different in every process (the hash is keyed), but fixed for one map.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/keyed_hash.hpp"

namespace xapid {

// The value of a persistent_map used as a set.
struct unit {
  bool operator==(const unit&) const = default;
};

struct keyed_hasher {
  std::uint64_t operator()(std::string_view s) const noexcept { return keyed_hash(s); }
};

// `Hash` is the keyed hash but in tests, which give a weak one to make keys collide.
template <class V, class Hash = keyed_hasher>
class persistent_map {
 public:
  struct entry {
    std::string key;
    V value;
    std::uint64_t hash;
  };

 private:
  static constexpr unsigned fanout_bits = 5;
  // Below this depth every hash bit is used: a node there holds entries of one hash (collisions).
  static constexpr unsigned bottom_shift = 65;
  struct node;
  using node_ptr = std::shared_ptr<node>;
  struct node {
    std::uint32_t datamap = 0;  // which slots hold an entry
    std::uint32_t nodemap = 0;  // which slots hold a child
    std::vector<entry> entries;     // in slot order (a bottom node: all of them, unordered)
    std::vector<node_ptr> children;  // in slot order
  };
  static unsigned slot(std::uint64_t hash, unsigned shift) noexcept {
    return static_cast<unsigned>((hash >> shift) & 31u);
  }
  static unsigned index(std::uint32_t map, std::uint32_t bit) noexcept {
    return static_cast<unsigned>(std::popcount(map & (bit - 1)));
  }

 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = entry;
    using difference_type = std::ptrdiff_t;
    using pointer = const entry*;
    using reference = const entry&;

    iterator() = default;
    reference operator*() const { return top().n->entries[top().i]; }
    pointer operator->() const { return &**this; }
    iterator& operator++() {
      ++top().i;
      settle();
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++*this;
      return old;
    }
    bool operator==(const iterator& o) const {
      if (depth_ == 0 || o.depth_ == 0) return depth_ == o.depth_;
      return top().n == o.top().n && top().i == o.top().i;
    }

   private:
    friend class persistent_map;
    struct frame {
      const node* n;
      std::size_t i;  // entries first, then children
    };
    explicit iterator(const node* root) {
      if (!root) return;
      stack_[depth_++] = {root, 0};
      settle();
    }
    frame& top() { return stack_[depth_ - 1]; }
    const frame& top() const { return stack_[depth_ - 1]; }
    // Moves to the next entry at or after the current position.
    void settle() {
      while (depth_ > 0) {
        frame& f = top();
        if (f.i < f.n->entries.size()) return;
        const std::size_t child = f.i - f.n->entries.size();
        if (child < f.n->children.size()) {
          ++f.i;
          stack_[depth_++] = {f.n->children[child].get(), 0};
          continue;
        }
        --depth_;
      }
    }
    std::array<frame, 16> stack_{};
    std::size_t depth_ = 0;
  };

  persistent_map() = default;

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  iterator begin() const { return iterator(root_.get()); }
  iterator end() const { return iterator(); }
  // Whether both are the same version of one map (then they are equal without a look inside).
  bool same(const persistent_map& o) const noexcept { return root_ == o.root_; }

  const V* find(std::string_view key) const { return find(key, Hash{}(key)); }

  // Visits every entry, fn(key, value), stopping when it returns false; returns whether it went
  // through them all. Faster than the iterator over a large map: each node's entries are one
  // tight loop, so the loads of many values are in flight at once.
  template <class F>
  bool for_each(F&& fn) const {
    return !root_ || visit(*root_, fn);
  }

  // Inserts or replaces; returns whether the key is new.
  bool set(std::string key, V value) {
    const std::uint64_t h = Hash{}(key);
    node* n = own(root_);
    for (unsigned shift = 0;; shift += fanout_bits) {
      if (shift >= bottom_shift) {
        for (auto& e : n->entries)
          if (e.key == key) {
            e.value = std::move(value);
            return false;
          }
        n->entries.push_back({std::move(key), std::move(value), h});
        ++size_;
        return true;
      }
      const std::uint32_t bit = 1u << slot(h, shift);
      if (n->nodemap & bit) {
        n = own(n->children[index(n->nodemap, bit)]);
        continue;
      }
      const unsigned i = index(n->datamap, bit);
      if (!(n->datamap & bit)) {
        n->entries.insert(n->entries.begin() + i, entry{std::move(key), std::move(value), h});
        n->datamap |= bit;
        ++size_;
        return true;
      }
      entry& here = n->entries[i];
      if (here.hash == h && here.key == key) {
        here.value = std::move(value);
        return false;
      }
      // Two keys share this slot: the one here moves down into a new child, and the walk goes on
      // there (splitting again while their hashes agree).
      auto child = std::make_shared<node>();
      place(*child, std::move(here), shift + fanout_bits);
      n->entries.erase(n->entries.begin() + i);
      n->datamap &= ~bit;
      n->children.insert(n->children.begin() + index(n->nodemap, bit), child);
      n->nodemap |= bit;
      n = child.get();
    }
  }

  // Removes the key; returns whether it was there.
  bool erase(std::string_view key) {
    const std::uint64_t h = Hash{}(key);
    if (!find(key, h)) return false;
    erase_below(root_, key, h, 0);
    --size_;
    if (size_ == 0) root_.reset();
    return true;
  }

 private:
  const V* find(std::string_view key, std::uint64_t h) const {
    const node* n = root_.get();
    for (unsigned shift = 0; n; shift += fanout_bits) {
      if (shift >= bottom_shift) {
        for (const auto& e : n->entries)
          if (e.key == key) return &e.value;
        return nullptr;
      }
      const std::uint32_t bit = 1u << slot(h, shift);
      if (n->datamap & bit) {
        const entry& e = n->entries[index(n->datamap, bit)];
        return e.hash == h && e.key == key ? &e.value : nullptr;
      }
      if (!(n->nodemap & bit)) return nullptr;
      n = n->children[index(n->nodemap, bit)].get();
    }
    return nullptr;
  }

  template <class F>
  static bool visit(const node& n, F& fn) {
    for (const auto& e : n.entries)
      if (!fn(e.key, e.value)) return false;
    for (const auto& c : n.children)
      if (!visit(*c, fn)) return false;
    return true;
  }

  // The node, made the map's own first: a node another map can reach is copied, never changed.
  static node* own(node_ptr& p) {
    if (!p) p = std::make_shared<node>();
    else if (p.use_count() > 1) p = std::make_shared<node>(*p);
    return p.get();
  }

  // Puts an entry into an empty node at `shift`.
  static void place(node& n, entry e, unsigned shift) {
    if (shift < bottom_shift) n.datamap = 1u << slot(e.hash, shift);
    n.entries.push_back(std::move(e));
  }

  // Removes a key known to be below `p`. A child left with one entry and no children gives the
  // entry back to its parent, and an empty child is dropped: the trie stays as compact as if the
  // key had never been there.
  void erase_below(node_ptr& p, std::string_view key, std::uint64_t h, unsigned shift) {
    node* n = own(p);
    if (shift >= bottom_shift) {
      for (std::size_t i = 0; i < n->entries.size(); ++i)
        if (n->entries[i].key == key) {
          n->entries.erase(n->entries.begin() + static_cast<std::ptrdiff_t>(i));
          return;
        }
      return;
    }
    const std::uint32_t bit = 1u << slot(h, shift);
    if (n->datamap & bit) {
      n->entries.erase(n->entries.begin() + index(n->datamap, bit));
      n->datamap &= ~bit;
      return;
    }
    const unsigned ci = index(n->nodemap, bit);
    erase_below(n->children[ci], key, h, shift + fanout_bits);
    node& child = *n->children[ci];
    if (!child.children.empty() || child.entries.size() > 1) return;
    if (child.entries.size() == 1) {
      entry e = std::move(child.entries.front());
      n->entries.insert(n->entries.begin() + index(n->datamap, bit), std::move(e));
      n->datamap |= bit;
    }
    n->children.erase(n->children.begin() + ci);
    n->nodemap &= ~bit;
  }

  node_ptr root_;
  std::size_t size_ = 0;
};

// A persistent set of strings.
using persistent_set = persistent_map<unit>;

}  // namespace xapid
