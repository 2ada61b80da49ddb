// An event loop: one Boost.Asio io_context run by one thread. Everything a
// loop owns is touched only from that thread; other threads reach it through
// post().
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <thread>
#include <utility>

#include "core/assert.hpp"
#include "core/log.hpp"

namespace vane::core {

class EventLoop {
 public:
  explicit EventLoop(std::string name) : name_(std::move(name)) {}
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;
  ~EventLoop() { join(); }

  boost::asio::io_context& context() { return ctx_; }
  const std::string& name() const { return name_; }

  // Runs `fn` on this loop's thread, after everything already posted.
  // Thread-safe.
  template <typename Fn>
  void post(Fn&& fn) {
    boost::asio::post(ctx_, std::forward<Fn>(fn));
  }

  // Exceptions that escaped a handler of this loop (any thread).
  std::uint64_t escapedExceptions() const { return escaped_.load(std::memory_order_relaxed); }

  // True on this loop's thread.
  bool isCurrentThread() const { return current_ == this; }

  // Starts the thread; the loop runs until stop().
  void start() {
    thread_ = std::thread([this] {
      current_ = this;
      auto guard = boost::asio::make_work_guard(ctx_);
      while (!stopping_.load()) {
        // Last resort: an exception that escapes a handler (a bug, or input
        // a handler failed to validate) is logged and counted, and the loop
        // goes on with its other work instead of terminating the process.
        try {
          ctx_.run();
        } catch (const std::exception& e) {
          escaped_.fetch_add(1, std::memory_order_relaxed);
          VANE_LOG_ERROR("loop {}: a handler threw: {} (the loop continues)", name_, e.what());
          continue;
        } catch (...) {
          escaped_.fetch_add(1, std::memory_order_relaxed);
          VANE_LOG_ERROR("loop {}: a handler threw a non-standard exception (the loop continues)",
                         name_);
          continue;
        }
        if (ctx_.stopped()) break;
      }
      current_ = nullptr;
    });
  }

  // For tests and fuzzers that drive a loop that was never start()ed: run
  // handlers on the calling thread, which counts as this loop's thread while
  // they run. poll() runs the handlers that are ready now; runOneFor() waits
  // up to `timeout` for one handler and runs it. Both return the number of
  // handlers run and do nothing after stop(). Not for a started loop.
  std::size_t poll() {
    CurrentScope scope(this);
    return prepareManualRun() ? ctx_.poll() : 0;
  }
  std::size_t runOneFor(std::chrono::milliseconds timeout) {
    CurrentScope scope(this);
    return prepareManualRun() ? ctx_.run_one_for(timeout) : 0;
  }

  // After join(): runs `fn` and then every handler that is ready, on the
  // calling thread standing in for the loop's. Used at shutdown so objects
  // owned by pending handlers are destroyed while what they refer to lives.
  template <typename Fn>
  void drainAfterJoin(Fn&& fn) {
    VANE_ASSERT(!thread_.joinable(), "drainAfterJoin on a running loop");
    CurrentScope scope(this);
    fn();
    ctx_.restart();
    for (int i = 0; i < 16 && ctx_.poll() > 0; ++i) {
    }
  }

  void stop() {
    stopping_.store(true);
    ctx_.stop();
  }

  void join() {
    if (thread_.joinable()) {
      if (!stopping_.load()) stop();
      thread_.join();
    }
  }

 private:
  // Makes `loop` the calling thread's current loop for a scope.
  class CurrentScope {
   public:
    explicit CurrentScope(EventLoop* loop) : saved_(current_) { current_ = loop; }
    ~CurrentScope() { current_ = saved_; }
    CurrentScope(const CurrentScope&) = delete;
    CurrentScope& operator=(const CurrentScope&) = delete;

   private:
    EventLoop* saved_;
  };

  // An io_context that ran out of work is stopped until restarted.
  bool prepareManualRun() {
    VANE_ASSERT(!thread_.joinable(), "manual run of a started loop");
    if (stopping_.load()) return false;
    if (ctx_.stopped()) ctx_.restart();
    return true;
  }

  std::string name_;
  boost::asio::io_context ctx_{1};
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> escaped_{0};
  static inline thread_local EventLoop* current_ = nullptr;
};

// Thread checks: VANE_ASSERT_THREAD(loop) at an entry point that must run on
// `loop`'s thread, VANE_ASSERT_NOT_THREAD(loop) where running on it would
// deadlock (code that waits for the loop). Checked in builds without NDEBUG
// (Debug: the sanitizer builds the tests use); in release builds they
// compile to nothing, the expression unevaluated, so they may sit on the
// data path.
#ifdef NDEBUG
#define VANE_ASSERT_THREAD(loop)            \
  do {                                      \
    (void)sizeof((loop).isCurrentThread()); \
  } while (0)
#define VANE_ASSERT_NOT_THREAD(loop) VANE_ASSERT_THREAD(loop)
#else
#define VANE_ASSERT_THREAD(loop) \
  VANE_ASSERT((loop).isCurrentThread(), "called off its owning thread")
#define VANE_ASSERT_NOT_THREAD(loop) \
  VANE_ASSERT(!(loop).isCurrentThread(), "called on the thread it waits for")
#endif

}  // namespace vane::core
