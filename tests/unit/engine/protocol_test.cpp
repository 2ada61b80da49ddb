#include "routing/protocol.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vane::routing::protocol {
namespace {

Message roundTrip(const Message& m) {
  const Decoded d = decode(encode(m));
  EXPECT_TRUE(d.ok()) << d.error.reason;
  return d.ok() ? *d.message : Message{};
}

std::string rejected(std::string_view bytes, const char* condition = "vane:protocol-error") {
  const Decoded d = decode(bytes);
  EXPECT_FALSE(d.ok()) << bytes.substr(0, 200);
  EXPECT_EQ(d.error.condition, condition) << d.error.reason;
  EXPECT_FALSE(d.error.reason.empty());
  return d.error.reason;
}

TEST(Protocol, HelloRoundTrip) {
  Hello h{"router-é", 18446744073709551615ull, 4294967295u, Mode::kEdge};
  EXPECT_EQ(roundTrip(h), Message{h});
  h.mode = Mode::kInterior;
  h.instance = 0;
  h.cost = 1;
  EXPECT_EQ(roundTrip(h), Message{h});
}

TEST(Protocol, HelloWireFormat) {
  const Decoded d =
      decode(R"({"v":1,"type":"hello","id":"A","instance":7,"cost":3,"mode":"interior"})");
  ASSERT_TRUE(d.ok()) << d.error.reason;
  EXPECT_EQ(std::get<Hello>(*d.message), (Hello{"A", 7, 3, Mode::kInterior}));
  EXPECT_EQ(encodeHello(Hello{"A", 7, 3, Mode::kEdge}),
            R"({"v":1,"type":"hello","id":"A","instance":7,"cost":3,"mode":"edge"})");
}

TEST(Protocol, KeysAndSignatures) {
  const std::string key(32, '\x01'), sig(64, '\xfe');
  Hello h{"A", 7, 3, Mode::kInterior, key, sig};
  EXPECT_EQ(roundTrip(h), Message{h});
  EXPECT_EQ(
      encodeHello(h),
      R"({"v":1,"type":"hello","id":"A","instance":7,"cost":3,"mode":"interior","key":")"
      R"(AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=","sig":")" +
          [] {
            std::string s;
            for (int i = 0; i < 21; ++i) s += "/v7+";
            return s;
          }() +
          R"(/g=="})");
  Lsu lsu;
  lsu.records.push_back({"A", 5, 9, {{"B", 1}}, key, sig});
  EXPECT_EQ(roundTrip(lsu), Message{lsu});
  Mau mau;
  AddressRecord full{"A", 1, 2, true, {"a"}, {}, {}, key, sig};
  AddressRecord change{"A", 1, 3, false, {}, {"b"}, {"a"}, key, sig};
  mau.updates = {full, change};
  EXPECT_EQ(roundTrip(mau), Message{mau});
  // Absent: empty (the engine decides); present: exactly 32 and 64 bytes.
  const std::string head = R"({"v":1,"type":"lsu","records":[{"id":"A","instance":1,"seq":1,)"
                           R"("links":{})";
  const Decoded none = decode(head + "}]}");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(std::get<Lsu>(*none.message).records[0].key.empty());
  EXPECT_NE(rejected(head + R"(,"key":"AQE="}]})").find("'key' must be 32 bytes in base64"),
            std::string::npos);
  rejected(head + R"(,"key":7}]})");
  rejected(head + R"(,"sig":"not base64!"}]})");
  rejected(R"({"v":1,"type":"hello","id":"A","instance":7,"cost":3,"mode":"edge","sig":""})");
}

TEST(Protocol, UnknownFieldsAreIgnored) {
  const Decoded d =
      decode(R"({"v":1,"future":[1,{"x":2}],"type":"mar","ids":["B","A","B"],"extra":null})");
  ASSERT_TRUE(d.ok()) << d.error.reason;
  // Sorted, without duplicates.
  EXPECT_EQ(std::get<Mar>(*d.message).ids, (std::vector<std::string>{"A", "B"}));
}

TEST(Protocol, LsuRoundTrip) {
  Lsu m;
  m.records.push_back({"A", 5, 9, {{"B", 1}, {"C", 4294967295u}}});
  m.records.push_back({"B", 1, 1, {}});
  EXPECT_EQ(roundTrip(m), Message{m});
  const Decoded d = decode(
      R"({"v":1,"type":"lsu","records":[{"id":"A","instance":1,"seq":2,"links":{"C":3,"B":1}}]})");
  ASSERT_TRUE(d.ok()) << d.error.reason;
  const auto& rec = std::get<Lsu>(*d.message).records.at(0);
  EXPECT_EQ(rec.links, (std::vector<std::pair<std::string, std::uint32_t>>{{"B", 1}, {"C", 3}}));
}

