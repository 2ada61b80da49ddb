// vane-bench: AMQP 1.0 throughput and latency benchmark built on the Qpid
// Proton-C proactor API.
//
// Roles:
//   vane-bench recv --connect H:P | --listen H:P [options]
//   vane-bench send --connect H:P [options]
//   vane-bench pair --router H:P | --direct [options]
//
// `pair` runs a receiver and a sender in one process, each on its own thread
// with its own proactor (so they behave like two separate client processes),
// and lets the sender bound the number of messages in flight end to end. In
// `--direct` mode the receiver listens and the sender connects straight to it.
//
// Every message body carries the sender's CLOCK_MONOTONIC timestamp (8 bytes)
// and a sequence number (8 bytes), both in host byte order, followed by
// filler up to --size bytes. The receiver computes one-way latency from the
// timestamp, which is valid because sender and receiver run on one machine.
//
// Each role prints one machine-readable line starting with "RESULT" on
// stdout (key=value fields) and exits 0; on error or timeout it prints a
// message on stderr and exits 1.

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/listener.h>
#include <proton/message.h>
#include <proton/netaddr.h>
#include <proton/proactor.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::size_t kStampBytes = 16;  // timestamp + sequence number

int64_t nowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

// ---------------------------------------------------------------------------
// Options

struct Options {
  std::string role;     // send | recv | pair
  std::string connect;  // send/recv: peer or router address "host:port"
  std::string listen;   // recv: listen address; pair --direct: listen address
  bool direct = false;  // pair: no router
  std::string address = "bench";
  uint64_t count = 100000;
  std::size_t size = 100;
  int credit = 500;
  bool presettled = false;
  uint64_t window = 0;  // 0 = unbounded (limited by credit only)
  double timeout_s = 60.0;
  std::string label;
};

[[noreturn]] void usage(int code) {
  std::FILE* out = code == 0 ? stdout : stderr;
  std::fprintf(
      out,
      "usage: vane-bench ROLE [options]\n"
      "roles:\n"
      "  recv   receive COUNT messages; --connect H:P (router) or --listen H:P (direct)\n"
      "  send   send COUNT messages; --connect H:P\n"
      "  pair   receiver and sender in one process on two threads;\n"
      "         --router H:P, or --direct (receiver listens on --listen, default 127.0.0.1:0)\n"
      "options:\n"
      "  --address A     link address (default bench)\n"
      "  --count N       messages to transfer (default 100000)\n"
      "  --size B        body size in bytes, >= 16 (default 100)\n"
      "  --credit C      receiver credit window (default 500)\n"
      "  --presettled    sender settles before sending (at-most-once); default unsettled\n"
      "  --window W      at most W messages in flight (0 = unbounded, the default).\n"
      "                  In flight = sent and not yet received (pair, presettled) or\n"
      "                  sent and no outcome yet (unsettled). send: unsettled only.\n"
      "  --timeout S     wall-clock limit in seconds (default 60); exit 1 when exceeded\n"
      "  --label L       scenario label copied into the RESULT line\n");
  std::exit(code);
}

uint64_t parseUnsigned(const char* opt, const char* text) {
  char* end = nullptr;
  errno = 0;
  unsigned long long v = std::strtoull(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
    std::fprintf(stderr, "vane-bench: %s: not a non-negative integer: '%s'\n", opt, text);
    std::exit(2);
  }
  return v;
}

Options parseOptions(int argc, char** argv) {
  if (argc < 2) usage(2);
  Options o;
  o.role = argv[1];
  if (o.role == "-h" || o.role == "--help") usage(0);
  if (o.role != "send" && o.role != "recv" && o.role != "pair") {
    std::fprintf(stderr, "vane-bench: unknown role '%s'\n", o.role.c_str());
    usage(2);
  }
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "vane-bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--connect" || a == "--router")
      o.connect = value();
    else if (a == "--listen")
      o.listen = value();
    else if (a == "--direct")
      o.direct = true;
    else if (a == "--address")
      o.address = value();
    else if (a == "--count")
      o.count = parseUnsigned("--count", value());
    else if (a == "--size")
      o.size = parseUnsigned("--size", value());
    else if (a == "--credit")
      o.credit = static_cast<int>(parseUnsigned("--credit", value()));
    else if (a == "--presettled")
      o.presettled = true;
    else if (a == "--window")
      o.window = parseUnsigned("--window", value());
    else if (a == "--timeout") {
      const char* v = value();
      char* end = nullptr;
      o.timeout_s = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(o.timeout_s > 0)) {
        std::fprintf(stderr, "vane-bench: --timeout: not a positive number: '%s'\n", v);
        std::exit(2);
      }
    } else if (a == "--label")
      o.label = value();
    else if (a == "-h" || a == "--help")
      usage(0);
    else {
      std::fprintf(stderr, "vane-bench: unknown option '%s'\n", a.c_str());
      usage(2);
    }
  }
  auto bad = [](const char* msg) {
    std::fprintf(stderr, "vane-bench: %s\n", msg);
    std::exit(2);
  };
  if (o.count == 0) bad("--count must be at least 1");
  if (o.size < kStampBytes) bad("--size must be at least 16");
  if (o.size > (64u << 20)) bad("--size must be at most 64 MiB");
  if (o.credit < 1 || o.credit > 1000000) bad("--credit must be in 1..1000000");
  if (o.role == "recv" && o.connect.empty() == o.listen.empty())
    bad("recv needs exactly one of --connect or --listen");
  if (o.role == "send" && o.connect.empty()) bad("send needs --connect");
  if (o.role == "send" && o.presettled && o.window != 0)
    bad("send --presettled cannot bound messages in flight (no outcomes); use pair");
  if (o.role == "pair" && o.connect.empty() == !o.direct)
    bad("pair needs exactly one of --router H:P or --direct");
  if (o.role == "pair" && o.direct && o.listen.empty()) o.listen = "127.0.0.1:0";
  return o;
}

