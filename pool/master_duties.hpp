// What only the pool's master does to the pool's shape: hand its role to another host
// (pool.designate_new_master) and send a host away (pool.eject; host.destroy of a host that is
// gone for good takes its rows the same way). The ejected host's side: it sees its own host row
// leave the pool database, marks its data dir and restarts; at start the mark wipes the pool's
// database, log and identity and the host comes back as a pool of its own (its root password,
// certificate, installation uuid and simulated domains stay; its local SRs' contents go, as in
// xapi).
#pragma once

#include <chrono>
#include <string>

#include "common/result.hpp"
#include "pool/peer_client.hpp"
#include "pool/voters.hpp"
#include "storage/database.hpp"
#include "storage/raft_sequencer.hpp"

namespace xapid::pool {

struct master_side {
  storage::database* db = nullptr;
  storage::raft_sequencer* log = nullptr;
  voter_keeper* keeper = nullptr;  // set once the host serves
  peer_client* peers = nullptr;
  std::string this_host;
  std::chrono::milliseconds reach_timeout{2000};  // a peer that does not answer a ping within it is offline
};

// HA_IS_ENABLED when the pool's HA is on (the pool's shape is then HA's to change).
api::status ha_off(const storage::state& s);
// This host the pool's ready master (else HOST_IS_SLAVE with the master's address).
api::status on_master(const master_side& m, const storage::state& s);
// ha_off and on_master.
api::status master_checks(const master_side& m, const storage::state& s);

// Checks as xapi's (HA_IS_ENABLED; HOST_IS_SLAVE with the master's address on another member;
// HOST_OFFLINE when the host does not answer), then makes `host` the master: its standby
// promoted to a voter when it is one, Raft's leadership transfer, and pool.master naming it.
api::status designate_new_master(const master_side& m, const std::string& host);

// Refuses the master itself (HOST_CANNOT_DESTROY_SELF), a host with a VM that is not halted
// (OPERATION_NOT_ALLOWED "VM resident on host", as xapi) or that does not answer
// (HOST_OFFLINE: a host gone for good is removed with host.destroy); then one transaction takes
// the host's rows out (pool/departure_objects), it is waited for until it has them applied, and
// it leaves the pool's log.
api::status eject(const master_side& m, const std::string& host);

// pool.sync_database: on the master (HOST_IS_SLAVE elsewhere), returns once every member that
// answers has applied everything the master has committed (each asked through its peer
// service, ≤ 10 s in all); one that does not answer is left out, as xapi's flush skips it.
api::status sync_database(const master_side& m);

// The one transaction that takes `host`'s rows out of the pool (as `s`, a snapshot, shows
// them): eject's, and host.destroy's for a host gone for good (its log member then leaves
// through the voter keeper).
api::status remove_host_rows(storage::database& db, const storage::state& s, const std::string& host);

// The ejected host's end: marks DIR for a fresh start (before it restarts), and, at start
// before anything opens, wipes what was the pool's. True when it did.
bool mark_ejected(const std::string& data_dir);
bool ejection_marked(const std::string& data_dir);
result<bool, std::string> finish_ejection(const std::string& data_dir);

}  // namespace xapid::pool
