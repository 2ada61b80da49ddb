// Vane configuration model: one schema shared by the YAML file, the
// management API's request bodies and the `vane` CLI, which writes its
// entries of vaned.yaml with the emitters below. Other modules add list
// sections of their own to it (config/section.hpp: the adaptors' listeners
// and connectors). Parsing never throws to
// callers; it returns either a Config or a ConfigError naming file, line and
// field.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace vane::config {

enum class RouterMode { kInterior, kEdge };
enum class ListenerRole { kNormal, kInterRouter, kEdge };
enum class Distribution { kBalanced, kClosest, kMulticast };

// Names of entities and router ids: 1..64 characters of [A-Za-z0-9._-].
inline constexpr std::size_t kMaxNameLength = 64;
constexpr bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}
bool isValidName(std::string_view s);

const char* toString(RouterMode m);
const char* toString(ListenerRole r);
const char* toString(Distribution d);

struct RouterConfig {
  std::string id = "vane";  // unique in the network
  RouterMode mode = RouterMode::kInterior;
  int workers = 1;  // I/O threads, 1..256
  // Credit window granted to each link that sends into the router: the most
  // deliveries one link may have inside the router at once (bounds memory).
  int link_capacity = 250;
  // Deliveries the router sends a consumer's link that the consumer has not
  // settled yet: at this many the router stops sending it more (whatever
  // credit it grants), so a consumer that never settles cannot grow router
  // memory. Senders then run out of credit as their deliveries wait.
  std::uint32_t max_unsettled_per_link = 1000;
  // What one client connection (normal listeners) may create and hold.
  // Router links (inter-router, edge) are bounded by the router protocol.
  std::uint32_t max_sessions_per_connection = 64;
  std::uint32_t max_links_per_connection = 10000;  // senders and receivers
  std::uint32_t max_receivers_per_connection = 5000;
  std::uint32_t max_dynamic_addresses_per_connection = 1000;
  // Deliveries sent to one connection's consumers and not settled yet, over
  // all its links: at this many, sending to every link of the connection
  // pauses until the consumer settles.
  std::uint32_t max_unsettled_per_connection = 10000;
  // Stream links (one per TCP flow direction crossing a router link) that
  // one router connection may carry each way; each can hold up to
  // stream_window_bytes in flight.
  std::uint32_t max_stream_links = 16000;
  // PLAIN authentication: a source address that failed this many times
  // within auth_failure_window_ms is refused without a password check
  // until the window has passed (0 = never throttle).
  std::uint32_t max_auth_failures_per_source = 10;
  std::uint32_t auth_failure_window_ms = 60000;
  // Bytes of one streamed message that may be in flight inside the router
  // between its ingress and egress links before reading pauses.
  std::uint32_t max_message_inflight_bytes = 1u << 20;
  // AMQP max-frame-size offered on every connection.
  std::uint32_t max_frame_size = 65536;
  // Per-session incoming window, in bytes: the most a peer can have in
  // flight to the router per session. The window in frames is
  // session_capacity / max_frame_size (256 by default), which must exceed
  // link_capacity for pre-settled senders not to stall on the window.
  // Frames of 64 KiB matter for large messages: Proton senders spend time
  // quadratic in the message size over the frame size.
  std::uint32_t session_capacity = 1u << 24;
  // Idle timeout offered to peers (0 = none); peers silent for this long are closed.
  std::uint32_t idle_timeout_ms = 16000;
  // Upper bound on concurrent connections across all listeners (0 = unlimited).
  std::uint32_t max_connections = 10000;
  // Router network: a hello to every neighbour this often; a neighbour
  // silent for dead_interval_ms is dropped.
  std::uint32_t hello_interval_ms = 1000;
  std::uint32_t dead_interval_ms = 3000;
  // Bytes of one TCP stream direction that may be in flight per hop (read
  // from a socket or a link and not yet written on): the per-flow window.
  // Throughput over a path is about window / round-trip time.
  std::uint32_t stream_window_bytes = 1u << 20;
  // The router's identity key (Ed25519, PEM; docs/design/trust-model.md):
  // created (mode 0600) if the file does not exist, reused on every start,
  // so a restarted router keeps its identity. Empty: a new key every run.
  std::string key_file;
  // Router network limits: routers with records held, addresses over all
  // routers' address records and in one router's, and per neighbour the
  // records (link-state and address) per second and the burst above it.
  std::uint32_t max_routers = 1000;
  std::uint32_t max_addresses = 100000;
  std::uint32_t max_addresses_per_router = 50000;
  std::uint32_t max_updates_per_neighbor_per_second = 2000;
  std::uint32_t max_update_burst_per_neighbor = 20000;
};

