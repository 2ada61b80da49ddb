"""The management API and the claims endpoint bound what their clients can
hold: connections in all and per source address, and deadlines for the TLS
handshake and each request's header. A few silent or trickling sockets from
one host must not lock everyone else out. Clients on other source addresses
are 127.0.0.2, 127.0.0.3 (all of 127/8 is loopback on Linux)."""

import re
import socket
import ssl
import time

from prometheus_client.parser import text_string_to_metric_families
from test_claims import claim, claims_router, new_token
from test_tls import TOKEN
from vane_harness import eventually, make_config


def mgmt_router(router_factory, **limits):
    cfg = make_config()
    cfg["management"] = {"port": 0, **limits}
    return router_factory(cfg)


def http_get(port, path="/healthz", source="127.0.0.3", timeout=5):
    """A GET from `source`; returns (status, body) or None if refused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: vaned\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return None
    finally:
        s.close()
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def metric_value(text, name, **labels):
    for fam in text_string_to_metric_families(text):
        for sample in fam.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return sample.value
    return 0.0


def metric(port, name, **labels):
    res = http_get(port, "/metrics", source="127.0.0.4")
    assert res and res[0] == 200, res
    return metric_value(res[1], name, **labels)


def silent(port, source="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def closed_after(sock, timeout):
    """Seconds until the peer closed `sock`, or None within `timeout`."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (socket.timeout, TimeoutError):
        return None
    except OSError:
        pass
    return time.monotonic() - start


def test_one_source_cannot_lock_out_the_others(router_factory):
    r = mgmt_router(router_factory, max_connections_per_source=3)
    port = r.management_port
    held = [silent(port) for _ in range(3)]
    try:
        extra = silent(port)
        t = closed_after(extra, 5)
        assert t is not None and t < 2, f"the 4th socket from one address was not refused ({t})"
        extra.close()
        # Everyone else is served meanwhile.
        assert http_get(port, source="127.0.0.2")[0] == 200
        assert metric(port, "vane_http_refusals_total", server="management",
                      limit="max_connections_per_source") >= 1
        assert metric(port, "vane_http_refusals_total", server="management",
                      limit="max_connections") == 0
        # A place freed is a place taken.
        held.pop().close()
        eventually(5, lambda: http_get(port, source="127.0.0.1") is not None,
                   what="127.0.0.1 served again")
    finally:
        for s in held:
            s.close()
    assert re.search(r"management: \d+ connection\(s\) refused \(last from 127\.0\.0\.1\): "
                     r"limit max_connections_per_source reached", r.log_text())


def test_silent_and_trickling_clients_are_cut_at_the_header_deadline(router_factory):
    r = mgmt_router(router_factory, header_timeout_ms=1000)
    port = r.management_port
    quiet = silent(port)
    trickle = silent(port, "127.0.0.2")
    trickle.sendall(b"GET /healthz HTTP/1.1\r\n")
    start = time.monotonic()
    closed = None
    # One header byte every 200 ms: each byte would reset an idle timer,
    # but not the deadline.
    while time.monotonic() - start < 6:
        try:
            trickle.sendall(b"X")
        except OSError:
            closed = time.monotonic() - start
            break
        trickle.settimeout(0.2)
        try:
            if trickle.recv(4096) == b"":
                closed = time.monotonic() - start
                break
        except (socket.timeout, TimeoutError):
            pass
        except OSError:
            closed = time.monotonic() - start
            break
    trickle.close()
    assert closed is not None and closed < 3, f"a trickling header was not cut ({closed})"
    t = closed_after(quiet, 5)
    assert t is not None, "a silent client was not closed"
    quiet.close()
    assert metric(port, "vane_http_header_timeouts_total", server="management") >= 2
    # A client that sends its request at once is served.
    assert http_get(port)[0] == 200


def test_idle_keep_alive_connection_is_closed(router_factory):
    r = mgmt_router(router_factory, idle_timeout_ms=1000, header_timeout_ms=10000)
    port = r.management_port
    s = silent(port)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: vaned\r\n\r\n")
    s.settimeout(5)
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
    t = closed_after(s, 5)
    assert t is not None and t < 3, f"an idle keep-alive connection stayed open ({t})"
    s.close()


