// Writes seed inputs of the route_header fuzz target:  make_corpus <dir>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "amqp/inter_router.hpp"

namespace {
int g_count = 0;
std::filesystem::path g_dir;

void write(const std::string& what, const std::string& bytes) {
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "seed-%02d-", ++g_count);
  std::ofstream(g_dir / (prefix + what), std::ios::binary) << bytes;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus <dir>\n");
    return 2;
  }
  g_dir = argv[1];
  std::filesystem::create_directories(g_dir);
  using vane::forwarding::RouteHeader;
  RouteHeader any;
  any.address = "orders";
  any.origin = "A";
  write("anycast-undecided", vane::amqp::encodeRouteHeader(any));
  any.dest = "C";
  any.hops = 2;
  write("anycast-dest", vane::amqp::encodeRouteHeader(any) + std::string("\x00\x53\x73", 3));
  RouteHeader settled = any;
  settled.presettled = true;  // the sender settled it: no outcome travels back
  write("anycast-presettled", vane::amqp::encodeRouteHeader(settled));
  RouteHeader mc;
  mc.address = "mc/x";
  mc.origin = "R0";
  mc.has_dests = true;
  mc.dests = {"R1", "R2", "R3"};
  write("multicast-set", vane::amqp::encodeRouteHeader(mc));
  const std::string full = vane::amqp::encodeRouteHeader(mc);
  write("multicast-truncated", full.substr(0, full.size() / 2));
  write("control-hello",
        vane::amqp::encodeControlMessage(R"({"v":1,"type":"hello","id":"A","instance":1})"));
  write("empty", "");
  write("garbage", std::string("\x00\xa3\x0dvane:route:v1\x45", 17));
  return 0;
}
