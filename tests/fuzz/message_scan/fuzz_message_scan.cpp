// Fuzz target for vane::amqp::scanTo (src/amqp/message_scan.hpp).
//
// Besides "no crash, no sanitizer report", it checks:
//  - a result other than kNeedMore for a prefix of the input is final: the
//    whole input (and every longer prefix) gives the same status and `to`;
//  - an input of at least 64 KiB always gets a final status;
//  - `to` is only set with kFound, is at most kMaxAddressLength bytes long and
//    has no NUL byte;
//  - repeated calls give the same result (the decoder state is reused);
//  - where both scanTo and Proton's own message decoder (given the whole input)
//    find an address, it is the same.
#include <proton/codec.h>
#include <proton/message.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "amqp/message_scan.hpp"

namespace {

using vane::amqp::kMaxAddressLength;
using vane::amqp::ScanResult;
using vane::amqp::ScanStatus;
using vane::amqp::scanTo;

constexpr std::size_t kScanLimit = 64 * 1024;

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

[[noreturn]] void fail(const char* what, std::size_t size, const ScanResult& got,
                       const ScanResult& want) {
  std::fprintf(stderr, "invariant violated: %s (prefix %zu): got %s '%s', want %s '%s'\n", what,
               size, name(got.status), got.to.c_str(), name(want.status), want.to.c_str());
  std::abort();
}

bool same(const ScanResult& a, const ScanResult& b) {
  return a.status == b.status && a.to == b.to;
}

void checkResult(const ScanResult& r, std::size_t size) {
  if (r.status != ScanStatus::kFound && !r.to.empty()) fail("`to` set without kFound", size, r, r);
  if (r.to.size() > kMaxAddressLength) fail("`to` too long", size, r, r);
  if (r.to.find('\0') != std::string::npos) fail("NUL in `to`", size, r, r);
  if (size >= kScanLimit && r.status == ScanStatus::kNeedMore) {
    fail("kNeedMore for 64 KiB", size, r, r);
  }
}

// Scans the first n bytes from a buffer of exactly n bytes, so that ASan
// catches any read past the prefix.
ScanResult scanPrefix(const char* data, std::size_t n) {
  std::unique_ptr<char[]> copy(new char[n]);
  std::memcpy(copy.get(), data, n);
  ScanResult r = scanTo(copy.get(), n);
  checkResult(r, n);
  return r;
}

// Prefix lengths to try: all of them for short inputs; otherwise the first
// and last few and an even spread in between.
std::vector<std::size_t> prefixLengths(std::size_t size) {
  std::vector<std::size_t> lengths;
  if (size <= 300) {
    for (std::size_t n = 0; n < size; ++n) lengths.push_back(n);
    return lengths;
  }
  for (std::size_t n = 0; n < 64; ++n) lengths.push_back(n);
  for (std::size_t i = 1; i < 64; ++i) lengths.push_back(size * i / 64);
  for (std::size_t n = size - 32; n < size; ++n) lengths.push_back(n);
  std::sort(lengths.begin(), lengths.end());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());
  return lengths;
}

// Shortest prefix with a final result (results are monotonic in the length).
std::size_t decidingLength(const char* data, std::size_t size) {
  std::size_t low = 0, high = size;  // scanTo(high) is final, scanTo(low) is not (or low == high)
  while (low < high) {
    const std::size_t mid = low + (high - low) / 2;
    if (scanTo(data, mid).status == ScanStatus::kNeedMore) {
      low = mid + 1;
    } else {
      high = mid;
    }
  }
  return high;
}

// Compares with Proton's message decoder, given the input up to the end of the
// properties section scanTo used: a message may (invalidly) repeat sections,
// and pn_message_decode keeps the last properties section where scanTo stops
// at the first. Proton 0.37's pn_message_decode only recognises ulong section
// descriptors, so it finds no address where scanTo follows a symbolic one;
// where both find an address, it must be the same.
void compareWithProton(const char* data, std::size_t size, const ScanResult& full) {
  if (full.status != ScanStatus::kFound) return;
  static pn_message_t* msg = pn_message();
  pn_message_clear(msg);
  if (pn_message_decode(msg, data, decidingLength(data, size)) != 0) return;
  const char* address = pn_message_get_address(msg);
  if (address != nullptr && full.to != address) {
    ScanResult proton;
    proton.status = ScanStatus::kFound;
    proton.to = address;
    fail("differs from pn_message_decode", size, full, proton);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const char* data = reinterpret_cast<const char*>(bytes);
  const ScanResult full = scanTo(data, size);
  checkResult(full, size);
  if (!same(full, scanTo(data, size))) fail("not deterministic", size, scanTo(data, size), full);

  bool decided = false;
  for (std::size_t n : prefixLengths(size)) {
    const ScanResult r = scanPrefix(data, n);
    if (r.status == ScanStatus::kNeedMore) {
      if (decided) fail("kNeedMore after a final result", n, r, full);
      continue;
    }
    decided = true;
    if (!same(r, full)) fail("final result changed with more input", n, r, full);
  }

  compareWithProton(data, size, full);
  return 0;
}
