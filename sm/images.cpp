#include "sm/images.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace xapid::sm {
namespace {

std::string why(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

result<void, std::string> copy_image(const std::string& from, const std::string& to) {
  fd_guard in{::open(from.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return fail(why("cannot open", from));
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return fail(why("cannot stat", from));
  fd_guard out{::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)};
  if (out.fd < 0) return fail(why("cannot create", to));
  auto failed = [&](const std::string& e) -> result<void, std::string> {
    ::unlink(to.c_str());
    return fail(e);
  };
  if (::ftruncate(out.fd, st.st_size) != 0) return failed(why("cannot size", to));
  std::vector<char> buf(1 << 20);
  // Only the data extents are read and written; the holes between them stay holes.
  for (off_t data = ::lseek(in.fd, 0, SEEK_DATA); data >= 0 && data < st.st_size;) {
    off_t hole = ::lseek(in.fd, data, SEEK_HOLE);
    if (hole < 0) hole = st.st_size;
    for (off_t at = data; at < hole;) {
      ssize_t n = ::pread(in.fd, buf.data(), static_cast<size_t>(std::min<off_t>(hole - at, buf.size())), at);
      if (n <= 0) return failed(why("cannot read", from));
      for (ssize_t w = 0; w < n;) {
        ssize_t m = ::pwrite(out.fd, buf.data() + w, static_cast<size_t>(n - w), at + w);
        if (m <= 0) return failed(why("cannot write", to));
        w += m;
      }
      at += n;
    }
    data = ::lseek(in.fd, hole, SEEK_DATA);
  }
  if (::fsync(out.fd) != 0) return failed(why("cannot sync", to));
  return ok_v;
}

result<void, std::string> remove_image(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return fail(why("cannot remove", path));
  return ok_v;
}

std::int64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::int64_t>(st.st_blocks) * 512;
}

namespace {
std::string marker_of(const std::string& image_path) {
  const auto slash = image_path.rfind('/');
  return image_path.substr(0, slash + 1) + ".pending-" + image_path.substr(slash + 1);
}
}  // namespace

void mark_pending(const std::string& image_path) {
  const std::string marker = marker_of(image_path);
  int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    (void)::fsync(fd);
    ::close(fd);
  }
}

void unmark_pending(const std::string& image_path) { (void)::unlink(marker_of(image_path).c_str()); }

}  // namespace xapid::sm