struct ListenerConfig {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 5672;  // 0 = pick a free port
  ListenerRole role = ListenerRole::kNormal;
  // Cost of links made through this listener (inter-router and edge roles);
  // a link costs the larger of the costs configured on its two ends.
  std::uint32_t cost = 1;
  // TLS: the profile's certificate is presented to clients. Inter-router and
  // edge listeners then require a client certificate signed by its `ca`.
  std::string tls_profile;
  // Normal listeners: the SASL mechanisms offered (ANONYMOUS, PLAIN,
  // EXTERNAL). PLAIN checks users_file; EXTERNAL takes the identity of the
  // client's certificate (so it needs tls_profile with a ca).
  std::vector<std::string> sasl_mechanisms{"ANONYMOUS"};
  std::string users_file;  // "name:password" lines
  // Inter-router and edge listeners with TLS: a router must announce the
  // id its certificate names (subject CN), so that a site cannot pass for
  // another.
  bool verify_router_id = false;
  // Inter-router and edge listeners: accept router peers over plain TCP,
  // unauthenticated (loopback demos and tests). Without it such a listener
  // needs tls_profile; vaned warns at start about every insecure one.
  bool insecure = false;
  // Connections open on this listener at once (0 = only router.max_connections).
  std::uint32_t max_connections = 0;
  // TLS handshake, SASL and the AMQP open must be done within this time.
  std::uint32_t handshake_timeout_ms = 10000;
  // Idle timeout for this listener's connections; unset = router.idle_timeout_ms.
  std::optional<std::uint32_t> idle_timeout_ms;
  int line = 0;  // source line in the file (0 when built-in), for messages
};

// Bounds on the clients of an HTTP endpoint (management API, claims).
struct HttpLimitsConfig {
  std::uint32_t max_connections = 64;  // at once, over all sources
  // At once from one source address, so that a few silent sockets from one
  // host cannot lock everyone else out.
  std::uint32_t max_connections_per_source = 8;
  // The TLS handshake and each request's header must arrive within this.
  std::uint32_t header_timeout_ms = 10000;
  // A kept-alive connection with no request for this long is closed.
  std::uint32_t idle_timeout_ms = 30000;
  bool operator==(const HttpLimitsConfig&) const = default;
};

// An outgoing connection to another router's inter-router or edge listener,
// kept up forever (reconnecting with capped exponential backoff).
struct ConnectorConfig {
  std::string name;
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  ListenerRole role = ListenerRole::kInterRouter;  // inter-router or edge
  std::uint32_t cost = 1;
  // TLS: the server's certificate must be signed by the profile's `ca` and
  // (verify_host) name `host`; the profile's certificate is our client
  // certificate.
  std::string tls_profile;
  bool verify_host = true;
  int line = 0;
  bool operator==(const ConnectorConfig&) const = default;
};

// An address rule: exactly one of prefix or pattern is set.
// Pattern syntax: tokens separated by '.' or '/'; '*' matches exactly one
// token, '#' matches zero or more tokens. Longest prefix / most specific
// pattern wins; prefixes are checked before patterns.
struct AddressConfig {
  std::string prefix;
  std::string pattern;
  Distribution distribution = Distribution::kBalanced;
  int line = 0;
};

// A named set of TLS credentials (files are read when the router starts).
struct TlsProfileConfig {
  std::string name;
  std::string ca;                 // CA certificate(s), PEM; optional
  std::string certificate;        // certificate chain, PEM
  std::string key;                // private key, PEM
  std::string key_password_file;  // optional: the key's password, first line
  int line = 0;
  bool operator==(const TlsProfileConfig&) const = default;
};

// The HTTP management API (JSON, Prometheus metrics, health probes).
struct ManagementConfig {
  bool enabled = false;  // the `management` section is present
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  // required when enabled (0 = pick a free port, logged)
  // When set, every request but /healthz and /readyz must carry
  // "Authorization: Bearer <token>".
  std::string token;
  // When set, the API is served over TLS with this profile's certificate.
  std::string tls_profile;
  int tls_line = 0;  // where tls_profile is given, for messages
  HttpLimitsConfig limits;
  int line = 0;
};

