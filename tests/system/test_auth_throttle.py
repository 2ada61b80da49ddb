"""SASL PLAIN is throttled per source address: a source that failed
router.max_auth_failures_per_source times within auth_failure_window_ms is
refused without a password check (the same auth failure as a wrong
password) until its window ends, while other sources log in as usual. The
refusals are counted (vane_auth_throttled_total) and logged once per source
and window.

The client here is a hand-made SASL exchange over TLS on a raw socket, so
that it can bind its source address (127.0.0.2 is "another host" on
loopback); a Proton client confirms what a real application sees."""

import re
import socket
import ssl
import time

import pytest
from proton import ConnectionException, Message
from proton.reactor import AtMostOnce
from proton.utils import BlockingConnection

from test_tls import PEER, TOKEN, client_domain, pki, profile, router_config  # noqa: F401
from test_http_limits import metric_value
from vane_harness import eventually

OTHER = "127.0.0.2"
# bob's password ("builder") as a crypt(3) SHA-512 hash: openssl passwd -6
BOB = "$6$abcdefgh$8Iq8TGgzC4OgfMQCkbmLOQ7Hr2Ef.PgAqnpCQsiHMnIpldI6EGfVM5qvoHuXvnIqbnz1inKvQS/4oDr68dZL81"


def plain_router(router_factory, pki, tmp_path, **router_fields):
    ca, certs = pki
    users = tmp_path / "users"
    users.write_text(f"alice:wonderland\nbob:{BOB}\n")
    cfg = router_config("s", [profile("s", *certs["b"], ca / "ca.pem")],
                        listeners=[{"name": "secure", "host": "127.0.0.1", "port": 0,
                                    "role": "normal", "tls_profile": "s",
                                    "sasl_mechanisms": ["PLAIN"], "users_file": str(users)}])
    cfg["router"].update(router_fields)
    return router_factory(cfg, name="s"), ca


def _frames(data):
    """(descriptor code, body) of each SASL frame after the protocol header."""
    out, i = [], 8
    while i + 8 <= len(data):
        size = int.from_bytes(data[i:i + 4], "big")
        if i + size > len(data):
            break
        doff = data[i + 4] * 4
        body = data[i + doff:i + size]
        if body[:2] == b"\x00\x53":
            out.append((body[2], body[3:]))
        i += size
    return out


def sasl_plain(port, ca, user, password, source="127.0.0.1"):
    """The SASL outcome code of one PLAIN attempt (0 ok, 1 auth failure)."""
    ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.settimeout(10)
    raw.bind((source, 0))
    raw.connect(("127.0.0.1", port))
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    try:
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        fields = b"\xa3\x05PLAIN" + b"\xa0" + bytes([len(response)]) + response
        body = b"\x00\x53\x41" + b"\xc0" + bytes([len(fields) + 1, 2]) + fields  # sasl-init
        frame = (8 + len(body)).to_bytes(4, "big") + b"\x02\x01\x00\x00" + body
        s.sendall(b"AMQP\x03\x01\x00\x00" + frame)
        data = b""
        while True:
            for code, rest in _frames(data):
                if code == 0x44:  # sasl-outcome: list, then the code as ubyte
                    m = re.match(rb"(?:\xc0..|\xd0.{8})\x50(.)", rest, re.S)
                    assert m, rest
                    return m.group(1)[0]
            chunk = s.recv(4096)
            assert chunk, f"closed before the outcome: {data!r}"
            data += chunk
    finally:
        s.close()


def metric(router, name, **labels):
    text = router.api("GET", "/metrics", token=TOKEN).body.decode()
    return metric_value(text, name, **labels)


def proton_round_trip(port, ca, user, password):
    c = BlockingConnection(f"amqps://127.0.0.1:{port}", timeout=10, ssl_domain=client_domain(ca),
                           allowed_mechs="PLAIN", user=user, password=password, **PEER)
    try:
        rx = c.create_receiver("throttle/q", credit=1)
        c.create_sender("throttle/q", options=AtMostOnce()).send(Message(body="hi"))
        return rx.receive(timeout=10).body
    finally:
        c.close()


def test_failing_source_is_throttled_others_are_not(router_factory, pki, tmp_path):
    r, ca = plain_router(router_factory, pki, tmp_path, max_auth_failures_per_source=3,
                         auth_failure_window_ms=2000)
    port = r.ports["secure"]
    start = time.monotonic()
    assert [sasl_plain(port, ca, "alice", f"guess{i}") for i in range(3)] == [1, 1, 1]
    # The right password from the same source: refused, like a wrong one.
    assert sasl_plain(port, ca, "alice", "wonderland") == 1
    with pytest.raises(ConnectionException):
        proton_round_trip(port, ca, "alice", "wonderland")
    # Another host logs in as usual.
    assert sasl_plain(port, ca, "alice", "wonderland", source=OTHER) == 0
    assert time.monotonic() - start < 2, "too slow to test within the window"
    assert metric(r, "vane_auth_throttled_total") == 2
    assert metric(r, "vane_listener_auth_failures_total", listener="secure") == 5
    r.wait_for_log(r"authentication from 127\.0\.0\.1 throttled: 3 failures within 2000 ms "
                   r"\(router\.max_auth_failures_per_source 3\)")
    # Five failures within two seconds: one warning line for the first,
    # and at most one more standing for the rest, not one line per attempt.
    failure_lines = [l for l in r.log_text().splitlines()
                     if "on listener secure: authentication failed" in l]
    assert 1 <= len(failure_lines) <= 2, failure_lines
    if len(failure_lines) == 2:
        assert re.search(r"and \d+ more TLS or authentication failure", failure_lines[1])
    # Once its window has passed, the source logs in again.
    eventually(5, lambda: sasl_plain(port, ca, "alice", "wonderland") == 0,
               interval=0.25, what="the window passed")
    assert proton_round_trip(port, ca, "alice", "wonderland") == "hi"
    assert r.log_text().count("authentication from 127.0.0.1 throttled") == 1


def test_unknown_users_and_hashed_passwords_count_too(router_factory, pki, tmp_path):
    r, ca = plain_router(router_factory, pki, tmp_path, max_auth_failures_per_source=2,
                         auth_failure_window_ms=60000)
    port = r.ports["secure"]
    # A hashed password logs in again and again (the check is cached), and a
    # wrong one is still wrong after a right one.
    assert [sasl_plain(port, ca, "bob", "builder") for _ in range(5)] == [0] * 5
    assert sasl_plain(port, ca, "bob", "builde") == 1
    assert sasl_plain(port, ca, "mallory", "wonderland") == 1  # unknown user
    assert sasl_plain(port, ca, "bob", "builder") == 1  # throttled now
    assert sasl_plain(port, ca, "bob", "builder", source=OTHER) == 0
    assert metric(r, "vane_auth_throttled_total") == 1


def test_zero_never_throttles(router_factory, pki, tmp_path):
    r, ca = plain_router(router_factory, pki, tmp_path, max_auth_failures_per_source=0)
    port = r.ports["secure"]
    assert [sasl_plain(port, ca, "alice", "nope") for _ in range(12)] == [1] * 12
    assert sasl_plain(port, ca, "alice", "wonderland") == 0
    text = r.api("GET", "/metrics", token=TOKEN).body.decode()
    assert re.search(r"^vane_auth_throttled_total 0$", text, re.M), "no throttled counter"