// ---------------------------------------------------------------------------
// Statistics

struct Percentiles {
  double p50_us = 0, p99_us = 0, max_us = 0;
};

// Nearest-rank percentiles of the samples (nanoseconds), reported in microseconds.
Percentiles percentiles(std::vector<int64_t> v) {
  Percentiles p;
  if (v.empty()) return p;
  auto rank = [&](double q) {
    std::size_t idx = static_cast<std::size_t>(std::ceil(q * static_cast<double>(v.size())));
    idx = idx == 0 ? 0 : idx - 1;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(idx), v.end());
    return static_cast<double>(v[idx]) / 1000.0;
  };
  p.p50_us = rank(0.50);
  p.p99_us = rank(0.99);
  p.max_us = static_cast<double>(*std::max_element(v.begin(), v.end())) / 1000.0;
  return p;
}

// ---------------------------------------------------------------------------
// Minimal AMQP 1.0 section walker: finds the body bytes of a message whose
// body is a data section, or an amqp-value section holding a binary. Input
// comes from the network, so every read is bounds-checked.

class Reader {
 public:
  Reader(const uint8_t* p, std::size_t n) : p_(p), n_(n) {}
  bool atEnd() const { return pos_ >= n_; }
  bool byte(uint8_t* out) {
    if (pos_ >= n_) return false;
    *out = p_[pos_++];
    return true;
  }
  bool be32(uint32_t* out) {
    if (n_ - pos_ < 4 || pos_ > n_) return false;
    *out = (uint32_t{p_[pos_]} << 24) | (uint32_t{p_[pos_ + 1]} << 16) |
           (uint32_t{p_[pos_ + 2]} << 8) | uint32_t{p_[pos_ + 3]};
    pos_ += 4;
    return true;
  }
  bool be64(uint64_t* out) {
    uint32_t hi = 0, lo = 0;
    if (!be32(&hi) || !be32(&lo)) return false;
    *out = (uint64_t{hi} << 32) | lo;
    return true;
  }
  bool skip(std::size_t k) {
    if (k > n_ - pos_) return false;
    pos_ += k;
    return true;
  }
  const uint8_t* here() const { return p_ + pos_; }

  // Skips one encoded value (any constructor, including described types).
  bool skipValue(int depth = 0) {
    if (depth > 16) return false;
    uint8_t c = 0;
    if (!byte(&c)) return false;
    if (c == 0x00) return skipValue(depth + 1) && skipValue(depth + 1);
    switch (c >> 4) {
      case 0x4:
        return true;
      case 0x5:
        return skip(1);
      case 0x6:
        return skip(2);
      case 0x7:
        return skip(4);
      case 0x8:
        return skip(8);
      case 0x9:
        return skip(16);
      case 0xa:
      case 0xc:
      case 0xe: {
        uint8_t len = 0;
        return byte(&len) && skip(len);
      }
      case 0xb:
      case 0xd:
      case 0xf: {
        uint32_t len = 0;
        return be32(&len) && skip(len);
      }
      default:
        return false;
    }
  }

  // Reads a section descriptor: smallulong, ulong or symbol. Returns the
  // numeric code (symbolic descriptors are mapped to their codes).
  bool descriptor(uint64_t* code) {
    uint8_t c = 0;
    if (!byte(&c)) return false;
    if (c == 0x53) {
      uint8_t v = 0;
      if (!byte(&v)) return false;
      *code = v;
      return true;
    }
    if (c == 0x80) return be64(code);
    if (c == 0x44) {
      *code = 0;
      return true;
    }
    if (c == 0xa3 || c == 0xb3) {
      uint32_t len = 0;
      if (c == 0xa3) {
        uint8_t l8 = 0;
        if (!byte(&l8)) return false;
        len = l8;
      } else if (!be32(&len)) {
        return false;
      }
      const uint8_t* s = here();
      if (!skip(len)) return false;
      std::string sym(reinterpret_cast<const char*>(s), len);
      if (sym == "amqp:data:binary")
        *code = 0x75;
      else if (sym == "amqp:amqp-value:*")
        *code = 0x77;
      else
        *code = ~uint64_t{0};
      return true;
    }
    return false;
  }

