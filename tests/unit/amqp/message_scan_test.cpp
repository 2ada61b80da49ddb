#include "amqp/message_scan.hpp"

#include <gtest/gtest.h>
#include <proton/codec.h>
#include <proton/message.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace vane::amqp {
namespace {

using namespace std::string_literals;

// ---------------------------------------------------------------------------
// Building messages with Proton.

struct MessageDeleter {
  void operator()(pn_message_t* m) const { pn_message_free(m); }
};
using Message = std::unique_ptr<pn_message_t, MessageDeleter>;

Message newMessage() {
  return Message(pn_message());
}

std::string encode(pn_message_t* msg) {
  std::string out(256, '\0');
  while (true) {
    size_t size = out.size();
    int rc = pn_message_encode(msg, out.data(), &size);
    if (rc == 0) {
      out.resize(size);
      return out;
    }
    if (rc != PN_OVERFLOW) {
      ADD_FAILURE() << "pn_message_encode: " << pn_code(rc);
      return {};
    }
    out.resize(out.size() * 2);
  }
}

void putSymbolKey(pn_data_t* d, const std::string& s) {
  pn_data_put_symbol(d, pn_bytes(s.size(), s.data()));
}

void setStringBody(pn_message_t* msg, const std::string& s) {
  pn_data_put_string(pn_message_body(msg), pn_bytes(s.size(), s.data()));
}

// Fills an annotations-style map (symbol keys) with n entries whose values are
// strings of value_size bytes.
void fillAnnotations(pn_data_t* d, int n, std::size_t value_size) {
  const std::string value(value_size, 'v');
  pn_data_put_map(d);
  pn_data_enter(d);
  for (int i = 0; i < n; ++i) {
    putSymbolKey(d, "x-opt-key-" + std::to_string(i));
    pn_data_put_string(d, pn_bytes(value.size(), value.data()));
  }
  pn_data_exit(d);
}

// Offset just past the properties section, found by decoding the sections one
// by one with Proton (independently of the code under test); npos if there is
// no properties section.
std::size_t propertiesEnd(const std::string& bytes) {
  pn_data_t* d = pn_data(16);
  std::size_t pos = 0;
  std::size_t result = std::string::npos;
  while (pos < bytes.size()) {
    pn_data_clear(d);
    ssize_t n = pn_data_decode(d, bytes.data() + pos, bytes.size() - pos);
    if (n <= 0) break;
    pos += static_cast<std::size_t>(n);
    pn_data_rewind(d);
    pn_data_next(d);
    pn_data_enter(d);
    pn_data_next(d);
    if (pn_data_type(d) == PN_ULONG && pn_data_get_ulong(d) == 0x73) {
      result = pos;
      break;
    }
  }
  pn_data_free(d);
  return result;
}

// ---------------------------------------------------------------------------
// Building encodings by hand, for forms Proton's encoder never produces.

std::string u32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string variable8(char code, const std::string& s) {
  return std::string(1, code) + static_cast<char>(s.size()) + s;
}
std::string variable32(char code, const std::string& s) {
  return std::string(1, code) + u32(static_cast<std::uint32_t>(s.size())) + s;
}
std::string str8(const std::string& s) {
  return variable8('\xa1', s);
}
std::string str32(const std::string& s) {
  return variable32('\xb1', s);
}
std::string sym8(const std::string& s) {
  return variable8('\xa3', s);
}
std::string sym32(const std::string& s) {
  return variable32('\xb3', s);
}
const std::string kNull = "\x40";

std::string join(std::initializer_list<std::string> parts) {
  std::string out;
  for (const auto& p : parts) out += p;
  return out;
}
std::string list8(std::initializer_list<std::string> elements) {
  const std::string body = join(elements);
  return "\xc0"s + static_cast<char>(body.size() + 1) + static_cast<char>(elements.size()) + body;
}
std::string list32(std::initializer_list<std::string> elements) {
  const std::string body = join(elements);
  return "\xd0"s + u32(static_cast<std::uint32_t>(body.size() + 4)) +
         u32(static_cast<std::uint32_t>(elements.size())) + body;
}
std::string map8(std::initializer_list<std::string> elements) {
  std::string l = list8(elements);
  l[0] = '\xc1';
  return l;
}
// A described section with a smallulong descriptor.
std::string section(std::uint8_t code, const std::string& value) {
  return "\x00\x53"s + static_cast<char>(code) + value;
}
// A described section with a ulong (0x80) descriptor.
std::string sectionUlong(std::uint64_t code, const std::string& value) {
  return "\x00\x80"s + u32(static_cast<std::uint32_t>(code >> 32)) +
         u32(static_cast<std::uint32_t>(code)) + value;
}
// A described section with a symbol descriptor.
std::string sectionSym(const std::string& name, const std::string& value) {
  return "\x00"s + sym8(name) + value;
}

const std::string kHeader = section(0x70, list8({"\x41"}));  // durable
const std::string kBody = section(0x77, str8("hello"));

ScanResult scan(const std::string& bytes) {
  return scanTo(bytes.data(), bytes.size());
}

const char* name(ScanStatus s) {
  switch (s) {
    case ScanStatus::kNeedMore:
      return "kNeedMore";
    case ScanStatus::kFound:
      return "kFound";
    case ScanStatus::kAbsent:
      return "kAbsent";
    case ScanStatus::kMalformed:
      return "kMalformed";
  }
  return "?";
}

#define EXPECT_STATUS(expected, result) EXPECT_STREQ(name(expected), name((result).status))

void expectFound(const std::string& bytes, const std::string& to) {
  ScanResult r = scan(bytes);
  EXPECT_STATUS(ScanStatus::kFound, r);
  EXPECT_EQ(to, r.to);
}

// Every prefix shorter than `complete` needs more; every longer one gives the
// same result as the whole input.
void expectPrefixes(const std::string& bytes, std::size_t complete) {
  ASSERT_LE(complete, bytes.size());
  const ScanResult full = scan(bytes);
  ASSERT_NE(ScanStatus::kNeedMore, full.status);
  for (std::size_t n = 0; n <= bytes.size(); ++n) {
    ScanResult r = scanTo(bytes.data(), n);
    if (n < complete) {
      ASSERT_EQ(ScanStatus::kNeedMore, r.status) << "prefix " << n << " of " << bytes.size();
    } else {
      ASSERT_EQ(full.status, r.status) << "prefix " << n << " of " << bytes.size();
      ASSERT_EQ(full.to, r.to) << "prefix " << n;
    }
  }
}

// ---------------------------------------------------------------------------
// Messages encoded by Proton.

TEST(MessageScan, FindsAddress) {
  Message m = newMessage();
  pn_message_set_address(m.get(), "queue/orders");
  expectFound(encode(m.get()), "queue/orders");
}

TEST(MessageScan, FindsAddressAfterHeaderAndAnnotations) {
  Message m = newMessage();
  pn_message_set_durable(m.get(), true);
  pn_message_set_ttl(m.get(), 30000);
  pn_message_set_priority(m.get(), 7);
  fillAnnotations(pn_message_instructions(m.get()), 3, 10);
  fillAnnotations(pn_message_annotations(m.get()), 5, 40);
  pn_message_set_id(m.get(), pn_msgid_t{.type = PN_ULONG, .u = {.as_ulong = 42}});
  pn_message_set_address(m.get(), "topic/prices.eur");
  pn_message_set_subject(m.get(), "subject");
  pn_message_set_reply_to(m.get(), "reply/here");
  pn_message_set_content_type(m.get(), "text/plain");
  fillAnnotations(pn_message_properties(m.get()), 2, 5);
  setStringBody(m.get(), "hello");
  const std::string bytes = encode(m.get());
  ASSERT_EQ(0x70, static_cast<unsigned char>(bytes[2]));  // the header was encoded
  expectFound(bytes, "topic/prices.eur");
}

TEST(MessageScan, EmptyPropertiesSection) {
  // Proton 0.37 always encodes header and properties, as list0 when empty.
  Message m = newMessage();
  pn_message_set_durable(m.get(), true);
  setStringBody(m.get(), "payload");
  const std::string bytes = encode(m.get());
  ASSERT_NE(std::string::npos, bytes.find("\x00\x53\x73\x45"s));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(bytes));
}

