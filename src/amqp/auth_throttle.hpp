// Bounds on what password authentication (SASL PLAIN) lets a client make
// the router do: AuthThrottle refuses a source address that failed too
// often, LoginCache spares the crypt(3) work of a client that logs in again
// and again with the same right password. Both are shared by every worker
// (mutex inside), have a bounded size, and take the time as an argument.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace vane::amqp {

// Failed authentications per source address, counted in a window that
// starts at a source's first failure: a source with `max_failures` within
// `window` is refused without a check until its window ends. Refusals do
// not extend the window, and a success does not clear the failures.
class AuthThrottle {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kDefaultMaxSources = 10000;

  // max_failures 0: never throttle.
  AuthThrottle(std::uint32_t max_failures, std::chrono::milliseconds window,
               std::size_t max_sources = kDefaultMaxSources);

  struct Verdict {
    bool throttled = false;
    // The first refusal of this source in its window (log it once).
    bool first = false;
    std::uint32_t failures = 0;  // in the window
  };
  // Before a password check: whether `source` is refused now. A refusal is
  // counted in throttled().
  Verdict check(const std::string& source, Clock::time_point now);
  // After a failed check.
  void failed(const std::string& source, Clock::time_point now);

  std::uint32_t maxFailures() const { return max_failures_; }
  std::chrono::milliseconds window() const { return window_; }
  std::uint64_t throttled() const { return throttled_.load(std::memory_order_relaxed); }
  std::size_t sources() const;  // tracked now (bounded by max_sources)

 private:
  struct Entry {
    std::string source;
    Clock::time_point start;  // of the window
    std::uint32_t failures = 0;
    bool logged = false;
  };
  using Order = std::list<Entry>;  // by window start, oldest first
  void expire(Clock::time_point now);

  const std::uint32_t max_failures_;
  const std::chrono::milliseconds window_;
  const std::size_t max_sources_;
  mutable std::mutex mutex_;
  Order order_;
  std::unordered_map<std::string, Order::iterator> index_;
  std::atomic<std::uint64_t> throttled_{0};
};

// Recent successful password checks: (user, digest of the given password)
// -> the users file entry it matched, for `ttl`. A hit requires the same
// entry, so a changed file takes effect at once. Oldest evicted first.
class LoginCache {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kDefaultMaxEntries = 1000;
  static constexpr std::chrono::seconds kDefaultTtl{60};

  explicit LoginCache(std::chrono::milliseconds ttl = kDefaultTtl,
                      std::size_t max_entries = kDefaultMaxEntries);

  // `key` identifies user and password (e.g. user NUL sha256(password)).
  bool hit(const std::string& key, const std::string& stored, Clock::time_point now);
  void add(const std::string& key, const std::string& stored, Clock::time_point now);
  std::size_t size() const;

 private:
  struct Entry {
    std::string key;
    std::string stored;
    Clock::time_point expires;
  };
  using Order = std::list<Entry>;  // by insertion, oldest first
  void expire(Clock::time_point now);

  const std::chrono::milliseconds ttl_;
  const std::size_t max_entries_;
  mutable std::mutex mutex_;
  Order order_;
  std::unordered_map<std::string, Order::iterator> index_;
};

}  // namespace vane::amqp
