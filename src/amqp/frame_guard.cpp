#include "amqp/frame_guard.hpp"

#include <fmt/format.h>
#include <proton/codec.h>

#include <algorithm>
#include <cstring>

namespace vane::amqp {

namespace {

constexpr std::uint8_t kDescribed = 0x00;
constexpr std::uint8_t kSmallUlong = 0x53;
constexpr std::uint64_t kTransfer = 0x14;
constexpr std::uint64_t kDetach = 0x16;
constexpr std::uint64_t kEnd = 0x17;
constexpr std::uint64_t kSaslInit = 0x41;
constexpr std::uint8_t kFrameAmqp = 0;
constexpr std::uint8_t kFrameSasl = 1;

std::uint32_t be32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (std::uint32_t{u[0]} << 24) | (std::uint32_t{u[1]} << 16) | (std::uint32_t{u[2]} << 8) |
         u[3];
}

}  // namespace

FrameGuard::~FrameGuard() {
  if (data_) pn_data_free(data_);
}

std::optional<FrameGuard::Violation> FrameGuard::feed(const char* data, std::size_t n,
                                                      std::size_t* accepted) {
  *accepted = n;
  if (passthrough_) return std::nullopt;
  // Start (in this chunk) of the frame being examined; 0 if it began earlier.
  std::size_t frame_start = 0;
  std::size_t i = 0;
  Violation v;
  while (i < n && !passthrough_) {
    switch (state_) {
      case State::kHead: {
        if (head_len_ == 0) frame_start = i;
        const std::size_t take = std::min(sizeof head_ - head_len_, n - i);
        std::memcpy(head_ + head_len_, data + i, take);
        head_len_ += take;
        i += take;
        if (head_len_ < sizeof head_) return std::nullopt;
        head_len_ = 0;
        if (auto bad = onHead()) {
          passthrough_ = true;
          *accepted = frame_start;
          return bad;
        }
        break;
      }
      case State::kExtended: {
        const std::size_t take = std::min(remaining_, n - i);
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) {
          state_ = body_len_ == 0 ? State::kHead : State::kPerformative;
          remaining_ = body_len_;
        }
        break;
      }
      case State::kPerformative: {
        const std::size_t take = std::min(remaining_, n - i);
        const bool direct = perf_.empty();
        if (!direct) perf_.append(data + i, take);
        const char* p = direct ? data + i : perf_.data();
        const std::size_t len = direct ? take : perf_.size();
        i += take;
        remaining_ -= take;
        body_pos_ += take;
        const Verdict verdict = inspect(p, len, remaining_ == 0, v);
        if (verdict == Verdict::kViolation) {
          passthrough_ = true;
          *accepted = frame_start;
          return v;
        }
        if (verdict == Verdict::kDone || remaining_ == 0) {
          perf_.clear();
          state_ = remaining_ == 0 ? State::kHead : State::kSkip;
        } else {
          if (direct) perf_.assign(p, len);
          if (perf_.size() > kMaxPerformative) {
            passthrough_ = true;
            *accepted = frame_start;
            return Violation{"amqp:frame-size-too-small",
                             fmt::format("performative larger than {} bytes", kMaxPerformative)};
          }
        }
        break;
      }
      case State::kSkip: {
        const std::size_t take = std::min(remaining_, n - i);
        i += take;
        remaining_ -= take;
        if (remaining_ == 0) state_ = State::kHead;
        break;
      }
    }
  }
  return std::nullopt;
}

std::optional<FrameGuard::Violation> FrameGuard::onHead() {
  if (std::memcmp(head_, "AMQP", 4) == 0) {
    switch (head_[4]) {
      case 0:
        layer_ = Layer::kAmqp;
        break;
      case 3:
        layer_ = Layer::kSasl;
        break;
      default:
        passthrough_ = true;  // TLS or unknown: opaque to us, Proton decides
        break;
    }
    return std::nullopt;
  }
  if (layer_ == Layer::kNone) {
    passthrough_ = true;  // no protocol header: Proton refuses the stream
    return std::nullopt;
  }
  const std::uint32_t size = be32(head_);
  const std::uint32_t doff = static_cast<std::uint8_t>(head_[4]);
  const auto type = static_cast<std::uint8_t>(head_[5]);
  if (size < 8 || doff < 2 || doff * 4 > size) {
    passthrough_ = true;  // malformed framing: Proton closes with framing-error
    return std::nullopt;
  }
  const std::uint8_t expected = layer_ == Layer::kSasl ? kFrameSasl : kFrameAmqp;
  if (type != expected) {
    return Violation{"amqp:connection:framing-error",
                     fmt::format("frame type {} is not allowed in the {} layer", type,
                                 layer_ == Layer::kSasl ? "SASL" : "AMQP")};
  }
  frame_type_ = type;
  channel_ = static_cast<std::uint16_t>((static_cast<std::uint8_t>(head_[6]) << 8) |
                                        static_cast<std::uint8_t>(head_[7]));
  body_len_ = size - doff * 4;
  body_pos_ = 0;
  perf_.clear();
  remaining_ = doff * 4 - 8;
  if (remaining_ > 0) {
    state_ = State::kExtended;
  } else if (body_len_ > 0) {
    state_ = State::kPerformative;
    remaining_ = body_len_;
  } else {
    state_ = State::kHead;  // empty frame (heartbeat)
  }
  return std::nullopt;
}

