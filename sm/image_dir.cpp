#include "sm/image_dir.hpp"

#include "sm/images.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>

namespace xapid::sm {
namespace {

namespace fs = std::filesystem;

tool_failure os_failure(const std::string& what, const std::error_code& ec) { return {-1, {}, what + ": " + ec.message()}; }

// Our parents, and only ours: a hidden file of anyone else's is never collected.
bool is_parent(const std::string& name) { return name.rfind(".base-", 0) == 0; }
bool is_hidden(const std::string& name) { return !name.empty() && name[0] == '.'; }

}  // namespace

tool_result<std::string> image_dir::create(const std::string& uuid, std::int64_t size) const {
  std::string location = location_of(uuid);
  if (auto r = create_qcow2(path_of(location), size); !r) return fail(r.error());
  return location;
}

tool_result<std::string> image_dir::clone(const std::string& location, const std::string& uuid) const {
  auto current = info(location);
  if (!current) return fail(current.error());
  const std::string base = ".base-" + uuid + ".qcow2";
  const std::string copy = location_of(uuid);
  std::error_code ec;
  fs::rename(path_of(location), path_of(base), ec);
  if (ec) return fail(os_failure("cannot move " + path_of(location), ec));
  // Both overlays name their parent relative to the directory, so the SR may move (a mount).
  auto undo = [&] {
    fs::remove(path_of(location), ec);
    fs::rename(path_of(base), path_of(location), ec);
  };
  std::vector<std::string> argv{"qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", current->format, ""};
  for (const auto& overlay : {location, copy}) {
    argv.back() = path_of(overlay);
    if (auto r = run_tool(argv); !r) {
      fs::remove(path_of(copy), ec);
      undo();
      return fail(r.error());
    }
  }
  return copy;
}

tool_result<std::string> image_dir::copy_to(const std::string& location, const image_dir& to, const std::string& uuid) const {
  std::string copy = location_of(uuid);
  if (auto r = convert_to_qcow2(path_of(location), to.path_of(copy)); !r) {
    std::error_code ec;
    fs::remove(to.path_of(copy), ec);
    return fail(r.error());
  }
  return copy;
}

tool_result<void> image_dir::resize(const std::string& location, std::int64_t size) const {
  return sm::resize(path_of(location), size);
}

tool_result<image_info> image_dir::info(const std::string& location) const { return image_info_of(path_of(location)); }

tool_result<void> image_dir::remove(const std::string& location) const {
  std::error_code ec;
  fs::remove(path_of(location), ec);
  if (ec) return fail(os_failure("cannot remove " + path_of(location), ec));
  return ok_v;
}

std::vector<std::string> image_dir::visible_files() const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    std::string name = e.path().filename().string();
    if (e.is_regular_file(ec) && !is_hidden(name)) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::size_t image_dir::collect(const std::set<std::string>& busy) const {
  std::size_t removed = 0;
  for (bool changed = true; changed;) {
    changed = false;
    // Who stands on whom.
    std::map<std::string, std::string> parent_of;
    std::map<std::string, std::vector<std::string>> children;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_, ec)) {
      std::string name = e.path().filename().string();
      if (!e.is_regular_file(ec) || name.size() < 6 || name.substr(name.size() - 6) != ".qcow2") continue;
      auto i = info(name);
      if (!i) continue;
      parent_of[name] = i->backing_file;
      if (!i->backing_file.empty()) children[fs::path(i->backing_file).filename().string()].push_back(name);
      else children[name];  // known, maybe childless
    }
    for (const auto& [name, parent] : parent_of) {
      if (!is_parent(name)) continue;
      const auto& kids = children[name];
      if (kids.empty()) {
        fs::remove(path_of(name), ec);
      } else if (kids.size() == 1 && !busy.count(kids.front())) {
        // The child takes in what it reads from this parent, then stands on the grandparent.
        if (!rebase(path_of(kids.front()), parent)) continue;
        fs::remove(path_of(name), ec);
      } else {
        continue;
      }
      ++removed;
      changed = true;
      break;  // the graph changed: read it again
    }
  }
  return removed;
}

std::vector<std::string> image_dir::recover_pending(const std::set<std::string>& recorded) const {
  static const std::string prefix = ".pending-";
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    const std::string image = name.substr(prefix.size());
    if (!image.empty() && image.find('/') == std::string::npos && !recorded.count(image) && fs::exists(path_of(image), ec)) {
      (void)remove_image(path_of(image));
      removed.push_back(image);
    }
    fs::remove(e.path(), ec);
  }
  return removed;
}

}  // namespace xapid::sm