// Site linking: an HTTPS endpoint where another site redeems a token
// (issued through the management API) for a client certificate signed by
// this site's CA. See docs/design/site-linking.md.
struct ClaimsConfig {
  bool enabled = false;  // the `claims` section is present
  std::string host = "0.0.0.0";
  std::uint16_t port = 0;      // required (0 = pick a free port, logged)
  std::string tls_profile;     // required: the certificate this endpoint presents
  std::string ca_certificate;  // required: the site CA (PEM) ...
  std::string ca_key;          // ... and its key, which signs client certificates and tokens
  std::string state_file;      // required: issued tokens, kept across restarts
  // The host name other sites reach this router by (written into tokens
  // with the claims port and the inter-router listeners' ports).
  std::string advertise_host;  // required
  // One claim is one short request: idle clients go sooner.
  HttpLimitsConfig limits{.max_connections = 64,
                          .max_connections_per_source = 4,
                          .header_timeout_ms = 5000,
                          .idle_timeout_ms = 5000};
  int line = 0;
};

// The entries of the sections that other modules add to the schema
// (config/section.hpp: ListSection<C>::of() reads them), by section key.
class Sections {
 public:
  const std::any* find(std::string_view key) const {
    auto it = lists_.find(key);
    return it == lists_.end() ? nullptr : &it->second;
  }
  std::any& at(std::string_view key) {
    auto it = lists_.find(key);
    if (it == lists_.end()) it = lists_.emplace(std::string(key), std::any{}).first;
    return it->second;
  }

 private:
  std::map<std::string, std::any, std::less<>> lists_;
};

struct Config {
  RouterConfig router;
  std::vector<ListenerConfig> listeners;
  std::vector<ConnectorConfig> connectors;
  std::vector<AddressConfig> addresses;
  Sections sections;  // the sections other modules add (config/section.hpp)
  ManagementConfig management;
  std::vector<TlsProfileConfig> tls_profiles;
  ClaimsConfig claims;
  std::string source;  // file name or "<built-in>"
};

struct ConfigError {
  std::string file;
  int line = 0;       // 1-based, 0 if unknown
  int column = 0;     // 1-based, 0 if unknown
  std::string field;  // dotted path, e.g. "listeners[1].port"
  std::string message;
  // "FILE:LINE:COLUMN: field 'F': MESSAGE"
  std::string toString() const;
  // "field 'F': MESSAGE", without file and position (an entry not read
  // from a file: a request body, the CLI's command line).
  std::string detail() const;
};

using ConfigResult = std::variant<Config, ConfigError>;

// The built-in configuration: one normal listener on 127.0.0.1:5672.
Config defaultConfig();

// Parses YAML text; `name` is used in error messages as the file name.
ConfigResult parseString(const std::string& text, const std::string& name);

// Reads and parses a file. A missing/unreadable file is a ConfigError too.
ConfigResult loadFile(const std::string& path);

// Makes the relative file names of a configuration (tls profiles, users
// files, claims) relative to `dir` (the configuration file's directory).
void resolvePaths(Config& cfg, const std::string& dir);

// Parses one entry of a list section ("listeners", "connectors",
// "addresses", "tls_profiles" or an added one: config/section.hpp) given as YAML or JSON text (the
// management API's request bodies), checked exactly like the same entry in
// a file: the result holds the entry in its section, or an error whose
// field names the entry's key (e.g. "port").
ConfigResult parseEntry(const std::string& section, const std::string& text);

// The fields the parser reads in an entry of `section` (a section that
// parseEntry() takes), in the order its messages list them; empty for
// another section.
std::span<const std::string_view> entryFields(std::string_view section);

// ---- Writing entries (the CLI's side of vaned.yaml) ----
//
// toYaml() writes one entry as a one-line YAML flow mapping, e.g.
// `{name: b, host: b.example.org, port: 55671, ...}`, for its section
// (connectors, tls_profiles; added sections: ListSection); toJson() writes
// it as the JSON object the management API takes for it (parseEntry()).
// Both write every field the parser reads for the entry except optional
// ones left unset (an empty tls_profile, ca or key_password_file), so that
// parsing the text gives back the same entry (`line` aside). toJson()
// writes bytes that are not valid UTF-8 as U+FFFD; toYaml() keeps them.
std::string toYaml(const ConnectorConfig& c);
std::string toYaml(const TlsProfileConfig& t);
std::string toJson(const ConnectorConfig& c);
std::string toJson(const TlsProfileConfig& t);

// Checks an entry with the rules vaned applies to the same entry in its file
// or in a request body: nothing if vaned takes it, else the error it would
// give, its field naming the key inside the entry ("port") and no position.
// References to other entities (a connector's tls_profile) are not checked,
// as in parseEntry().
std::optional<ConfigError> validate(const ConnectorConfig& c);
std::optional<ConfigError> validate(const TlsProfileConfig& t);

}  // namespace vane::config