TEST(MessageScan, PropertiesWithoutTo) {
  Message m = newMessage();
  pn_message_set_reply_to(m.get(), "reply/here");
  pn_message_set_subject(m.get(), "s");
  setStringBody(m.get(), "payload");
  const std::string bytes = encode(m.get());
  ASSERT_NE(std::string::npos, propertiesEnd(bytes));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(bytes));
}

TEST(MessageScan, ApplicationPropertiesWithoutProperties) {
  Message m = newMessage();
  fillAnnotations(pn_message_properties(m.get()), 3, 3);
  setStringBody(m.get(), "payload");
  EXPECT_STATUS(ScanStatus::kAbsent, scan(encode(m.get())));
}

TEST(MessageScan, EveryPrefixNeedsMoreUntilPropertiesComplete) {
  std::vector<Message> messages;
  {
    Message m = newMessage();
    pn_message_set_address(m.get(), "a");
    messages.push_back(std::move(m));
  }
  {
    Message m = newMessage();
    pn_message_set_durable(m.get(), true);
    fillAnnotations(pn_message_instructions(m.get()), 1, 300);  // map32
    fillAnnotations(pn_message_annotations(m.get()), 4, 8);
    pn_message_set_address(m.get(), "queue/with/a/fairly/long/address/name");
    pn_message_set_reply_to(m.get(), "reply");
    setStringBody(m.get(), std::string(100, 'b'));
    messages.push_back(std::move(m));
  }
  {
    Message m = newMessage();
    pn_message_set_priority(m.get(), 9);
    pn_message_set_reply_to(m.get(), "no-to");
    setStringBody(m.get(), "x");
    messages.push_back(std::move(m));
  }
  {
    Message m = newMessage();
    pn_message_set_address(m.get(), std::string(300, 'L').c_str());  // str32
    setStringBody(m.get(), "x");
    messages.push_back(std::move(m));
  }
  for (const auto& m : messages) {
    const std::string bytes = encode(m.get());
    const std::size_t end = propertiesEnd(bytes);
    ASSERT_NE(std::string::npos, end);
    SCOPED_TRACE(bytes.size());
    expectPrefixes(bytes, end);
  }
}

