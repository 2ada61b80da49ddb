// Writes the seed inputs of the message_scan fuzz target:
//
//   make_corpus <output-dir>
//
// Messages encoded by Proton (pn_message_encode) plus hand-written encodings
// that Proton's encoder never produces (symbol and ulong descriptors, str32 /
// sym8 / sym32 addresses, list32 properties, ...), a few truncated and
// malformed ones. Files are named seed-<nn>-<what>; inputs found by fuzzing
// are added next to them under libFuzzer's hash names.
#include <proton/codec.h>
#include <proton/error.h>
#include <proton/message.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

namespace {

using namespace std::string_literals;

std::filesystem::path g_dir;
int g_count = 0;

void write(const std::string& what, const std::string& bytes) {
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "seed-%02d-", ++g_count);
  const std::filesystem::path path = g_dir / (prefix + what);
  std::ofstream(path, std::ios::binary) << bytes;
  std::printf("%s (%zu bytes)\n", path.c_str(), bytes.size());
}

std::string encode(pn_message_t* msg) {
  std::string out(1024, '\0');
  while (true) {
    size_t size = out.size();
    const int rc = pn_message_encode(msg, out.data(), &size);
    if (rc == 0) {
      out.resize(size);
      return out;
    }
    if (rc != PN_OVERFLOW) {
      std::fprintf(stderr, "pn_message_encode: %s\n", pn_code(rc));
      std::exit(1);
    }
    out.resize(out.size() * 2);
  }
}

void putMap(pn_data_t* d, int entries, std::size_t value_size) {
  const std::string value(value_size, 'v');
  pn_data_put_map(d);
  pn_data_enter(d);
  for (int i = 0; i < entries; ++i) {
    const std::string key = "x-opt-" + std::to_string(i);
    pn_data_put_symbol(d, pn_bytes(key.size(), key.data()));
    pn_data_put_string(d, pn_bytes(value.size(), value.data()));
  }
  pn_data_exit(d);
}

void putStringBody(pn_message_t* msg, const std::string& body) {
  pn_data_put_string(pn_message_body(msg), pn_bytes(body.size(), body.data()));
}

// Hand-written encodings.
std::string u32(std::uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}
std::string str8(const std::string& s) {
  return "\xa1"s + static_cast<char>(s.size()) + s;
}
std::string sym8(const std::string& s) {
  return "\xa3"s + static_cast<char>(s.size()) + s;
}
std::string str32(const std::string& s) {
  return "\xb1"s + u32(static_cast<std::uint32_t>(s.size())) + s;
}
std::string sym32(const std::string& s) {
  return "\xb3"s + u32(static_cast<std::uint32_t>(s.size())) + s;
}
std::string list8(std::initializer_list<std::string> elements) {
  std::string body;
  for (const auto& e : elements) body += e;
  return "\xc0"s + static_cast<char>(body.size() + 1) + static_cast<char>(elements.size()) + body;
}
std::string list32(std::initializer_list<std::string> elements) {
  std::string body;
  for (const auto& e : elements) body += e;
  return "\xd0"s + u32(static_cast<std::uint32_t>(body.size() + 4)) +
         u32(static_cast<std::uint32_t>(elements.size())) + body;
}
std::string section(char code, const std::string& value) {
  return "\x00\x53"s + code + value;
}
std::string sectionUlong(char code, const std::string& value) {
  return "\x00\x80"s + u32(0) + u32(static_cast<unsigned char>(code)) + value;
}
std::string sectionSym(const std::string& name, const std::string& value) {
  return "\x00"s + sym8(name) + value;
}
const std::string kNull = "\x40";

