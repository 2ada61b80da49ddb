// Writes the seed inputs of the frames fuzz target:
//
//   make_corpus <output-dir>
//
// Each seed is the byte stream a Proton client (a pn_connection_driver_t on
// the client side) sent to a real vane::amqp::Connection in one scripted
// scenario. Client and router run in this process, joined by a UNIX
// socketpair; the router's loop is polled on this thread between client
// steps, so the client reacts to real answers (credit, attach replies,
// dispositions) and the recording is what a well-behaved client sends.
//
// Seeds are named seed-<nn>-<scenario>. The router runs with the fuzz target's
// settings (small frames and windows; see fuzz_router.hpp),
// so a 200 KB message is cut into 4 KiB frames; it does not fit one input of
// at most 64 KiB, so the seeds hold its first and its last frames (each with
// the scenario's frames before the message).
#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/message.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
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

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "make_corpus: %s\n", what.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------------------
// The router side: as in fuzz_frames.cpp (keep the settings in step).
// ---------------------------------------------------------------------------
struct Router : vane::fuzz::FuzzRouter {
  Router() : FuzzRouter("corpus") {}
};

// ---------------------------------------------------------------------------
// One scenario: a Proton client connected to a fresh router Connection.
// ---------------------------------------------------------------------------
class Client {
 public:
  Client(Router& router, bool sasl) : router_(router) {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0)
      die("socketpair failed");
    fd_ = fds[1];
    boost::asio::ip::tcp::socket socket(router.loop.context());
    boost::system::error_code ec;
    socket.assign(boost::asio::ip::tcp::v4(), fds[0], ec);
    if (ec) die("assign: " + ec.message());
    vane::amqp::ConnectionOptions options;
    options.name = "corpus";
    conn_ = std::make_shared<vane::amqp::Connection>(
        router.ctx, std::move(socket), std::move(options), [this](vane::amqp::Connection*) {
          router_closed_ = true;
          router_.loop.post([this] { conn_.reset(); });
        });
    router.loop.post([c = conn_] { c->start(); });

