// Fuzz target for the routing control messages (src/routing/protocol.hpp)
// and the engine that consumes them (src/routing/engine.hpp).
//
// The input is split at '\n' into up to 64 messages. Each is decoded; a
// message that decodes must encode and decode to the same value. Then the
// messages are fed, in order, through receive() to engines whose neighbour
// is up and established (its hello already received), in every role:
//  - an interior router, from an interior neighbour;
//  - an interior router, from an edge router attached to it;
//  - an edge router, from its uplink;
// followed by ticks far into the future (dead neighbours, ageing). Besides
// "no crash, no sanitizer report", the engine's reports must stay exact:
// an address is never reported present twice or removed when absent, and
// only for routers in the path table; path tables are sorted, without
// duplicates, and never contain the router itself.
//
// Signatures: a fuzzer cannot make valid Ed25519 signatures, so the engines
// here accept any signature (EngineConfig::verify) and the fuzzer explores
// what comes after verification; keys still bind to ids. The corpus gives
// router P the key of 32 'P' bytes, and so on, and X (the interior engine)
// its real key, kXKey below. signing_test.cpp tests verification itself.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "routing/engine.hpp"
#include "routing/protocol.hpp"
#include "routing/signing.hpp"

namespace {

using namespace vane::routing;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "invariant violated: %s\n", what);
  std::abort();
}

class Checker : public EngineOutput {
 public:
  explicit Checker(std::string self) : self_(std::move(self)) {}
  void send(NeighborId, std::string message) override {
    // Whatever the engine sends must be a valid message.
    if (!protocol::decode(message).ok()) fail("engine sent an undecodable message");
  }
  void drop(NeighborId, std::string condition, std::string) override {
    if (condition.rfind("vane:", 0) != 0) fail("drop condition without vane: prefix");
  }
  void pathsChanged(const std::vector<Path>& paths) override {
    std::set<std::string> ids;
    for (std::size_t i = 0; i < paths.size(); ++i) {
      if (paths[i].router == self_) fail("self in path table");
      if (!ids.insert(paths[i].router).second) fail("duplicate router in path table");
      if (i > 0 && !(paths[i - 1].router < paths[i].router)) fail("path table not sorted");
    }
    table_ = std::move(ids);
    // Addresses of routers that left must have been reported removed.
    for (const auto& [address, router] : addresses_) {
      if (table_.count(router) == 0) fail("address left reported for a router not in the table");
    }
  }
  void remoteAddress(const std::string& address, const std::string& router, bool present) override {
    if (table_.count(router) == 0) fail("address reported for a router not in the table");
    if (router == self_) fail("own address reported");
    if (present ? !addresses_.insert({address, router}).second
                : addresses_.erase({address, router}) == 0) {
      fail("address reported inconsistently");
    }
  }

 private:
  std::string self_;
  std::set<std::string> table_;
  std::set<std::pair<std::string, std::string>> addresses_;
};

std::vector<std::string_view> split(std::string_view input) {
  std::vector<std::string_view> out;
  while (!input.empty() && out.size() < 64) {
    const std::size_t nl = input.find('\n');
    out.push_back(input.substr(0, nl));
    if (nl == std::string_view::npos) break;
    input.remove_prefix(nl + 1);
  }
  return out;
}

void checkRoundTrip(std::string_view bytes) {
  const protocol::Decoded d = protocol::decode(bytes);
  if (!d.ok()) {
    if (d.error.reason.empty()) fail("decode error without a reason");
    if (d.error.condition != "vane:protocol-error" &&
        d.error.condition != "vane:protocol-version") {
      fail("unexpected decode error condition");
    }
    return;
  }
  const protocol::Decoded again = protocol::decode(protocol::encode(*d.message));
  if (!again.ok()) fail("re-encoded message does not decode");
  if (!(*again.message == *d.message)) fail("round trip changed the message");
}

constexpr Millis kStart = 1000;

// X's identity (public key jtsiJLGCDobAgWUfyV5CZ7tlUns+SVgRTvAG/1E9ed4=).
constexpr const char* kXKey =
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEICKinTLrwclG45/2V7xN2hGTQEr0f7F7CHvPc9zHPOAa\n"
    "-----END PRIVATE KEY-----\n";

