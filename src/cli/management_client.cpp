#include "cli/management_client.hpp"

namespace vane::cli {

namespace {

constexpr std::string_view kApi = "/api/v1/";

std::string say(std::chrono::milliseconds t) {
  if (t.count() % 1000 == 0) return std::to_string(t.count() / 1000) + " s";
  return std::to_string(t.count()) + " ms";
}

}  // namespace

std::string Reply::error() const {
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    return body["error"].get<std::string>();
  }
  return "HTTP " + std::to_string(status);
}

std::variant<Reply, Failure> ManagementClient::send(std::string_view method, std::string_view path,
                                                    const Json& body) const {
  const std::string target = std::string(kApi) + std::string(path);
  HttpRequest request{std::string(method), target, body.is_null() ? "" : body.dump(), token_};
  auto result = httpRequest(url_, request, timeouts_);
  if (const auto* e = std::get_if<HttpError>(&result)) return explain(*e);
  const auto& res = std::get<HttpResponse>(result);
  if (res.status == 401) return explain(res, target);
  return Reply{res.status, Json::parse(res.body, nullptr, /*allow_exceptions=*/false)};
}

std::variant<Json, Failure> ManagementClient::get(std::string_view path, Expect expect) const {
  const std::string target = std::string(kApi) + std::string(path);
  auto result = httpGet(url_, target, token_, timeouts_);
  if (const auto* e = std::get_if<HttpError>(&result)) return explain(*e);
  const auto& res = std::get<HttpResponse>(result);
  if (res.status != 200) return explain(res, target);
  Json body = Json::parse(res.body, nullptr, /*allow_exceptions=*/false);
  const bool ok = expect == Expect::kObject ? body.is_object() : body.is_array();
  if (!ok) {
    return Failure{"the answer to GET " + url_.base + target + " at " + url_.text +
                   " is not the JSON " + (expect == Expect::kObject ? "object" : "list") +
                   " the management API sends; is --url the router's management API?"};
  }
  return body;
}

Failure ManagementClient::explain(const HttpError& e) const {
  using Kind = HttpError::Kind;
  if (!site_.empty() && (e.kind == Kind::kUnreachable || e.kind == Kind::kTimeout)) {
    return {"site '" + site_ + "' does not answer on its management API at " + url_.text +
            "; check that it runs with `vane site status`, and see " + site_log_};
  }
  switch (e.kind) {
    case Kind::kResolve:
      return {"cannot resolve the host '" + url_.host + "' of " + url_.text + ": " + e.detail +
              "; check --url or VANE_URL"};
    case Kind::kUnreachable:
      return {"cannot reach the router's management API at " + url_.text +
              "; is vaned running with a `management` section? (set --url or VANE_URL)"};
    case Kind::kTimeout:
      return {"the management API at " + url_.text + " did not answer within " +
              say(timeouts_.read) + "; is --url the router's management port, and is vaned " +
              "responsive?"};
    case Kind::kNotHttp:
      return {"what answers at " + url_.text + " does not speak HTTP (" + e.detail +
              "); is --url the router's management port rather than an AMQP or tcp listener?"};
    case Kind::kTooLarge:
      return {"the answer from " + url_.text + " is larger than " +
              std::to_string(kMaxBody / (1024 * 1024)) +
              " MiB, more than vane reads; use the API directly for this router"};
    case Kind::kTls:
      return {"TLS with the management API at " + url_.text + " failed (" + e.detail +
              "); if the router's certificate is not from a CA this system trusts, pass its CA "
              "with --cacert or VANE_CACERT"};
    case Kind::kNetwork:
      break;
  }
  return {"the management API at " + url_.text + " failed: " + e.detail +
          "; try again, and check vaned's log if it persists"};
}

Failure ManagementClient::explain(const HttpResponse& r, const std::string& target) const {
  if (r.status == 401) {
    if (!site_.empty()) {
      return {"site '" + site_ + "' refused the management token of its site.json; restart it " +
              "with `vane site stop` and `vane site start` so that both use the same token"};
    }
    if (token_.empty()) {
      return {"the router requires a management token; pass --token or set VANE_TOKEN"};
    }
    return {"the router rejected the management token; check --token or VANE_TOKEN"};
  }
  const Json body = Json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    std::string message =
        body["error"].get<std::string>() + " (HTTP " + std::to_string(r.status) + ")";
    if (r.status == 404 && message.rfind("no such resource", 0) == 0) {
      message +=
          "; give --url as http://HOST:PORT of the router's management API, and check "
          "that the router is as new as vane";
    }
    return {message};
  }
  return {"unexpected answer HTTP " + std::to_string(r.status) + " " + r.reason + " to GET " +
          url_.base + target + " at " + url_.text + "; is --url the router's management API?"};
}

}  // namespace vane::cli
