// The host's hardware watchdog (/dev/watchdog, Linux's watchdog API) while HA is armed on a real
// host: the monitor pets it while the host is not past its fencing time, so a daemon that is
// stopped, hangs or exits without disarming has its host rebooted within the watchdog's
// timeout — before the pool may judge it dead (ha/README.md gives the arithmetic). Disarming
// closes it with the magic 'V', which stops it; any other close leaves it running to the reboot.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "common/result.hpp"

namespace xapid::ha {

class hardware_watchdog {
 public:
  // Opens `device` and sets its timeout (a device that cannot set one keeps its own, said in the
  // log). Errors say why it could not be opened.
  static result<std::unique_ptr<hardware_watchdog>, std::string> open(const std::string& device, std::chrono::seconds timeout);
  ~hardware_watchdog();  // the magic close: the watchdog stops
  hardware_watchdog(const hardware_watchdog&) = delete;
  hardware_watchdog& operator=(const hardware_watchdog&) = delete;

  void pet();

 private:
  explicit hardware_watchdog(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace xapid::ha
