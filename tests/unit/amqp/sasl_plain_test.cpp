#include "amqp/sasl_plain.hpp"

#include <gtest/gtest.h>

#include <string>

namespace vane::amqp {
namespace {

using namespace std::string_literals;

TEST(SaslPlain, Fields) {
  auto p = parsePlainResponse("\0alice\0wonderland"s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->authzid, "");
  EXPECT_EQ(p->user, "alice");
  EXPECT_EQ(p->password, "wonderland");
  p = parsePlainResponse("admin\0alice\0pw"s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->authzid, "admin");
  EXPECT_EQ(p->user, "alice");
}

TEST(SaslPlain, Refused) {
  EXPECT_FALSE(parsePlainResponse(""));
  EXPECT_FALSE(parsePlainResponse("alice"));
  EXPECT_FALSE(parsePlainResponse("\0alice"s));
  EXPECT_FALSE(parsePlainResponse("\0\0pw"s));        // no user
  EXPECT_FALSE(parsePlainResponse("\0alice\0"s));     // no password
  EXPECT_FALSE(parsePlainResponse("\0u\0p\0more"s));  // a third NUL
  EXPECT_FALSE(parsePlainResponse("\0"s + std::string(256, 'u') + "\0p"s));
  EXPECT_TRUE(parsePlainResponse("\0"s + std::string(255, 'u') + "\0p"s));
  EXPECT_FALSE(parsePlainResponse("\0u\0"s + std::string(256, 'p')));
}

}  // namespace
}  // namespace vane::amqp