TEST(MessageScan, EveryPrefixWithoutProperties) {
  // Written by hand: Proton's encoder always emits a properties section.
  const std::string before =
      kHeader + section(0x71, map8({sym8("x-opt-a"), str8("1")})) +
      section(0x72, map8({sym8("x-opt-b"), "\x54\x02"s, sym8("x-opt-c"), kNull}));
  // The answer is known once the body's descriptor has been read.
  expectPrefixes(before + kBody, before.size() + 3);
  EXPECT_STATUS(ScanStatus::kAbsent, scan(before + kBody));
  expectPrefixes(before + section(0x74, map8({str8("k"), str8("v")})) + kBody, before.size() + 3);
}

TEST(MessageScan, HeaderOnlyNeedsMore) {
  // A complete message of just a header cannot be told apart from the start
  // of a longer one; the caller decides once the delivery is complete.
  EXPECT_STATUS(ScanStatus::kNeedMore, scan(kHeader));
  EXPECT_STATUS(ScanStatus::kNeedMore, scan(""));
}

// ---------------------------------------------------------------------------
// Encodings written by hand.

TEST(MessageScan, DescriptorForms) {
  const std::string props = list8({kNull, kNull, str8("q")});
  expectFound(section(0x73, props), "q");
  expectFound(sectionUlong(0x73, props), "q");
  expectFound(sectionSym("amqp:properties:list", props), "q");
  expectFound("\x00"s + sym32("amqp:properties:list") + props, "q");
  // Skipped sections in every descriptor form.
  expectFound(join({sectionSym("amqp:header:list", list8({"\x41"})),
                    sectionUlong(0x71, map8({sym8("k"), str8("v")})),
                    sectionSym("amqp:message-annotations:map", map8({})), section(0x73, props)}),
              "q");
  // Symbol and ulong descriptors of sections that end the scan.
  EXPECT_STATUS(ScanStatus::kAbsent, scan(sectionSym("amqp:amqp-value:*", str8("x"))));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(sectionSym("amqp:data:binary", "\xa0\x01x"s)));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(sectionUlong(0x75, "\xa0\x01x"s)));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x76, list8({}))));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x74, map8({}))));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x78, map8({}))));
}