TEST(Protocol, MauRoundTrip) {
  Mau m;
  AddressRecord full;
  full.id = "A";
  full.instance = 3;
  full.seq = 4;
  full.exist = {"a/1", "a/2"};
  AddressRecord inc;
  inc.id = "B";
  inc.instance = 1;
  inc.seq = 2;
  inc.full = false;
  inc.add = {"x"};
  inc.del = {"y", "z"};
  AddressRecord empty_full;
  empty_full.id = "C";
  empty_full.instance = 1;
  empty_full.seq = 1;
  m.updates = {full, inc, empty_full};
  EXPECT_EQ(roundTrip(m), Message{m});

  // An incremental record with only "add" (or only "del").
  const Decoded d =
      decode(R"({"v":1,"type":"mau","updates":[{"id":"A","instance":1,"seq":2,"del":["q"]}]})");
  ASSERT_TRUE(d.ok()) << d.error.reason;
  const auto& rec = std::get<Mau>(*d.message).updates.at(0);
  EXPECT_FALSE(rec.full);
  EXPECT_TRUE(rec.add.empty());
  EXPECT_EQ(rec.del, std::vector<std::string>{"q"});
}

TEST(Protocol, MarRoundTrip) {
  Mar m{{"A", "B"}};
  EXPECT_EQ(roundTrip(m), Message{m});
  EXPECT_EQ(roundTrip(Mar{}), Message{Mar{}});
}

TEST(Protocol, RejectsNonJsonAndNonObjects) {
  rejected("");
  rejected("hello");
  rejected("{\"v\":1,\"type\":\"mar\",\"ids\":[]");  // truncated
  rejected("[1,2,3]");
  rejected("42");
  rejected("\"hello\"");
  rejected("null");
  rejected("{\"v\":1,\"type\":\"mar\",\"ids\":[\"\xff\"]}");  // invalid UTF-8
}

TEST(Protocol, RejectsBadVersion) {
  rejected(R"({"type":"mar","ids":[]})");
  rejected(R"({"v":"1","type":"mar","ids":[]})");
  rejected(R"({"v":1.0,"type":"mar","ids":[]})");
  rejected(R"({"v":-1,"type":"mar","ids":[]})");
  const std::string reason = rejected(R"({"v":2,"type":"mar","ids":[]})", "vane:protocol-version");
  EXPECT_NE(reason.find('2'), std::string::npos);
  // The version is checked before anything else about the message.
  rejected(R"({"v":2,"type":"whatever"})", "vane:protocol-version");
}

TEST(Protocol, RejectsBadType) {
  rejected(R"({"v":1})");
  rejected(R"({"v":1,"type":7})");
  const std::string reason = rejected(R"({"v":1,"type":"gossip"})");
  EXPECT_NE(reason.find("gossip"), std::string::npos);
}

TEST(Protocol, RejectsBadHello) {
  const std::string ok = R"("instance":1,"cost":1,"mode":"interior")";
  EXPECT_TRUE(decode(R"({"v":1,"type":"hello","id":"A",)" + ok + "}").ok());
  rejected(R"({"v":1,"type":"hello",)" + ok + "}");          // no id
  rejected(R"({"v":1,"type":"hello","id":5,)" + ok + "}");   // id not a string
  rejected(R"({"v":1,"type":"hello","id":"",)" + ok + "}");  // empty id
  rejected(R"({"v":1,"type":"hello","id":")" + std::string(256, 'x') + "\"," + ok + "}");
  EXPECT_TRUE(
      decode(R"({"v":1,"type":"hello","id":")" + std::string(255, 'x') + "\"," + ok + "}").ok());
  const std::string id = R"({"v":1,"type":"hello","id":"A",)";
  rejected(id + R"("instance":-1,"cost":1,"mode":"interior"})");
  rejected(id + R"("instance":1.5,"cost":1,"mode":"interior"})");
  rejected(id + R"("instance":18446744073709551616,"cost":1,"mode":"interior"})");
  rejected(id + R"("instance":"1","cost":1,"mode":"interior"})");
  rejected(id + R"("instance":1,"cost":0,"mode":"interior"})");
  rejected(id + R"("instance":1,"cost":4294967296,"mode":"interior"})");
  rejected(id + R"("instance":1,"mode":"interior"})");
  rejected(id + R"("instance":1,"cost":1,"mode":"core"})");
  rejected(id + R"("instance":1,"cost":1,"mode":true})");
  rejected(id + R"("instance":1,"cost":1})");
}