  // Reads a binary value (vbin8 / vbin32).
  bool binary(const uint8_t** data, std::size_t* len) {
    uint8_t c = 0;
    if (!byte(&c)) return false;
    uint32_t l = 0;
    if (c == 0xa0) {
      uint8_t l8 = 0;
      if (!byte(&l8)) return false;
      l = l8;
    } else if (c == 0xb0) {
      if (!be32(&l)) return false;
    } else {
      return false;
    }
    *data = here();
    *len = l;
    return skip(l);
  }

 private:
  const uint8_t* p_;
  std::size_t n_;
  std::size_t pos_ = 0;
};

bool findBody(const char* bytes, std::size_t n, const uint8_t** body, std::size_t* len) {
  Reader r(reinterpret_cast<const uint8_t*>(bytes), n);
  while (!r.atEnd()) {
    uint8_t c = 0;
    if (!r.byte(&c) || c != 0x00) return false;
    uint64_t code = 0;
    if (!r.descriptor(&code)) return false;
    if (code == 0x75 || code == 0x77) return r.binary(body, len);
    if (!r.skipValue()) return false;
  }
  return false;
}

// ---------------------------------------------------------------------------
// State shared by the two sides of `pair`.

struct Shared {
  std::atomic<uint64_t> received{0};        // messages the receiver has taken
  std::atomic<bool> sender_waiting{false};  // sender blocked on the window
  std::atomic<bool> recv_done{false};
  std::atomic<bool> abort{false};
  pn_proactor_t* sender_proactor = nullptr;
  pn_proactor_t* receiver_proactor = nullptr;

  std::mutex mu;  // guards sender_conn and ready state
  pn_connection_t* sender_conn = nullptr;
  std::condition_variable ready_cv;
  bool ready = false;
  bool ready_ok = false;
  std::string ready_addr;  // where the sender should connect

  void wakeSender() {
    std::lock_guard<std::mutex> lock(mu);
    if (sender_conn) pn_connection_wake(sender_conn);
  }
  void setReady(bool ok, std::string addr) {
    std::lock_guard<std::mutex> lock(mu);
    if (ready) return;
    ready = true;
    ready_ok = ok;
    ready_addr = std::move(addr);
    ready_cv.notify_all();
  }
  bool waitReady(std::string* addr) {
    std::unique_lock<std::mutex> lock(mu);
    ready_cv.wait(lock, [&] { return ready; });
    *addr = ready_addr;
    return ready_ok;
  }
};

std::string conditionText(pn_condition_t* c) {
  if (!c || !pn_condition_is_set(c)) return "no condition";
  const char* name = pn_condition_get_name(c);
  const char* desc = pn_condition_get_description(c);
  std::string s = name ? name : "(no name)";
  if (desc && *desc) s += std::string(": ") + desc;
  return s;
}

// ---------------------------------------------------------------------------
// One side: a proactor and its event loop, run on the calling thread.

class Side {
 public:
  Side(const char* name, pn_proactor_t* p, const Options& o, Shared* shared)
      : name_(name), proactor_(p), opt_(o), shared_(shared) {}
  virtual ~Side() = default;

  bool run() {
    pn_proactor_set_timeout(proactor_, static_cast<pn_millis_t>(opt_.timeout_s * 1000.0));
    start();
    while (!stop_) {
      pn_event_batch_t* batch = pn_proactor_wait(proactor_);
      while (pn_event_t* e = pn_event_batch_next(batch)) {
        if (!stop_) dispatch(e);
      }
      afterBatch();
      pn_proactor_done(proactor_, batch);
    }
    return error_.empty();
  }
  const std::string& error() const { return error_; }

 protected:
  virtual void start() {}
  virtual void onEvent(pn_event_t* e) = 0;
  virtual void afterBatch() {}
  virtual bool complete() const = 0;  // all work done; a clean close is expected
  virtual std::string progress() const = 0;
  virtual pn_connection_t* connection() const = 0;  // the one connection measured
  virtual pn_link_t* link() const = 0;              // the one link measured

  void fail(const std::string& msg) {
    if (stop_) return;
    error_ = std::string(name_) + ": " + msg;
    stop_ = true;
    if (shared_) {
      shared_->abort = true;
      pn_proactor_t* peer = this->proactor_ == shared_->sender_proactor ? shared_->receiver_proactor
                                                                        : shared_->sender_proactor;
      if (peer) pn_proactor_interrupt(peer);
      shared_->setReady(false, "");
    }
  }
  void closeConnection(pn_connection_t* c) {
    closing_ = true;
    if (c && !(pn_connection_state(c) & PN_LOCAL_CLOSED)) pn_connection_close(c);
  }
  // A graceful end for a sender: detach first, close the connection when the
  // peer has answered the detach. Proton-C holds a detach back until the
  // link's queued deliveries are on the wire, but sends a connection close
  // at once, dropping pre-settled deliveries still queued behind a full
  // session window.
  void closeLinkThenConnection(pn_link_t* l) {
    closing_ = true;
    close_after_detach_ = true;
    if (l && !(pn_link_state(l) & PN_LOCAL_CLOSED)) pn_link_close(l);
  }
  bool stopped() const { return stop_; }
  bool closing() const { return closing_; }

