// Who a call comes from: the user behind its session, as every check of rights sees it.
#pragma once

#include <cstddef>
#include <string>

namespace xapid::gateway {

struct caller {
  static constexpr std::size_t no_role = static_cast<std::size_t>(-1);
  std::size_t role = no_role;  // index in api::all_roles() of the most powerful role; 0 for root
  std::string identity;        // the user: "" for the local superuser, else the subject's sid ("u1000")
  bool superuser = false;      // the local superuser (root)
  // Whether `other` is the same user (sessions of one user may see and end each other's tasks).
  bool same_user(const caller& other) const { return superuser == other.superuser && identity == other.identity; }
};

}  // namespace xapid::gateway