FrameGuard::Verdict FrameGuard::inspect(const char* p, std::size_t len, bool complete,
                                        Violation& v) {
  if (len < 3) return complete ? Verdict::kDone : Verdict::kNeedMore;
  if (static_cast<std::uint8_t>(p[0]) != kDescribed) return Verdict::kDone;
  if (static_cast<std::uint8_t>(p[1]) == kSmallUlong) {
    // Fast path: most frames are not of interest and are not decoded.
    const auto code = static_cast<std::uint8_t>(p[2]);
    if (layer_ == Layer::kAmqp && code != kTransfer && code != kDetach && code != kEnd) {
      return Verdict::kDone;
    }
    if (layer_ == Layer::kSasl && code != kSaslInit) return Verdict::kDone;
  }
  if (!data_) data_ = pn_data(16);
  pn_data_clear(data_);
  const ssize_t r = pn_data_decode(data_, p, len);
  if (r == PN_UNDERFLOW) return complete ? Verdict::kDone : Verdict::kNeedMore;
  if (r < 0) return Verdict::kDone;  // Proton rejects it itself
  pn_data_rewind(data_);
  if (!pn_data_next(data_) || pn_data_type(data_) != PN_DESCRIBED) return Verdict::kDone;
  pn_data_enter(data_);
  if (!pn_data_next(data_) || pn_data_type(data_) != PN_ULONG) return Verdict::kDone;
  const std::uint64_t code = pn_data_get_ulong(data_);
  if (!pn_data_next(data_) || pn_data_type(data_) != PN_LIST) return Verdict::kDone;
  pn_data_enter(data_);
  if (layer_ == Layer::kSasl) {
    if (code == kSaslInit && ++sasl_inits_ > 1) {
      v = {"amqp:connection:framing-error", "more than one sasl-init"};
      return Verdict::kViolation;
    }
    return Verdict::kDone;
  }
  if (code == kTransfer) return onTransfer(v);
  // detach / end: the handle (or every handle of the channel) is unmapped.
  if (code == kDetach) {
    if (pn_data_next(data_) && pn_data_type(data_) == PN_UINT) {
      links_.erase(key(channel_, pn_data_get_uint(data_)));
    }
  } else if (code == kEnd) {
    for (auto it = links_.begin(); it != links_.end();) {
      it = (it->first >> 32) == channel_ ? links_.erase(it) : std::next(it);
    }
  }
  return Verdict::kDone;
}

// Mirrors how Proton tracks a multi-frame delivery per link, to catch the
// one shape it asserts on: the first frame of a delivery with more=true and
// no delivery-id.
FrameGuard::Verdict FrameGuard::onTransfer(Violation& v) {
  bool handle_present = false, id_present = false, more = false, aborted = false;
  std::uint32_t handle = 0, id = 0;
  for (int index = 0; index < 10 && pn_data_next(data_); ++index) {
    const pn_type_t t = pn_data_type(data_);
    if (index == 0 && t == PN_UINT) {
      handle_present = true;
      handle = pn_data_get_uint(data_);
    } else if (index == 1 && t == PN_UINT) {
      id_present = true;
      id = pn_data_get_uint(data_);
    } else if (index == 5 && t == PN_BOOL) {
      more = pn_data_get_bool(data_);
    } else if (index == 9 && t == PN_BOOL) {
      aborted = pn_data_get_bool(data_);
    }
  }
  if (!handle_present) return Verdict::kDone;  // Proton rejects it
  const std::uint64_t k = key(channel_, handle);
  auto it = links_.find(k);
  const bool pending = it != links_.end() && it->second.pending;
  const bool new_delivery = !pending || (id_present && id != it->second.more_id);
  if (new_delivery) {
    if (more && !id_present) {
      v = {"amqp:invalid-field",
           fmt::format("transfer on handle {} starts a delivery without a delivery-id", handle)};
      return Verdict::kViolation;
    }
    if (more && !aborted) {
      links_[k] = LinkState{true, id};
    } else if (it != links_.end()) {
      links_.erase(it);
    }
  } else if (!more || aborted) {
    links_.erase(it);
  }
  return Verdict::kDone;
}

}  // namespace vane::amqp