  const char* name_;
  pn_proactor_t* proactor_;
  const Options& opt_;
  Shared* shared_;

 private:
  void dispatch(pn_event_t* e) {
    // Connections and links other than the measured ones (refused extra
    // peers in listening mode) only need tidying up.
    pn_connection_t* ec = pn_event_connection(e);
    pn_link_t* el = pn_event_link(e);
    if ((ec && ec != connection()) || (el && el != link() && link())) {
      switch (pn_event_type(e)) {
        case PN_CONNECTION_REMOTE_CLOSE:
          pn_connection_close(ec);
          break;
        case PN_LINK_REMOTE_CLOSE:
        case PN_LINK_REMOTE_DETACH:
          pn_link_close(el);
          break;
        case PN_TRANSPORT_CLOSED:
          break;
        default:
          onEvent(e);
      }
      return;
    }
    switch (pn_event_type(e)) {
      case PN_PROACTOR_TIMEOUT: {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%g", opt_.timeout_s);
        fail(std::string("timed out after ") + buf + " s (" + progress() + ")");
        return;
      }
      case PN_PROACTOR_INTERRUPT:
        if (shared_ && shared_->abort) {
          error_ = std::string(name_) + ": stopped because the other side failed";
          stop_ = true;
        }
        return;
      case PN_TRANSPORT_CLOSED: {
        pn_condition_t* c = pn_transport_condition(pn_event_transport(e));
        if (!closing_ || !complete()) {
          fail("connection lost: " + conditionText(c) + " (" + progress() + ")");
        } else {
          stop_ = true;
        }
        return;
      }
      case PN_CONNECTION_REMOTE_CLOSE: {
        pn_connection_t* c = pn_event_connection(e);
        pn_condition_t* cond = pn_connection_remote_condition(c);
        if (pn_condition_is_set(cond)) {
          fail("peer closed the connection: " + conditionText(cond));
        } else if (!complete()) {
          fail("peer closed the connection early (" + progress() + ")");
        } else {
          closeConnection(c);
        }
        return;
      }
      case PN_SESSION_REMOTE_CLOSE: {
        pn_session_t* s = pn_event_session(e);
        pn_condition_t* cond = pn_session_remote_condition(s);
        if (pn_condition_is_set(cond))
          fail("peer ended the session: " + conditionText(cond));
        else if (!complete())
          fail("peer ended the session early (" + progress() + ")");
        else
          pn_session_close(s);
        return;
      }
      case PN_LINK_REMOTE_CLOSE:
      case PN_LINK_REMOTE_DETACH: {
        pn_link_t* l = pn_event_link(e);
        pn_condition_t* cond = pn_link_remote_condition(l);
        if (pn_condition_is_set(cond))
          fail("peer detached the link: " + conditionText(cond));
        else if (!complete())
          fail("peer detached the link early (" + progress() + ")");
        else if (close_after_detach_ && l == link())
          closeConnection(pn_event_connection(e));
        else
          pn_link_close(l);
        return;
      }
      case PN_LISTENER_CLOSE: {
        pn_condition_t* cond = pn_listener_condition(pn_event_listener(e));
        if (pn_condition_is_set(cond)) fail("listener: " + conditionText(cond));
        return;
      }
      default:
        onEvent(e);
    }
  }

  bool stop_ = false;
  bool closing_ = false;
  bool close_after_detach_ = false;
  std::string error_;
};

// ---------------------------------------------------------------------------
// Receiver

class Receiver : public Side {
 public:
  Receiver(pn_proactor_t* p, const Options& o, Shared* shared)
      : Side("receiver", p, o, shared), seen_(o.count, false) {
    latency_.reserve(o.count);
  }

  void report() const {
    Percentiles p = percentiles(latency_);
    double elapsed = static_cast<double>(last_recv_ns_ - first_stamp_ns_) / 1e9;
    double rate = elapsed > 0 ? static_cast<double>(received_) / elapsed : 0;
    std::printf("RESULT side=recv label=%s received=%" PRIu64
                " msgs_per_s=%.0f elapsed_s=%.3f "
                "p50_us=%.1f p99_us=%.1f max_us=%.1f duplicates=%" PRIu64 " out_of_order=%" PRIu64
                " unsettled=%" PRIu64 " presettled=%" PRIu64 "\n",
                opt_.label.empty() ? "-" : opt_.label.c_str(), received_, rate, elapsed, p.p50_us,
                p.p99_us, p.max_us, duplicates_, out_of_order_, unsettled_seen_, presettled_seen_);
    std::fflush(stdout);
  }
  double rate() const {
    double elapsed = static_cast<double>(last_recv_ns_ - first_stamp_ns_) / 1e9;
    return elapsed > 0 ? static_cast<double>(received_) / elapsed : 0;
  }
  Percentiles latency() const { return percentiles(latency_); }