    if (pn_connection_driver_init(&driver_, nullptr, nullptr) != 0) die("driver init");
    if (sasl) pn_sasl_allowed_mechs(pn_sasl(driver_.transport), "ANONYMOUS");
    pn_transport_set_max_frame(driver_.transport, 65536);
    pn_connection_set_container(connection(), "corpus-client");
    pn_connection_set_hostname(connection(), "localhost");
  }

  ~Client() {
    pn_connection_driver_destroy(&driver_);
    ::close(fd_);
  }

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  pn_connection_t* connection() { return driver_.connection; }
  pn_transport_t* transport() { return driver_.transport; }

  // Runs client and router until neither has anything left to do.
  void settle() {
    int idle = 0;
    for (int round = 0; round < 100000 && idle < 3; ++round) {
      bool progress = false;
      while (pn_event_t* e = pn_connection_driver_next_event(&driver_)) {
        (void)e;
        progress = true;
      }
      progress |= receiveAll();
      pn_bytes_t out = pn_connection_driver_write_buffer(&driver_);
      if (out.size > 0 && !write_closed_) {
        const ssize_t n = ::send(fd_, out.start, out.size, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          sent_.append(out.start, static_cast<std::size_t>(n));
          pn_connection_driver_write_done(&driver_, static_cast<std::size_t>(n));
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          pn_connection_driver_write_close(&driver_);
          write_closed_ = true;
        }
      }
      if (router_.loop.poll() > 0) progress = true;
      if (!read_closed_) {
        pn_rwbytes_t in = pn_connection_driver_read_buffer(&driver_);
        if (in.size > 0) {
          const ssize_t n = ::recv(fd_, in.start, in.size, 0);
          if (n > 0) {
            pn_connection_driver_read_done(&driver_, static_cast<std::size_t>(n));
            progress = true;
          } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            pn_connection_driver_read_close(&driver_);
            read_closed_ = true;
            progress = true;
          }
        }
      }
      idle = progress ? 0 : idle + 1;
    }
  }

  // Settles until `done` holds; dies if it never does.
  void waitFor(const char* what, const std::function<bool()>& done) {
    for (int i = 0; i < 50 && !done(); ++i) settle();
    if (!done()) die(std::string("scenario stuck waiting for ") + what);
  }

  // Ends the scenario: closes the connection (unless `abrupt`), then the
  // client's end of the socket, and returns every byte the client sent.
  std::string finish(bool abrupt = false) {
    if (!abrupt) {
      pn_connection_close(connection());
      settle();
    }
    ::shutdown(fd_, SHUT_WR);
    write_closed_ = true;
    for (int i = 0; i < 1000 && (!router_closed_ || conn_); ++i) settle();
    if (!router_closed_ || conn_) {
      std::fprintf(stderr, "client sent %zu bytes:", sent_.size());
      for (unsigned char ch : sent_) std::fprintf(stderr, " %02x", ch);
      std::fprintf(stderr, "\n");
      die("the router did not close the connection");
    }
    if (router_.table.size() != 0) die("router left ForwardingTable entries behind");
    return sent_;
  }

  // --- Links -----------------------------------------------------------------

  pn_session_t* session() {
    pn_session_t* s = pn_session(connection());
    pn_session_open(s);
    return s;
  }

  pn_link_t* sender(pn_session_t* s, const char* name, const char* address,
                    pn_snd_settle_mode_t mode = PN_SND_UNSETTLED) {
    pn_link_t* l = pn_sender(s, name);
    if (address != nullptr) pn_terminus_set_address(pn_link_target(l), address);
    pn_link_set_snd_settle_mode(l, mode);
    pn_link_open(l);
    return l;
  }

  pn_link_t* receiver(pn_session_t* s, const char* name, const char* address, int credit,
                      pn_snd_settle_mode_t mode = PN_SND_UNSETTLED, bool dynamic = false) {
    pn_link_t* l = pn_receiver(s, name);
    if (address != nullptr) pn_terminus_set_address(pn_link_source(l), address);
    if (dynamic) pn_terminus_set_dynamic(pn_link_source(l), true);
    pn_link_set_snd_settle_mode(l, mode);
    pn_link_open(l);
    if (credit > 0) pn_link_flow(l, credit);
    received_[l];
    return l;
  }

  // Complete deliveries received on `l` and not yet taken.
  std::vector<pn_delivery_t*> take(pn_link_t* l) {
    std::vector<pn_delivery_t*> out;
    out.swap(received_[l]);
    return out;
  }

  bool attached(pn_link_t* l) { return pn_link_state(l) & PN_REMOTE_ACTIVE; }

  // --- Messages ----------------------------------------------------------------

  static std::string encode(const char* to, const std::string& body) {
    pn_message_t* m = pn_message();
    if (to != nullptr) pn_message_set_address(m, to);
    pn_message_set_durable(m, false);
    pn_data_put_binary(pn_message_body(m), pn_bytes(body.size(), body.data()));
    std::string out(body.size() + 256, '\0');
    size_t size = out.size();
    if (pn_message_encode(m, out.data(), &size) != 0) die("pn_message_encode failed");
    pn_message_free(m);
    out.resize(size);
    return out;
  }

  pn_delivery_t* send(pn_link_t* l, const std::string& bytes, bool settle_now = false) {
    const std::uint64_t tag = next_tag_++;
    pn_delivery_t* d = pn_delivery(l, pn_dtag(reinterpret_cast<const char*>(&tag), sizeof tag));
    pn_link_send(l, bytes.data(), bytes.size());
    pn_link_advance(l);
    if (settle_now) pn_delivery_settle(d);
    return d;
  }

  pn_delivery_t* sendMessage(pn_link_t* l, const char* to, std::size_t body_size,
                             bool settle_now = false) {
    return send(l, encode(to, std::string(body_size, 'm')), settle_now);
  }

  const std::string& sent() const { return sent_; }

 private:
  // Reads the bytes of deliveries arriving on the client's receivers.
  bool receiveAll() {
    bool progress = false;
    char buf[16384];
    for (auto& [l, done] : received_) {
      while (pn_delivery_t* d = pn_link_current(l)) {
        if (pn_delivery_aborted(d)) {
          pn_delivery_settle(d);
          progress = true;
          continue;
        }
        while (pn_link_recv(l, buf, sizeof buf) > 0) progress = true;
        if (pn_delivery_partial(d)) break;
        pn_link_advance(l);
        done.push_back(d);
        progress = true;
      }
    }
    return progress;
  }

  Router& router_;
  int fd_ = -1;
  pn_connection_driver_t driver_{};
  std::shared_ptr<vane::amqp::Connection> conn_;
  bool router_closed_ = false;
  bool write_closed_ = false;
  bool read_closed_ = false;
  std::uint64_t next_tag_ = 1;
  std::string sent_;
  std::map<pn_link_t*, std::vector<pn_delivery_t*>> received_;
};

