"""Tokens and the claims endpoint, at the router: issue through the management
API, redeem over HTTPS with a certificate request, and every refusal (used up,
expired, unknown or altered secret, bad request) with its message. The state
survives a restart. (The CLI's own flow is in test_sites.py.)"""

import http.client
import json
import re
import ssl
import subprocess
import time
from pathlib import Path

from test_tls import TOKEN, get, issue, make_ca, profile, router_config, router_ids
from vane_harness import eventually, make_config


def csr(directory, cn):
    d = Path(directory)
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(d / f"{cn}-key.pem"),
                    "-out", str(d / f"{cn}.csr"), "-subj", f"/CN={cn}"],
                   check=True, capture_output=True, timeout=60)
    return (d / f"{cn}.csr").read_text()


def claim(token, body_overrides=None, ca=None):
    host, port = token["claim"].rsplit(":", 1)
    ctx = ssl.create_default_context(cadata=ca or token["ca"])
    c = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    body = {"id": token["id"], "secret": token["secret"], "site": "a", "csr": token["_csr"]}
    body.update(body_overrides or {})
    c.request("POST", "/claim", json.dumps(body))
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"{}")


def claims_router(router_factory, tmp_path, name="b"):
    ca = make_ca(tmp_path, "site-ca")
    cert, key = issue(ca, tmp_path / "certs", name)
    cfg = router_config(name, [profile(name, cert, key, ca / "ca.pem")],
                        listeners=[{"name": "links", "host": "127.0.0.1", "port": 0,
                                    "role": "inter-router", "tls_profile": name},
                                   {"name": "plain-links", "host": "127.0.0.1", "port": 0,
                                    "role": "inter-router"}])
    cfg["claims"] = {"host": "127.0.0.1", "port": 0, "tls_profile": name,
                     "ca_certificate": str(ca / "ca.pem"), "ca_key": str(ca / "ca-key.pem"),
                     "state_file": str(tmp_path / "tokens.json"), "advertise_host": "127.0.0.1"}
    return router_factory(cfg, name=name), ca


def new_token(router, tmp_path, **body):
    r = router.api("POST", "/api/v1/tokens", token=TOKEN, body=body)
    assert r.status == 201, r.body
    t = r.json()
    t["_csr"] = csr(tmp_path, "a")
    return t


def test_token_content_and_successful_claim(router_factory, tmp_path):
    b, ca = claims_router(router_factory, tmp_path)
    t = new_token(b, tmp_path, expires_seconds=600, uses=1)
    assert t["site"] == "b" and t["uses"] == 1 and t["version"] == 1
    # TLS inter-router listeners only (not the plain one).
    assert t["links"] == [f"127.0.0.1:{b.ports['links']}"]
    assert t["ca"] == (ca / "ca.pem").read_text()
    assert abs(t["expires"] - (time.time() + 600)) < 30
    assert t["signature"]
    status, body = claim(t)
    assert status == 200, body
    cert = tmp_path / "issued.pem"
    cert.write_text(body["certificate"])
    out = subprocess.run(["openssl", "verify", "-CAfile", str(ca / "ca.pem"), str(cert)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-subject", "-ext",
                           "extendedKeyUsage"], capture_output=True, text=True).stdout
    assert "CN = a" in text and "TLS Web Client Authentication" in text
    listed = get(b, "tokens")
    assert listed[0]["id"] == t["id"] and listed[0]["used"] == 1
    assert listed[0]["redeemed_by"] == ["a"] and "secret" not in listed[0]