 protected:
  void start() override {
    if (!opt_.listen.empty()) {
      listener_ = pn_listener();
      pn_proactor_listen(proactor_, listener_, opt_.listen.c_str(), 16);
    } else {
      conn_ = pn_connection();
      pn_proactor_connect2(proactor_, conn_, nullptr, opt_.connect.c_str());
    }
  }

  bool complete() const override { return received_ >= opt_.count; }
  pn_connection_t* connection() const override { return conn_; }
  pn_link_t* link() const override { return link_; }

  std::string progress() const override {
    return "received " + std::to_string(received_) + " of " + std::to_string(opt_.count);
  }

  void onEvent(pn_event_t* e) override {
    switch (pn_event_type(e)) {
      case PN_LISTENER_OPEN: {
        char host[256] = "", port[32] = "";
        const pn_netaddr_t* na = pn_listener_addr(listener_);
        if (!na || pn_netaddr_host_port(na, host, sizeof host, port, sizeof port) != 0) {
          fail("cannot read the listening address");
          return;
        }
        std::string addr = std::string(host) + ":" + port;
        if (shared_) {
          shared_->setReady(true, addr);
        } else {
          std::printf("LISTENING %s\n", addr.c_str());
          std::fflush(stdout);
        }
        return;
      }
      case PN_LISTENER_ACCEPT: {
        pn_connection_t* c = pn_connection();
        pn_connection_set_container(c, "vane-bench-receiver");
        if (conn_) {
          // Only one peer is served; refuse the others once opened.
          pn_listener_accept2(pn_event_listener(e), c, nullptr);
          pn_condition_format(pn_connection_condition(c), "amqp:resource-limit-exceeded",
                              "vane-bench receiver serves one connection");
          pn_connection_close(c);
          return;
        }
        conn_ = c;
        pn_listener_accept2(pn_event_listener(e), c, nullptr);
        return;
      }
      case PN_CONNECTION_INIT: {
        pn_connection_t* c = pn_event_connection(e);
        if (c != conn_) return;
        pn_connection_set_container(c, "vane-bench-receiver");
        if (opt_.listen.empty()) {
          pn_connection_open(c);
          pn_session_t* s = pn_session(c);
          pn_session_open(s);
          link_ = pn_receiver(s, "vane-bench-receiver");
          pn_terminus_set_address(pn_link_source(link_), opt_.address.c_str());
          pn_terminus_set_address(pn_link_target(link_), opt_.address.c_str());
          pn_link_open(link_);
          pn_link_flow(link_, opt_.credit);
        }
        return;
      }
      case PN_CONNECTION_REMOTE_OPEN: {
        pn_connection_t* c = pn_event_connection(e);
        if (c == conn_ && (pn_connection_state(c) & PN_LOCAL_UNINIT)) pn_connection_open(c);
        return;
      }
      case PN_SESSION_REMOTE_OPEN: {
        pn_session_t* s = pn_event_session(e);
        if (pn_session_state(s) & PN_LOCAL_UNINIT) pn_session_open(s);
        return;
      }
      case PN_LINK_REMOTE_OPEN: {
        pn_link_t* l = pn_event_link(e);
        if (pn_link_state(l) & PN_LOCAL_UNINIT) {
          // Listening (direct) mode: the peer attached; accept one sending link.
          pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
          pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
          if (link_ || !pn_link_is_receiver(l)) {
            pn_link_open(l);
            pn_condition_format(pn_link_condition(l), "amqp:not-allowed",
                                "vane-bench receiver accepts one sending link");
            pn_link_close(l);
            return;
          }
          link_ = l;
          pn_link_open(l);
          pn_link_flow(l, opt_.credit);
        } else if (l == link_ && shared_) {
          shared_->setReady(true, opt_.connect);  // attached at the router
        }
        return;
      }
      case PN_DELIVERY:
        onDelivery(pn_event_delivery(e));
        return;
      default:
        return;
    }
  }

