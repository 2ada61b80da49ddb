// Fuzz target for the router's bytes-to-frames path: the input is what a
// client writes into an accepted AMQP connection (protocol headers, SASL and
// AMQP frames, possibly truncated or malformed), fed into a real
// vane::amqp::Connection through a UNIX socketpair.
//
// One event loop, driven on the fuzzer's thread (EventLoop::poll), serves as
// both the routing core's loop and the connection's worker loop, with a
// single ForwardingTable replica, as a one-worker router has. Each input is
// run twice, on a fresh connection each time:
//  - frame by frame: the input is cut at frame boundaries (as far as its
//    size fields make sense) and the loop runs until idle after each piece,
//    as with a client that waits for the router between frames (so consumers
//    are registered before the next frame arrives);
//  - streamed: everything is written as fast as the socket takes it, so
//    frames race the router's posted work, as with a pipelining client.
// Then the client's side is shut down for writing and the loop runs until the
// connection has torn down. Whatever the router writes back is read and
// discarded.
//
// Besides "no crash, no sanitizer report, no leak", it checks after each run:
//  - the connection tears down after the client's end of stream (no hang);
//  - the Connection object is destroyed (nothing keeps it alive);
//  - nothing is left behind: the ForwardingTable and the routing core's
//    address table are empty, and the active-connection count is back to 0.
//
// Environment:
//   VANE_FUZZ_LOG=<level>     the router's log on stderr (e.g. debug); by
//                             default it is formatted (at trace level) into a
//                             null sink;
//   VANE_FUZZ_STATS=1         print the delivery counters of each run (to see
//                             how far an input gets);
//   VANE_FUZZ_PROTON_LEAKS=1  do not suppress leaks inside Proton (see
//                             __lsan_default_suppressions below).
//
// Seeds (seed-*) are written by make_corpus.cpp; bug-* files reproduce bugs
// found by fuzzing; the rest were added by libFuzzer merges. known-crashes/
// holds inputs that still abort the router inside Proton (not replayed by
// fuzz_frames_regress until fixed; replay one by passing it as an argument).
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "amqp/connection.hpp"
#include "config/config.hpp"
#include "core/event_loop.hpp"
#include "forwarding/forwarder.hpp"
#include "fuzz_router.hpp"
#include "routing/address_policy.hpp"
#include "routing/core.hpp"

namespace {

using vane::amqp::Connection;

// Created once and never destroyed (the loop may hold nothing between
// inputs, see checkClean).
struct Harness : vane::fuzz::FuzzRouter {
  Harness() : FuzzRouter("fuzz") {}
};

void setUpLogging() {
  std::shared_ptr<spdlog::logger> logger;
  const char* level = std::getenv("VANE_FUZZ_LOG");
  if (level != nullptr && *level != '\0') {
    logger = spdlog::stderr_logger_mt("vane-fuzz");
    logger->set_level(spdlog::level::from_str(level));
  } else {
    // Still format every message: log arguments come from the peer.
    logger = std::make_shared<spdlog::logger>("vane-fuzz",
                                              std::make_shared<spdlog::sinks::null_sink_mt>());
    logger->set_level(spdlog::level::trace);
  }
  spdlog::set_default_logger(std::move(logger));
}

Harness& harness() {
  static Harness* h = [] {
    setUpLogging();
    return new Harness;
  }();
  return *h;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "frames fuzz target: invariant violated: %s\n", what);
  std::abort();
}

// Wall-clock limit for one run; a connection still open this long after the
// client's end of stream is taken as hung.
constexpr auto kRunLimit = std::chrono::seconds(10);
// Loop passes that may each run handlers before a piece of input is written
// anyway (a peer-requested idle timeout of a few ms keeps the loop busy).
constexpr int kMaxSettlePasses = 1000;

// The client's end of the socketpair.
class Peer {
 public:
  explicit Peer(int fd) : fd_(fd) {}
  ~Peer() { ::close(fd_); }
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Reads and discards whatever the router wrote.
  void drain() {
    char buf[16384];
    while (!eof_) {
      const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) continue;
      if (n == 0) eof_ = true;
      if (n < 0 && errno == EINTR) continue;
      break;  // EAGAIN, or an error (the router reset the connection)
    }
  }

  // Writes as much as the socket takes now. Returns the bytes written; sets
  // gone() once the router's end is closed.
  std::size_t write(const std::uint8_t* data, std::size_t size) {
    std::size_t done = 0;
    while (done < size && !gone_) {
      const ssize_t n = ::send(fd_, data + done, size - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        done += static_cast<std::size_t>(n);
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        break;
      } else {
        gone_ = true;  // EPIPE / ECONNRESET: the router closed its end
      }
    }
    return done;
  }

  void shutdownWrite() { ::shutdown(fd_, SHUT_WR); }
  bool gone() const { return gone_; }

 private:
  int fd_;
  bool eof_ = false;
  bool gone_ = false;
};

// Runs the loop until no handler is ready, reading what the router writes.
void settle(Harness& h, Peer& peer) {
  for (int pass = 0; pass < kMaxSettlePasses; ++pass) {
    const std::size_t ran = h.loop.poll();
    peer.drain();
    if (ran == 0) return;
  }
}

// Writes one piece of input, running the loop whenever the socket is full.
void writePiece(Harness& h, Peer& peer, const std::uint8_t* data, std::size_t size,
                std::chrono::steady_clock::time_point deadline) {
  while (size > 0 && !peer.gone()) {
    const std::size_t n = peer.write(data, size);
    data += n;
    size -= n;
    if (size == 0) break;
    if (std::chrono::steady_clock::now() > deadline) fail("router stopped reading (hang)");
    if (h.loop.poll() == 0) h.loop.runOneFor(std::chrono::milliseconds(1));
    peer.drain();
  }
}

