// The stream message encoding of the adaptors (src/adaptors/stream_codec.hpp).
#include "adaptors/stream_codec.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "amqp/message_scan.hpp"

namespace vane::adaptors {
namespace {

std::string dataSection(const std::string& payload) {
  std::string s(kDataHeaderSize, '\0');
  writeDataHeader(s.data(), static_cast<std::uint32_t>(payload.size()));
  return s + payload;
}

// Feeds `bytes` in pieces of `step` and returns the payload.
std::string decode(const std::string& bytes, std::size_t step, BodyDecoder::Status* status) {
  BodyDecoder d;
  std::string out;
  *status = BodyDecoder::Status::kOk;
  for (std::size_t i = 0; i < bytes.size(); i += step) {
    const std::size_t n = std::min(step, bytes.size() - i);
    *status = d.feed(bytes.data() + i, n, [&](const char* p, std::size_t k) { out.append(p, k); });
    if (*status != BodyDecoder::Status::kOk) break;
  }
  if (*status == BodyDecoder::Status::kOk && !d.atBoundary())
    *status = BodyDecoder::Status::kMalformed;
  return out;
}

TEST(StreamCodec, PrefixCarriesToAndReplyTo) {
  const std::string prefix = encodeStreamPrefix("_vane/tcp/db", "_vane/temp/A/flow/0/7", "A");
  const auto r = amqp::scanTo(prefix.data(), prefix.size());
  ASSERT_EQ(r.status, amqp::ScanStatus::kFound);
  EXPECT_EQ(r.to, "_vane/tcp/db");
  EXPECT_EQ(r.reply_to, "_vane/temp/A/flow/0/7");
  EXPECT_EQ(r.subject, "A");
  EXPECT_EQ(r.properties_end, prefix.size());
}

TEST(StreamCodec, PrefixWithoutReplyTo) {
  const std::string prefix = encodeStreamPrefix("x", "", "B");
  const std::string message = prefix + dataSection("abc");
  const auto r = amqp::scanTo(message.data(), message.size());
  ASSERT_EQ(r.status, amqp::ScanStatus::kFound);
  EXPECT_EQ(r.reply_to, "");
  EXPECT_EQ(r.properties_end, prefix.size());
}

TEST(StreamCodec, BodySplitAnywhere) {
  std::string body;
  std::string expect;
  for (int i = 0; i < 20; ++i) {
    std::string p(static_cast<std::size_t>(i * 37 + 1), static_cast<char>('a' + i));
    body += dataSection(p);
    expect += p;
  }
  // A vbin8 section, as other encoders may write.
  body += std::string("\x00\x53\x75\xa0\x03xyz", 8);
  expect += "xyz";
  for (std::size_t step : {1u, 2u, 3u, 7u, 8u, 9u, 100u, 100000u}) {
    BodyDecoder::Status st;
    EXPECT_EQ(decode(body, step, &st), expect) << "step " << step;
    EXPECT_EQ(st, BodyDecoder::Status::kOk) << "step " << step;
  }
}

TEST(StreamCodec, EmptySectionsAndEmptyBody) {
  BodyDecoder::Status st;
  EXPECT_EQ(decode(dataSection("") + dataSection("q") + dataSection(""), 1, &st), "q");
  EXPECT_EQ(st, BodyDecoder::Status::kOk);
  EXPECT_EQ(decode("", 1, &st), "");
  EXPECT_EQ(st, BodyDecoder::Status::kOk);
}

TEST(StreamCodec, RefusesOtherSections) {
  BodyDecoder::Status st;
  // amqp-value (0x77) instead of data.
  decode(std::string("\x00\x53\x77\xa1\x01x", 6), 1, &st);
  EXPECT_EQ(st, BodyDecoder::Status::kMalformed);
  // Not described at all.
  decode("hello", 3, &st);
  EXPECT_EQ(st, BodyDecoder::Status::kMalformed);
  // Data with a string instead of binary.
  decode(std::string("\x00\x53\x75\xa1\x01x", 6), 2, &st);
  EXPECT_EQ(st, BodyDecoder::Status::kMalformed);
}

TEST(StreamCodec, TruncatedSectionIsNotABoundary) {
  BodyDecoder::Status st;
  const std::string s = dataSection("abcdef");
  decode(s.substr(0, s.size() - 2), 4, &st);
  EXPECT_EQ(st, BodyDecoder::Status::kMalformed);
  decode(s.substr(0, 5), 1, &st);
  EXPECT_EQ(st, BodyDecoder::Status::kMalformed);
}

TEST(StreamCodec, StaysMalformed) {
  BodyDecoder d;
  auto sink = [](const char*, std::size_t) {};
  EXPECT_EQ(d.feed("x", 1, sink), BodyDecoder::Status::kMalformed);
  const std::string ok = dataSection("a");
  EXPECT_EQ(d.feed(ok.data(), ok.size(), sink), BodyDecoder::Status::kMalformed);
  EXPECT_FALSE(d.atBoundary());
}

}  // namespace
}  // namespace vane::adaptors