 private:
  void onDelivery(pn_delivery_t* d) {
    pn_link_t* l = pn_delivery_link(d);
    if (l != link_ || !pn_delivery_readable(d)) return;
    // Deliveries that arrive after the last one counted are left unsettled:
    // closing the link hands them back to the sender (or router).
    if (received_ >= opt_.count) return;
    if (pn_delivery_aborted(d)) {
      pn_delivery_settle(d);  // advances the link; an aborted transfer is not counted
      buf_.clear();
      topUpCredit();
      return;
    }
    // Append what has arrived so far.
    while (std::size_t pending = pn_delivery_pending(d)) {
      std::size_t old = buf_.size();
      buf_.resize(old + pending);
      ssize_t got = pn_link_recv(l, buf_.data() + old, pending);
      if (got < 0) {
        buf_.resize(old);
        break;
      }
      buf_.resize(old + static_cast<std::size_t>(got));
      if (got == 0) break;
    }
    if (pn_delivery_partial(d)) return;

    int64_t now = nowNs();
    const uint8_t* body = nullptr;
    std::size_t len = 0;
    if (!findBody(buf_.data(), buf_.size(), &body, &len) || len < kStampBytes) {
      fail("received a message without the benchmark body (" + std::to_string(buf_.size()) +
           " bytes)");
      return;
    }
    int64_t stamp = 0;
    uint64_t seq = 0;
    std::memcpy(&stamp, body, 8);
    std::memcpy(&seq, body + 8, 8);
    buf_.clear();

    if (pn_delivery_settled(d)) {
      ++presettled_seen_;
    } else {
      ++unsettled_seen_;
      pn_delivery_update(d, PN_ACCEPTED);
    }
    pn_delivery_settle(d);  // also advances the link

    if (seq >= (uint64_t{1} << 32)) {
      fail("received a message with an impossible sequence number " + std::to_string(seq));
      return;
    }
    // Ordering is checked over every message taken, duplicates included.
    if (received_ + duplicates_ > 0 && seq != last_seq_ + 1) {
      if (++out_of_order_ <= 5) {
        std::fprintf(stderr,
                     "vane-bench: receiver: message %" PRIu64 " arrived after %" PRIu64 "\n", seq,
                     last_seq_);
      }
    }
    last_seq_ = seq;
    if (seq >= seen_.size()) seen_.resize(std::max<std::size_t>(seq + 1, seen_.size() * 2), false);
    if (seen_[seq]) {
      if (++duplicates_ <= 5) {
        std::fprintf(stderr, "vane-bench: receiver: message %" PRIu64 " received again\n", seq);
      }
    } else {
      seen_[seq] = true;
      if (received_ == 0 || stamp < first_stamp_ns_) first_stamp_ns_ = stamp;
      last_recv_ns_ = now;
      latency_.push_back(now - stamp);
      ++received_;
      if (shared_) {
        shared_->received.store(received_);
        if (shared_->sender_waiting.exchange(false)) shared_->wakeSender();
      }
    }

    if (received_ >= opt_.count) {
      if (shared_) {
        shared_->recv_done = true;
        shared_->wakeSender();
      }
      pn_link_close(link_);
      if (listener_) pn_listener_close(listener_);
      closeConnection(conn_);
      return;
    }
    topUpCredit();
  }

  void topUpCredit() {
    int credit = pn_link_credit(link_);
    if (credit <= opt_.credit / 2) pn_link_flow(link_, opt_.credit - credit);
  }

  pn_listener_t* listener_ = nullptr;
  pn_connection_t* conn_ = nullptr;
  pn_link_t* link_ = nullptr;
  std::vector<char> buf_;
  std::vector<bool> seen_;
  std::vector<int64_t> latency_;
  uint64_t received_ = 0;
  uint64_t last_seq_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t out_of_order_ = 0;
  uint64_t unsettled_seen_ = 0;
  uint64_t presettled_seen_ = 0;
  int64_t first_stamp_ns_ = 0;
  int64_t last_recv_ns_ = 0;
};

// ---------------------------------------------------------------------------
// Sender

class Sender : public Side {
 public:
  Sender(pn_proactor_t* p, const Options& o, Shared* shared, std::string peer)
      : Side("sender", p, o, shared), peer_(std::move(peer)) {
    if (!o.presettled) send_ns_.assign(o.count, 0);
    ack_latency_.reserve(o.presettled ? 0 : o.count);
    encodeTemplate();
  }

  bool ok() const { return template_ok_; }

  void report() const {
    Percentiles p = percentiles(ack_latency_);
    int64_t end = opt_.presettled ? last_send_ns_ : last_outcome_ns_;
    double elapsed = static_cast<double>(end - first_send_ns_) / 1e9;
    double rate = elapsed > 0 ? static_cast<double>(sent_) / elapsed : 0;
    std::printf("RESULT side=send label=%s mode=%s window=%" PRIu64 " sent=%" PRIu64
                " msgs_per_s=%.0f elapsed_s=%.3f accepted=%" PRIu64 " rejected=%" PRIu64
                " released=%" PRIu64 " modified=%" PRIu64 " other=%" PRIu64
                " ack_p50_us=%.1f ack_p99_us=%.1f ack_max_us=%.1f\n",
                opt_.label.empty() ? "-" : opt_.label.c_str(),
                opt_.presettled ? "presettled" : "unsettled", opt_.window, sent_, rate, elapsed,
                accepted_, rejected_, released_, modified_, other_, p.p50_us, p.p99_us, p.max_us);
    std::fflush(stdout);
  }
  Percentiles ackLatency() const { return percentiles(ack_latency_); }
  uint64_t accepted() const { return accepted_; }
  uint64_t notAccepted() const { return rejected_ + released_ + modified_ + other_; }

