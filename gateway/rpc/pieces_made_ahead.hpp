// A large RPC answer (a whole table) as the HTTP server sends it: made on the call pool a few
// pieces ahead of the connection that sends it, so that the next pieces are being written while
// one goes out from a serving thread, and several answers at once are written on as many pool
// threads instead of one after another on the serving thread. Bounded: at most `pieces_ahead`
// pieces wait per answer, and all answers' waiting pieces together hold at most
// `bytes_ahead_limit`; past that, a piece is made only once it is asked for. When the pool will
// not take the job, a piece is made where it is asked for.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "gateway/http/http_server.hpp"
#include "proto/wire/codec.hpp"

namespace xapid::gateway {

inline constexpr std::size_t pieces_ahead = 4;
inline constexpr std::size_t bytes_ahead_limit = 32u << 20;

// Runs a job on the call pool, in the caller's lane; false when it cannot (the lane is full or
// the pool is stopping).
using pool_runner = std::function<bool(std::function<void()>)>;

// `answer`'s pieces after `first` (made by the caller, the thread that answers), made ahead.
std::unique_ptr<http_body_pieces> pieces_made_ahead(std::unique_ptr<wire::answer_pieces> answer, std::string first,
                                                    pool_runner on_pool);

// Bytes of pieces made and not yet taken by their connections, all answers together (tests).
std::size_t answer_bytes_ahead() noexcept;

}  // namespace xapid::gateway