// Length of the next frame-ish piece of `data`: an 8-byte protocol header, a
// frame whose size field fits in what is left, or else everything that is left.
std::size_t nextPiece(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return size;
  if (std::memcmp(data, "AMQP", 4) == 0) return 8;
  const std::uint32_t frame = (std::uint32_t{data[0]} << 24) | (std::uint32_t{data[1]} << 16) |
                              (std::uint32_t{data[2]} << 8) | std::uint32_t{data[3]};
  if (frame >= 8 && frame <= size) return frame;
  return size;
}

void checkClean(Harness& h, const std::weak_ptr<Connection>& weak) {
  if (!weak.expired()) fail("the Connection outlived its teardown (leaked reference)");
  if (h.table.size() != 0) fail("ForwardingTable not empty after the connection closed");
  // Core loop only: read in a turn of the loop, which this thread stands in
  // for only while it polls.
  std::size_t addresses = 0;
  h.loop.post([&] { addresses = h.core.addressCount(); });
  h.loop.poll();
  if (addresses != 0) fail("routing core still has addresses after the connection closed");
  if (h.stats.connections_active.load() != 0) fail("connections_active != 0 after teardown");
}

// VANE_FUZZ_STATS=1: print what each run did (to check that seeds get far).
void printStats(const vane::amqp::Stats& s, bool frame_by_frame) {
  std::fprintf(stderr,
               "  %s: in %llu, out %llu, released %llu, rejected %llu, modified %llu, "
               "no route %llu, protocol errors %llu\n",
               frame_by_frame ? "frames" : "stream",
               static_cast<unsigned long long>(s.deliveries_in.load()),
               static_cast<unsigned long long>(s.deliveries_out.load()),
               static_cast<unsigned long long>(s.deliveries_released.load()),
               static_cast<unsigned long long>(s.deliveries_rejected.load()),
               static_cast<unsigned long long>(s.deliveries_modified.load()),
               static_cast<unsigned long long>(s.deliveries_dropped_no_route.load()),
               static_cast<unsigned long long>(s.protocol_errors.load()));
}

void resetStats(vane::amqp::Stats& s) {
  for (auto* c :
       {&s.deliveries_in, &s.deliveries_out, &s.deliveries_released, &s.deliveries_rejected,
        &s.deliveries_modified, &s.deliveries_dropped_no_route, &s.protocol_errors})
    c->store(0);
}

void runOnce(const std::uint8_t* data, std::size_t size, bool frame_by_frame) {
  Harness& h = harness();
  static const bool print_stats = std::getenv("VANE_FUZZ_STATS") != nullptr;
  if (print_stats) resetStats(h.stats);
  const auto deadline = std::chrono::steady_clock::now() + kRunLimit;

  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    std::perror("socketpair");
    std::abort();
  }
  Peer peer(fds[1]);
  boost::asio::ip::tcp::socket socket(h.loop.context());
  boost::system::error_code ec;
  socket.assign(boost::asio::ip::tcp::v4(), fds[0], ec);
  if (ec) {
    std::fprintf(stderr, "assign: %s\n", ec.message().c_str());
    std::abort();
  }

  // Held like Worker holds its connections: released (deferred) once closed.
  std::shared_ptr<Connection> holder;
  bool closed = false;
  vane::amqp::ConnectionOptions options;
  options.name = "fuzz";
  holder = std::make_shared<Connection>(h.ctx, std::move(socket), std::move(options),
                                        [&h, &holder, &closed](Connection*) {
                                          closed = true;
                                          h.loop.post([&holder] { holder.reset(); });
                                        });
  const std::weak_ptr<Connection> weak = holder;
  h.loop.post([conn = holder] { conn->start(); });
  settle(h, peer);

  if (frame_by_frame) {
    std::size_t offset = 0;
    while (offset < size && !peer.gone()) {
      const std::size_t n = nextPiece(data + offset, size - offset);
      writePiece(h, peer, data + offset, n, deadline);
      offset += n;
      settle(h, peer);
    }
  } else {
    writePiece(h, peer, data, size, deadline);
  }
  peer.shutdownWrite();

  // Until the connection has torn down and everything it posted has run.
  while (true) {
    const std::size_t ran = h.loop.poll();
    peer.drain();
    if (closed && !holder && ran == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      fail(closed ? "loop still busy after the connection closed"
                  : "connection not closed after the client's end of stream (hang)");
    }
    if (ran == 0) h.loop.runOneFor(std::chrono::milliseconds(1));
  }
  checkClean(h, weak);
  if (print_stats) printStats(h.stats, frame_by_frame);
}

}  // namespace

// LeakSanitizer: ignore leaks of memory Proton allocated. Proton 0.37's
// pn_do_init (c/src/sasl/sasl.c) overwrites sasl->selected_mechanism without
// freeing the previous string, so every SASL init frame after the first leaks
// its mechanism name; a client can send them after a plain AMQP header too
// (the router accepts both, and Proton's AMQP layer still dispatches SASL
// performatives). That is Proton's bug (see corpus/bug-proton-sasl-init-leak);
// the router's own objects are still checked, and a leaked Connection, which
// would hold all of its Proton memory, is caught by checkClean(). Set
// VANE_FUZZ_PROTON_LEAKS=1 to see Proton's leaks too.
extern "C" const char* __lsan_default_suppressions() {
  const char* all = std::getenv("VANE_FUZZ_PROTON_LEAKS");
  if (all != nullptr && *all != '\0' && *all != '0') return "";
  return "leak:libqpid-proton.so\n";
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  harness();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  runOnce(data, size, /*frame_by_frame=*/true);
  runOnce(data, size, /*frame_by_frame=*/false);
  return 0;
}