TEST(MessageScan, ToEncodings) {
  expectFound(section(0x73, list8({kNull, kNull, str8("s8")})), "s8");
  expectFound(section(0x73, list8({kNull, kNull, str32("s32")})), "s32");
  expectFound(section(0x73, list8({kNull, kNull, sym8("y8")})), "y8");
  expectFound(section(0x73, list8({kNull, kNull, sym32("y32")})), "y32");
  expectFound(section(0x73, list32({kNull, kNull, str8("l32")})), "l32");
  expectFound(section(0x73, list8({kNull, kNull, str8("")})), "");
  // message-id and user-id of various types before `to`.
  expectFound(section(0x73, list8({"\x98"s + std::string(16, 'u'), "\xa0\x02id"s, str8("t")})),
              "t");
  expectFound(section(0x73, list8({"\x80"s + std::string(8, '\x01'), kNull, str8("t"),
                                   str8("subject"), str8("reply"), "\x53\x05"s, str8("ct")})),
              "t");
}

TEST(MessageScan, AbsentTo) {
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x73, list8({kNull, kNull, kNull}))));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x73, list8({str8("id"), kNull}))));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x73, list8({}))));
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x73, "\x45"s)));  // list0
  EXPECT_STATUS(ScanStatus::kAbsent, scan(section(0x73, list32({}))));
}

TEST(MessageScan, AddressLength) {
  const std::string longest(kMaxAddressLength, 'a');
  expectFound(section(0x73, list32({kNull, kNull, str32(longest)})), longest);
  EXPECT_STATUS(ScanStatus::kMalformed,
                scan(section(0x73, list32({kNull, kNull, str32(longest + "a")}))));
}

TEST(MessageScan, ToOfWrongTypeIsMalformed) {
  EXPECT_STATUS(ScanStatus::kMalformed, scan(section(0x73, list8({kNull, kNull, "\x54\x05"s}))));
  EXPECT_STATUS(ScanStatus::kMalformed, scan(section(0x73, list8({kNull, kNull, "\xa0\x01x"s}))));
  EXPECT_STATUS(ScanStatus::kMalformed, scan(section(0x73, list8({kNull, kNull, str8("a\0b"s)}))));
}

TEST(MessageScan, GarbageIsMalformed) {
  for (const std::string& bytes : {
           "\xff"s,
           "hello world"s,
           "\x53\x73"s,                                          // no 0x00
           "\x00\x53\x79\xc0\x01\x00"s,                          // unknown section code
           "\x00\x53\x6f\xc0\x01\x00"s,                          // unknown section code
           "\x00\x44\x45"s,                                      // ulong0 descriptor
           "\x00\x52\x73\x45"s,                                  // smalluint descriptor
           "\x00\x00\x53\x73\x45"s,                              // nested descriptor
           sectionUlong(0x0000000100000073ULL, list8({})),       // other domain
           sectionSym("amqp:properties:lisp", list8({})),        // unknown symbol
           sectionSym(std::string(200, 'a'), list8({})),         // long symbol
           section(0x70, map8({})),                              // header as a map
           section(0x72, list8({})),                             // annotations as a list
           section(0x72, str8("x")),                             // annotations as a string
           section(0x73, map8({})),                              // properties as a map
           section(0x73, kNull),                                 // properties as null
           section(0x73, "\xc0\x00\x00"s),                       // size < count field
           section(0x73, "\xc0\x01\x02"s),                       // count > size
           section(0x72, "\xc1\x02\x01\x40"s),                   // odd map count
           section(0x73, "\xc0\x04\x01\x40\x40\x40"s),           // size > elements
           section(0x73, "\xc0\x02\x02\x40\x40"s),               // elements > size
           section(0x73, "\xc0\x03\x01\xa1\x05\x40"s),           // string past the list
           section(0x73, list8({list8({}), kNull, str8("t")})),  // compound message-id
           section(0x73, list8({"\x00\x53\x01\x40"s, kNull, str8("t")})),  // described
           section(0x73, list8({"\xe0\x02\x01\x40"s, kNull, str8("t")})),  // array
           section(0x73, list8({"\x99"s, kNull, str8("t")})),              // bad code
       }) {
    EXPECT_STATUS(ScanStatus::kMalformed, scan(bytes)) << testing::PrintToString(bytes);
  }
}