TEST(Protocol, RejectsBadLsu) {
  const std::string head = R"({"v":1,"type":"lsu","records":)";
  rejected(head + "{}}");
  rejected(R"({"v":1,"type":"lsu"})");
  rejected(head + "[1]}");
  rejected(head + R"([{"id":"A","instance":1,"seq":1}]})");             // no links
  rejected(head + R"([{"id":"A","instance":1,"seq":0,"links":{}}]})");  // seq 0
  rejected(head + R"([{"id":"A","instance":1,"seq":1,"links":[]}]})");  // links not an object
  rejected(head + R"([{"id":"A","instance":1,"seq":1,"links":{"B":"1"}}]})");
  rejected(head + R"([{"id":"A","instance":1,"seq":1,"links":{"B":0}}]})");
  rejected(head + R"([{"id":"A","instance":1,"seq":1,"links":{"":1}}]})");
  rejected(head + R"([{"id":"A","instance":1,"seq":1,"links":{")" + std::string(256, 'b') +
           R"(":1}}]})");
  const std::string reason =
      rejected(head + R"([{"id":"A","instance":1,"seq":1,"links":{}},{"id":"B"}]})");
  EXPECT_NE(reason.find("records[1]"), std::string::npos) << reason;
}

TEST(Protocol, RejectsBadMau) {
  const std::string head = R"({"v":1,"type":"mau","updates":[{"id":"A","instance":1,"seq":1,)";
  rejected(head + R"("exist":["a"],"add":["b"]}]})");
  rejected(head + R"("exist":["a"],"del":["b"]}]})");
  rejected(head + R"("other":1}]})");
  rejected(head + R"("exist":"a"}]})");
  rejected(head + R"("exist":[1]}]})");
  rejected(head + R"("exist":[""]}]})");
  rejected(head + R"("add":[null]}]})");
  rejected(head + R"("exist":[")" + std::string(4097, 'a') + R"("]}]})");
  EXPECT_TRUE(decode(head + R"("exist":[")" + std::string(4096, 'a') + R"("]}]})").ok());
  rejected(R"({"v":1,"type":"mau","updates":{}})");
}

TEST(Protocol, RejectsBadMar) {
  rejected(R"({"v":1,"type":"mar"})");
  rejected(R"({"v":1,"type":"mar","ids":"A"})");
  rejected(R"({"v":1,"type":"mar","ids":[["A"]]})");
}

TEST(Protocol, RejectsHugeAndDeepInput) {
  std::string huge = R"({"v":1,"type":"mar","ids":[")";
  huge += std::string(kMaxMessageBytes, 'a');
  huge += "\"]}";
  rejected(huge);
  rejected(std::string(100000, '[') + std::string(100000, ']'));
  // Brackets inside strings do not count as nesting.
  EXPECT_TRUE(decode(R"({"v":1,"type":"mar","ids":["[[[[[[[[[[[[[[[[[[[[[\"{{{{{{{{{"]})").ok());
}

TEST(Protocol, AssembleSplitsLargeBatches) {
  std::vector<std::string> encoded;
  for (int i = 0; i < 600; ++i) {
    AddressRecord rec;
    rec.id = std::to_string(i);
    rec.instance = 1;
    rec.seq = 1;
    rec.exist = {std::string(4000, 'a'), std::string(4000, 'b')};
    encoded.push_back(encodeRecord(rec));
  }
  std::vector<const std::string*> refs;
  for (const auto& e : encoded) refs.push_back(&e);
  const auto messages = assemble(Batch::kMau, refs);
  EXPECT_GT(messages.size(), 1u);
  std::size_t records = 0;
  for (const auto& m : messages) {
    EXPECT_LE(m.size(), kTargetMessageBytes);
    const Decoded d = decode(m);
    ASSERT_TRUE(d.ok()) << d.error.reason;
    records += std::get<Mau>(*d.message).updates.size();
  }
  EXPECT_EQ(records, 600u);
  EXPECT_TRUE(assemble(Batch::kLsu, {}).empty());
}

TEST(Protocol, Validity) {
  EXPECT_TRUE(validRouterId("r1"));
  EXPECT_TRUE(validRouterId("Zürich"));
  EXPECT_FALSE(validRouterId(""));
  EXPECT_FALSE(validRouterId(std::string(256, 'a')));
  EXPECT_FALSE(validRouterId("\xc3"));          // truncated
  EXPECT_FALSE(validRouterId("\xc0\xaf"));      // overlong
  EXPECT_FALSE(validRouterId("\xed\xa0\x80"));  // surrogate
  EXPECT_TRUE(validAddress(std::string(4096, 'a')));
  EXPECT_FALSE(validAddress(std::string(4097, 'a')));
  EXPECT_FALSE(validAddress(""));
}

}  // namespace
}  // namespace vane::routing::protocol
