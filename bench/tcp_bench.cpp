// vane-tcp-bench: TCP benchmark tools for comparing a direct loopback path
// with paths through proxies (vaned's TCP adaptor, HAProxy). Plain POSIX
// sockets and threads, so the client costs as little as possible.
//
//   vane-tcp-bench echo-server --host 127.0.0.1 --port P [--threads N]
//   vane-tcp-bench connrate --port P --connections N --concurrency C --seconds S
//   vane-tcp-bench pingpong --port P --count N --size B [--warmup W]
//
// echo-server echoes every byte back; when the client half-closes (EOF), it
// finishes writing what it still holds, shuts down its write side and
// closes. It prints "listening on HOST:PORT" (the bound port, so --port 0
// works) on stdout and exits on SIGTERM / SIGINT or after --timeout seconds.
//
// The clients print one machine-readable line starting with "RESULT" on
// stdout (key=value fields). They exit 0 when every connection / round trip
// succeeded and 1 otherwise (the RESULT line is printed in both cases, the
// reason of the first failure goes to stderr); 2 on bad arguments.
//
// Every wait is bounded: socket operations by --io-timeout-ms, whole runs by
// --seconds (connrate) or --timeout (pingpong, echo-server).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

int64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// Nearest-rank percentile q (0..1] of samples in nanoseconds, in microseconds.
double percentileUs(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  auto idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
  idx = idx == 0 ? 0 : idx - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(idx), v.end());
  return static_cast<double>(v[idx]) / 1000.0;
}

double meanUs(const std::vector<int64_t>& v) {
  if (v.empty()) return 0;
  long double sum = 0;
  for (int64_t x : v) sum += x;
  return static_cast<double>(sum / v.size()) / 1000.0;
}

// Owns one file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

std::string errnoText(const char* what, int err) {
  return std::string(what) + ": " + std::strerror(err);
}

bool ipv4Address(const std::string& host, uint16_t port, sockaddr_in* sa) {
  std::memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_port = htons(port);
  return inet_pton(AF_INET, host.c_str(), &sa->sin_addr) == 1;
}

void setTimeouts(int fd, int timeout_ms) {
  timeval tv{};
  tv.tv_sec = timeout_ms / 1000;
  tv.tv_usec = static_cast<suseconds_t>(timeout_ms % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Connects within timeout_ms and returns a blocking socket with TCP_NODELAY
// and send/receive timeouts of timeout_ms; on failure an invalid Fd and *err.
Fd connectTo(const sockaddr_in& sa, int timeout_ms, std::string* err) {
  Fd fd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) {
    *err = errnoText("socket", errno);
    return {};
  }
  int one = 1;
  setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno != EINPROGRESS) {
      *err = errnoText("connect", errno);
      return {};
    }
    pollfd p{fd.get(), POLLOUT, 0};
    int n = poll(&p, 1, timeout_ms);
    if (n == 0) {
      *err = "connect: timed out";
      return {};
    }
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if (n < 0 || getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
      *err = errnoText("connect", n < 0 ? errno : soerr);
      return {};
    }
  }
  int flags = fcntl(fd.get(), F_GETFL);
  fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  setTimeouts(fd.get(), timeout_ms);
  return fd;
}