std::shared_ptr<const signing::KeyPair> xKey() {
  static const auto key = [] {
    std::string err;
    auto k = signing::KeyPair::fromPem(kXKey, err);
    if (!k) fail("the fixed key does not load");
    return k;
  }();
  return key;
}

EngineConfig fuzzConfig(const char* id) {
  EngineConfig cfg;
  cfg.id = id;
  cfg.verify = [](std::string_view, std::string_view, std::string_view) { return true; };
  return cfg;
}

// `json` (an object's text without its closing brace) with the key and an
// all-zero signature of router `id` appended.
std::string signedBy(const char* id, std::string json) {
  const std::string key = std::string(id) == "X" ? xKey()->publicKey() : std::string(32, id[0]);
  json += R"(,"key":")" + signing::base64(key) + R"(","sig":")" +
          signing::base64(std::string(64, '\0')) + "\"}";
  return json;
}

// Interior router X with an established interior neighbour P (which has its
// own neighbour Q) and an edge child E, with some addresses about.
void interior(const std::vector<std::string_view>& messages, bool from_edge) {
  Checker out("X");
  EngineConfig cfg = fuzzConfig("X");
  cfg.instance = 5;
  cfg.key = xKey();
  Engine e(cfg, out);
  e.localAddress("x/local", true);
  e.flush(kStart);
  e.neighborUp(1, "P", NeighborRole::kInterior, 1, kStart);
  e.receive(1,
            signedBy("P", R"({"v":1,"type":"hello","id":"P","instance":3,"cost":2,)"
                          R"("mode":"interior")"),
            kStart);
  e.receive(1,
            R"({"v":1,"type":"lsu","records":[)" +
                signedBy("P", R"({"id":"P","instance":3,"seq":2,"links":{"X":2,"Q":1})") + "," +
                signedBy("Q", R"({"id":"Q","instance":1,"seq":4,"links":{"P":1})") + "]}",
            kStart);
  e.receive(1,
            R"({"v":1,"type":"mau","updates":[)" +
                signedBy("P", R"({"id":"P","instance":3,"seq":1,"exist":["p/1","s"])") + "," +
                signedBy("Q", R"({"id":"Q","instance":1,"seq":2,"exist":["q/1"])") + "]}",
            kStart);
  e.neighborUp(2, "E", NeighborRole::kEdge, 1, kStart);
  e.receive(2,
            signedBy("E", R"({"v":1,"type":"hello","id":"E","instance":9,"cost":1,"mode":"edge")"),
            kStart);
  e.receive(
      2, R"({"v":1,"type":"mau","updates":[{"id":"E","instance":9,"seq":1,"exist":["e/1","s"]}]})",
      kStart);
  Millis now = kStart;
  const NeighborId from = from_edge ? 2 : 1;
  for (const auto m : messages) e.receive(from, m, ++now);
  e.localAddress("s", true);
  e.flush(now);
  e.tick(now + 2000);
  e.tick(now + 100000);
  e.tick(now + 1000000);
}

void edge(const std::vector<std::string_view>& messages) {
  Checker out("E");
  EngineConfig cfg = fuzzConfig("E");
  cfg.edge = true;
  Engine e(cfg, out);
  e.localAddress("e/1", true);
  e.neighborUp(1, "X", NeighborRole::kUplink, 1, kStart);
  e.receive(1,
            signedBy("X", R"({"v":1,"type":"hello","id":"X","instance":5,"cost":1,)"
                          R"("mode":"interior")"),
            kStart);
  e.receive(1,
            R"({"v":1,"type":"mau","updates":[{"id":"X","instance":5,"seq":1,"exist":["a","b"]}]})",
            kStart);
  Millis now = kStart;
  for (const auto m : messages) e.receive(1, m, ++now);
  e.flush(now);
  e.tick(now + 100000);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto messages = split(input);
  for (const auto m : messages) checkRoundTrip(m);
  interior(messages, false);
  interior(messages, true);
  edge(messages);
  return 0;
}