TEST(MessageScan, TooManyPropertiesFields) {
  std::string fields;
  for (int i = 0; i < 65; ++i) fields += kNull;
  std::string value =
      "\xc0"s + static_cast<char>(fields.size() + 1) + static_cast<char>(65) + fields;
  EXPECT_STATUS(ScanStatus::kMalformed, scan(section(0x73, value)));
}

TEST(MessageScan, HugeAnnotationsAreBounded) {
  Message m = newMessage();
  fillAnnotations(pn_message_annotations(m.get()), 100, 1000);  // ~100 KB
  pn_message_set_address(m.get(), "q");
  const std::string bytes = encode(m.get());
  ASSERT_GT(bytes.size(), 100000u);
  EXPECT_STATUS(ScanStatus::kMalformed, scan(bytes));
  // Decided from the map32 constructor alone, without buffering the map.
  EXPECT_STATUS(ScanStatus::kMalformed, scanTo(bytes.data(), 16));
}

TEST(MessageScan, LargeAnnotationsWithinLimit) {
  Message m = newMessage();
  fillAnnotations(pn_message_annotations(m.get()), 60, 1000);  // ~61 KB
  pn_message_set_address(m.get(), "q");
  setStringBody(m.get(), std::string(10000, 'b'));
  const std::string bytes = encode(m.get());
  expectFound(bytes, "q");
}

TEST(MessageScan, ManySmallSectionsAreBounded) {
  // Many small sections, together past the scan limit, never reaching
  // properties: malformed rather than need-more, even though each is valid.
  const std::string annotations = section(0x72, map8({sym8("k"), str8(std::string(200, 'v'))}));
  std::string bytes;
  while (bytes.size() < 70 * 1024) bytes += annotations;
  bytes += section(0x73, list8({kNull, kNull, str8("q")}));
  EXPECT_STATUS(ScanStatus::kMalformed, scan(bytes));
}

TEST(MessageScan, LongInputAlwaysDecides) {
  // However the first 64 KiB are arranged, they suffice for an answer.
  const std::string header = section(0x70, list8({"\x41"}));
  std::string bytes;
  while (bytes.size() < 64 * 1024) bytes += header;
  EXPECT_STATUS(ScanStatus::kMalformed, scan(bytes));
  EXPECT_STATUS(ScanStatus::kNeedMore, scanTo(bytes.data(), 60 * 1024));
}

TEST(MessageScan, HugePropertiesAreBounded) {
  // A properties section that claims 1 GiB is rejected from its constructor.
  const std::string bytes = section(0x73, "\xd0"s + u32(1u << 30) + u32(3));
  EXPECT_STATUS(ScanStatus::kMalformed, scan(bytes));
  const std::string user_id(70 * 1024, 'u');
  EXPECT_STATUS(ScanStatus::kMalformed,
                scan(section(0x73, list32({kNull, variable32('\xb0', user_id), str8("q")}))));
}

TEST(MessageScan, ReusesDecoderAfterErrors) {
  const std::string good = section(0x73, list8({kNull, kNull, str8("q")}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_STATUS(ScanStatus::kMalformed, scan(section(0x73, list8({kNull, kNull, "\x54\x05"s}))));
    expectFound(good, "q");
  }
}

TEST(MessageScan, ConcurrentUse) {
  Message m = newMessage();
  pn_message_set_durable(m.get(), true);
  fillAnnotations(pn_message_annotations(m.get()), 3, 10);
  pn_message_set_address(m.get(), "concurrent/q");
  const std::string bytes = encode(m.get());
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        ScanResult r = scan(bytes);
        if (r.status != ScanStatus::kFound || r.to != "concurrent/q") ++failures[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int f : failures) EXPECT_EQ(0, f);
}

}  // namespace
}  // namespace vane::amqp
