// A section added to the configuration schema from outside config/, as an
// adaptor adds its own: this binary links the config module alone and
// defines a made-up section, `gadgets`, which must read, fail, check its
// references, take API bodies and write back exactly like a built-in one.
#include "config/section.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace vane::config {
namespace {

struct PartConfig {
  std::string label;
  std::uint32_t count = 1;
  bool operator==(const PartConfig&) const = default;
};

struct GadgetConfig {
  std::string name;
  std::uint32_t size = 10;
  bool shiny = false;
  std::string address;
  std::vector<PartConfig> parts;
  std::string tls_profile;
  int line = 0;
  bool operator==(const GadgetConfig&) const = default;
};

constexpr std::string_view kFields[] = {"name", "size", "shiny", "address", "parts", "tls_profile"};
constexpr std::string_view kPartFields[] = {"label", "count"};

void parseGadget(const EntryReader& in, GadgetConfig& g) {
  in.read(kFields, [&g](const FieldReader& f) {
    if (f.key() == "name") {
      g.name = f.name();
    } else if (f.key() == "size") {
      g.size = static_cast<std::uint32_t>(f.integer(1, 100));
    } else if (f.key() == "shiny") {
      g.shiny = f.boolean();
    } else if (f.key() == "address") {
      g.address = f.serviceAddress();
    } else if (f.key() == "parts") {
      f.items(2, "parts", [&g](const EntryReader& item) {
        PartConfig p;
        item.read(kPartFields, [&p](const FieldReader& pf) {
          if (pf.key() == "label") {
            p.label = pf.string();
          } else {
            p.count = static_cast<std::uint32_t>(pf.integer(1, 9));
          }
        });
        if (p.label.empty()) item.fail("label", "missing required field 'label'");
        g.parts.push_back(p);
      });
    } else if (f.key() == "tls_profile") {
      g.tls_profile = f.name();
    }
  });
  in.require({"address"});
  if (g.shiny && g.size > 50) in.fail("shiny", "a shiny gadget is at most 50 big");
}

EntryWriter writeGadget(const GadgetConfig& g) {
  std::vector<EntryWriter> parts;
  for (const PartConfig& p : g.parts) {
    EntryWriter w;
    w.add("label", p.label).add("count", std::uint64_t{p.count});
    parts.push_back(std::move(w));
  }
  EntryWriter w;
  w.add("name", g.name)
      .add("size", std::uint64_t{g.size})
      .add("shiny", g.shiny)
      .add("address", g.address)
      .optional("parts", std::move(parts))
      .optional("tls_profile", g.tls_profile);
  return w;
}

const std::string& tlsOf(const GadgetConfig& g) {
  return g.tls_profile;
}

constinit const ListSection<GadgetConfig> kGadgets{
    {.key = "gadgets",
     .what = "gadget",
     .fields = kFields,
     .needs_ca = "a gadget needs it to check its peers"},
    parseGadget,
    writeGadget,
    tlsOf};

class Section : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    addSection(kGadgets);
    addSection(kGadgets);  // twice: kept once
  }
};

Config parseOk(const std::string& yaml) {
  ConfigResult r = parseString(yaml, "g.yaml");
  if (const auto* e = std::get_if<ConfigError>(&r)) {
    ADD_FAILURE() << e->toString() << "\nfor:\n" << yaml;
    return {};
  }
  return std::get<Config>(r);
}

void expectError(const std::string& yaml, int line, int column, const std::string& field,
                 const std::string& text) {
  SCOPED_TRACE(yaml);
  ConfigResult r = parseString(yaml, "g.yaml");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  const ConfigError& e = std::get<ConfigError>(r);
  EXPECT_EQ(e.file, "g.yaml");
  EXPECT_EQ(e.line, line) << e.toString();
  EXPECT_EQ(e.column, column) << e.toString();
  EXPECT_EQ(e.field, field) << e.toString();
  EXPECT_NE(e.message.find(text), std::string::npos) << e.toString();
}

TEST_F(Section, IsPartOfTheSchemaOnce) {
  ASSERT_EQ(addedSections().size(), 1u);
  EXPECT_EQ(findSection("gadgets"), &kGadgets);
  EXPECT_EQ(findSection("widgets"), nullptr);
  EXPECT_EQ(entryFields("gadgets").size(), std::size(kFields));
  expectError("gadgetz: []\n", 1, 1, "gadgetz",
              "expected one of: router, listeners, connectors, addresses, gadgets, management, "
              "tls_profiles, claims");
}

TEST_F(Section, ReadsEntriesInOrder) {
  const Config c = parseOk(
      "gadgets:\n"
      "  - name: a\n    address: svc/a\n"
      "  - {name: b, size: 50, shiny: true, address: b, parts: [{label: x}, {label: y, count: "
      "3}]}\n");
  const auto& g = kGadgets.of(c);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(g[0].name, "a");
  EXPECT_EQ(g[0].size, 10u);
  EXPECT_EQ(g[0].address, "svc/a");
  EXPECT_EQ(g[0].line, 2);
  EXPECT_EQ(g[1].line, 4);
  EXPECT_TRUE(g[1].shiny);
  EXPECT_EQ(g[1].parts, (std::vector<PartConfig>{{"x", 1}, {"y", 3}}));
  EXPECT_TRUE(kGadgets.of(parseOk("router: {id: r}\n")).empty());
  EXPECT_TRUE(kGadgets.of(parseOk("gadgets:\n")).empty());
}

