// The type of the "many" side of a one-to-many bound field (VM.VBDs, host.resident_VMs,
// VM.children, ...): a read-only set of refs that the database derives from the scalar side
// (VBD.VM, VM.resident_on, VM.parent). It shares the database's index of that field, a
// persistent set, so adding one VBD to a VM with thousands costs O(log n), not a copy of all.
// It reads like the vector it replaces: iteration gives refs, in an arbitrary order (xapi's
// is arbitrary too).
#pragma once

#include <iterator>
#include <string>
#include <utility>

#include "common/persistent_map.hpp"
#include "proto/api/ref.hpp"

namespace xapid::api {

template <class C>
class ref_set {
 public:
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = ref<C>;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = ref<C>;

    iterator() = default;
    explicit iterator(persistent_set::iterator it) : it_(std::move(it)) {}
    ref<C> operator*() const { return ref<C>{it_->key}; }
    iterator& operator++() {
      ++it_;
      return *this;
    }
    iterator operator++(int) {
      iterator old = *this;
      ++it_;
      return old;
    }
    bool operator==(const iterator&) const = default;

   private:
    persistent_set::iterator it_;
  };

  ref_set() = default;
  explicit ref_set(persistent_set refs) : refs_(std::move(refs)) {}

  iterator begin() const { return iterator(refs_.begin()); }
  iterator end() const { return iterator(refs_.end()); }
  std::size_t size() const noexcept { return refs_.size(); }
  bool empty() const noexcept { return refs_.empty(); }
  bool contains(const ref<C>& r) const { return refs_.find(r.opaque) != nullptr; }
  // The first in iteration order: the element of a set of one.
  ref<C> front() const { return *begin(); }
  const persistent_set& refs() const noexcept { return refs_; }

  void insert(const ref<C>& r) { refs_.set(r.opaque, unit{}); }

  bool operator==(const ref_set& o) const {
    if (refs_.same(o.refs_)) return true;
    if (size() != o.size()) return false;
    for (const auto& e : refs_)
      if (!o.refs_.find(e.key)) return false;
    return true;
  }

 private:
  persistent_set refs_;
};

}  // namespace xapid::api
