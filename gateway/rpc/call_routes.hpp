// Which host of the pool carries out a call: the one that runs the object it operates on, as
// xapi's message forwarding decides. A VM's power operations, devices and performance data go
// to the host it is resident on; VM.start and VM.resume to the host placement chooses
// (actors/placement), start_on and resume_on to the host they name; a local SR's and its VDIs'
// operations (and a VM's copies of disks there) to that SR's host; host.reboot, its logs and
// its performance data to that host; task.cancel to the host carrying out the task's
// operation (it holds the guest wait the cancel ends). Every other call is carried out where it arrives (the
// database is replicated: a write goes through the pool's log from any host).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "storage/state.hpp"
#include "proto/wire/codec.hpp"

namespace xapid::gateway {

// The host that carries out `method` (its wire name, without "Async.") called with `params`
// (the session left out), as the pool database `s` says: "" when this host (`here`) does, or
// when nothing more can be known here (an object that does not exist, a VM no host can run:
// the handler answers why); another host's ref; or HOST_OFFLINE(host) when that host is not
// live.
api::api_result<std::string> carried_out_by(const storage::state& s, std::string_view method,
                                            std::span<const wire::value> params, const std::string& here);

// After the hosts of `refused` ("" for `here`) refused a start for want of memory (placement
// chose from a replica that did not yet see other starts there): the next host placement
// chooses for it without them ("" for `here`), or why none is left. Only for the calls placement
// routes (VM.start, VM.resume) of a VM resident nowhere.
api::api_result<std::string> placed_again(const storage::state& s, std::string_view method, std::span<const wire::value> params,
                                          const std::string& here, const std::vector<std::string>& refused);

// Whether `method` is one whose host may be another than the one it arrives at.
bool routed(std::string_view method);
// Every such method.
std::vector<std::string_view> routed_methods();

}  // namespace xapid::gateway