TEST_F(Section, FailsLikeABuiltInSection) {
  expectError("gadgets: {name: a}\n", 1, 10, "gadgets", "expected a sequence, got a mapping");
  expectError("gadgets:\n  - 7\n", 2, 5, "gadgets[0]", "expected a mapping, got a scalar");
  expectError("gadgets:\n  - address: a\n", 2, 5, "gadgets[0].name",
              "missing required field 'name'");
  expectError("gadgets:\n  - name: a\n    size: 3\n", 2, 5, "gadgets[0].address",
              "missing required field 'address'");
  expectError("gadgets:\n  - name: a\n    address: a\n    colour: red\n", 4, 5, "gadgets[0].colour",
              "unknown field 'colour' (expected one of: name, size, shiny, address, parts, "
              "tls_profile)");
  expectError("gadgets:\n  - name: a\n    name: b\n    address: a\n", 3, 5, "gadgets[0].name",
              "duplicate field 'name'");
  expectError("gadgets:\n  - name: a\n    address: a\n    size: 101\n", 4, 11, "gadgets[0].size",
              "value 101 is out of range (allowed: 1..100)");
  expectError("gadgets:\n  - name: a\n    address: a\n    shiny: yes\n", 4, 12, "gadgets[0].shiny",
              "expected true or false, got 'yes'");
  expectError("gadgets:\n  - name: a b\n    address: a\n", 2, 11, "gadgets[0].name",
              "invalid character ' '");
  expectError("gadgets:\n  - name: a\n    address: _vane/x\n", 3, 14, "gadgets[0].address",
              "reserved for the router");
  expectError("gadgets:\n  - name: a\n    address: a\n    shiny: true\n    size: 60\n", 4, 12,
              "gadgets[0].shiny", "a shiny gadget is at most 50 big");
  expectError("gadgets:\n  - {name: a, address: a}\n  - {name: a, address: b}\n", 3, 12,
              "gadgets[1].name",
              "duplicate gadget name 'a' (already used by gadgets[0] at line 2)");
  // Lists inside an entry.
  expectError("gadgets:\n  - {name: a, address: a, parts: [{label: x}, {label: y}, {label: z}]}\n",
              2, 34, "gadgets[0].parts", "at most 2 parts");
  expectError("gadgets:\n  - {name: a, address: a, parts: [{count: 2}]}\n", 2, 35,
              "gadgets[0].parts[0].label", "missing required field 'label'");
  expectError("gadgets:\n  - {name: a, address: a, parts: [{label: x, count: 0}]}\n", 2, 53,
              "gadgets[0].parts[0].count", "out of range");
  expectError("gadgets:\n  - {name: a, address: a, parts: [x]}\n", 2, 35, "gadgets[0].parts[0]",
              "expected a mapping, got a scalar");
}

TEST_F(Section, ChecksTlsReferencesOfTheWholeFile) {
  const std::string profiles =
      "tls_profiles:\n  - {name: ca, certificate: c.pem, key: k.pem, ca: ca.pem}\n"
      "  - {name: noca, certificate: c.pem, key: k.pem}\n";
  EXPECT_EQ(
      kGadgets.of(parseOk(profiles + "gadgets:\n  - {name: a, address: a, tls_profile: ca}\n"))
          .at(0)
          .tls_profile,
      "ca");
  expectError(profiles + "gadgets:\n  - {name: a, address: a, tls_profile: nope}\n", 5, 1,
              "gadgets[0].tls_profile", "no tls profile named 'nope'");
  expectError(profiles +
                  "gadgets:\n  - {name: a, address: a}\n  - {name: b, address: a, "
                  "tls_profile: noca}\n",
              6, 1, "gadgets[1].tls_profile",
              "tls profile 'noca' has no 'ca': a gadget needs it to check its peers");
  const Config c = parseOk(profiles +
                           "gadgets:\n  - {name: a, address: a}\n  - {name: b, address: a, "
                           "tls_profile: ca}\n");
  EXPECT_EQ(kGadgets.tlsUser(c, "ca"), "b");
  EXPECT_EQ(kGadgets.tlsUser(c, "noca"), "");
  // One entry of a request body: its references are the router's to check.
  EXPECT_TRUE(std::holds_alternative<Config>(
      parseEntry("gadgets", R"({"name": "a", "address": "a", "tls_profile": "nope"})")));
}

TEST_F(Section, TakesApiBodiesAndWritesEntriesBack) {
  GadgetConfig g;
  g.name = "full";
  g.size = 42;
  g.shiny = true;
  g.address = "svc/full: odd";
  g.parts = {{"p", 2}, {"q", 9}};
  g.tls_profile = "t";
  {
    ConfigResult r = parseEntry("gadgets", kGadgets.json(g));
    ASSERT_TRUE(std::holds_alternative<Config>(r)) << std::get<ConfigError>(r).toString();
    ASSERT_EQ(kGadgets.of(std::get<Config>(r)).size(), 1u);
    GadgetConfig back = kGadgets.of(std::get<Config>(r))[0];
    back.line = 0;
    EXPECT_EQ(back, g) << kGadgets.json(g);
  }
  {
    const std::string file =
        "tls_profiles:\n  - {name: t, certificate: c, key: k, ca: a}\ngadgets:\n  - " +
        kGadgets.yaml(g) + "\n";
    const Config c = parseOk(file);
    ASSERT_EQ(kGadgets.of(c).size(), 1u);
    GadgetConfig back = kGadgets.of(c)[0];
    EXPECT_EQ(back.line, 4);
    back.line = 0;
    EXPECT_EQ(back, g) << file;
  }
  EXPECT_FALSE(kGadgets.validate(g).has_value());
  g.size = 0;
  const auto error = kGadgets.validate(g);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->field, "size");
  EXPECT_EQ(error->line, 0);
  ConfigResult r = parseEntry("gadgets", R"({"name": "a"})");
  ASSERT_TRUE(std::holds_alternative<ConfigError>(r));
  EXPECT_EQ(std::get<ConfigError>(r).field, "address");
}

}  // namespace
}  // namespace vane::config
