#include "amqp/auth_throttle.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace vane::amqp {
namespace {

using namespace std::string_literals;
using std::chrono::milliseconds;
using Clock = AuthThrottle::Clock;

TEST(AuthThrottle, RefusesAfterMaxFailuresUntilTheWindowEnds) {
  AuthThrottle t(3, milliseconds(1000));
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(t.check("10.0.0.1", t0 + milliseconds(i)).throttled) << i;
    t.failed("10.0.0.1", t0 + milliseconds(i));
  }
  auto v = t.check("10.0.0.1", t0 + milliseconds(10));
  EXPECT_TRUE(v.throttled);
  EXPECT_TRUE(v.first);
  EXPECT_EQ(v.failures, 3u);
  v = t.check("10.0.0.1", t0 + milliseconds(999));
  EXPECT_TRUE(v.throttled);
  EXPECT_FALSE(v.first);  // logged once per window
  EXPECT_EQ(t.throttled(), 2u);
  // Another source is not affected.
  EXPECT_FALSE(t.check("10.0.0.2", t0 + milliseconds(10)).throttled);
  // The window started at the first failure; refusals did not extend it.
  EXPECT_FALSE(t.check("10.0.0.1", t0 + milliseconds(1000)).throttled);
  EXPECT_EQ(t.sources(), 0u);
  // A new window: counting starts again, and its first refusal is logged.
  for (int i = 0; i < 3; ++i) t.failed("10.0.0.1", t0 + milliseconds(1001));
  v = t.check("10.0.0.1", t0 + milliseconds(1002));
  EXPECT_TRUE(v.throttled && v.first);
}

TEST(AuthThrottle, FailuresSpreadOverWindowsDoNotAddUp) {
  AuthThrottle t(3, milliseconds(1000));
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  t.failed("a", t0);
  t.failed("a", t0 + milliseconds(500));
  t.failed("a", t0 + milliseconds(1000));  // the first window ended: a new one
  EXPECT_FALSE(t.check("a", t0 + milliseconds(1001)).throttled);
  t.failed("a", t0 + milliseconds(1500));
  EXPECT_FALSE(t.check("a", t0 + milliseconds(1501)).throttled);
  t.failed("a", t0 + milliseconds(1600));
  EXPECT_TRUE(t.check("a", t0 + milliseconds(1601)).throttled);
}

TEST(AuthThrottle, ZeroNeverThrottles) {
  AuthThrottle t(0, milliseconds(1000));
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 100; ++i) t.failed("a", t0);
  EXPECT_FALSE(t.check("a", t0).throttled);
  EXPECT_EQ(t.sources(), 0u);
}

TEST(AuthThrottle, BoundedSizeForgetsTheOldest) {
  AuthThrottle t(1, milliseconds(60000), 100);
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 10000; ++i) t.failed("s" + std::to_string(i), t0 + milliseconds(i));
  EXPECT_EQ(t.sources(), 100u);
  // The newest are kept, the oldest forgotten.
  const auto later = t0 + milliseconds(10001);
  EXPECT_TRUE(t.check("s9999", later).throttled);
  EXPECT_TRUE(t.check("s9900", later).throttled);
  EXPECT_FALSE(t.check("s9899", later).throttled);
  EXPECT_FALSE(t.check("s0", later).throttled);
}

TEST(AuthThrottle, SharedByThreads) {
  AuthThrottle t(1000000, milliseconds(60000), 50);
  std::vector<std::thread> threads;
  for (int n = 0; n < 4; ++n) {
    threads.emplace_back([&t, n] {
      for (int i = 0; i < 5000; ++i) {
        const auto now = Clock::now();
        const std::string source = "s" + std::to_string((i * 7 + n) % 80);
        t.check(source, now);
        t.failed(source, now);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(t.sources(), 50u);
}

TEST(LoginCache, HitsOnlyTheSameEntryWithinTheTtl) {
  LoginCache c(milliseconds(1000), 3);
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  EXPECT_FALSE(c.hit("alice\0pw1"s, "$6$x", t0));
  c.add("alice\0pw1"s, "$6$x", t0);
  EXPECT_TRUE(c.hit("alice\0pw1"s, "$6$x", t0 + milliseconds(999)));
  EXPECT_FALSE(c.hit("alice\0pw1"s, "$6$y", t0 + milliseconds(10)));  // the file changed
  EXPECT_FALSE(c.hit("alice\0pw2"s, "$6$x", t0 + milliseconds(10)));
  EXPECT_FALSE(c.hit("alice\0pw1"s, "$6$x", t0 + milliseconds(1000)));
  EXPECT_EQ(c.size(), 0u);
}

TEST(LoginCache, BoundedSize) {
  LoginCache c(milliseconds(60000), 3);
  const auto t0 = Clock::time_point{} + std::chrono::hours(1);
  for (int i = 0; i < 10; ++i) c.add("k" + std::to_string(i), "h", t0 + milliseconds(i));
  EXPECT_EQ(c.size(), 3u);
  EXPECT_TRUE(c.hit("k9", "h", t0 + milliseconds(20)));
  EXPECT_TRUE(c.hit("k7", "h", t0 + milliseconds(20)));
  EXPECT_FALSE(c.hit("k6", "h", t0 + milliseconds(20)));
  // Adding a key again refreshes it (and does not grow the cache).
  c.add("k7", "h", t0 + milliseconds(30));
  EXPECT_EQ(c.size(), 3u);
}

}  // namespace
}  // namespace vane::amqp
