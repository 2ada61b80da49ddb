#include "amqp/auth_throttle.hpp"

namespace vane::amqp {

AuthThrottle::AuthThrottle(std::uint32_t max_failures, std::chrono::milliseconds window,
                           std::size_t max_sources)
    : max_failures_(max_failures),
      window_(window),
      max_sources_(max_sources == 0 ? 1 : max_sources) {}

// Entries are in window-start order: the expired ones are at the front.
void AuthThrottle::expire(Clock::time_point now) {
  while (!order_.empty() && now - order_.front().start >= window_) {
    index_.erase(order_.front().source);
    order_.pop_front();
  }
}

AuthThrottle::Verdict AuthThrottle::check(const std::string& source, Clock::time_point now) {
  if (max_failures_ == 0) return {};
  std::lock_guard<std::mutex> lock(mutex_);
  expire(now);
  auto it = index_.find(source);
  if (it == index_.end() || it->second->failures < max_failures_) return {};
  Entry& e = *it->second;
  Verdict v{true, !e.logged, e.failures};
  e.logged = true;
  throttled_.fetch_add(1, std::memory_order_relaxed);
  return v;
}

void AuthThrottle::failed(const std::string& source, Clock::time_point now) {
  if (max_failures_ == 0) return;
  std::lock_guard<std::mutex> lock(mutex_);
  expire(now);
  auto it = index_.find(source);
  if (it != index_.end()) {
    ++it->second->failures;
    return;
  }
  // A new window. Full (more sources failed within one window than we
  // keep): forget the oldest.
  while (index_.size() >= max_sources_) {
    index_.erase(order_.front().source);
    order_.pop_front();
  }
  order_.push_back(Entry{source, now, 1, false});
  index_.emplace(source, std::prev(order_.end()));
}

std::size_t AuthThrottle::sources() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return index_.size();
}

LoginCache::LoginCache(std::chrono::milliseconds ttl, std::size_t max_entries)
    : ttl_(ttl), max_entries_(max_entries == 0 ? 1 : max_entries) {}

void LoginCache::expire(Clock::time_point now) {
  while (!order_.empty() && now >= order_.front().expires) {
    index_.erase(order_.front().key);
    order_.pop_front();
  }
}

bool LoginCache::hit(const std::string& key, const std::string& stored, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  expire(now);
  auto it = index_.find(key);
  return it != index_.end() && it->second->stored == stored;
}

void LoginCache::add(const std::string& key, const std::string& stored, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mutex_);
  expire(now);
  if (auto it = index_.find(key); it != index_.end()) {
    order_.erase(it->second);
    index_.erase(it);
  }
  while (index_.size() >= max_entries_) {
    index_.erase(order_.front().key);
    order_.pop_front();
  }
  order_.push_back(Entry{key, stored, now + ttl_});
  index_.emplace(key, std::prev(order_.end()));
}

std::size_t LoginCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return index_.size();
}

}  // namespace vane::amqp
