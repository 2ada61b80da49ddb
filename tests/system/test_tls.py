"""TLS and authentication in the router: mutually authenticated router links,
server name checks, refused credentials (logged and counted on both sides,
the rest of the network unaffected), SASL PLAIN and EXTERNAL on client
listeners, and certificates replaced by a reload without dropping links.

Certificates are made with the openssl command; clients are Qpid Proton's
Python binding (BlockingConnection with an SSLDomain)."""

import secrets
import ssl
import subprocess
import time
from pathlib import Path

import pytest
from proton import Message, SSLDomain
from proton import ConnectionException
from proton.reactor import AtMostOnce
from proton.utils import BlockingConnection

from vane_harness import eventually, make_config

TOKEN = "tls-test-token-0123456789"


# --------------------------------------------------------------------------
# Certificates

def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(directory, name):
    """A CA (ca.pem, ca-key.pem) in directory/name."""
    d = Path(directory) / name
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "2", "-keyout", str(d / "ca-key.pem"), "-out", str(d / "ca.pem"),
             "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return d


def issue(ca_dir, directory, name, cn=None, ips=("127.0.0.1",), dns=("localhost",)):
    """A certificate for `cn` signed by the CA in ca_dir: (cert, key) paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key, csr, cert = d / f"{name}-key.pem", d / f"{name}.csr", d / f"{name}.pem"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn or name}")
    ext = d / f"{name}.ext"
    san = ",".join([f"IP:{i}" for i in ips] + [f"DNS:{n}" for n in dns])
    ext.write_text(f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n"
                   "basicConstraints=critical,CA:FALSE\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_dir / "ca.pem"),
             "-CAkey", str(ca_dir / "ca-key.pem"), "-set_serial", "0x" + secrets.token_hex(12),
             "-days", "2", "-out", str(cert), "-extfile", str(ext))
    return cert, key


def self_signed(directory, name):
    d = Path(directory)
    cert, key = d / f"{name}.pem", d / f"{name}-key.pem"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "2", "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
             "-addext", "subjectAltName=IP:127.0.0.1")
    return cert, key


# --------------------------------------------------------------------------
# Routers

def router_config(rid, profiles, listeners=(), connectors=()):
    cfg = make_config(router_id=rid, hello_interval_ms=200, dead_interval_ms=1000,
                      listeners=[{"name": "amqp", "host": "127.0.0.1", "port": 0,
                                  "role": "normal"}, *listeners])
    cfg["management"] = {"host": "127.0.0.1", "port": 0, "token": TOKEN}
    cfg["tls_profiles"] = profiles
    if connectors:
        cfg["connectors"] = list(connectors)
    return cfg


def profile(name, cert, key, ca):
    return {"name": name, "certificate": str(cert), "key": str(key), "ca": str(ca)}


def get(router, path):
    r = router.api("GET", "/api/v1/" + path, token=TOKEN)
    assert r.status == 200, (path, r.status, r.body)
    return r.json()


def router_ids(router):
    return {r["id"] for r in get(router, "routers")["routers"] if not r["self"]}


def listener(router, name):
    return next(x for x in get(router, "listeners") if x["name"] == name)


def connector(router, name):
    return next(x for x in get(router, "connectors") if x["name"] == name)


def send_receive(sender, receiver, address, body, **kw):
    """One message from a client of router `sender` to a client of router
    `receiver`. The receiver runs in a thread of its own: a blocking
    connection moves bytes only while it is waited on."""
    import threading
    rc = BlockingConnection(f"127.0.0.1:{receiver.port}", timeout=10)
    got = []
    try:
        rx = rc.create_receiver(address, credit=10)

        def receive():
            got.append(rx.receive(timeout=15).body)  # pre-settled: nothing to accept
        t = threading.Thread(target=receive)
        t.start()
        if sender is not receiver:
            # The sending router must know of the consumer first.
            eventually(10, lambda: any(a["address"] == address and a["remote_routers"]
                                       for a in get(sender, "addresses")),
                       what=f"{address} known at the sending router")
        sc = BlockingConnection(f"127.0.0.1:{sender.port}", timeout=10, **kw)
        try:
            # Pre-settled: a blocking send would wait for the acceptance.
            sc.create_sender(address, options=AtMostOnce()).send(Message(body=body))
        finally:
            sc.close()
        t.join(20)
        return got[0] if got else None
    finally:
        rc.close()


@pytest.fixture
def pki(tmp_path):
    """A CA and certificates for routers a, b and c."""
    ca = make_ca(tmp_path, "site-ca")
    certs = {r: issue(ca, tmp_path / "certs", r) for r in ("a", "b", "c")}
    return ca, certs


def linked_pair(router_factory, pki, b_extra_listeners=()):
    ca, certs = pki
    b = router_factory(router_config(
        "b", [profile("b", *certs["b"], ca / "ca.pem")],
        listeners=[{"name": "links", "host": "127.0.0.1", "port": 0, "role": "inter-router",
                    "tls_profile": "b"}, *b_extra_listeners]), name="b")
    a = router_factory(router_config(
        "a", [profile("a", *certs["a"], ca / "ca.pem")],
        connectors=[{"name": "to-b", "host": "127.0.0.1", "port": b.ports["links"],
                     "role": "inter-router", "tls_profile": "a"}]), name="a")
    eventually(15, lambda: router_ids(a) == {"b"} and router_ids(b) == {"a"},
               what="a and b linked over TLS")
    return a, b


# --------------------------------------------------------------------------
# Router links

def test_mutual_tls_link_carries_messages(router_factory, pki):
    a, b = linked_pair(router_factory, pki)
    # Both ends see a TLS connection, and whose certificate the peer showed.
    conns_b = [c for c in get(b, "connections") if c["role"] == "inter-router"]
    assert len(conns_b) == 1 and conns_b[0]["tls"].startswith("TLS"), conns_b
    assert conns_b[0]["tls_peer"] == "a"
    conns_a = [c for c in get(a, "connections") if c["role"] == "inter-router"]
    assert conns_a[0]["tls_peer"] == "b" and conns_a[0]["outgoing"] is True
    assert connector(a, "to-b")["state"] == "connected"
    assert send_receive(a, b, "tls/q", "over tls") == "over tls"
    assert send_receive(b, a, "tls/q2", "back") == "back"


def test_self_signed_router_cannot_join(router_factory, pki, tmp_path):
    ca, certs = pki
    a, b = linked_pair(router_factory, pki)
    # c trusts b's CA but shows a certificate no one signed.
    cert, key = self_signed(tmp_path, "intruder")
    c = router_factory(router_config(
        "c", [profile("c", cert, key, ca / "ca.pem")],
        connectors=[{"name": "to-b", "host": "127.0.0.1", "port": b.ports["links"],
                     "role": "inter-router", "tls_profile": "c"}]), name="c")
    # b refuses it: logged with the reason, and counted.
    b.wait_for_log(r"TLS handshake failed: .*certificate", timeout=15)
    eventually(10, lambda: listener(b, "links")["tls_failures"] >= 1, what="b counts the failure")
    # c logs why, and its connector says so.
    eventually(15, lambda: connector(c, "to-b")["last_error"] is not None, what="c's last_error")
    assert "TLS" in connector(c, "to-b")["last_error"]
    c.wait_for_log(r"of connector to-b: TLS: the peer refused the connection|"
                   r"of connector to-b: TLS handshake failed")
    eventually(10, lambda: connector(c, "to-b")["tls_failures"] >= 1, what="c counts it too")
    assert connector(c, "to-b")["state"] == "connecting"
    assert "c" not in router_ids(b)
    assert router_ids(c) == set()
    metrics = b.api("GET", "/metrics", token=TOKEN).body.decode()
    assert 'vane_listener_tls_failures_total{listener="links"}' in metrics
    # The network is unaffected.
    assert router_ids(a) == {"b"}
    assert send_receive(a, b, "tls/still", "fine") == "fine"


def test_router_with_another_networks_certificate_cannot_join(router_factory, pki, tmp_path):
    ca, certs = pki
    a, b = linked_pair(router_factory, pki)
    other = make_ca(tmp_path, "other-ca")
    cert, key = issue(other, tmp_path / "other", "d")
    d = router_factory(router_config(
        "d", [profile("d", cert, key, ca / "ca.pem")],
        connectors=[{"name": "to-b", "host": "127.0.0.1", "port": b.ports["links"],
                     "role": "inter-router", "tls_profile": "d"}]), name="d")
    eventually(15, lambda: listener(b, "links")["tls_failures"] >= 1, what="b refuses d")
    eventually(15, lambda: connector(d, "to-b")["last_error"] is not None, what="d's error")
    assert "d" not in router_ids(b) and router_ids(a) == {"b"}


def test_verify_router_id_binds_the_id_to_the_certificate(router_factory, pki):
    """With verify_router_id, a router whose certificate is valid but names
    another router ('c') cannot announce the id 'x'; 'c' itself links."""
    ca, certs = pki
    b = router_factory(router_config(
        "b", [profile("b", *certs["b"], ca / "ca.pem")],
        listeners=[{"name": "links", "host": "127.0.0.1", "port": 0, "role": "inter-router",
                    "tls_profile": "b", "verify_router_id": True}]), name="b")

    def dialer(rid):
        return router_factory(router_config(
            rid, [profile(rid, *certs["c"], ca / "ca.pem")],
            connectors=[{"name": "to-b", "host": "127.0.0.1", "port": b.ports["links"],
                         "role": "inter-router", "tls_profile": rid}]), name=rid)
    x = dialer("x")
    b.wait_for_log(r"refused: router id 'x' is not the name in its certificate \('c'\)")
    eventually(10, lambda: listener(b, "links")["auth_failures"] >= 1, what="counted")
    assert "x" not in router_ids(b) and router_ids(x) == set()
    x.stop()
    c = dialer("c")
    eventually(15, lambda: router_ids(b) == {"c"} and router_ids(c) == {"b"}, what="c links")


def test_connector_refuses_untrusted_server_and_wrong_name(router_factory, pki, tmp_path):
    ca, certs = pki
    # b's certificate names 127.0.0.2 only.
    bcert, bkey = issue(ca, tmp_path / "b2", "b", ips=("127.0.0.2",), dns=())
    b = router_factory(router_config(
        "b", [profile("b", bcert, bkey, ca / "ca.pem")],
        listeners=[{"name": "links", "host": "127.0.0.1", "port": 0, "role": "inter-router",
                    "tls_profile": "b"}]), name="b")
    other = make_ca(tmp_path, "other-ca")
    a = router_factory(router_config(
        "a", [profile("a", *certs["a"], ca / "ca.pem"),
              profile("untrusting", *certs["a"], other / "ca.pem")],
        connectors=[
            # The name 127.0.0.1 is not in b's certificate.
            {"name": "by-name", "host": "127.0.0.1", "port": b.ports["links"],
             "role": "inter-router", "tls_profile": "a"},
            # b's CA is not trusted.
            {"name": "untrusted", "host": "127.0.0.1", "port": b.ports["links"],
             "role": "inter-router", "tls_profile": "untrusting", "verify_host": False}]),
        name="a")
    eventually(15, lambda: connector(a, "by-name")["last_error"] is not None
               and connector(a, "untrusted")["last_error"] is not None, what="both refused")
    errors = {n: connector(a, n)["last_error"] for n in ("by-name", "untrusted")}
    assert all("certificate verify failed" in e for e in errors.values()), errors
    a.wait_for_log(r"of connector by-name: TLS handshake failed")
    assert router_ids(a) == set()
    # Without the name check (same CA) the link comes up.
    r = a.api("POST", "/api/v1/connectors", token=TOKEN,
              body={"name": "no-name-check", "host": "127.0.0.1", "port": b.ports["links"],
                    "role": "inter-router", "tls_profile": "a", "verify_host": False})
    assert r.status == 201, r.body
    eventually(15, lambda: router_ids(a) == {"b"}, what="link without the name check")


def test_edge_router_over_tls(router_factory, pki, tmp_path):
    ca, certs = pki
    b = router_factory(router_config(
        "b", [profile("b", *certs["b"], ca / "ca.pem")],
        listeners=[{"name": "edges", "host": "127.0.0.1", "port": 0, "role": "edge",
                    "tls_profile": "b"}]), name="b")
    edge_cfg = router_config(
        "e1", [profile("e1", *certs["c"], ca / "ca.pem")],
        connectors=[{"name": "up", "host": "127.0.0.1", "port": b.ports["edges"],
                     "role": "edge", "tls_profile": "e1"}])
    edge_cfg["router"]["mode"] = "edge"
    e = router_factory(edge_cfg, name="e1")
    eventually(15, lambda: e.api("GET", "/readyz").status == 200, what="edge attached over TLS")
    conns = [c for c in get(b, "connections") if c["role"] == "edge"]
    assert len(conns) == 1 and conns[0]["tls_peer"] == "c" and conns[0]["tls"], conns
    assert send_receive(e, b, "tls/edge", "from the edge") == "from the edge"
    # An edge router with a certificate from elsewhere is refused.
    other = make_ca(tmp_path, "other-ca")
    cert, key = issue(other, tmp_path / "other", "e2")
    bad = router_config("e2", [profile("e2", cert, key, ca / "ca.pem")],
                        connectors=[{"name": "up", "host": "127.0.0.1",
                                     "port": b.ports["edges"], "role": "edge",
                                     "tls_profile": "e2"}])
    bad["router"]["mode"] = "edge"
    e2 = router_factory(bad, name="e2")
    eventually(15, lambda: listener(b, "edges")["tls_failures"] >= 1, what="b refuses e2")
    assert e2.api("GET", "/readyz").status == 503


def test_plain_tcp_client_cannot_use_a_tls_router_listener(router_factory, pki):
    a, b = linked_pair(router_factory, pki)
    # A router without TLS at all dials b's TLS listener.
    c = router_factory(router_config(
        "c", [], connectors=[{"name": "to-b", "host": "127.0.0.1", "port": b.ports["links"],
                              "role": "inter-router"}]), name="c")
    eventually(15, lambda: listener(b, "links")["tls_failures"] >= 1, what="b refuses plain AMQP")
    assert "c" not in router_ids(b)
    assert c.alive() and b.alive()


# --------------------------------------------------------------------------
# Client listeners: TLS and SASL

@pytest.fixture
def secured(router_factory, pki, tmp_path):
    ca, certs = pki
    users = tmp_path / "users"
    # bob's password ("builder") as a crypt(3) SHA-512 hash: openssl passwd -6
    users.write_text("# name:password\nalice:wonderland\n"
                     "bob:$6$abcdefgh$8Iq8TGgzC4OgfMQCkbmLOQ7Hr2Ef.PgAqnpCQsiHMnIpldI6EGfVM5qvoHuXvnI"
                     "qbnz1inKvQS/4oDr68dZL81\n")
    r = router_factory(router_config(
        "s", [profile("s", *certs["b"], ca / "ca.pem")],
        listeners=[
            {"name": "secure", "host": "127.0.0.1", "port": 0, "role": "normal",
             "tls_profile": "s", "sasl_mechanisms": ["PLAIN", "EXTERNAL"],
             "users_file": str(users)},
            {"name": "tls-anon", "host": "127.0.0.1", "port": 0, "role": "normal",
             "tls_profile": "s"}]), name="s")
    return r, ca, certs


# The router's certificate names 127.0.0.1 as an IP address; Proton checks
# the peer's name against DNS names only, so clients ask for "localhost".
PEER = {"sni": "localhost"}


def client_domain(ca, cert=None):
    d = SSLDomain(SSLDomain.MODE_CLIENT)
    d.set_trusted_ca_db(str(ca / "ca.pem"))
    d.set_peer_authentication(SSLDomain.VERIFY_PEER_NAME)
    if cert:
        d.set_credentials(str(cert[0]), str(cert[1]), None)
    return d


def round_trip(port, ca, **kw):
    c = BlockingConnection(f"amqps://127.0.0.1:{port}", timeout=10,
                           ssl_domain=client_domain(ca, kw.pop("cert", None)), **PEER, **kw)
    try:
        rx = c.create_receiver("sasl/q", credit=10)
        c.create_sender("sasl/q", options=AtMostOnce()).send(Message(body="hi"))
        return rx.receive(timeout=10).body
    finally:
        c.close()


def test_plain_with_user_file(secured):
    r, ca, _ = secured
    port = r.ports["secure"]
    assert round_trip(port, ca, allowed_mechs="PLAIN", user="alice",
                      password="wonderland") == "hi"
    with pytest.raises(ConnectionException):
        round_trip(port, ca, allowed_mechs="PLAIN", user="alice", password="wrong")
    with pytest.raises(ConnectionException):
        round_trip(port, ca, allowed_mechs="PLAIN", user="mallory", password="wonderland")
    # A hashed password.
    assert round_trip(port, ca, allowed_mechs="PLAIN", user="bob", password="builder") == "hi"
    with pytest.raises(ConnectionException):
        round_trip(port, ca, allowed_mechs="PLAIN", user="bob", password="builde")
    eventually(10, lambda: listener(r, "secure")["auth_failures"] == 3, what="three failures")
    # The first failure is logged with its user; the two within the next
    # second only add to the counter (one line per second per listener).
    r.wait_for_log(r"authentication failed \(PLAIN as 'alice'\)")
    # ANONYMOUS is not offered here.
    with pytest.raises(ConnectionException):
        round_trip(port, ca, allowed_mechs="ANONYMOUS")
    assert listener(r, "secure")["sasl_mechanisms"] == ["PLAIN", "EXTERNAL"]


def tls_socket(port, ca):
    import socket
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def read_until_closed(sock, limit=65536):
    data = b""
    try:
        while len(data) < limit:
            chunk = sock.recv(4096)
            if not chunk:
                return data, True
            data += chunk
    except (TimeoutError, OSError):
        return data, False
    return data, False


def test_a_client_cannot_skip_or_bypass_sasl(secured):
    """Checked on the wire, not through a client library that might give up
    by itself: a bare AMQP header, and a hand-made ANONYMOUS sasl-init, on a
    listener that offers PLAIN and EXTERNAL only."""
    r, ca, _ = secured
    port = r.ports["secure"]
    s = tls_socket(port, ca)
    s.sendall(b"AMQP\x00\x01\x00\x00")
    data, closed = read_until_closed(s)
    s.close()
    assert closed, data
    assert b"\x00\x53\x10" not in data  # no AMQP open from the router
    # sasl-init (0x41): list8 of one symbol8 "ANONYMOUS"
    body = b"\x00\x53\x41" + b"\xc0\x0c\x01" + b"\xa3\x09ANONYMOUS"
    frame = (8 + len(body)).to_bytes(4, "big") + b"\x02\x01\x00\x00" + body
    s = tls_socket(port, ca)
    s.sendall(b"AMQP\x03\x01\x00\x00" + frame)
    data, closed = read_until_closed(s)
    s.close()
    assert data.startswith(b"AMQP\x03\x01\x00\x00"), data
    assert b"ANONYMOUS" not in data.split(b"\x00\x53\x44")[0]  # not among the mechanisms
    outcome = data.find(b"\x00\x53\x44")  # sasl-outcome
    assert outcome > 0, data
    # list8/list0 header, then the code: ubyte (0x50) 1 = auth failure
    tail = data[outcome + 3:]
    assert b"\x50\x01" in tail[:8], tail[:16]
    assert b"\x00\x53\x10" not in data
    eventually(10, lambda: listener(r, "secure")["auth_failures"] >= 1, what="counted")


def test_tls_handshakes_count_toward_max_connections(router_factory, pki):
    """Connections still in their TLS handshake hold resources: they count
    toward router.max_connections."""
    import socket
    ca, certs = pki
    cfg = router_config("b", [profile("b", *certs["b"], ca / "ca.pem")],
                        listeners=[{"name": "links", "host": "127.0.0.1", "port": 0,
                                    "role": "inter-router", "tls_profile": "b"}])
    cfg["router"]["max_connections"] = 3
    b = router_factory(cfg, name="b")
    idle = []
    for _ in range(6):  # one at a time, as a slow attacker would
        idle.append(socket.create_connection(("127.0.0.1", b.ports["links"]), timeout=5))
        time.sleep(0.1)
    try:
        def refused():
            text = b.api("GET", "/metrics", token=TOKEN).body.decode()
            line = next(x for x in text.splitlines()
                        if x.startswith("vane_connections_refused_total"))
            return float(line.split()[-1])
        # The management request itself is HTTP, not counted; 6 - 3 refused.
        eventually(10, lambda: refused() >= 3, what="connections over the limit refused")
    finally:
        for s in idle:
            s.close()
    # Silent peers (connect, say nothing, leave) are not TLS failures.
    time.sleep(0.3)
    assert listener(b, "links")["tls_failures"] == 0


def test_reload_warns_about_changed_security_settings(router_factory, pki):
    a, b = linked_pair(router_factory, pki)
    cfg = b.config
    cfg["listeners"][1]["cost"] = 5
    outcome = b.reload(cfg)
    assert "reload done" in outcome
    b.wait_for_log(r"reload: listener links changed; restart vaned to apply it")


def test_external_takes_the_certificate_identity(secured):
    r, ca, certs = secured
    port = r.ports["secure"]
    seen = {}
    c = BlockingConnection(f"amqps://127.0.0.1:{port}", timeout=10,
                           ssl_domain=client_domain(ca, certs["c"]), allowed_mechs="EXTERNAL",
                           **PEER)
    try:
        conns = [x for x in get(r, "connections") if x["listener"] == "secure"]
        seen = conns[0]
    finally:
        c.close()
    assert seen["user"] == "c" and seen["tls_peer"] == "c" and seen["tls"].startswith("TLS")


def test_tls_listener_with_anonymous(secured):
    r, ca, _ = secured
    assert round_trip(r.ports["tls-anon"], ca, allowed_mechs="ANONYMOUS") == "hi"
    # A client that does not trust the router's CA gets nowhere.
    with pytest.raises(Exception):
        c = BlockingConnection(f"amqps://127.0.0.1:{r.ports['tls-anon']}", timeout=5,
                               ssl_domain=client_domain(make_ca(r.workdir, "stranger")), **PEER)
        c.close()
    eventually(10, lambda: listener(r, "tls-anon")["tls_failures"] >= 1, what="counted")


def test_plain_without_tls_is_a_config_error(router_factory, tmp_path, vaned_bin):
    from vane_harness import run_vaned
    users = tmp_path / "users"
    users.write_text("alice:x\n")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("listeners:\n  - name: amqp\n    port: 0\n    sasl_mechanisms: [PLAIN]\n"
                   f"    users_file: {users}\n")
    code, _, err = run_vaned(vaned_bin, ["--config", str(cfg)], cwd=tmp_path)
    assert code != 0
    assert "bad.yaml:4" in err and "listeners[0].sasl_mechanisms" in err, err
    assert "tls_profile" in err


# --------------------------------------------------------------------------
# Certificates replaced at run time

def served_certificate(port):
    """The certificate (DER) a TLS server on 127.0.0.1:port presents."""
    import socket
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s) as t:
            return t.getpeercert(binary_form=True)


def test_reload_replaces_certificates_without_dropping_links(router_factory, pki, tmp_path):
    ca, certs = pki
    a, b = linked_pair(router_factory, pki)
    before = served_certificate(b.ports["links"])
    link = [c for c in get(b, "connections") if c["role"] == "inter-router"][0]
    # Renew b's certificate in place (same files), then SIGHUP.
    new_cert, new_key = issue(ca, tmp_path / "renewed", "b")
    Path(certs["b"][0]).write_bytes(new_cert.read_bytes())
    Path(certs["b"][1]).write_bytes(new_key.read_bytes())
    outcome = b.reload(b.config)
    assert "failed" not in outcome, outcome
    b.wait_for_log(r"tls certificates re-read")
    after = served_certificate(b.ports["links"])
    assert after != before and after == ssl.PEM_cert_to_DER_cert(new_cert.read_text())
    # The link made with the old certificate is still the same connection.
    still = [c for c in get(b, "connections") if c["role"] == "inter-router"]
    assert len(still) == 1 and still[0]["opened_ms"] == link["opened_ms"]
    assert send_receive(a, b, "tls/renewed", "ok") == "ok"
    # A new link (a restarted a) is made with the new certificate.
    a.stop()
    a2 = router_factory(a.config, name="a2")
    eventually(15, lambda: router_ids(a2) == {"b"}, what="a relinks after the renewal")