// Blocking full write / full read on a socket with SO_SNDTIMEO / SO_RCVTIMEO.
bool writeAll(int fd, const char* p, std::size_t n, std::string* err) {
  while (n > 0) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0) {
      if (errno == EINTR) continue;
      *err = errnoText("send", errno == EAGAIN ? ETIMEDOUT : errno);
      return false;
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

bool readExact(int fd, char* p, std::size_t n, std::string* err) {
  while (n > 0) {
    ssize_t k = recv(fd, p, n, 0);
    if (k == 0) {
      *err = "recv: connection closed by the peer (EOF)";
      return false;
    }
    if (k < 0) {
      if (errno == EINTR) continue;
      *err = errnoText("recv", errno == EAGAIN ? ETIMEDOUT : errno);
      return false;
    }
    p += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

// Up to this size a round trip is a blocking write then a blocking read:
// fewest system calls, and the bytes fit the socket buffers of every hop.
constexpr std::size_t kSimpleExchangeMax = 64 * 1024;

// Writes `out` and reads as many bytes into `in`, interleaved, so a message
// larger than the socket buffers along the path cannot deadlock (the echo
// server stops reading while its writes are blocked). Each wait is bounded by
// timeout_ms.
bool exchange(int fd, const std::vector<char>& out, std::vector<char>& in, int timeout_ms,
              std::string* err) {
  std::size_t sent = 0, got = 0;
  while (got < in.size()) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < out.size() ? POLLOUT : 0)), 0};
    int n = poll(&p, 1, timeout_ms);
    if (n == 0) {
      *err = "exchange: timed out";
      return false;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errnoText("poll", errno);
      return false;
    }
    if (sent < out.size() && (p.revents & (POLLOUT | POLLERR))) {
      ssize_t k = send(fd, out.data() + sent, out.size() - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (k < 0 && errno != EAGAIN && errno != EINTR) {
        *err = errnoText("send", errno);
        return false;
      }
      if (k > 0) sent += static_cast<std::size_t>(k);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t k = recv(fd, in.data() + got, in.size() - got, MSG_DONTWAIT);
      if (k == 0) {
        *err = "recv: connection closed by the peer (EOF)";
        return false;
      }
      if (k < 0 && errno != EAGAIN && errno != EINTR) {
        *err = errnoText("recv", errno);
        return false;
      }
      if (k > 0) got += static_cast<std::size_t>(k);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------
// echo-server

std::atomic<bool> g_stop{false};
extern "C" void onStopSignal(int) {
  g_stop.store(true);
}

// One accepted connection, owned by the worker thread that accepted it.
// Invariant: off <= len <= buf.size(); bytes [off, len) are read and not yet
// written back. Nothing more is read while any are pending (back-pressure).
struct EchoConn {
  Fd fd;
  std::vector<char> buf;
  std::size_t off = 0, len = 0;
  bool eof = false;       // the client has shut down its write side
  uint32_t interest = 0;  // events registered with epoll
};

class EchoWorker {
 public:
  EchoWorker(int listen_fd, std::size_t buf_size, int64_t deadline_ns)
      : listen_fd_(listen_fd), buf_size_(buf_size), deadline_ns_(deadline_ns) {}

  // Runs on its own thread until g_stop or the deadline.
  std::string run() {
    Fd ep(epoll_create1(EPOLL_CLOEXEC));
    if (!ep.valid()) return errnoText("epoll_create1", errno);
    ep_ = ep.get();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;  // one worker woken per new connection
    ev.data.ptr = nullptr;
    if (epoll_ctl(ep_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) return errnoText("epoll_ctl", errno);
    epoll_event events[64];
    while (!g_stop.load() && nowNs() < deadline_ns_) {
      int n = epoll_wait(ep_, events, 64, 100);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errnoText("epoll_wait", errno);
      }
      for (int i = 0; i < n; ++i) {
        if (events[i].data.ptr == nullptr) {
          acceptSome();
        } else {
          serve(static_cast<EchoConn*>(events[i].data.ptr), events[i].events);
        }
      }
    }
    conns_.clear();
    return {};
  }

 private:
  void acceptSome() {
    for (int i = 0; i < 64; ++i) {
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) return;  // EAGAIN (another worker took it), or a transient error
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto c = std::make_unique<EchoConn>();
      c->fd.reset(fd);
      c->buf.resize(buf_size_);
      c->interest = EPOLLIN;
      epoll_event ev{};
      ev.events = c->interest;
      ev.data.ptr = c.get();
      if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) != 0) continue;  // c closes fd
      conns_.emplace(fd, std::move(c));
    }
  }

  void setInterest(EchoConn* c, uint32_t interest) {
    if (c->interest == interest) return;
    c->interest = interest;
    epoll_event ev{};
    ev.events = interest;
    ev.data.ptr = c;
    epoll_ctl(ep_, EPOLL_CTL_MOD, c->fd.get(), &ev);
  }

  void drop(EchoConn* c) { conns_.erase(c->fd.get()); }  // closes the socket

  // Level-triggered: a bounded amount of work per wake-up keeps connections
  // fair; epoll reports the socket again if more is ready.
  void serve(EchoConn* c, uint32_t events) {
    if (events & EPOLLERR) return drop(c);
    for (int round = 0; round < 16; ++round) {
      if (c->off < c->len) {
        ssize_t k = send(c->fd.get(), c->buf.data() + c->off, c->len - c->off, MSG_NOSIGNAL);
        if (k < 0) {
          if (errno == EAGAIN || errno == EINTR) return setInterest(c, EPOLLOUT);
          return drop(c);
        }
        c->off += static_cast<std::size_t>(k);
        if (c->off < c->len) return setInterest(c, EPOLLOUT);
        c->off = c->len = 0;
      }
      if (c->eof) {
        // Everything echoed: half-close our side too, then close.
        shutdown(c->fd.get(), SHUT_WR);
        return drop(c);
      }
      ssize_t k = recv(c->fd.get(), c->buf.data(), c->buf.size(), 0);
      if (k > 0) {
        c->len = static_cast<std::size_t>(k);
      } else if (k == 0) {
        c->eof = true;
      } else if (errno == EAGAIN || errno == EINTR) {
        return setInterest(c, EPOLLIN);
      } else {
        return drop(c);  // ECONNRESET and the like
      }
    }
    setInterest(c, c->off < c->len ? EPOLLOUT : EPOLLIN);
  }

  int listen_fd_;
  std::size_t buf_size_;
  int64_t deadline_ns_;
  int ep_ = -1;
  std::unordered_map<int, std::unique_ptr<EchoConn>> conns_;
};