 protected:
  void start() override {
    conn_ = pn_connection();
    if (shared_) {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->sender_conn = conn_;
    }
    pn_proactor_connect2(proactor_, conn_, nullptr, peer_.c_str());
  }

  bool complete() const override {
    return sent_ >= opt_.count && (opt_.presettled || outcomes_ >= opt_.count);
  }
  pn_connection_t* connection() const override { return conn_; }
  pn_link_t* link() const override { return link_; }

  // The proactor frees a connection after the batch holding its
  // PN_TRANSPORT_CLOSED; stop the receiver's wake-ups before that can happen.
  void afterBatch() override {
    if (shared_ && (closing() || stopped())) {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->sender_conn = nullptr;
    }
  }

  std::string progress() const override {
    std::string s = "sent " + std::to_string(sent_) + " of " + std::to_string(opt_.count);
    if (!opt_.presettled) s += ", outcomes " + std::to_string(outcomes_);
    if (shared_) s += ", received " + std::to_string(shared_->received.load());
    return s;
  }

  void onEvent(pn_event_t* e) override {
    switch (pn_event_type(e)) {
      case PN_CONNECTION_INIT: {
        pn_connection_t* c = pn_event_connection(e);
        pn_connection_set_container(c, "vane-bench-sender");
        pn_connection_open(c);
        pn_session_t* s = pn_session(c);
        pn_session_open(s);
        link_ = pn_sender(s, "vane-bench-sender");
        pn_terminus_set_address(pn_link_target(link_), opt_.address.c_str());
        pn_terminus_set_address(pn_link_source(link_), opt_.address.c_str());
        pn_link_set_snd_settle_mode(link_, opt_.presettled ? PN_SND_SETTLED : PN_SND_UNSETTLED);
        pn_link_set_rcv_settle_mode(link_, PN_RCV_FIRST);
        pn_link_open(link_);
        return;
      }
      case PN_LINK_FLOW:
      case PN_CONNECTION_WAKE:
        pump();
        return;
      case PN_DELIVERY:
        onOutcome(pn_event_delivery(e));
        pump();
        return;
      default:
        return;
    }
  }

 private:
  void encodeTemplate() {
    std::vector<char> body(opt_.size, 'x');
    std::memset(body.data(), 0xA5, kStampBytes);
    pn_message_t* m = pn_message();
    pn_message_set_inferred(m, true);  // a binary body becomes a data section
    pn_data_put_binary(pn_message_body(m), pn_bytes(body.size(), body.data()));
    std::size_t cap = opt_.size + 256;
    encoded_.resize(cap);
    int rc = pn_message_encode(m, encoded_.data(), &cap);
    pn_message_free(m);
    if (rc != 0) {
      std::fprintf(stderr, "vane-bench: cannot encode the message: error %d\n", rc);
      return;
    }
    encoded_.resize(cap);
    const uint8_t* b = nullptr;
    std::size_t len = 0;
    if (!findBody(encoded_.data(), encoded_.size(), &b, &len) || len != opt_.size) {
      std::fprintf(stderr, "vane-bench: encoded message has an unexpected layout\n");
      return;
    }
    stamp_offset_ = static_cast<std::size_t>(reinterpret_cast<const char*>(b) - encoded_.data());
    template_ok_ = true;
  }

  uint64_t completed() const {
    if (!opt_.presettled) return outcomes_;
    return shared_ ? shared_->received.load() : sent_;
  }

  bool windowOpen() const {
    if (opt_.window == 0) return true;
    return sent_ - std::min(completed(), sent_) < opt_.window;
  }

  void pump() {
    if (!link_ || closing()) return;
    while (sent_ < opt_.count && pn_link_credit(link_) > 0) {
      if (!windowOpen()) {
        if (opt_.presettled && shared_) {
          // Ask the receiver to wake us, then re-check to avoid a lost wake-up.
          shared_->sender_waiting = true;
          if (!windowOpen()) break;
          shared_->sender_waiting = false;
        } else {
          break;  // the next outcome reopens the window
        }
      }
      uint64_t seq = sent_;
      int64_t t = nowNs();
      std::memcpy(encoded_.data() + stamp_offset_, &t, 8);
      std::memcpy(encoded_.data() + stamp_offset_ + 8, &seq, 8);
      pn_delivery_t* d = pn_delivery(link_, pn_dtag(reinterpret_cast<const char*>(&seq), 8));
      pn_link_send(link_, encoded_.data(), encoded_.size());
      pn_link_advance(link_);
      if (opt_.presettled)
        pn_delivery_settle(d);
      else
        send_ns_[seq] = t;
      if (sent_ == 0) first_send_ns_ = t;
      last_send_ns_ = t;
      ++sent_;
    }
    maybeFinish();
  }

