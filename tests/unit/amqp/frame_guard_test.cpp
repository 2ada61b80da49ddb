#include "amqp/frame_guard.hpp"

#include <gtest/gtest.h>
#include <proton/codec.h>

#include <string>

namespace vane::amqp {
namespace {

const std::string kAmqpHeader("AMQP\x00\x01\x00\x00", 8);
const std::string kSaslHeader("AMQP\x03\x01\x00\x00", 8);

// Encodes a frame whose body is a described list with `code` and the fields
// that `fill` puts into the list.
template <typename Fill>
std::string frame(std::uint8_t type, std::uint16_t channel, std::uint64_t code, Fill fill,
                  const std::string& payload = {}) {
  pn_data_t* d = pn_data(0);
  pn_data_put_described(d);
  pn_data_enter(d);
  pn_data_put_ulong(d, code);
  pn_data_put_list(d);
  pn_data_enter(d);
  fill(d);
  pn_data_exit(d);
  pn_data_exit(d);
  char buf[1024];
  ssize_t n = pn_data_encode(d, buf, sizeof buf);
  pn_data_free(d);
  EXPECT_GT(n, 0);
  std::string body(buf, static_cast<std::size_t>(n));
  body += payload;
  const std::uint32_t size = 8 + static_cast<std::uint32_t>(body.size());
  std::string f = {static_cast<char>(size >> 24),
                   static_cast<char>(size >> 16),
                   static_cast<char>(size >> 8),
                   static_cast<char>(size),
                   2,
                   static_cast<char>(type),
                   static_cast<char>(channel >> 8),
                   static_cast<char>(channel)};
  return f + body;
}

// transfer(handle, delivery-id or none, more, aborted)
std::string transfer(std::uint32_t handle, int id, bool more, bool aborted = false,
                     const std::string& payload = "xyz") {
  return frame(
      0, 0, 0x14,
      [&](pn_data_t* d) {
        pn_data_put_uint(d, handle);
        if (id >= 0) {
          pn_data_put_uint(d, static_cast<std::uint32_t>(id));
        } else {
          pn_data_put_null(d);
        }
        pn_data_put_binary(d, pn_bytes(1, "t"));
        pn_data_put_uint(d, 0);      // message-format
        pn_data_put_bool(d, false);  // settled
        pn_data_put_bool(d, more);
        pn_data_put_null(d);         // rcv-settle-mode
        pn_data_put_null(d);         // state
        pn_data_put_bool(d, false);  // resume
        pn_data_put_bool(d, aborted);
      },
      payload);
}

std::string detach(std::uint32_t handle) {
  return frame(0, 0, 0x16, [&](pn_data_t* d) { pn_data_put_uint(d, handle); });
}

std::string saslInit() {
  return frame(1, 0, 0x41, [](pn_data_t* d) { pn_data_put_symbol(d, pn_bytes(9, "ANONYMOUS")); });
}

std::string flow() {
  return frame(0, 0, 0x13, [](pn_data_t* d) {
    pn_data_put_uint(d, 0);
    pn_data_put_uint(d, 100);
  });
}

struct Result {
  bool violated = false;
  std::size_t accepted_total = 0;
  std::string condition;
};

// Feeds `bytes` in pieces of `step` bytes.
Result run(const std::string& bytes, std::size_t step) {
  FrameGuard g;
  Result r;
  for (std::size_t off = 0; off < bytes.size(); off += step) {
    const std::size_t n = std::min(step, bytes.size() - off);
    std::size_t accepted = 0;
    auto v = g.feed(bytes.data() + off, n, &accepted);
    r.accepted_total += accepted;
    if (v) {
      r.violated = true;
      r.condition = v->condition;
      return r;
    }
  }
  return r;
}

class FrameGuardTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(FrameGuardTest, TransferStartingMultiFrameDeliveryWithoutIdIsRefused) {
  const std::string ok = kAmqpHeader + flow() + transfer(0, 0, false);
  const std::string stream = ok + transfer(0, -1, true);
  Result r = run(stream, GetParam());
  EXPECT_TRUE(r.violated);
  EXPECT_EQ(r.condition, "amqp:invalid-field");
  if (GetParam() >= stream.size()) {
    EXPECT_EQ(r.accepted_total, ok.size()) << "the frames before the bad one pass";
  } else {
    // Fed in pieces, the start of the bad frame has already been passed on,
    // but never all of it: the engine cannot act on an incomplete frame.
    EXPECT_GE(r.accepted_total, ok.size());
    EXPECT_LT(r.accepted_total, stream.size());
  }
}

TEST_P(FrameGuardTest, ContinuationsWithoutIdAreFine) {
  const std::string stream = kAmqpHeader + transfer(0, 0, true) + transfer(0, -1, true) +
                             transfer(0, -1, false) + transfer(0, 1, true) +
                             transfer(0, -1, false) + transfer(0, -1, false);
  Result r = run(stream, GetParam());
  EXPECT_FALSE(r.violated) << r.condition;
  EXPECT_EQ(r.accepted_total, stream.size());
}

TEST_P(FrameGuardTest, AbortEndsTheDeliveryInProgress) {
  const std::string stream = kAmqpHeader + transfer(0, 0, true) +
                             transfer(0, -1, true, /*aborted=*/true) + transfer(0, -1, true);
  EXPECT_TRUE(run(stream, GetParam()).violated);
}

TEST_P(FrameGuardTest, DetachForgetsTheHandle) {
  const std::string stream = kAmqpHeader + transfer(3, 0, true) + detach(3) + transfer(3, -1, true);
  EXPECT_TRUE(run(stream, GetParam()).violated);
  const std::string other = kAmqpHeader + transfer(3, 0, true) + transfer(4, -1, true);
  EXPECT_TRUE(run(other, GetParam()).violated) << "pending state is per handle";
}

TEST_P(FrameGuardTest, LargePayloadsAreSkipped) {
  const std::string big(100000, 'x');
  const std::string stream =
      kAmqpHeader + transfer(0, 0, true, false, big) + transfer(0, -1, false, false, big) + flow();
  Result r = run(stream, GetParam());
  EXPECT_FALSE(r.violated);
  EXPECT_EQ(r.accepted_total, stream.size());
}

TEST_P(FrameGuardTest, SaslFramesAfterAPlainAmqpHeaderAreRefused) {
  EXPECT_TRUE(run(kAmqpHeader + saslInit(), GetParam()).violated);
}

TEST_P(FrameGuardTest, OneSaslInitOnly) {
  EXPECT_FALSE(run(kSaslHeader + saslInit() + kAmqpHeader + flow(), GetParam()).violated);
  EXPECT_TRUE(run(kSaslHeader + saslInit() + saslInit(), GetParam()).violated);
}

TEST_P(FrameGuardTest, OpaqueOrBrokenStreamsAreLeftToProton) {
  const std::string tls("AMQP\x02\x01\x00\x00", 8);
  EXPECT_FALSE(run(tls + transfer(0, -1, true), GetParam()).violated);
  EXPECT_FALSE(run("GET / HTTP/1.1\r\n\r\n" + transfer(0, -1, true), GetParam()).violated);
  // A frame header with a size below 8: Proton's framing error, not ours.
  EXPECT_FALSE(
      run(kAmqpHeader + std::string("\x00\x00\x00\x04\x02\x00\x00\x00", 8) + transfer(0, -1, true),
          GetParam())
          .violated);
}

TEST_P(FrameGuardTest, HeartbeatsAndExtendedHeaders) {
  std::string ext = transfer(0, -1, true);
  // Rewrite as doff=3 with a 4-byte extended header.
  const std::uint32_t size = static_cast<std::uint32_t>(ext.size()) + 4;
  std::string f = {static_cast<char>(size >> 24),
                   static_cast<char>(size >> 16),
                   static_cast<char>(size >> 8),
                   static_cast<char>(size),
                   3,
                   0,
                   0,
                   0};
  f += std::string(4, '\0') + ext.substr(8);
  const std::string heartbeat("\x00\x00\x00\x08\x02\x00\x00\x00", 8);
  EXPECT_TRUE(run(kAmqpHeader + heartbeat + f, GetParam()).violated);
}

INSTANTIATE_TEST_SUITE_P(Chunking, FrameGuardTest, ::testing::Values(1, 3, 7, 64, 1 << 20));

}  // namespace
}  // namespace vane::amqp
