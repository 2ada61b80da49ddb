// FrameGuard: a frame-level check of what a peer sends, applied to the raw
// bytes before Proton's transport sees them.
//
// It exists for inputs that Proton 0.37 does not reject safely:
//  - a transfer that starts a multi-frame delivery without a delivery-id
//    trips an assert in Proton (process abort: one client could take the
//    router down);
//  - SASL frames after a plain AMQP header, or repeated sasl-init frames,
//    leak memory in Proton on every frame.
// The guard follows the frame stream (protocol headers, frame headers, and
// for AMQP frames the performative, decoded with Proton's codec) and reports
// the first violation; the connection is then closed with that error and the
// offending bytes never reach Proton.
//
// Cost: frame headers are read in place; only transfer, detach, end and SASL
// performatives are decoded (one small value per frame). Payload bytes are
// skipped without copying. Memory: at most one performative (bounded by
// kMaxPerformative) plus per-link state for links with a delivery in progress.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

struct pn_data_t;

namespace vane::amqp {

class FrameGuard {
 public:
  struct Violation {
    std::string condition;
    std::string description;
  };

  // Performatives larger than this are refused (Proton's own frames are
  // bounded by max-frame-size; a transfer performative is ~20-60 bytes).
  static constexpr std::size_t kMaxPerformative = 64 * 1024;

  FrameGuard() = default;
  ~FrameGuard();
  FrameGuard(const FrameGuard&) = delete;
  FrameGuard& operator=(const FrameGuard&) = delete;

  // Feeds the next `n` bytes the peer sent. Returns the first violation and
  // sets `*accepted` to the number of leading bytes that belong to earlier,
  // valid frames (pass those on; drop the rest). Without a violation
  // `*accepted` is `n`. Once a violation was reported, or the stream became
  // opaque (e.g. TLS), further bytes are not examined.
  std::optional<Violation> feed(const char* data, std::size_t n, std::size_t* accepted);

  // True once the peer sent the AMQP (not SASL) protocol header.
  bool inAmqpLayer() const { return layer_ == Layer::kAmqp; }

  // True once the guard stopped following the stream.
  bool passthrough() const { return passthrough_; }

 private:
  enum class Layer { kNone, kSasl, kAmqp };
  enum class State { kHead, kExtended, kPerformative, kSkip };

  enum class Verdict { kNeedMore, kDone, kViolation };

  std::optional<Violation> onHead();
  Verdict inspect(const char* p, std::size_t len, bool complete, Violation& v);
  Verdict onTransfer(Violation& v);

  struct LinkState {
    bool pending = false;  // a multi-frame delivery is in progress
    std::uint32_t more_id = 0;
  };
  static std::uint64_t key(std::uint16_t channel, std::uint32_t handle) {
    return (std::uint64_t{channel} << 32) | handle;
  }

  State state_ = State::kHead;
  Layer layer_ = Layer::kNone;
  bool passthrough_ = false;
  char head_[8] = {};
  std::size_t head_len_ = 0;
  std::size_t remaining_ = 0;  // bytes left in the current state's span
  std::size_t body_len_ = 0;   // frame body bytes after the extended header
  std::size_t body_pos_ = 0;   // body bytes seen so far
  std::uint8_t frame_type_ = 0;
  std::uint16_t channel_ = 0;
  std::string perf_;  // performative bytes collected so far
  int sasl_inits_ = 0;
  std::unordered_map<std::uint64_t, LinkState> links_;
  pn_data_t* data_ = nullptr;  // Proton codec scratch, created on first use
};

}  // namespace vane::amqp
