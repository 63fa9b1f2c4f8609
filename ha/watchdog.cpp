#include "ha/watchdog.hpp"

#include <fcntl.h>
#include <linux/watchdog.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace xapid::ha {

result<std::unique_ptr<hardware_watchdog>, std::string> hardware_watchdog::open(const std::string& device,
                                                                               std::chrono::seconds timeout) {
  const int fd = ::open(device.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return fail("opening " + device + ": " + std::strerror(errno));
  int seconds = static_cast<int>(timeout.count());
  if (::ioctl(fd, WDIOC_SETTIMEOUT, &seconds) != 0)
    spdlog::warn("ha.watchdog.timeout_not_set device={} reason=\"{}\" (it keeps its own)", device, std::strerror(errno));
  else
    spdlog::info("ha.watchdog.armed device={} timeout_s={}", device, seconds);
  return std::unique_ptr<hardware_watchdog>(new hardware_watchdog(fd));
}

hardware_watchdog::~hardware_watchdog() {
  (void)!::write(fd_, "V", 1);  // the magic close
  ::close(fd_);
}

void hardware_watchdog::pet() { (void)!::write(fd_, "\0", 1); }

}  // namespace xapid::ha