def test_claims_endpoint_serves_while_one_source_holds_its_cap(router_factory, tmp_path):
    b, _ = claims_router(router_factory, tmp_path)
    t = new_token(b, tmp_path)
    host, port = t["claim"].rsplit(":", 1)
    port = int(port)
    # claims allow 4 connections per source by default.
    held = [silent(port) for _ in range(4)]
    try:
        extra = silent(port)
        closed = closed_after(extra, 3)
        assert closed is not None and closed < 2, "a 5th silent socket was not refused"
        extra.close()
        # A TLS client from another address still gets its answer.
        raw = silent(port, "127.0.0.2")
        ctx = ssl.create_default_context(cadata=t["ca"])
        ctx.check_hostname = False
        with ctx.wrap_socket(raw) as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert tls.recv(100).startswith(b"HTTP/1.1 ")
    finally:
        for s in held:
            s.close()
    # Once they are gone the claim goes through from 127.0.0.1.
    assert claim(t)[0] == 200
    res = b.api("GET", "/metrics", token=TOKEN)
    assert metric_value(res.body.decode(), "vane_http_refusals_total", server="claims",
                        limit="max_connections_per_source") >= 1


def test_total_cap_refuses_every_source(router_factory):
    r = mgmt_router(router_factory, max_connections=3, max_connections_per_source=8)
    port = r.management_port
    held = [silent(port) for _ in range(3)]
    try:
        # Accepted in order: the three are held before this one is looked at.
        extra = silent(port, "127.0.0.2")
        t = closed_after(extra, 5)
        assert t is not None and t < 2, f"a connection over max_connections was kept ({t})"
        extra.close()
    finally:
        for s in held:
            s.close()
    eventually(10, lambda: http_get(port, source="127.0.0.2") is not None, what="served again")
    assert metric(port, "vane_http_refusals_total", server="management",
                  limit="max_connections") >= 1
    assert metric(port, "vane_http_refusals_total", server="management",
                  limit="max_connections_per_source") == 0


def test_later_request_header_deadline_starts_at_its_first_byte(router_factory):
    """On a kept-alive connection the wait for the next request is the idle
    timeout; its header then has header_timeout_ms from its first byte."""
    r = mgmt_router(router_factory, header_timeout_ms=1000, idle_timeout_ms=3000)
    port = r.management_port
    get = b"GET /healthz HTTP/1.1\r\nHost: vaned\r\n\r\n"

    def answer(sock):
        data = b""
        while not data.endswith(b"}\n"):
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        return data
    s = silent(port)
    s.sendall(get)
    assert answer(s).startswith(b"HTTP/1.1 200")
    time.sleep(1.8)  # past the header deadline, within the idle timeout
    s.sendall(get)
    assert answer(s).startswith(b"HTTP/1.1 200")
    s.sendall(b"G")  # a request that starts, then trickles nothing
    t = closed_after(s, 5)
    s.close()
    assert t is not None and 0.7 < t < 2.5, t
    assert metric(port, "vane_http_header_timeouts_total", server="management") == 1


def test_reload_says_management_limits_need_a_restart(router_factory):
    """The management server is made at start: a reload that changes its
    limits (or host, port, token) says that a restart applies them, and the
    running server keeps the limits it has."""
    r = mgmt_router(router_factory, max_connections_per_source=2)
    port = r.management_port
    cfg = dict(r.config)
    cfg["management"] = dict(cfg["management"], max_connections_per_source=50)
    line = r.reload(cfg)
    assert "reload done" in line, line
    r.wait_for_log(r"reload: management \(host, port, token, tls_profile or its connection "
                   r"limits\) changed; restart vaned to apply it")
    # Still two per source: a third silent socket from one host is refused.
    held = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port))
            held.append(s)
        assert http_get(port, source="127.0.0.1") is None
        assert http_get(port, source="127.0.0.2")[0] == 200
    finally:
        for s in held:
            s.close()
