// Threshold alarms on data sources, as xapi's perfmon raises them: a VM's, host's or SR's
// other_config:perfmon holds
//   <config><variable><name value="cpu_usage"/><alarm_trigger_level value="0.5"/></variable></config>
// and each variable is a value made from the object's sources in each archive row (the sources
// its rrd_regex matches, summed, averaged or taken the max of; an SR's physical_utilisation is
// utilisation over size). A value on the wrong side of alarm_trigger_level counts its row's step
// down from alarm_trigger_period; at 0 an ALARM message is raised (priority alarm_priority, body
// "value: V\nconfig:\n<the variable's XML>") unless one was raised within
// alarm_auto_inhibit_period; a good value starts the count again. xapi's defaults and variables
// (python3/bin/perfmon): per VM cpu_usage, network_usage, disk_usage, memory_internal_free, and on
// the control domain fs_usage, log_fs_usage, mem_usage; per host cpu_usage, network_usage,
// memory_free_kib, sr_io_throughput_total_<sr8>; per SR physical_utilisation (80 %).
// A config that does not parse is logged and watches nothing, as xapi's. What a config may cost
// is bounded (it is a vm-admin's text, judged by root): 16 variables an object, 4096 a host,
// patterns of 256 bytes in 64 KiB of RE2 (linear time: no pattern stalls the host), 16 levels
// of nesting, 4 KiB a variable; periods within ±2^40 s; at most one alarm of a variable per look
// (xapi's would raise one per bad row when its periods are 0).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "storage/state.hpp"

namespace re2 {
class RE2;
}

namespace xapid::metrics {

enum class watched_kind : std::uint8_t { vm, host, sr };
std::string_view class_name(watched_kind k) noexcept;  // "VM", "Host", "SR": message.create's cls

// The host's own readings that perfmon's control-domain variables use (fractions, NaN unknown).
struct system_usage {
  double fs_usage = 0, log_fs_usage = 0, mem_usage = 0;
};
// This machine's: df of /etc/passwd's file system, of /var/log's when it is another one,
// (used memory + used swap) / total memory from /proc/meminfo.
system_usage read_system_usage();
// /proc/meminfo's text to mem_usage (pure, for tests); 0 when it cannot be read.
double mem_usage_of(std::string_view meminfo);

enum class combine : std::uint8_t { sum, average, max, sr_usage, fs_usage, log_fs_usage, mem_usage };

struct alarm_variable {
  std::string name;
  std::shared_ptr<const re2::RE2> pattern;  // anchored at both ends
  combine fn = combine::sum;
  double level = 0;
  bool high = true;  // alarm above the level (else below)
  std::int64_t trigger_period = 60, inhibit_period = 3600, priority = 3;
  std::string element;  // the <variable> as XML, for the alarm's body and to see a change
};

// The variables of an object's other_config:perfmon; an error names the variable and what is
// wrong with it (the whole config is then ignored, as xapi's).
result<std::vector<alarm_variable>, std::string> parse_perfmon(watched_kind kind, std::string_view xml);

struct alarm {
  watched_kind kind;
  std::string uuid;
  std::int64_t priority;
  std::string body;
};

class perfmon {
 public:
  // One watched object's rows since the last evaluation, oldest first: `values[i][j]` is
  // source `sources[j]` in row i.
  struct object_rows {
    watched_kind kind;
    std::string uuid;
    std::string config;  // its other_config:perfmon ("" none)
    std::vector<std::string> sources;
    std::vector<std::vector<double>> values;
  };

  // Evaluates each object's variables over its rows of `step` seconds at wall time `now`
  // (seconds) and answers the alarms to raise. Objects not given lose their state; a variable
  // whose XML is unchanged keeps its count and its last alarm's time.
  std::vector<alarm> evaluate(const std::vector<object_rows>& objects, std::int64_t step, std::int64_t now,
                              const system_usage& sys);

 private:
  struct variable_state {
    alarm_variable config;
    std::int64_t down_counter = 0;
    std::int64_t last_alarm = 0;
  };
  struct object_state {
    std::string config;
    std::vector<variable_state> variables;
  };
  std::map<std::string, object_state> objects_;  // by class and uuid
};

class collector;

// perfmon on one host: each `interval` seconds (xapi's 300), the rows since its last look of
// what this host archives (the VMs running here, the host, the SRs it keeps) in the 1-minute
// AVERAGE archive (the 5 s one when the interval is under a minute), each object's config read
// from the pool database.
class alarm_watch {
 public:
  alarm_watch(collector& c, std::int64_t interval_seconds);
  std::int64_t interval() const noexcept { return interval_; }
  std::vector<alarm> run(const storage::state& s, std::int64_t now);

 private:
  collector& collector_;
  perfmon perfmon_;
  std::int64_t interval_, step_;
  std::int64_t since_ = -1;
};

}  // namespace xapid::metrics