void disposition(pn_delivery_t* d, std::uint64_t state) {
  pn_delivery_update(d, state);
  pn_delivery_settle(d);
}

// ---------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------
std::filesystem::path g_dir;
int g_count = 0;
std::size_t g_total = 0;

void write(const std::string& name, const std::string& bytes) {
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "seed-%02d-", ++g_count);
  const std::filesystem::path path = g_dir / (prefix + name);
  std::ofstream(path, std::ios::binary) << bytes;
  g_total += bytes.size();
  std::printf("%s (%zu bytes)\n", path.c_str(), bytes.size());
}

// A recorded stream cut into its protocol headers and frames.
struct Piece {
  std::string bytes;
  bool transfer = false;
};

std::vector<Piece> splitFrames(const std::string& s) {
  std::vector<Piece> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    if (s.compare(pos, 4, "AMQP") == 0) {
      out.push_back({s.substr(pos, 8), false});
      pos += 8;
      continue;
    }
    if (s.size() - pos < 8) die("trailing bytes in a recording");
    const auto* p = reinterpret_cast<const unsigned char*>(s.data() + pos);
    const std::size_t size = (std::size_t{p[0]} << 24) | (std::size_t{p[1]} << 16) |
                             (std::size_t{p[2]} << 8) | std::size_t{p[3]};
    const std::size_t doff = std::size_t{p[4]} * 4;
    if (size < 8 || pos + size > s.size()) die("bad frame in a recording");
    // Performative: descriptor 0x00, smallulong (0x53) 0x14 = transfer.
    const bool transfer =
        size >= doff + 3 && p[doff] == 0x00 && p[doff + 1] == 0x53 && p[doff + 2] == 0x14;
    out.push_back({s.substr(pos, size), transfer});
    pos += size;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

// A receiver from `address` (with credit) and a sender to it, both attached
// and the sender holding credit.
struct Pair {
  pn_session_t* session;
  pn_link_t* rx;
  pn_link_t* tx;
};

Pair attachPair(Client& c, const char* address, int credit,
                pn_snd_settle_mode_t tx_mode = PN_SND_UNSETTLED,
                pn_snd_settle_mode_t rx_mode = PN_SND_UNSETTLED) {
  pn_connection_open(c.connection());
  Pair p;
  p.session = c.session();
  p.rx = c.receiver(p.session, "rx", address, credit, rx_mode);
  c.waitFor("receiver attach", [&] { return c.attached(p.rx); });
  p.tx = c.sender(p.session, "tx", address, tx_mode);
  c.waitFor("sender credit", [&] { return pn_link_credit(p.tx) > 0; });
  return p;
}

void scenarios(Router& r) {
  {  // Open and close, no SASL layer.
    Client c(r, false);
    pn_connection_open(c.connection());
    c.waitFor("open", [&] { return pn_connection_state(c.connection()) & PN_REMOTE_ACTIVE; });
    write("open-close", c.finish());
  }
  {  // SASL ANONYMOUS, then open and close.
    Client c(r, true);
    pn_connection_open(c.connection());
    c.waitFor("open", [&] { return pn_connection_state(c.connection()) & PN_REMOTE_ACTIVE; });
    write("sasl-anonymous-open-close", c.finish());
  }
  {  // A client that only does PLAIN: it gives up when the router offers
     // ANONYMOUS only (after sending its SASL header).
    Client c(r, false);
    pn_sasl_allowed_mechs(pn_sasl(c.transport()), "PLAIN");
    pn_sasl_set_allow_insecure_mechs(pn_sasl(c.transport()), true);
    pn_connection_set_user(c.connection(), "user");
    pn_connection_set_password(c.connection(), "secret");
    pn_connection_open(c.connection());
    c.settle();
    write("sasl-client-gives-up", c.finish(true));
  }
  {  // Sessions begun and ended; the peer goes away without a close.
    Client c(r, true);
    pn_connection_open(c.connection());
    pn_session_t* a = c.session();
    pn_session_t* b = c.session();
    c.settle();
    pn_session_close(a);
    c.settle();
    (void)b;
    write("sessions-then-eof", c.finish(true));
  }
  {  // Unsettled messages, each consumer outcome, detach, end, close.
    Client c(r, true);
    Pair p = attachPair(c, "q", 10);
    std::vector<pn_delivery_t*> sent;
    for (int i = 0; i < 6; ++i) sent.push_back(c.sendMessage(p.tx, nullptr, 20 + i * 10));
    std::vector<pn_delivery_t*> all;
    c.waitFor("deliveries", [&] {
      auto more = c.take(p.rx);
      all.insert(all.end(), more.begin(), more.end());
      return all.size() >= 6;
    });
    disposition(all[0], PN_ACCEPTED);
    pn_condition_set_name(pn_disposition_condition(pn_delivery_local(all[1])),
                          "amqp:internal-error");
    pn_condition_set_description(pn_disposition_condition(pn_delivery_local(all[1])), "nope");
    disposition(all[1], PN_REJECTED);
    disposition(all[2], PN_RELEASED);
    pn_disposition_set_failed(pn_delivery_local(all[3]), true);
    pn_disposition_set_undeliverable(pn_delivery_local(all[3]), true);
    disposition(all[3], PN_MODIFIED);
    pn_delivery_update(all[4], PN_RECEIVED);  // not terminal
    c.settle();
    disposition(all[4], PN_ACCEPTED);
    pn_delivery_settle(all[5]);  // settled with no outcome
    c.settle();
    for (auto* d : sent) pn_delivery_settle(d);
    pn_link_close(p.tx);
    pn_link_detach(p.rx);
    c.settle();
    pn_session_close(p.session);
    c.settle();
    write("send-receive-outcomes", c.finish());
  }
  {  // Pre-settled messages.
    Client c(r, false);
    Pair p = attachPair(c, "q", 20, PN_SND_SETTLED);
    for (int i = 0; i < 5; ++i) c.sendMessage(p.tx, nullptr, 100, true);
    c.settle();
    pn_link_close(p.rx);
    pn_link_close(p.tx);
    c.settle();
    write("send-receive-presettled", c.finish());
  }
  {  // A consumer that wants pre-settled deliveries (snd-settle-mode settled).
    Client c(r, true);
    Pair p = attachPair(c, "q", 5, PN_SND_UNSETTLED, PN_SND_SETTLED);
    for (int i = 0; i < 3; ++i) c.sendMessage(p.tx, nullptr, 64);
    c.settle();
    write("consumer-settled-mode", c.finish());
  }
  {  // More messages than credit; the consumer tops up and drains.
    Client c(r, true);
    Pair p = attachPair(c, "q", 2);
    for (int i = 0; i < 12; ++i) c.sendMessage(p.tx, nullptr, 30);
    c.settle();
    for (auto* d : c.take(p.rx)) disposition(d, PN_ACCEPTED);
    pn_link_flow(p.rx, 4);
    c.settle();
    for (auto* d : c.take(p.rx)) disposition(d, PN_ACCEPTED);
    pn_link_drain(p.rx, 20);
    c.settle();
    for (auto* d : c.take(p.rx)) disposition(d, PN_ACCEPTED);
    pn_link_set_drain(p.rx, false);
    pn_link_flow(p.rx, 10);
    c.settle();
    for (auto* d : c.take(p.rx)) disposition(d, PN_ACCEPTED);
    c.settle();
    write("credit-and-drain", c.finish());
  }
  {  // A multi-frame message (about ten 4 KiB frames), unsettled and settled.
    Client c(r, true);
    Pair p = attachPair(c, "q", 4);
    c.sendMessage(p.tx, nullptr, 40000);
    c.settle();
    for (auto* d : c.take(p.rx)) disposition(d, PN_ACCEPTED);
    c.sendMessage(p.tx, nullptr, 12000, true);
    c.settle();
    write("multi-frame-40k", c.finish());
  }
  {  // A ~200 KB message: written as its first and its last frames.
    Client c(r, false);
    Pair p = attachPair(c, "q", 4);
    const std::size_t before = c.sent().size();
    pn_delivery_t* d = c.sendMessage(p.tx, nullptr, 200 * 1024);
    c.settle();
    for (auto* in : c.take(p.rx)) disposition(in, PN_ACCEPTED);
    c.settle();
    pn_delivery_settle(d);
    pn_link_close(p.tx);
    c.settle();
    const std::string all = c.finish();
    const std::vector<Piece> pieces = splitFrames(all);
    std::string preamble, head, tail;
    std::size_t offset = 0, first = pieces.size(), last = 0;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      if (pieces[i].transfer && offset >= before) {
        first = std::min(first, i);
        last = i;
      }
      offset += pieces[i].bytes.size();
    }
    if (first >= pieces.size()) die("no transfer frames in the big scenario");
    for (std::size_t i = 0; i < first; ++i) preamble += pieces[i].bytes;
    head = preamble;
    for (std::size_t i = first; i <= last && head.size() < 56 * 1024; ++i) head += pieces[i].bytes;
    std::string end;
    for (std::size_t i = last + 1; i < pieces.size(); ++i) end += pieces[i].bytes;
    std::size_t i = last + 1;
    std::string frames;
    while (i > first && preamble.size() + frames.size() + end.size() < 48 * 1024) {
      --i;
      frames = pieces[i].bytes + frames;
    }
    tail = preamble + frames + end;
    write("big-200k-head", head);
    write("big-200k-tail", tail);
  }
  {  // Anonymous sender: routed by `to`, with no `to`, and to no consumer.
    Client c(r, true);
    pn_connection_open(c.connection());
    pn_session_t* s = c.session();
    pn_link_t* rx = c.receiver(s, "rx", "q", 10);
    c.waitFor("receiver attach", [&] { return c.attached(rx); });
    pn_link_t* tx = c.sender(s, "anon", nullptr);
    c.waitFor("anonymous credit", [&] { return pn_link_credit(tx) > 0; });
    c.sendMessage(tx, "q", 50);
    c.sendMessage(tx, "q", 6000);
    c.sendMessage(tx, nullptr, 50);
    c.sendMessage(tx, "nobody-home", 50);
    c.send(tx, std::string("\x00\x53\x73\xc0\x05", 5));  // truncated properties
    c.sendMessage(tx, "q", 50, true);
    c.settle();
    for (auto* d : c.take(rx)) disposition(d, PN_ACCEPTED);
    c.settle();
    write("anonymous-sender", c.finish());
  }
  {  // Dynamic receiver, sent to through an anonymous sender.
    Client c(r, true);
    pn_connection_open(c.connection());
    pn_session_t* s = c.session();
    pn_link_t* rx = c.receiver(s, "dyn", nullptr, 5, PN_SND_UNSETTLED, true);
    c.waitFor("dynamic attach", [&] { return c.attached(rx); });
    const char* addr = pn_terminus_get_address(pn_link_remote_source(rx));
    const std::string address = addr != nullptr ? addr : "";
    pn_link_t* tx = c.sender(s, "anon", nullptr);
    c.waitFor("anonymous credit", [&] { return pn_link_credit(tx) > 0; });
    c.sendMessage(tx, address.c_str(), 40);
    c.sendMessage(tx, address.c_str(), 40);
    c.settle();
    for (auto* d : c.take(rx)) disposition(d, PN_ACCEPTED);
    pn_link_close(rx);
    c.settle();
    write("dynamic-receiver", c.finish());
  }
  {  // Multicast fan-out to three consumers on two sessions.
    Client c(r, false);
    pn_connection_open(c.connection());
    pn_session_t* s1 = c.session();
    pn_session_t* s2 = c.session();
    pn_link_t* r1 = c.receiver(s1, "r1", "multicast.news", 10);
    pn_link_t* r2 = c.receiver(s2, "r2", "multicast.news", 10);
    pn_link_t* r3 = c.receiver(s2, "r3", "multicast.news", 1);
    c.waitFor("receivers", [&] { return c.attached(r1) && c.attached(r2) && c.attached(r3); });
    pn_link_t* tx = c.sender(s1, "tx", "multicast.news");
    c.waitFor("credit", [&] { return pn_link_credit(tx) > 0; });
    for (int i = 0; i < 3; ++i) c.sendMessage(tx, nullptr, 300);
    c.sendMessage(tx, nullptr, 9000);
    c.settle();
    for (auto* rx : {r1, r2, r3})
      for (auto* d : c.take(rx)) disposition(d, PN_ACCEPTED);
    pn_session_close(s2);  // r2 and r3 go with it
    c.settle();
    c.sendMessage(tx, nullptr, 10);
    c.settle();
    write("multicast-fan-out", c.finish());
  }
  {  // Closest: two consumers share the messages.
    Client c(r, true);
    pn_connection_open(c.connection());
    pn_session_t* s = c.session();
    pn_link_t* r1 = c.receiver(s, "r1", "closest.work", 5);
    pn_link_t* r2 = c.receiver(s, "r2", "closest.work", 5);
    c.waitFor("receivers", [&] { return c.attached(r1) && c.attached(r2); });
    pn_link_t* tx = c.sender(s, "tx", "closest.work");
    c.waitFor("credit", [&] { return pn_link_credit(tx) > 0; });
    for (int i = 0; i < 4; ++i) c.sendMessage(tx, nullptr, 40);
    c.settle();
    for (auto* rx : {r1, r2})
      for (auto* d : c.take(rx)) disposition(d, PN_RELEASED);
    c.settle();
    write("closest-two-consumers", c.finish());
  }
  {  // An aborted multi-frame delivery, then a normal one.
    Client c(r, true);
    Pair p = attachPair(c, "q", 5);
    const std::string bytes = Client::encode(nullptr, std::string(20000, 'a'));
    const std::uint64_t tag = 99;
    pn_delivery_t* d = pn_delivery(p.tx, pn_dtag(reinterpret_cast<const char*>(&tag), sizeof tag));
    pn_link_send(p.tx, bytes.data(), 9000);
    c.settle();
    pn_delivery_abort(d);
    c.settle();
    c.sendMessage(p.tx, nullptr, 100);
    c.settle();
    for (auto* in : c.take(p.rx)) disposition(in, PN_ACCEPTED);
    c.settle();
    write("aborted-delivery", c.finish());
  }
  {  // The consumer detaches with deliveries in flight; the sender ends.
    Client c(r, false);
    Pair p = attachPair(c, "q", 3);
    for (int i = 0; i < 6; ++i) c.sendMessage(p.tx, nullptr, 500);
    c.settle();
    pn_link_close(p.rx);
    c.settle();
    pn_session_close(p.session);
    c.settle();
    write("consumer-detach-inflight", c.finish());
  }
  {  // Refused links: no source address, dynamic target, and a sender to an
     // address without consumers (no credit); then an abrupt end.
    Client c(r, true);
    pn_connection_open(c.connection());
    pn_session_t* s = c.session();
    c.receiver(s, "no-source", nullptr, 1);
    pn_link_t* dyn = pn_sender(s, "dyn-target");
    pn_terminus_set_dynamic(pn_link_target(dyn), true);
    pn_link_open(dyn);
    pn_link_t* lonely = c.sender(s, "lonely", "nobody");
    c.settle();
    c.sendMessage(lonely, nullptr, 10);
    c.settle();
    write("refused-links", c.finish(true));
  }
  {  // Connection dropped with a partly sent delivery and unsettled ones.
    Client c(r, true);
    Pair p = attachPair(c, "q", 8);
    for (int i = 0; i < 3; ++i) c.sendMessage(p.tx, nullptr, 200);
    const std::string bytes = Client::encode(nullptr, std::string(15000, 'p'));
    const std::uint64_t tag = 7;
    pn_delivery(p.tx, pn_dtag(reinterpret_cast<const char*>(&tag), sizeof tag));
    pn_link_send(p.tx, bytes.data(), 7000);
    c.settle();
    write("eof-mid-delivery", c.finish(true));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-dir>\n", argv[0]);
    return 2;
  }
  // VANE_FUZZ_LOG=<level> shows the router's log.
  const char* level = std::getenv("VANE_FUZZ_LOG");
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::off);
  g_dir = argv[1];
  std::filesystem::create_directories(g_dir);
  static Router* router = new Router;  // never destroyed: nothing may outlive the loop
  scenarios(*router);
  std::printf("%d files, %zu bytes\n", g_count, g_total);
  return 0;
}