struct EchoOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int threads = 1;
  std::size_t buffer = 64 * 1024;
  double timeout_s = 3600;
};

int runEchoServer(const EchoOptions& o) {
  sockaddr_in sa{};
  if (!ipv4Address(o.host, o.port, &sa)) {
    std::fprintf(stderr, "vane-tcp-bench: --host: not an IPv4 address: '%s'\n", o.host.c_str());
    return 2;
  }
  Fd lfd(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  int one = 1;
  if (!lfd.valid() || setsockopt(lfd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(lfd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      listen(lfd.get(), 4096) != 0) {
    std::fprintf(stderr, "vane-tcp-bench: echo-server: cannot listen on %s:%u: %s\n",
                 o.host.c_str(), o.port, std::strerror(errno));
    return 1;
  }
  socklen_t len = sizeof sa;
  getsockname(lfd.get(), reinterpret_cast<sockaddr*>(&sa), &len);
  char addr[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &sa.sin_addr, addr, sizeof addr);

  struct sigaction act {};
  act.sa_handler = onStopSignal;
  sigaction(SIGTERM, &act, nullptr);
  sigaction(SIGINT, &act, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  std::printf("listening on %s:%u\n", addr, ntohs(sa.sin_port));
  std::fflush(stdout);

  int64_t deadline = nowNs() + static_cast<int64_t>(o.timeout_s * 1e9);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(static_cast<std::size_t>(o.threads));
  for (int i = 0; i < o.threads; ++i) {
    threads.emplace_back([&, i] {
      EchoWorker w(lfd.get(), o.buffer, deadline);
      errors[static_cast<std::size_t>(i)] = w.run();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) {
    if (!e.empty()) {
      std::fprintf(stderr, "vane-tcp-bench: echo-server: %s\n", e.c_str());
      return 1;
    }
  }
  return 0;
}

// ---------------------------------------------------------------------------
// connrate

struct ConnrateOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  uint64_t connections = 1000;
  int concurrency = 4;
  double seconds = 10;
  int io_timeout_ms = 2000;
};

int runConnrate(const ConnrateOptions& o) {
  sockaddr_in sa{};
  if (!ipv4Address(o.host, o.port, &sa)) {
    std::fprintf(stderr, "vane-tcp-bench: --host: not an IPv4 address: '%s'\n", o.host.c_str());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> failed{0};
  std::mutex mu;  // guards first_error
  std::string first_error;
  const int64_t start = nowNs();
  const int64_t deadline = start + static_cast<int64_t>(o.seconds * 1e9);
  std::vector<std::vector<int64_t>> samples(static_cast<std::size_t>(o.concurrency));
  std::vector<int64_t> last_end(static_cast<std::size_t>(o.concurrency), start);

  auto worker = [&](std::size_t w) {
    auto& mine = samples[w];
    while (next.fetch_add(1) < o.connections && nowNs() < deadline) {
      const int64_t t0 = nowNs();
      std::string err;
      bool ok = false;
      if (Fd fd = connectTo(sa, o.io_timeout_ms, &err); fd.valid()) {
        char out = static_cast<char>('a' + (t0 & 15)), in = 0;
        if (writeAll(fd.get(), &out, 1, &err) && readExact(fd.get(), &in, 1, &err)) {
          ok = in == out;
          if (!ok) err = "echoed byte differs";
        }
      }  // closes the socket
      const int64_t t1 = nowNs();
      last_end[w] = t1;
      if (ok) {
        mine.push_back(t1 - t0);
      } else {
        failed.fetch_add(1);
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.empty()) first_error = err;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < o.concurrency; ++i) {
    threads.emplace_back(worker, static_cast<std::size_t>(i));
  }
  for (auto& t : threads) t.join();

  std::vector<int64_t> all;
  for (auto& s : samples) all.insert(all.end(), s.begin(), s.end());
  const int64_t end = *std::max_element(last_end.begin(), last_end.end());
  const double secs = static_cast<double>(end - start) / 1e9;
  const uint64_t nfailed = failed.load();
  const double per_sec = secs > 0 ? static_cast<double>(all.size()) / secs : 0;
  const double p50 = percentileUs(all, 0.50), p99 = percentileUs(all, 0.99);
  if (!first_error.empty()) {
    std::fprintf(stderr, "vane-tcp-bench: connrate: %" PRIu64 " connection(s) failed, first: %s\n",
                 nfailed, first_error.c_str());
  }
  std::printf("RESULT mode=connrate conns=%zu seconds=%.3f per_sec=%.0f failed=%" PRIu64
              " p50_us=%.1f p99_us=%.1f attempted=%zu\n",
              all.size(), secs, per_sec, nfailed, p50, p99, all.size() + nfailed);
  std::fflush(stdout);
  return (nfailed == 0 && !all.empty()) ? 0 : 1;
}

// ---------------------------------------------------------------------------
// pingpong

struct PingpongOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  uint64_t count = 10000;
  std::size_t size = 1;
  uint64_t warmup = 100;
  double timeout_s = 60;
  int io_timeout_ms = 2000;
};

int runPingpong(const PingpongOptions& o) {
  sockaddr_in sa{};
  if (!ipv4Address(o.host, o.port, &sa)) {
    std::fprintf(stderr, "vane-tcp-bench: --host: not an IPv4 address: '%s'\n", o.host.c_str());
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::string err;
  Fd fd = connectTo(sa, o.io_timeout_ms, &err);
  std::vector<int64_t> rtts;
  rtts.reserve(o.count);
  if (fd.valid()) {
    std::vector<char> out(o.size), in(o.size);
    const int64_t deadline = nowNs() + static_cast<int64_t>(o.timeout_s * 1e9);
    for (uint64_t i = 0; i < o.warmup + o.count; ++i) {
      // Vary the payload so a stale or misrouted echo is noticed.
      std::memset(out.data(), 'A' + static_cast<int>(i % 26), out.size());
      const int64_t t0 = nowNs();
      const bool ok = o.size <= kSimpleExchangeMax
                          ? writeAll(fd.get(), out.data(), out.size(), &err) &&
                                readExact(fd.get(), in.data(), in.size(), &err)
                          : exchange(fd.get(), out, in, o.io_timeout_ms, &err);
      if (!ok) break;
      const int64_t t1 = nowNs();
      if (std::memcmp(out.data(), in.data(), out.size()) != 0) {
        err = "echoed bytes differ";
        break;
      }
      if (i >= o.warmup) rtts.push_back(t1 - t0);
      if (t1 > deadline) {
        err = "timed out after " + std::to_string(o.timeout_s) + " s";
        break;
      }
    }
    if (err.empty()) {
      // Half-close and expect the echo server's EOF: the path passes it on.
      shutdown(fd.get(), SHUT_WR);
      char c;
      ssize_t k = recv(fd.get(), &c, 1, 0);
      if (k != 0) err = k < 0 ? errnoText("recv after half-close", errno) : "data after half-close";
    }
  }
  const double mean = meanUs(rtts);
  const double p50 = percentileUs(rtts, 0.50), p99 = percentileUs(rtts, 0.99);
  const double max =
      rtts.empty() ? 0 : static_cast<double>(*std::max_element(rtts.begin(), rtts.end())) / 1000.0;
  if (!err.empty()) std::fprintf(stderr, "vane-tcp-bench: pingpong: %s\n", err.c_str());
  std::printf(
      "RESULT mode=pingpong count=%zu p50_us=%.1f p99_us=%.1f mean_us=%.1f max_us=%.1f size=%zu\n",
      rtts.size(), p50, p99, mean, max, o.size);
  std::fflush(stdout);
  return err.empty() && rtts.size() == o.count ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vane-tcp-bench - TCP echo server, connection-rate and ping-pong latency clients"};
  app.require_subcommand(1);

  EchoOptions echo;
  auto* e = app.add_subcommand("echo-server", "echo bytes back; half-close aware");
  e->add_option("--host", echo.host, "IPv4 address to bind (default 127.0.0.1)");
  e->add_option("--port", echo.port, "port; 0 = a free one (printed)")->required();
  e->add_option("--threads", echo.threads, "worker threads (default 1)")->check(CLI::Range(1, 64));
  e->add_option("--buffer", echo.buffer, "per-connection buffer bytes (default 65536)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{16} << 20));
  e->add_option("--timeout", echo.timeout_s, "exit after this many seconds (default 3600)")
      ->check(CLI::PositiveNumber);

  ConnrateOptions cr;
  auto* c =
      app.add_subcommand("connrate", "connections per second: connect, 1 byte each way, close");
  c->add_option("--host", cr.host, "server IPv4 address (default 127.0.0.1)");
  c->add_option("--port", cr.port, "server port")->required()->check(CLI::Range(1, 65535));
  c->add_option("--connections", cr.connections, "connections to open (default 1000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{10000000}));
  c->add_option("--concurrency", cr.concurrency, "connections at a time (default 4)")
      ->check(CLI::Range(1, 1024));
  c->add_option("--seconds", cr.seconds, "stop starting connections after S s (default 10)")
      ->check(CLI::PositiveNumber);
  c->add_option("--io-timeout-ms", cr.io_timeout_ms, "per connect/read/write (default 2000)")
      ->check(CLI::Range(1, 600000));

  PingpongOptions pp;
  auto* p =
      app.add_subcommand("pingpong", "round-trip latency: write B bytes, read B back, N times");
  p->add_option("--host", pp.host, "server IPv4 address (default 127.0.0.1)");
  p->add_option("--port", pp.port, "server port")->required()->check(CLI::Range(1, 65535));
  p->add_option("--count", pp.count, "measured round trips (default 10000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100000000}));
  p->add_option("--size", pp.size, "bytes per round trip (default 1)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{64} << 20));
  p->add_option("--warmup", pp.warmup, "unmeasured round trips first (default 100)");
  p->add_option("--timeout", pp.timeout_s, "wall-clock limit in seconds (default 60)")
      ->check(CLI::PositiveNumber);
  p->add_option("--io-timeout-ms", pp.io_timeout_ms, "per read/write (default 2000)")
      ->check(CLI::Range(1, 600000));

  CLI11_PARSE(app, argc, argv);
  if (e->parsed()) return runEchoServer(echo);
  if (c->parsed()) return runConnrate(cr);
  return runPingpong(pp);
}
