// Signed routing records (docs/design/trust-model.md): keys, what is signed,
// and the engine's verification, trust on first use and limits, driven by
// hand through one engine and a neighbour that sends what the test says.
#include "routing/signing.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "routing/engine.hpp"
#include "routing/protocol.hpp"

namespace vane::routing {
namespace {

namespace proto = protocol;
using signing::KeyPair;
using Key = std::shared_ptr<const KeyPair>;

// --- keys and encodings -------------------------------------------------------

TEST(Signing, SignAndVerify) {
  const Key k = KeyPair::generate();
  EXPECT_EQ(k->publicKey().size(), signing::kPublicKeyBytes);
  const std::string sig = k->sign("message");
  EXPECT_EQ(sig.size(), signing::kSignatureBytes);
  EXPECT_TRUE(signing::verify(k->publicKey(), "message", sig));
  EXPECT_FALSE(signing::verify(k->publicKey(), "messagf", sig));
  EXPECT_FALSE(signing::verify(KeyPair::generate()->publicKey(), "message", sig));
  std::string flipped = sig;
  flipped[10] ^= 1;
  EXPECT_FALSE(signing::verify(k->publicKey(), "message", flipped));
  EXPECT_FALSE(signing::verify(k->publicKey().substr(1), "message", sig));
  EXPECT_FALSE(signing::verify(k->publicKey(), "message", sig.substr(1)));
}

TEST(Signing, PemRoundTripAndKeyFile) {
  const Key k = KeyPair::generate();
  std::string err;
  const Key back = KeyPair::fromPem(k->pem(), err);
  ASSERT_TRUE(back) << err;
  EXPECT_EQ(back->publicKey(), k->publicKey());
  EXPECT_FALSE(KeyPair::fromPem("not a key", err));

  const auto dir =
      std::filesystem::temp_directory_path() / ("vane-signing-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "id.pem").string();
  std::filesystem::remove(path);
  bool created = false;
  const Key first = KeyPair::loadOrCreate(path, created, err);
  ASSERT_TRUE(first) << err;
  EXPECT_TRUE(created);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const Key second = KeyPair::loadOrCreate(path, created, err);
  ASSERT_TRUE(second) << err;
  EXPECT_FALSE(created);
  EXPECT_EQ(second->publicKey(), first->publicKey());  // the same identity after a restart
  // Not a key: an error naming the file, never a silent new identity.
  std::FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("garbage\n", f);
  std::fclose(f);
  EXPECT_FALSE(KeyPair::loadOrCreate(path, created, err));
  EXPECT_NE(err.find(path), std::string::npos) << err;
  EXPECT_FALSE(KeyPair::loadOrCreate((dir / "no" / "such" / "dir").string(), created, err));
  std::filesystem::remove_all(dir);
}

TEST(Signing, Base64IsStrict) {
  for (const std::string s : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
    const auto back = signing::unbase64(signing::base64(s));
    ASSERT_TRUE(back) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(signing::base64("foobar"), "Zm9vYmFy");
  EXPECT_EQ(signing::base64("fo"), "Zm8=");
  EXPECT_FALSE(signing::unbase64("Zm8"));       // no padding
  EXPECT_FALSE(signing::unbase64("Zm9=Zm8="));  // padding inside
  EXPECT_FALSE(signing::unbase64("Zm9 "));
  EXPECT_FALSE(signing::unbase64("Zm9="));  // non-zero bits under the padding
  EXPECT_FALSE(signing::unbase64("Z==="));
}

TEST(Signing, InputsSeparateWhatTheyCover) {
  const std::vector<std::pair<std::string, std::uint32_t>> links = {{"B", 1}};
  const std::string base = signing::linkStateInput("A", 1, 2, links);
  EXPECT_NE(base, signing::linkStateInput("A", 1, 3, links));
  EXPECT_NE(base, signing::linkStateInput("A", 2, 2, links));
  EXPECT_NE(base, signing::linkStateInput("B", 1, 2, links));
  EXPECT_NE(base, signing::linkStateInput("A", 1, 2, {{"B", 2}}));
  EXPECT_NE(base, signing::linkStateInput("A", 1, 2, {{"C", 1}}));
  const std::vector<std::string> set = {"a", "b"};
  // Length prefixes: ["ab"] is not ["a", "b"].
  EXPECT_NE(signing::addressInput("A", 1, 2, set),
            signing::addressInput("A", 1, 2, std::vector<std::string>{"ab"}));
  // A link-state record and an address record never share an input.
  EXPECT_NE(signing::linkStateInput("A", 1, 2, {}),
            signing::addressInput("A", 1, 2, std::vector<std::string>{}));
}

// --- a hand-driven engine --------------------------------------------------------

struct Capture : EngineOutput {
  std::map<NeighborId, std::vector<std::string>> sent;
  std::vector<std::pair<NeighborId, std::string>> drops;  // (neighbour, condition)
  std::vector<std::string> drop_reasons;
  std::vector<Path> paths;
  std::set<std::pair<std::string, std::string>> addresses;  // (address, router)
  std::vector<std::string> logs;
  void send(NeighborId to, std::string message) override { sent[to].push_back(std::move(message)); }
  void drop(NeighborId n, std::string condition, std::string reason) override {
    drops.emplace_back(n, std::move(condition));
    drop_reasons.push_back(std::move(reason));
  }
  void pathsChanged(const std::vector<Path>& p) override { paths = p; }
  void remoteAddress(const std::string& address, const std::string& router, bool present) override {
    if (present) {
      addresses.emplace(address, router);
    } else {
      addresses.erase({address, router});
    }
  }
  void log(Severity, const std::string& message) override { logs.push_back(message); }
  bool reaches(const std::string& router) const {
    for (const auto& p : paths) {
      if (p.router == router) return true;
    }
    return false;
  }
};

// A router the test speaks for: its id, instance and key.
struct Peer {
  std::string id;
  std::uint64_t instance = 1;
  Key key = KeyPair::generate();
  std::uint64_t ls_seq = 0;
  std::uint64_t addr_seq = 0;

  proto::LinkStateRecord ls(std::vector<std::pair<std::string, std::uint32_t>> links) {
    proto::LinkStateRecord r;
    r.id = id;
    r.instance = instance;
    r.seq = ++ls_seq;
    r.links = std::move(links);
    std::sort(r.links.begin(), r.links.end());
    r.key = key->publicKey();
    r.sig = key->sign(signing::linkStateInput(r.id, r.instance, r.seq, r.links));
    return r;
  }
  proto::AddressRecord full(std::vector<std::string> exist) {
    proto::AddressRecord r;
    r.id = id;
    r.instance = instance;
    r.seq = ++addr_seq;
    std::sort(exist.begin(), exist.end());
    r.exist = exist;
    r.key = key->publicKey();
    r.sig = key->sign(signing::addressInput(r.id, r.instance, r.seq, r.exist));
    return r;
  }
  // An incremental record; `result` is the set it leads to (what is signed).
  proto::AddressRecord change(std::vector<std::string> add, std::vector<std::string> del,
                              std::vector<std::string> result) {
    proto::AddressRecord r;
    r.id = id;
    r.instance = instance;
    r.seq = ++addr_seq;
    r.full = false;
    r.add = std::move(add);
    r.del = std::move(del);
    std::sort(result.begin(), result.end());
    r.key = key->publicKey();
    r.sig = key->sign(signing::addressInput(r.id, r.instance, r.seq, result));
    return r;
  }
  std::string hello(const std::string& to) const {
    proto::Hello h;
    h.id = id;
    h.instance = instance;
    h.key = key->publicKey();
    h.sig = key->sign(signing::helloInput(id, instance, to));
    return proto::encodeHello(h);
  }
};

std::string lsu(std::vector<proto::LinkStateRecord> records) {
  return proto::encode(proto::Lsu{std::move(records)});
}
std::string mau(std::vector<proto::AddressRecord> records) {
  return proto::encode(proto::Mau{std::move(records)});
}

// Router A (the engine) with neighbour N (connection 1), established and
// linked both ways; N says it also links to X, and X to N: X is reachable
// through N once X's record is in.
class Signed : public ::testing::Test {
 protected:
  void start(EngineConfig cfg = {}) {
    cfg.id = "A";
    cfg.unreachable_max_age_ms = 1000;
    engine_ = std::make_unique<Engine>(cfg, out_);
    ASSERT_FALSE(engine_->neighborUp(1, "N", NeighborRole::kInterior, 1, now_));
    engine_->receive(1, n_.hello("A"), now_);
    ASSERT_EQ(engine_->neighbors(), std::vector<std::string>{"N"});
    receive(lsu({n_.ls({{"A", 1}, {"X", 1}})}));
  }
  void receive(const std::string& msg, NeighborId from = 1) {
    now_ += 2;  // past the pacing of the last call
    engine_->receive(from, msg, now_);
    engine_->tick(now_);
  }
  void advance(Millis ms) {
    const Millis end = now_ + ms;
    while (now_ < end) {
      now_ = std::min(end, std::max(now_ + 1, engine_->nextTick()));
      engine_->tick(now_);
    }
  }
  bool dropped(const std::string& condition) const {
    for (const auto& [n, c] : out_.drops) {
      if (c == condition) return true;
    }
    return false;
  }
  const EngineStats& stats() const { return engine_->stats(); }

  Capture out_;
  std::unique_ptr<Engine> engine_;
  Millis now_ = 1000;
  Peer n_{"N"};
  Peer x_{"X"};
};

TEST_F(Signed, ValidRecordsAreTakenAndForwardedWithTheOriginatorsSignature) {
  start();
  const proto::LinkStateRecord rec = x_.ls({{"N", 1}});
  receive(lsu({rec}));
  EXPECT_TRUE(out_.reaches("X"));
  receive(mau({x_.full({"a", "b"})}));
  receive(mau({x_.change({"c"}, {"a"}, {"b", "c"})}));
  EXPECT_EQ(out_.addresses,
            (std::set<std::pair<std::string, std::string>>{{"b", "X"}, {"c", "X"}}));
  EXPECT_EQ(stats().bad_signatures, 0u);
  EXPECT_TRUE(out_.drops.empty());

  // A new neighbour M gets X's records as held: the link-state record with
  // X's own signature, and a full address record built here from the
  // incremental ones, with the signature X made for that set.
  ASSERT_FALSE(engine_->neighborUp(2, "M", NeighborRole::kInterior, 1, now_));
  Peer m{"M"};
  receive(m.hello("A"), 2);
  bool ls_ok = false, addr_ok = false;
  for (const auto& msg : out_.sent[2]) {
    const auto d = proto::decode(msg);
    ASSERT_TRUE(d.ok());
    if (const auto* l = std::get_if<proto::Lsu>(&*d.message)) {
      for (const auto& r : l->records) {
        if (r.id == "X") {
          EXPECT_EQ(r, rec);
          ls_ok = true;
        }
      }
    }
    if (const auto* a = std::get_if<proto::Mau>(&*d.message)) {
      for (const auto& r : a->updates) {
        if (r.id != "X") continue;
        EXPECT_TRUE(r.full);
        EXPECT_EQ(r.exist, (std::vector<std::string>{"b", "c"}));
        EXPECT_EQ(r.key, x_.key->publicKey());
        EXPECT_TRUE(signing::verify(r.key, signing::addressInput("X", 1, r.seq, r.exist), r.sig));
        addr_ok = true;
      }
    }
  }
  EXPECT_TRUE(ls_ok);
  EXPECT_TRUE(addr_ok);
}

TEST_F(Signed, OwnRecordsAndHellosAreSigned) {
  start();
  bool hello = false, ls = false;
  for (const auto& msg : out_.sent[1]) {
    const auto d = proto::decode(msg);
    ASSERT_TRUE(d.ok());
    if (const auto* h = std::get_if<proto::Hello>(&*d.message)) {
      EXPECT_EQ(h->key, engine_->publicKey());
      EXPECT_TRUE(signing::verify(h->key, signing::helloInput("A", 1, "N"), h->sig));
      hello = true;
    }
    if (const auto* l = std::get_if<proto::Lsu>(&*d.message)) {
      for (const auto& r : l->records) {
        if (r.id != "A") continue;
        EXPECT_TRUE(signing::verify(engine_->publicKey(),
                                    signing::linkStateInput("A", 1, r.seq, r.links), r.sig));
        ls = true;
      }
    }
  }
  EXPECT_TRUE(hello);
  EXPECT_TRUE(ls);
}

// Each tampering: the record is dropped, counted, and the neighbour that
// sent it dropped (an honest router verifies before it re-floods).
class Tampered : public Signed {
 protected:
  void expectRefused(const std::string& msg) {
    start();
    receive(msg);
    EXPECT_EQ(stats().bad_signatures, 1u);
    EXPECT_TRUE(dropped("vane:protocol-error"));
    EXPECT_FALSE(out_.reaches("X"));
    EXPECT_TRUE(out_.addresses.empty());
  }
};

TEST_F(Tampered, ChangedSeq) {
  proto::LinkStateRecord r = x_.ls({{"N", 1}});
  r.seq = 7;
  expectRefused(lsu({r}));
}

TEST_F(Tampered, ChangedLinks) {
  proto::LinkStateRecord r = x_.ls({{"N", 1}});
  r.links = {{"N", 1}, {"Z", 1}};
  expectRefused(lsu({r}));
}

TEST_F(Tampered, ChangedCost) {
  proto::LinkStateRecord r = x_.ls({{"N", 1}});
  r.links = {{"N", 5}};
  expectRefused(lsu({r}));
}

TEST_F(Tampered, ChangedInstance) {
  proto::LinkStateRecord r = x_.ls({{"N", 1}});
  r.instance = 99;
  expectRefused(lsu({r}));
}

TEST_F(Tampered, ChangedAddressSet) {
  proto::AddressRecord r = x_.full({"a"});
  r.exist = {"a", "evil"};
  expectRefused(mau({r}));
}

TEST_F(Tampered, ChangedIncrementalRecord) {
  start();
  receive(lsu({x_.ls({{"N", 1}})}));
  receive(mau({x_.full({"a"})}));
  proto::AddressRecord r = x_.change({"b"}, {}, {"a", "b"});
  r.add = {"evil"};
  receive(mau({r}));
  EXPECT_EQ(stats().bad_signatures, 1u);
  EXPECT_TRUE(dropped("vane:protocol-error"));
  EXPECT_EQ(out_.addresses.count({"evil", "X"}), 0u);
}

TEST_F(Tampered, SwappedKey) {
  // Signed by X, with someone else's key in "key".
  proto::LinkStateRecord r = x_.ls({{"N", 1}});
  r.key = KeyPair::generate()->publicKey();
  expectRefused(lsu({r}));
}

TEST_F(Tampered, Unsigned) {
  proto::LinkStateRecord r = x_.ls({{"N", 1}});
  r.key.clear();
  r.sig.clear();
  expectRefused(lsu({r}));
}

TEST_F(Signed, UnsignedOrForgedHelloIsRefused) {
  EngineConfig cfg;
  cfg.id = "A";
  engine_ = std::make_unique<Engine>(cfg, out_);
  ASSERT_FALSE(engine_->neighborUp(1, "N", NeighborRole::kInterior, 1, now_));
  engine_->receive(1, R"({"v":1,"type":"hello","id":"N","instance":1,"cost":1,"mode":"interior"})",
                   now_);
  EXPECT_TRUE(dropped("vane:protocol-error"));
  EXPECT_NE(out_.drop_reasons.back().find("not signed"), std::string::npos);
  // A hello signed for another router (replayed) does not verify here.
  ASSERT_FALSE(engine_->neighborUp(2, "N", NeighborRole::kInterior, 1, now_));
  engine_->receive(2, n_.hello("B"), now_);
  EXPECT_NE(out_.drop_reasons.back().find("bad signature"), std::string::npos);
  EXPECT_EQ(stats().bad_signatures, 2u);
  EXPECT_TRUE(engine_->neighbors().empty());
}

TEST_F(Signed, AnotherKeyForABoundIdIsAConflict) {
  start();
  receive(lsu({x_.ls({{"N", 1}})}));
  receive(mau({x_.full({"a"})}));
  ASSERT_TRUE(out_.reaches("X"));
  // N relays records about X under N's own key (validly signed, so not a
  // bad signature): X unlinked, its address set emptied, a larger instance.
  Peer fake{"X", 1000, n_.key};
  receive(lsu({fake.ls({{"N", 1}, {"Z", 1}})}));
  receive(lsu({fake.ls({})}));
  receive(mau({fake.full({})}));
  EXPECT_EQ(stats().id_conflicts, 3u);
  EXPECT_TRUE(out_.drops.empty());  // not a protocol error
  EXPECT_TRUE(out_.reaches("X"));
  EXPECT_EQ(out_.addresses.count({"a", "X"}), 1u);
  // Logged once for the id.
  std::size_t lines = 0;
  for (const auto& l : out_.logs) {
    if (l.find("router id 'X' is already in the network with another key") != std::string::npos) {
      ++lines;
    }
  }
  EXPECT_EQ(lines, 1u);
  // Records about our own id under another key: the same.
  Peer self{"A", 1000, n_.key};
  receive(lsu({self.ls({})}));
  EXPECT_EQ(stats().id_conflicts, 4u);
}

TEST_F(Signed, AHelloForABoundIdWithAnotherKeyIsRefused) {
  start();
  receive(lsu({x_.ls({{"N", 1}})}));
  ASSERT_TRUE(out_.reaches("X"));
  // A second neighbour calling itself X, with X's instance but its own key.
  ASSERT_FALSE(engine_->neighborUp(2, "X", NeighborRole::kInterior, 1, now_));
  Peer impostor{"X", x_.instance};
  receive(impostor.hello("A"), 2);
  ASSERT_FALSE(out_.drops.empty());
  EXPECT_EQ(out_.drops.back(),
            std::make_pair(NeighborId{2}, std::string("vane:duplicate-router-id")));
  EXPECT_NE(out_.drop_reasons.back().find("already in the network with another key"),
            std::string::npos);
  // The real X, with its key, may link directly.
  ASSERT_FALSE(engine_->neighborUp(3, "X", NeighborRole::kInterior, 1, now_));
  receive(x_.hello("A"), 3);
  EXPECT_EQ(engine_->neighbors(), (std::vector<std::string>{"N", "X"}));
}

TEST_F(Signed, TheBindingGoesWhenTheIdLeavesTheNetwork) {
  start();
  receive(lsu({x_.ls({{"N", 1}})}));
  ASSERT_TRUE(out_.reaches("X"));
  // X leaves: N no longer links to it. Its records age out (1 s here).
  receive(lsu({n_.ls({{"A", 1}})}));
  EXPECT_FALSE(out_.reaches("X"));
  EXPECT_TRUE(engine_->hasRouter("X"));
  // Meanwhile a new X (a restart without its key file) is refused...
  Peer x2{"X", 5};
  receive(lsu({x2.ls({{"N", 1}})}));
  receive(mau({x2.full({"new"})}));
  EXPECT_EQ(stats().id_conflicts, 2u);
  advance(1100);
  EXPECT_TRUE(engine_->hasRouter("X"));
  EXPECT_FALSE(out_.reaches("X"));
  // ... and once the old records are gone, the records refused meanwhile
  // are taken (without them this router would have no record of the new X
  // until it changed again), with the new key bound.
  receive(lsu({n_.ls({{"A", 1}, {"X", 1}})}));
  EXPECT_TRUE(out_.reaches("X"));
  EXPECT_EQ(out_.addresses.count({"new", "X"}), 1u);
  x_.instance = 10;
  receive(lsu({x_.ls({{"N", 1}, {"Z", 1}})}));  // the old key is the stranger now
  EXPECT_EQ(stats().id_conflicts, 3u);
}

TEST_F(Signed, RouterLimit) {
  EngineConfig cfg;
  cfg.max_routers = 2;  // N and X
  start(cfg);
  receive(lsu({x_.ls({{"N", 1}})}));
  Peer y{"Y"};
  receive(lsu({y.ls({{"N", 1}})}));
  receive(mau({y.full({"y"})}));
  EXPECT_EQ(stats().router_limit_drops, 2u);
  EXPECT_FALSE(engine_->hasRouter("Y"));
  EXPECT_EQ(engine_->knownRouters(), 3u);  // A, N, X
  // Logged, at most once per 10 s.
  std::size_t lines = 0;
  for (const auto& l : out_.logs) lines += l.find("router.max_routers") != std::string::npos;
  EXPECT_EQ(lines, 1u);
  // More links than routers allowed: dropped too.
  receive(lsu({x_.ls({{"N", 1}, {"P", 1}, {"Q", 1}})}));
  EXPECT_EQ(stats().router_limit_drops, 3u);
}

TEST_F(Signed, AddressLimits) {
  EngineConfig cfg;
  cfg.max_addresses_per_router = 3;
  cfg.max_addresses = 4;
  start(cfg);
  receive(lsu({x_.ls({{"N", 1}})}));
  receive(mau({x_.full({"a", "b", "c", "d"})}));  // 4 > 3
  EXPECT_EQ(stats().router_address_limit_drops, 1u);
  EXPECT_TRUE(out_.addresses.empty());
  receive(mau({x_.full({"a", "b", "c"})}));
  EXPECT_EQ(out_.addresses.size(), 3u);
  receive(mau({n_.full({"n1", "n2"})}));  // 3 + 2 > 4: the whole record is dropped
  EXPECT_EQ(stats().address_limit_drops, 1u);
  receive(mau({n_.full({"n1"})}));
  EXPECT_EQ(engine_->knownAddresses(), 4u);
  // An incremental record over the limit: dropped; the next one is a gap,
  // repaired by asking for the full record.
  receive(mau({x_.change({"e"}, {}, {"a", "b", "c", "e"})}));
  EXPECT_EQ(stats().router_address_limit_drops, 2u);
  EXPECT_EQ(out_.addresses.count({"e", "X"}), 0u);
  EXPECT_TRUE(out_.drops.empty());
}

TEST_F(Signed, UpdateRateDefersThenDrops) {
  EngineConfig cfg;
  cfg.max_updates_per_neighbor_per_second = 100;
  cfg.max_update_burst_per_neighbor = 10;
  start(cfg);  // hello + one record: 2 tokens used
  // 8 more records fit the burst; the ninth waits for a token (10 ms).
  std::vector<std::string> ids;
  for (int i = 0; i < 9; ++i) {
    Peer p{"P" + std::to_string(i)};
    engine_->receive(1, lsu({p.ls({{"N", 1}})}), now_);
  }
  EXPECT_EQ(stats().deferred_messages, 1u);
  EXPECT_EQ(engine_->knownRouters(), 10u);  // A, N, P0..P7
  EXPECT_LE(engine_->nextTick(), now_ + 10);
  advance(20);
  EXPECT_EQ(engine_->knownRouters(), 11u);  // nothing lost
  EXPECT_TRUE(out_.drops.empty());
  // Far over the rate: more waiting than a whole burst drops the neighbour.
  for (int i = 0; i < 30 && out_.drops.empty(); ++i) {
    Peer p{"Q" + std::to_string(i)};
    engine_->receive(1, lsu({p.ls({{"N", 1}})}), now_);
  }
  EXPECT_TRUE(dropped("vane:resource-limit-exceeded"));
  EXPECT_EQ(stats().rate_limit_drops, 1u);
}

// Not a test of speed (no assertion): prints what signing and verifying
// cost, for docs/design/trust-model.md.
TEST(SigningCost, ThousandRecords) {
  const Key k = KeyPair::generate();
  std::vector<std::string> inputs, sigs;
  for (int i = 0; i < 1000; ++i) {
    inputs.push_back(signing::linkStateInput("router-" + std::to_string(i), 1, 1,
                                             {{"a", 1}, {"b", 1}, {"c", 2}, {"d", 3}}));
  }
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  for (const auto& in : inputs) sigs.push_back(k->sign(in));
  auto t1 = Clock::now();
  int ok = 0;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    ok += signing::verify(k->publicKey(), inputs[i], sigs[i]) ? 1 : 0;
  }
  auto t2 = Clock::now();
  EXPECT_EQ(ok, 1000);
  const auto us = [](auto d) {
    return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  };
  std::printf(
      "1000 link-state records: sign %lld us (%.1f us each), verify %lld us (%.1f us each)\n",
      static_cast<long long>(us(t1 - t0)), us(t1 - t0) / 1000.0,
      static_cast<long long>(us(t2 - t1)), us(t2 - t1) / 1000.0);
  for (const std::size_t n : {100, 10000, 50000}) {
    std::vector<std::string> set;
    for (std::size_t i = 0; i < n; ++i) set.push_back("orders/eu/service-" + std::to_string(i));
    std::sort(set.begin(), set.end());
    const auto h0 = Clock::now();
    const std::string in = signing::addressInput("router-1", 1, 1, set);
    const auto h1 = Clock::now();
    std::printf("address record of %zu addresses: hashing the set %lld us\n", n,
                static_cast<long long>(us(h1 - h0)));
  }
}

}  // namespace
}  // namespace vane::routing