def test_refusals(router_factory, tmp_path):
    b, _ = claims_router(router_factory, tmp_path)
    t = new_token(b, tmp_path, uses=1)
    assert claim(t)[0] == 200
    status, body = claim(t)
    assert status == 403 and body["error"] == "the token has already been used (1 of 1 use)"
    t2 = new_token(b, tmp_path, uses=2)
    status, body = claim(t2, {"secret": t2["secret"][:-2] + "xx"})
    assert status == 403 and "not valid for site 'b'" in body["error"]
    status, body = claim(t2, {"id": "no-such-id"})
    assert status == 403 and "not valid for site 'b'" in body["error"]
    status, body = claim(t2, {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"})
    assert status == 400 and "certificate request is not valid" in body["error"]
    # A key instead of a request is refused (the redeeming site keeps its key).
    status, body = claim(t2, {"csr": (tmp_path / "a-key.pem").read_text()})
    assert status == 400 and "PEM certificate request" in body["error"]
    status, body = claim(t2, {"site": "b"})
    assert status == 400 and "cannot link to itself" in body["error"]
    status, body = claim(t2, {"site": "bad name"})
    assert status == 400
    # None of these used the token up.
    assert claim(t2)[0] == 200 and claim(t2)[0] == 200
    assert claim(t2)[0] == 403
    t3 = new_token(b, tmp_path, expires_seconds=1)
    time.sleep(1.5)
    status, body = claim(t3)
    assert status == 403 and body["error"].startswith("the token expired at ")
    b.wait_for_log(r"claims: refused token .* expired")


def test_a_site_name_that_is_a_router_id_in_the_network_is_refused(router_factory, tmp_path):
    """The site name becomes the linked router's id: one already in the
    network (here c, linked to b) would let the new site take c's place.
    Before, the redeemer chose any name; now 409, counted, and the token is
    not used up."""
    b, _ = claims_router(router_factory, tmp_path)
    cfg = make_config(router_id="c", hello_interval_ms=200, dead_interval_ms=1000)
    cfg["connectors"] = [{"name": "to-b", "host": "127.0.0.1", "port": b.ports["plain-links"],
                          "role": "inter-router"}]
    router_factory(cfg, name="c")
    eventually(20, lambda: "c" in router_ids(b), what="a path from b to c")
    t = new_token(b, tmp_path, uses=1)
    status, body = claim(t, {"site": "c"})
    assert status == 409, body
    assert "'c' is already a router id in this network" in body["error"]
    b.wait_for_log(r"claims: refused token .* from site 'c': that name is already a router id")
    metrics = b.api("GET", "/metrics", token=TOKEN).body.decode()
    assert re.search(r"^vane_claims_id_in_use_total 1$", metrics, re.M), metrics
    assert claim(t)[0] == 200


def test_issue_validation_and_revoke(router_factory, tmp_path):
    b, _ = claims_router(router_factory, tmp_path)
    for body in ({"uses": 0}, {"expires_seconds": 0}, {"uses": "1"}, {"colour": 1}):
        r = b.api("POST", "/api/v1/tokens", token=TOKEN, body=body)
        assert r.status == 400, (body, r.body)
    t = new_token(b, tmp_path)
    assert b.api("DELETE", f"/api/v1/tokens/{t['id']}", token=TOKEN).status == 204
    assert b.api("DELETE", f"/api/v1/tokens/{t['id']}", token=TOKEN).status == 404
    assert claim(t)[0] == 403


def test_state_survives_a_restart(router_factory, tmp_path):
    b, _ = claims_router(router_factory, tmp_path)
    used = new_token(b, tmp_path)
    unused = new_token(b, tmp_path)
    assert claim(used)[0] == 200
    b.stop()
    b2 = router_factory(b.config, name="b2")
    # Port 0 in the configuration: the restarted router listens elsewhere.
    port = b2.wait_for_log(r"claims listening on 127\.0\.0\.1:(\d+)").group(1)
    for t in (used, unused):
        t["claim"] = f"127.0.0.1:{port}"
    assert claim(used)[0] == 403
    assert claim(unused)[0] == 200
    assert {t["id"] for t in get(b2, "tokens")} == {used["id"], unused["id"]}
    # Only hashes of the secrets are kept.
    state = (tmp_path / "tokens.json").read_text()
    assert used["secret"] not in state and unused["secret"] not in state


def test_a_router_without_claims_issues_no_tokens(router_factory, tmp_path):
    r = router_factory(router_config("x", []), name="x")
    reply = r.api("POST", "/api/v1/tokens", token=TOKEN, body={})
    assert reply.status == 409 and "no claims section" in reply.json()["error"]


def test_idle_clients_are_dropped_quickly(router_factory, tmp_path):
    """The claims port is open to anyone: a client that says nothing is
    dropped after 5 s, so idle sockets cannot hold every session."""
    import socket
    b, _ = claims_router(router_factory, tmp_path)
    t = new_token(b, tmp_path)
    host, port = t["claim"].rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=15)
    start = time.monotonic()
    try:
        data = s.recv(100)  # EOF once the router gives up on the handshake
    except ConnectionResetError:
        data = b""
    elapsed = time.monotonic() - start
    s.close()
    assert data == b"" and 3 < elapsed < 12, (data, elapsed)
    assert claim(t)[0] == 200  # and the endpoint still serves