struct Message {
  Message() : msg(pn_message()) {}
  ~Message() { pn_message_free(msg); }
  pn_message_t* msg;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output-dir>\n", argv[0]);
    return 2;
  }
  g_dir = argv[1];
  std::filesystem::create_directories(g_dir);

  {
    Message m;
    pn_message_set_address(m.msg, "queue/orders");
    write("address-only", encode(m.msg));
  }
  std::string full;
  {
    Message m;
    pn_message_set_durable(m.msg, true);
    pn_message_set_priority(m.msg, 6);
    pn_message_set_ttl(m.msg, 5000);
    putMap(pn_message_instructions(m.msg), 2, 4);
    putMap(pn_message_annotations(m.msg), 3, 8);
    pn_message_set_id(m.msg, pn_msgid_t{.type = PN_ULONG, .u = {.as_ulong = 7}});
    pn_message_set_user_id(m.msg, pn_bytes(4, "user"));
    pn_message_set_address(m.msg, "topic/prices.eur");
    pn_message_set_subject(m.msg, "subject");
    pn_message_set_reply_to(m.msg, "reply/here");
    pn_message_set_correlation_id(
        m.msg, pn_msgid_t{.type = PN_STRING, .u = {.as_bytes = pn_bytes(3, "cid")}});
    pn_message_set_content_type(m.msg, "text/plain");
    pn_message_set_creation_time(m.msg, 1700000000000);
    pn_message_set_group_id(m.msg, "group");
    pn_message_set_group_sequence(m.msg, 3);
    pn_message_set_reply_to_group_id(m.msg, "rgroup");
    putMap(pn_message_properties(m.msg), 2, 3);
    putStringBody(m.msg, "hello");
    full = encode(m.msg);
    write("all-sections", full);
  }
  write("all-sections-truncated", full.substr(0, full.size() / 2));
  {
    Message m;
    pn_message_set_durable(m.msg, true);
    putStringBody(m.msg, "no properties");
    write("no-properties", encode(m.msg));
  }
  {
    Message m;
    pn_message_set_reply_to(m.msg, "reply/only");
    putStringBody(m.msg, "x");
    write("properties-without-to", encode(m.msg));
  }
  {
    Message m;
    putMap(pn_message_properties(m.msg), 2, 2);
    putStringBody(m.msg, "x");
    write("application-properties-only", encode(m.msg));
  }
  {
    Message m;
    pn_message_set_address(m.msg, std::string(300, 'a').c_str());
    putStringBody(m.msg, "x");
    write("str32-address", encode(m.msg));
  }
  {
    Message m;
    putMap(pn_message_instructions(m.msg), 1, 300);  // map32
    pn_message_set_address(m.msg, "after/map32");
    write("map32-annotations", encode(m.msg));
  }
  {
    Message m;
    pn_message_set_inferred(m.msg, true);
    pn_message_set_address(m.msg, "data/body");
    pn_data_put_binary(pn_message_body(m.msg), pn_bytes(4, "\x01\x02\x03\x04"));
    write("data-body", encode(m.msg));
  }

  const std::string props = list8({kNull, kNull, str8("hand/written")});
  write("symbol-descriptors", sectionSym("amqp:header:list", list8({"\x41"s})) +
                                  sectionSym("amqp:message-annotations:map", "\xc1\x01\x00"s) +
                                  sectionSym("amqp:properties:list", props) +
                                  sectionSym("amqp:amqp-value:*", str8("v")));
  write("ulong-descriptors", sectionUlong('\x70', list8({"\x41"s})) + sectionUlong('\x73', props) +
                                 sectionUlong('\x77', kNull));
  write("sym32-descriptor", "\x00"s + sym32("amqp:properties:list") + props);
  write("sym8-to", section('\x73', list8({kNull, kNull, sym8("symbol/address")})));
  write("sym32-to", section('\x73', list8({kNull, kNull, sym32("symbol/address32")})));
  write("str32-to-list32", section('\x73', list32({"\x98"s + std::string(16, '\x11'), "\xa0\x02id"s,
                                                   str32("list32/address")})));
  write("empty-to", section('\x73', list8({kNull, kNull, str8("")})));
  write("list0-properties", section('\x73', "\x45"s) + section('\x77', kNull));
  write("null-to", section('\x73', list8({str8("id"), kNull, kNull, str8("subject")})));
  write("int-to", section('\x73', list8({kNull, kNull, "\x54\x07"s})));
  write("nul-in-to", section('\x73', list8({kNull, kNull, str8("a\0b"s)})));
  write("max-address", section('\x73', list32({kNull, kNull, str32(std::string(4096, 'm'))})));
  write("header-only", section('\x70', list8({"\x41"s, "\x50\x04"s})));
  write("huge-annotations-constructor", section('\x72', "\xd1"s + u32(200000) + u32(2)));
  write("size-mismatch", section('\x73', "\xc0\x06\x01\x40\x40\x40\x40\x40"s));
  write("footer-first", section('\x78', "\xc1\x01\x00"s));
  write("garbage", "\xde\xad\xbe\xef"s);
  return 0;
}