  void onOutcome(pn_delivery_t* d) {
    if (pn_delivery_link(d) != link_) return;
    uint64_t state = pn_delivery_remote_state(d);
    bool remote_settled = pn_delivery_settled(d);
    if (state == 0 && !remote_settled) return;
    if (state == PN_RECEIVED && !remote_settled) return;  // not an outcome
    int64_t now = nowNs();
    switch (state) {
      case PN_ACCEPTED:
        ++accepted_;
        break;
      case PN_REJECTED:
        ++rejected_;
        break;
      case PN_RELEASED:
        ++released_;
        break;
      case PN_MODIFIED:
        ++modified_;
        break;
      default:
        ++other_;
        break;
    }
    pn_bytes_t tag = pn_delivery_tag(d);
    uint64_t seq = ~uint64_t{0};
    if (tag.size == 8) std::memcpy(&seq, tag.start, 8);
    if (seq < send_ns_.size()) ack_latency_.push_back(now - send_ns_[seq]);
    last_outcome_ns_ = now;
    ++outcomes_;
    pn_delivery_settle(d);
  }

  void maybeFinish() {
    if (!complete() || closing()) return;
    if (shared_ && !shared_->recv_done) return;  // the receiver wakes us when done
    closeLinkThenConnection(link_);
  }

  std::string peer_;
  pn_connection_t* conn_ = nullptr;
  pn_link_t* link_ = nullptr;
  std::vector<char> encoded_;
  std::size_t stamp_offset_ = 0;
  bool template_ok_ = false;
  std::vector<int64_t> send_ns_;
  std::vector<int64_t> ack_latency_;
  uint64_t sent_ = 0;
  uint64_t outcomes_ = 0;
  uint64_t accepted_ = 0, rejected_ = 0, released_ = 0, modified_ = 0, other_ = 0;
  int64_t first_send_ns_ = 0;
  int64_t last_send_ns_ = 0;
  int64_t last_outcome_ns_ = 0;
};

// ---------------------------------------------------------------------------

int runRecv(const Options& o) {
  pn_proactor_t* p = pn_proactor();
  Receiver r(p, o, nullptr);
  bool ok = r.run();
  pn_proactor_free(p);
  if (!ok) {
    std::fprintf(stderr, "vane-bench: %s\n", r.error().c_str());
    return 1;
  }
  r.report();
  return 0;
}

int runSend(const Options& o) {
  pn_proactor_t* p = pn_proactor();
  Sender s(p, o, nullptr, o.connect);
  if (!s.ok()) {
    pn_proactor_free(p);
    return 1;
  }
  bool ok = s.run();
  pn_proactor_free(p);
  if (!ok) {
    std::fprintf(stderr, "vane-bench: %s\n", s.error().c_str());
    return 1;
  }
  s.report();
  return 0;
}

int runPair(const Options& o) {
  Shared shared;
  pn_proactor_t* rp = pn_proactor();
  pn_proactor_t* sp = pn_proactor();
  shared.receiver_proactor = rp;
  shared.sender_proactor = sp;

  Receiver receiver(rp, o, &shared);
  bool recv_ok = false;
  std::thread rt([&] { recv_ok = receiver.run(); });

  // Start the sender once the receiver is listening (direct) or attached at
  // the router, so no message arrives before there is a consumer.
  std::string peer;
  bool ready = shared.waitReady(&peer);
  bool send_ok = false;
  Sender sender(sp, o, &shared, peer);
  if (ready && sender.ok()) {
    std::thread st([&] { send_ok = sender.run(); });
    st.join();
  } else if (ready) {
    shared.abort = true;
    pn_proactor_interrupt(rp);
  }
  rt.join();
  pn_proactor_free(sp);
  pn_proactor_free(rp);

  if (!recv_ok || !send_ok) {
    // Report the side that failed first, not the one stopped because of it.
    bool printed = false;
    for (const std::string* err : {&receiver.error(), &sender.error()}) {
      if (!err->empty() && err->find("other side failed") == std::string::npos) {
        std::fprintf(stderr, "vane-bench: %s\n", err->c_str());
        printed = true;
      }
    }
    if (!printed) std::fprintf(stderr, "vane-bench: pair failed\n");
    return 1;
  }
  receiver.report();
  sender.report();
  Percentiles lat = receiver.latency();
  Percentiles ack = sender.ackLatency();
  std::printf("RESULT side=pair label=%s mode=%s window=%" PRIu64 " count=%" PRIu64
              " size=%zu msgs_per_s=%.0f p50_us=%.1f p99_us=%.1f ack_p50_us=%.1f ack_p99_us=%.1f"
              " accepted=%" PRIu64 " not_accepted=%" PRIu64 "\n",
              o.label.empty() ? "-" : o.label.c_str(), o.presettled ? "presettled" : "unsettled",
              o.window, o.count, o.size, receiver.rate(), lat.p50_us, lat.p99_us, ack.p50_us,
              ack.p99_us, sender.accepted(), sender.notAccepted());
  std::fflush(stdout);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parseOptions(argc, argv);
  if (o.role == "recv") return runRecv(o);
  if (o.role == "send") return runSend(o);
  return runPair(o);
}
