"""The HTTP/1.1 adaptor: http_listeners take HTTP requests, every request is
routed on its own across the router network to an http_connector of its
address, which sends it to a real origin server over a pooled keep-alive
connection. Real vaned processes, real clients (curl, http.client, raw
sockets for what clients will not send) and real servers (http_tools)."""

import hashlib
import http.client
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from http_tools import (ConnectProxy, OneShotServer, Origin, RawClient, StubbornServer,
                        WebSocketEcho, payload)
from tcp_tools import EchoServer, free_port
from test_tls import issue, make_ca
from vane_harness import eventually, run_vaned
from vane_network import Network

MiB = 1024 * 1024


def http_line(factory, n, origin_port, address="web", listener=None, connector=None, **kw):
    """Routers A.. in a line; http listener `in` on A, http connector `out`
    on the last router for `address` at 127.0.0.1:origin_port."""
    net = Network(factory, **kw)
    names = [chr(ord("A") + i) for i in range(n)]
    for x in names:
        net.interior(x)
    for a, b in zip(names, names[1:]):
        net.link(a, b)
    net.http_listener("A", "in", address, **(listener or {}))
    net.http_connector(names[-1], "out", address, origin_port, **(connector or {}))
    net.start().wait_converged()
    return net


def get(port, path, method="GET", body=None, headers=None, timeout=10.0):
    """One request on a new connection: (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def wait_served(port, path="/hello", timeout=20.0):
    """Until a request through listener `port` gets an answer from an origin
    (the connector's address has spread with the routing protocol)."""
    def served():
        try:
            status, headers, _ = get(port, path, timeout=5)
        except OSError:
            return False
        return status == 200 and "x-origin" in headers
    eventually(timeout, served, interval=0.1, what=f"an origin answer through port {port}")


def metrics(router):
    reply = router.api("GET", "/metrics")
    assert reply.status == 200
    return reply.body.decode()


def metric(text, name, **labels):
    """The value of one sample of a Prometheus text exposition (0 if absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        key, _, value = line.rpartition(" ")
        if key != name and not key.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in key for k, v in labels.items()):
            total += float(value)
    return total


# --------------------------------------------------------------------------
# Requests through 1, 2 and 3 routers


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_requests_through_routers(router_factory, servers, hops):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, hops, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)

    # http.client: one keep-alive connection, many requests and bodies
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    for i in range(10):
        c.request("GET", "/hello")
        r = c.getresponse()
        assert (r.status, r.read()) == (200, b"hello from o1\n")
        assert r.getheader("Via", "").startswith("1.1 "), r.getheaders()
    for n in (0, 1, 65537, 3 * MiB):
        c.request("GET", f"/bytes?n={n}&seed={n}")
        r = c.getresponse()
        assert r.status == 200
        assert hashlib.sha256(r.read()).digest() == hashlib.sha256(payload(n, n)).digest()
    body = payload(2 * MiB, 7)
    c.request("POST", "/sha256", body=body)
    r = c.getresponse()
    assert r.read().decode().split() == [hashlib.sha256(body).hexdigest(), str(len(body))]
    c.close()

    # curl, keep-alive across two URLs: one connection
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-o", "/dev/null",
         "-w", "%{http_code} %{num_connects}\\n",
         f"http://127.0.0.1:{port}/hello", f"http://127.0.0.1:{port}/bytes?n=100000"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["200", "1", "200", "0"], out.stdout


def test_curl_head_and_bodiless_answers(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    with RawClient(port) as c:
        # HEAD: a Content-Length but no body; the next answer must follow
        c.send(b"HEAD /bytes?n=5000 HTTP/1.1\r\nHost: t\r\n\r\n")
        status, h, body = c.response(head_only=True)
        assert (status, h.get("content-length"), body) == (200, "5000", b"")
        for code in (204, 304):
            c.send(f"GET /status?code={code} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            status, h, body = c.response()
            assert (status, body) == (code, b"")
        c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.response()[2] == b"hello from o1\n"
    out = subprocess.run(["curl", "-sSI", "--max-time", "10", f"http://127.0.0.1:{port}/hello"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0 and out.stdout.startswith("HTTP/1.1 200"), out


def test_every_request_routed_on_its_own(router_factory, servers):
    """120 requests on one keep-alive connection to an address with an
    http connector in each of 3 sites: every site serves a share."""
    origins = {x: servers(Origin(f"origin-{x}")) for x in "BCD"}
    net = Network(router_factory)
    net.interior("A")
    for x in "BCD":
        net.interior(x).link("A", x)
        net.http_connector(x, "out", "web", origins[x].port)
    net.http_listener("A", "in", "web")
    net.start().wait_converged()
    port = net.http_port("A", "in")

    def all_three():
        seen = set()
        for _ in range(6):
            seen.add(get(port, "/hello")[1].get("x-origin"))
        return seen == {f"origin-{x}" for x in "BCD"}
    eventually(20, all_three, interval=0.2, what="all three sites reachable")

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    served = {}
    for _ in range(120):
        c.request("GET", "/hello")
        r = c.getresponse()
        assert r.status == 200
        body = r.read()
        served[r.getheader("X-Origin")] = served.get(r.getheader("X-Origin"), 0) + 1
        assert body == f"hello from {r.getheader('X-Origin')}\n".encode()
    c.close()
    assert sorted(served) == [f"origin-{x}" for x in "BCD"], served
    assert min(served.values()) >= 20, served
    # the origins reuse connections: far fewer than 120 were opened
    assert sum(o.conns for o in origins.values()) < 60, {x: o.conns for x, o in origins.items()}


def test_forwarded_headers(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    status, _, body = get(port, "/headers", headers={
        "X-Forwarded-For": "203.0.113.9",
        "X-Forwarded-Proto": "https",          # a client may not claim this
        "X-Forwarded-Host": "evil.example",
        "Connection": "keep-alive, X-Secret",  # hop-by-hop: X-Secret must not go on
        "X-Secret": "s3cret",
        "Keep-Alive": "timeout=5",
        "Via": "1.0 client-proxy",
        "Host": "app.example:8080",
    })
    assert status == 200
    seen = {}
    for k, v in json.loads(body):
        seen.setdefault(k.lower(), []).append(v)
    assert seen["x-forwarded-for"] == ["203.0.113.9, 127.0.0.1"], seen
    assert seen["x-forwarded-proto"] == ["http"], seen
    assert seen["x-forwarded-host"] == ["app.example:8080"], seen
    assert seen["host"] == ["app.example:8080"], seen
    assert seen["via"][0].startswith("1.0 client-proxy, 1.1 "), seen
    for hop in ("x-secret", "keep-alive", "connection"):
        assert hop not in seen, (hop, seen)


# --------------------------------------------------------------------------
# Bodies


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_100MB_each_way(router_factory, servers, chunked):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    n = 100 * MiB
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", f"/bytes?n={n}&seed=3{'&chunked=1' if chunked else ''}")
    r = c.getresponse()
    assert r.status == 200
    h, got = hashlib.sha256(), 0
    while True:
        piece = r.read(1 << 20)
        if not piece:
            break
        h.update(piece)
        got += len(piece)
    assert got == n
    assert h.hexdigest() == hashlib.sha256(payload(n, 3)).hexdigest()

    data = payload(n, 4)

    def pieces():
        for i in range(0, n, 1 << 20):
            yield data[i:i + (1 << 20)]
    headers = {} if chunked else {"Content-Length": str(n)}
    c.request("POST", "/sha256", body=pieces(), headers=headers, encode_chunked=chunked)
    r = c.getresponse()
    assert r.read().decode().split() == [hashlib.sha256(data).hexdigest(), str(n)]
    c.close()


def test_chunked_both_ways_and_trailers(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    with RawClient(port) as c:
        pieces = [b"first ", b"x" * 70000, b" last"]
        req = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        for p in pieces:
            req += b"%x\r\n%s\r\n" % (len(p), p)
        req += b"0\r\nX-Trailer: yes\r\n\r\n"
        c.send(req)
        status, h, body = c.response()
        assert status == 200 and h.get("transfer-encoding") == "chunked", h
        assert body == b"".join(pieces)
        # trailers travel back
        c.send(b"GET /trailers HTTP/1.1\r\nHost: t\r\n\r\n")
        c.sock.settimeout(10)
        raw = b""
        while not raw.endswith(b"\r\n\r\n") or b"0\r\n" not in raw:
            raw += c.sock.recv(65536)
        assert b"X-Checksum: abc123\r\n\r\n" in raw, raw


def test_expect_100_continue(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    body = payload(300000, 5)
    with RawClient(port) as c:
        c.send(b"POST /sha256 HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body))
        status, _, _ = c.response()
        assert status == 100
        c.send(body)
        status, _, got = c.response()
        assert status == 200
        assert got.decode().split() == [hashlib.sha256(body).hexdigest(), str(len(body))]
    # curl sends Expect: 100-continue for large uploads by itself
    src = payload(2 * MiB, 6)
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--data-binary", "@-",
                          f"http://127.0.0.1:{port}/sha256"],
                         input=src, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode().split() == [hashlib.sha256(src).hexdigest(), str(len(src))]


def test_http10_client(router_factory, servers):
    """An HTTP/1.0 client's request goes on as 1.0: the answer is never
    chunked (1.0 cannot read that), and a kept-alive 1.0 client is kept."""
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    with RawClient(port) as c:
        c.send(b"GET /bytes?n=5000&seed=1&chunked=1 HTTP/1.0\r\n\r\n")
        status, h, body = c.response()
        assert status == 200 and "transfer-encoding" not in h, h
        assert h.get("x-request-version") == "HTTP/1.0", h
        assert body == payload(5000, 1)
        assert c.closed()
    with RawClient(port) as c:
        for i in range(3):
            c.send(b"GET /bytes?n=100&seed=%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            status, h, body = c.response()
            assert (status, body) == (200, payload(100, i)), h
            assert h.get("connection", "").lower() == "keep-alive", h


def test_pipelined_requests_answered_in_order(router_factory, servers):
    origins = {x: servers(Origin(f"origin-{x}")) for x in "BC"}
    net = Network(router_factory)
    net.interior("A")
    for x in "BC":
        net.interior(x).link("A", x)
        net.http_connector(x, "out", "web", origins[x].port)
    net.http_listener("A", "in", "web")
    net.start().wait_converged()
    port = net.http_port("A", "in")
    wait_served(port)
    with RawClient(port) as c:
        reqs = b""
        for i in range(20):
            ms = 50 if i % 3 == 0 else 0
            reqs += (f"GET /bytes?n={1000 + i}&seed={i}&x={ms} HTTP/1.1\r\nHost: t\r\n\r\n"
                     if ms == 0 else
                     f"GET /slow?ms={ms}&i={i} HTTP/1.1\r\nHost: t\r\n\r\n").encode()
        c.send(reqs)
        for i in range(20):
            status, h, body = c.response()
            assert status == 200
            if i % 3 == 0:
                assert body == b"slow\n", (i, body)
            else:
                assert body == payload(1000 + i, i), i


def test_200_concurrent_clients(router_factory, servers):
    origins = [servers(Origin(f"o{i}")) for i in range(2)]
    net = Network(router_factory)
    net.interior("A").interior("B").link("A", "B")
    net.http_listener("A", "in", "web")
    net.http_connector("B", "out0", "web", origins[0].port)
    net.http_connector("B", "out1", "web", origins[1].port)
    net.start().wait_converged()
    port = net.http_port("A", "in")
    wait_served(port)
    errors = []
    done = [0]
    lock = threading.Lock()

    def client(i):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for j in range(5):
                n = 1000 + i * 7 + j
                c.request("GET", f"/bytes?n={n}&seed={i}")
                r = c.getresponse()
                if r.status != 200 or r.read() != payload(n, i):
                    raise AssertionError(f"client {i} request {j}: bad answer {r.status}")
            c.close()
            with lock:
                done[0] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            with lock:
                errors.append(f"client {i}: {exc!r}")
    threads = [threading.Thread(target=client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]
    assert done[0] == 200


# --------------------------------------------------------------------------
# Routes


def test_routes_by_path_prefix_and_host(router_factory, servers):
    web, api, admin = (servers(Origin(n)) for n in ("web", "api", "admin"))
    net = Network(router_factory)
    net.interior("A").interior("B").link("A", "B")
    net.http_listener("A", "in", "web", routes=[
        {"path_prefix": "/api/", "address": "api"},
        {"host": "Admin.Example.com", "address": "admin"},
    ])
    net.http_connector("B", "web", "web", web.port)
    net.http_connector("B", "api", "api", api.port)
    net.http_connector("B", "admin", "admin", admin.port)
    net.start().wait_converged()
    port = net.http_port("A", "in")
    wait_served(port)

    def origin_of(path, host="t"):
        return get(port, path, headers={"Host": host})[1].get("x-origin")
    eventually(20, lambda: origin_of("/api/hello") == "api" and
               origin_of("/hello", "admin.example.com") == "admin",
               interval=0.2, what="all routes served")
    assert origin_of("/hello") == "web"
    assert origin_of("/api/v1/hello?x=/api/") == "api"
    assert origin_of("/apix") == "web"                     # prefix, not substring
    assert origin_of("/hello", "ADMIN.example.COM:8443") == "admin"   # case, port ignored
    assert origin_of("/api/x", "admin.example.com") == "api"  # first match wins


# --------------------------------------------------------------------------
# Errors are answers


def test_no_connector_is_503(router_factory):
    net = Network(router_factory)
    net.interior("A")
    net.http_listener("A", "in", "nowhere")
    net.start()
    port = net.http_port("A", "in")
    t0 = time.monotonic()
    status, h, body = get(port, "/x")
    assert status == 503 and b"nowhere" in body, (status, body)
    assert time.monotonic() - t0 < 2
    # the connection stays usable after a router answer
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        c.request("GET", "/x")
        r = c.getresponse()
        assert r.status == 503
        r.read()
    c.close()
    # ... unless the client closes it: the answer says so, and it closes
    for raw in (b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                b"GET /x HTTP/1.0\r\n\r\n"):
        with RawClient(port) as rc:
            rc.send(raw)
            status, h, body = rc.response()
            assert status == 503 and h.get("connection") == "close", (raw, status, h)
            assert rc.closed(), raw


@pytest.mark.parametrize("who", ["router", "origin"])
def test_early_answer_to_an_upload_is_read_not_reset(router_factory, servers, who):
    """An answer before the request's end (the router's 503: no connector;
    the origin's 400 before it reads the body) closes the connection, but
    the router first drains what the client is still sending: a client busy
    uploading reads the answer and a clean end, not a reset in the middle
    of its send."""
    if who == "router":
        net = Network(router_factory)
        net.interior("A")
        net.http_listener("A", "in", "nowhere")
        net.start()
        port, path, status, text = net.http_port("A", "in"), "/up", b"503", b"nowhere"
    else:
        origin = servers(Origin("o1"))
        net = http_line(router_factory, 1, origin.port)
        port, path, status, text = net.http_port("A", "in"), "/refuse", b"400", b"refused"
        wait_served(port)
    size = 4 << 20
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), size))
    sent = [0]
    failure = []

    def upload():
        chunk = b"u" * 65536
        try:
            while sent[0] < size:
                s.sendall(chunk)
                sent[0] += len(chunk)
        except OSError as e:
            failure.append(e)

    t = threading.Thread(target=upload)
    t.start()
    answer = b""
    try:
        while True:
            data = s.recv(65536)
            if not data:
                break
            answer += data
    except OSError as e:
        failure.append(e)
    t.join(10)
    s.close()
    assert answer.startswith(b"HTTP/1.1 " + status + b" "), answer[:200]
    assert b"\r\nConnection: close\r\n" in answer, answer[:200]
    assert text in answer, answer[:200]
    assert not failure and sent[0] == size, (failure, sent[0])


def test_removed_listener_serves_no_more_requests(router_factory, servers):
    """A removed http listener closes its client connections too: an idle
    keep-alive one at once, one in the middle of a request once that
    request has been answered; the port takes no new connections."""
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 1, origin.port, management={"port": 0})
    port = net.http_port("A", "in")
    wait_served(port)
    idle = RawClient(port)
    idle.send(b"GET /hello HTTP/1.1\r\nHost: a\r\n\r\n")
    assert idle.response()[0] == 200
    busy = RawClient(port)
    busy.send(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: a\r\n\r\n")
    time.sleep(0.3)   # the slow request is at the origin
    res = net["A"].api("DELETE", "/api/v1/http-listeners/in")
    assert res.status == 204, res
    t0 = time.monotonic()
    assert idle.closed(timeout=2), "an idle connection of a removed listener stayed open"
    assert time.monotonic() - t0 < 1.5
    status, h, body = busy.response()
    assert (status, body) == (200, b"slow\n"), (status, body)
    assert busy.closed(timeout=2), "the connection stayed open after its last answer"
    idle.close()
    busy.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.parametrize("mode", ["refused", "reset", "close", "garbage"])
def test_origin_failure_is_502(router_factory, servers, mode):
    if mode == "refused":
        origin_port = free_port()
    else:
        origin_port = servers(StubbornServer(mode)).port
    net = http_line(router_factory, 2, origin_port, management={"port": 0})
    port = net.http_port("A", "in")

    def answered():
        status, _, body = get(port, "/x")
        return status == 502 and body
    body = eventually(20, answered, interval=0.2, what="a 502 answer")
    assert b"web" in body, body
    t0 = time.monotonic()
    status, _, _ = get(port, "/x")
    assert status == 502 and time.monotonic() - t0 < 3
    assert metric(metrics(net["A"]), "vane_http_responses_total", **{"class": "5xx"}) >= 2


def test_request_on_a_dropped_kept_connection_is_sent_again(router_factory, servers):
    """The server closes a kept-alive connection as the next request arrives
    on it: the connector sends the request again on a new connection, and
    the client never notices."""
    server = servers(OneShotServer())
    net = http_line(router_factory, 2, server.port, listener={"response_timeout_ms": 5000})
    port = net.http_port("A", "in")
    eventually(20, lambda: get(port, "/")[0] == 200, interval=0.2, what="a first answer")
    for i in range(5):
        t0 = time.monotonic()
        status, _, body = get(port, f"/{i}", method="GET" if i % 2 else "POST",
                              body=None if i % 2 else b"x" * 1000)
        assert status == 200 and body.startswith(b"one-shot "), (i, status, body)
        assert time.monotonic() - t0 < 3, i
    assert server.conns >= 5, server.conns   # each request after the first found its connection dropped


def test_slow_origin_is_504(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port, listener={"response_timeout_ms": 700})
    port = net.http_port("A", "in")
    wait_served(port)
    t0 = time.monotonic()
    status, _, body = get(port, "/slow?ms=4000")
    took = time.monotonic() - t0
    assert status == 504 and b"web" in body, (status, body)
    assert 0.6 < took < 2.5, took
    # an answer in time still comes through
    assert get(port, "/slow?ms=100")[0] == 200


@pytest.mark.parametrize("mode", ["interim", "stall"])
def test_silent_server_after_answer_began(router_factory, servers, mode):
    """A server that answers 100 Continue, or half an answer, and then
    nothing: after response_timeout_ms of silence the client's connection is
    reset (part of an answer was written: no 504 can follow), and counted."""
    server = servers(StubbornServer(mode))
    net = http_line(router_factory, 1, server.port, listener={"response_timeout_ms": 800},
                    management={"port": 0})
    port = net.http_port("A", "in")
    eventually(20, lambda: server.conns > 0 or _poke(port), interval=0.2,
               what="a request reaching the server")
    with RawClient(port) as c:
        t0 = time.monotonic()
        c.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        seen = b""
        c.sock.settimeout(10)
        try:
            while True:
                piece = c.sock.recv(65536)
                if not piece:
                    break
                seen += piece
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
    assert 0.7 < took < 3.5, took
    assert b"504" not in seen, seen
    text = metrics(net["A"])
    assert metric(text, "vane_http_stalls_total") >= 1, text
    eventually(5, lambda: metric(metrics(net["A"]), "vane_http_requests_active") == 0,
               what="no request left active")


def _poke(port):
    """One request that may fail; False (for eventually)."""
    try:
        get(port, "/x", timeout=1)
    except OSError:
        pass
    return False


def test_request_head_trickling_in_gets_408(router_factory, servers):
    """A head must be whole within head_timeout_ms of its first byte, however
    steadily it trickles (slowloris)."""
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 1, origin.port, listener={"head_timeout_ms": 1000})
    port = net.http_port("A", "in")
    wait_served(port)
    with RawClient(port) as c:
        t0 = time.monotonic()
        status = None
        c.send(b"GET / HTTP/1.1\r\n")
        for i in range(40):
            try:
                c.send(b"X-%d: y\r\n" % i)
            except OSError:
                break
            time.sleep(0.1)
            c.sock.settimeout(0.01)
            try:
                data = c.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if data:
                status = int(data.split()[1])
            break
        took = time.monotonic() - t0
    assert status == 408, status
    assert 0.9 < took < 2.5, took
    assert wait_served(port) is None


# --------------------------------------------------------------------------
# Bad input


BAD_REQUESTS = {
    "cl-and-te": b"POST /sha256 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: t\r\n\r\n",
    "two-lengths": b"POST /sha256 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                   b"Content-Length: 40\r\n\r\nabcd",
    "te-not-chunked": b"POST /sha256 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
    "te-chunked-twice": b"POST /sha256 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "no-host": b"GET / HTTP/1.1\r\n\r\n",
    "bad-request-line": b"GET /\x01 HTTP/1.1\r\nHost: t\r\n\r\n",
    "bad-header": b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n",
    "bad-version": b"GET / HTTP/7.1\r\nHost: t\r\n\r\n",
    "non-utf8": b"GET /\xff\xfe HTTP/1.1\r\nHost: \xc3\x28\r\n\r\n",
    "oversized-header": b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
    "bad-chunk": b"POST /sha256 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"zz\r\nabc\r\n0\r\n\r\n",
}


def test_bad_requests_get_400_and_others_keep_working(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port, management={"port": 0})
    port = net.http_port("A", "in")
    wait_served(port)
    # a client in the middle of a keep-alive session all along
    bystander = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    bystander.request("GET", "/hello")
    assert bystander.getresponse().read() == b"hello from o1\n"
    before = len(origin.paths)
    for name, raw in BAD_REQUESTS.items():
        with RawClient(port) as c:
            c.send(raw)
            status, h, body = c.response()
            if name == "bad-chunk":
                # the head was fine and went on; the body could not be read:
                # the request is cut off at the server and the client answered
                assert status in (400, 502), (name, status, body)
            else:
                assert status == 400, (name, status, body)
                assert h.get("connection") == "close", (name, h)
            assert c.closed(), f"{name}: the connection stayed open"
        bystander.request("GET", "/hello")
        assert bystander.getresponse().read() == b"hello from o1\n", name
    # none of the rejected requests (nor a smuggled second one) reached the
    # origin: only the bystander's, and the bad-chunk head
    others = [p for p in origin.paths[before:] if p != "/hello"]
    assert others in ([], ["/sha256"]), others
    text = metrics(net["A"])
    assert metric(text, "vane_http_router_answers_total", status="400") >= len(BAD_REQUESTS) - 1


def test_heads_in_small_pieces(router_factory, servers):
    """A client that writes its request a few bytes at a time (as a slow
    link or a hostile client does) is served like any other."""
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 1, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    req = (b"POST /sha256 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
           b"X-Long: " + b"v" * 300 + b"\r\n\r\n4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n")
    with RawClient(port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(req), 5):
            c.send(req[i:i + 5])
            time.sleep(0.002)
        status, _, body = c.response()
        assert status == 200
        assert body.decode().split() == [hashlib.sha256(b"abcdefg").hexdigest(), "7"]


@pytest.mark.parametrize("line", [b"BREW /pot HTTP/1.1", b"FROB /x HTTP/1.1"])
def test_unsupported_methods_get_501(router_factory, servers, line):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 1, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    with RawClient(port) as c:
        c.send(line + b"\r\nHost: t\r\n\r\n")
        status, h, _ = c.response()
        assert status == 501 and h.get("connection") == "close"
        assert c.closed()


def test_header_limit_is_configurable(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 1, origin.port, listener={"max_header_bytes": 2048})
    port = net.http_port("A", "in")
    wait_served(port)
    assert get(port, "/hello", headers={"X-A": "a" * 1000})[0] == 200
    with RawClient(port) as c:
        c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: " + b"a" * 3000 + b"\r\n\r\n")
        assert c.response()[0] == 400
        assert c.closed()


def test_flow_records_and_metrics(router_factory, servers):
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port, management={"port": 0})
    port = net.http_port("A", "in")
    wait_served(port)
    for _ in range(3):
        assert get(port, "/status?code=404&secret=1")[0] == 404
    # (a request is counted when its answer has been written, which may be
    # just after the client has read it)
    def counted():
        text = metrics(net["A"])
        return (metric(text, "vane_http_responses_total", **{"class": "4xx"}) >= 3
                and metric(text, "vane_http_request_duration_seconds_count") >= 4)
    eventually(5, counted, interval=0.05, what="the requests in the metrics")
    reply = net["A"].api("GET", "/api/v1/flows")
    assert reply.status == 200
    recs = [f for f in json.loads(reply.body) if f["adaptor"] == "http"]
    mine = [f for f in recs if f.get("path") == "/status"]
    assert len(mine) >= 3, recs
    f = mine[-1]
    assert (f["method"], f["status"]) == ("GET", 404), f
    assert "secret" not in json.dumps(recs)


# --------------------------------------------------------------------------
# TLS at the edge and to the origin


def https_net(router_factory, servers, tmp_path, origin_ca=None):
    """A: https listener `in` (certificate of CA `edge-ca`); B: http
    connector to an HTTPS origin, verified with `origin_ca` (default: the
    CA that issued the origin's certificate)."""
    ca = make_ca(tmp_path, "edge-ca")
    edge_cert, edge_key = issue(ca, tmp_path / "edge", "edge")
    origin_cert, origin_key = issue(ca, tmp_path / "origin", "origin")
    origin = servers(Origin("tls-origin", tls=(origin_cert, origin_key)))
    verify_ca = origin_ca or ca
    net = Network(router_factory, management={"port": 0})
    net.interior("A").interior("B").link("A", "B")
    net.section("A", "tls_profiles", [{"name": "edge", "certificate": str(edge_cert),
                                       "key": str(edge_key)}])
    net.section("B", "tls_profiles", [{"name": "origin", "certificate": str(edge_cert),
                                       "key": str(edge_key), "ca": str(verify_ca / "ca.pem")}])
    net.http_listener("A", "in", "web", tls_profile="edge")
    net.http_connector("B", "out", "web", origin.port, tls_profile="origin")
    net.start().wait_converged()
    return net, ca, origin


def curl_https(port, ca, path="/hello", *extra):
    return subprocess.run(["curl", "-sS", "-v", "--max-time", "10", "--cacert", str(ca / "ca.pem"),
                           *extra, f"https://127.0.0.1:{port}{path}"],
                          capture_output=True, timeout=20)


def test_https_listener_and_origin(router_factory, servers, tmp_path):
    net, ca, origin = https_net(router_factory, servers, tmp_path)
    port = net.http_port("A", "in")

    def served():
        out = curl_https(port, ca)
        return out.returncode == 0 and out.stdout == b"hello from tls-origin\n"
    eventually(20, served, interval=0.2, what="an HTTPS answer through A and B")
    out = curl_https(port, ca, "/headers")
    assert out.returncode == 0, out.stderr
    assert b"ALPN: server accepted http/1.1" in out.stderr, out.stderr
    seen = {k.lower(): v for k, v in json.loads(out.stdout)}
    assert seen["x-forwarded-proto"] == "https", seen
    # keep-alive over TLS on both sides: many requests, few origin connections
    before = origin.conns
    out = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", str(ca / "ca.pem")]
                         + [f"https://127.0.0.1:{port}/bytes?n={1000 + i}" for i in range(20)]
                         + ["-o", "/dev/null"] * 20 + ["-w", "%{http_code} %{num_connects}\n"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split("\n")[:20]
    assert all(ln.startswith("200 ") for ln in lines), lines
    assert sum(int(ln.split()[1]) for ln in lines) == 1, lines   # one client connection
    assert origin.conns - before <= 2, origin.conns - before
    # a client that does not speak TLS is dropped and counted; others go on
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        s.settimeout(5)
        try:
            rest = s.recv(100)
        except ConnectionResetError:
            rest = b""
        assert not rest.startswith(b"HTTP/"), rest
    assert served()
    info = net["A"].api("GET", "/api/v1/http-listeners/in").json()
    assert info["tls_profile"] == "edge" and info["http"]["tls_failures"] >= 1, info


def test_https_origin_with_untrusted_certificate(router_factory, servers, tmp_path):
    other = make_ca(tmp_path, "other-ca")
    net, ca, origin = https_net(router_factory, servers, tmp_path, origin_ca=other)
    port = net.http_port("A", "in")

    def bad_gateway():
        out = curl_https(port, ca)
        return out.returncode == 0 and b"TLS handshake with the server failed" in out.stdout
    eventually(20, bad_gateway, interval=0.2, what="a 502 for an untrusted origin")
    assert origin.requests == 0
    info = net["B"].api("GET", "/api/v1/http-connectors/out").json()
    assert info["http"]["tls_failures"] >= 1, info


def test_https_profile_must_exist(vaned_bin, tmp_path):
    cfg = tmp_path / "v.yaml"
    cfg.write_text("http_listeners:\n  - {name: w, port: 0, address: web, tls_profile: nope}\n")
    rc, out, err = run_vaned(vaned_bin, ["--config", str(cfg)], tmp_path)
    assert rc != 0 and "http_listeners[0].tls_profile" in err and "nope" in err, (rc, out, err)


# --------------------------------------------------------------------------
# Upgrade (WebSocket) and CONNECT: a byte stream to one server


def ws_session(url, ssl_ctx=None, sessions=1):
    """`sessions` concurrent WebSocket sessions to `url`, each echoing a
    text, a 1 MiB binary message and 200 small ones in order; their close
    codes."""
    import asyncio

    import websockets

    async def one(i):
        async with websockets.connect(url, ssl=ssl_ctx, max_size=None, open_timeout=10,
                                      close_timeout=10) as c:
            await c.send(f"hello {i}")
            assert await c.recv() == f"hello {i}"
            big = payload(MiB, i)
            await c.send(big)
            assert await c.recv() == big
            for k in range(200):
                await c.send(f"m{i}.{k}")
            for k in range(200):
                assert await c.recv() == f"m{i}.{k}"
        return c.close_code

    async def run():
        return await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(sessions))), 60)
    return asyncio.run(run())


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
def test_websocket_through_two_routers(router_factory, servers, tmp_path, tls):
    import ssl

    import websockets
    ws = servers(WebSocketEcho())
    net = Network(router_factory, management={"port": 0})
    net.interior("A").interior("B").link("A", "B")
    ctx = None
    listener = {}
    if tls:
        ca = make_ca(tmp_path, "edge-ca")
        cert, key = issue(ca, tmp_path / "edge", "edge")
        net.section("A", "tls_profiles", [{"name": "edge", "certificate": str(cert),
                                           "key": str(key)}])
        listener["tls_profile"] = "edge"
        ctx = ssl.create_default_context(cafile=str(ca / "ca.pem"))
        ctx.check_hostname = False
    net.http_listener("A", "in", "chat", **listener)
    net.http_connector("B", "out", "chat", ws.port)
    net.start().wait_converged()
    port = net.http_port("A", "in")
    url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/chat"

    def opens():
        try:
            return ws_session(url, ctx) == [1000]
        except (OSError, websockets.exceptions.InvalidStatusCode):
            return False   # 503 until the connector's address has spread
    eventually(20, opens, interval=0.2, what="a WebSocket session through A and B")
    assert ws_session(url, ctx, sessions=10) == [1000] * 10
    seen = {k.lower(): v for k, v in ws.headers[-1].items()}
    assert seen["x-forwarded-for"] == "127.0.0.1", seen
    assert seen["x-forwarded-proto"] == ("https" if tls else "http"), seen
    assert seen["via"].startswith("1.1 "), seen
    for r in ("A", "B"):
        assert metric(metrics(net[r]), "vane_http_tunnels_total") >= 11, r
    recs = [f for f in net["A"].api("GET", "/api/v1/flows").json() if f["adaptor"] == "http"]
    assert any(f["status"] == 101 and f["path"] == "/chat" for f in recs), recs


def test_upgrade_not_granted_stays_http(router_factory, servers):
    """An origin that ignores Upgrade answers as usual: the client's
    connection goes on with its next request, and the origin's is reused."""
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port)
    port = net.http_port("A", "in")
    wait_served(port)
    conns = origin.conns
    with RawClient(port) as c:
        for _ in range(3):
            c.send(b"GET /headers HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\n"
                   b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n")
            status, h, body = c.response()
            assert status == 200 and h.get("connection") != "close", h
            seen = {k.lower(): v for k, v in json.loads(body)}
            assert seen["upgrade"] == "websocket" and seen["connection"] == "upgrade", seen
        c.send(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.response()[0] == 200
    assert origin.conns - conns <= 1, origin.conns - conns


def test_refused_upgrade_with_a_body(router_factory, servers):
    """An Upgrade POST whose server answers 400 and closes without reading
    the 20 MiB body: the client gets the 400 and nothing is left behind."""
    origin = servers(Origin("o1"))
    net = http_line(router_factory, 2, origin.port, management={"port": 0})
    port = net.http_port("A", "in")
    wait_served(port)
    body = b"b" * (20 * MiB)
    with RawClient(port, timeout=30) as c:
        c.send(b"POST /refuse HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\n"
               b"Upgrade: websocket\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            c.sock.sendall(body)
        except OSError:
            pass
        assert c.response()[0] == 400
    for r in ("A", "B"):
        eventually(10, lambda: metric(metrics(net[r]), "vane_http_requests_active") == 0,
                   what=f"no request left active on {r}")
    assert get(port, "/hello")[0] == 200


def test_unasked_switch_is_502(router_factory, servers):
    bad = servers(StubbornServer("switch"))
    net = http_line(router_factory, 1, bad.port)
    port = net.http_port("A", "in")
    eventually(20, lambda: get(port, "/x")[0] == 502, interval=0.2,
               what="a 502 for a 101 nobody asked for")
    status, _, body = get(port, "/x")
    assert status == 502 and b"101" in body, body


def test_connect_through_two_routers(router_factory, servers):
    """CONNECT goes to the connector's server (here a forward proxy); its 200
    turns the connection into a byte stream, half-closes included; a
    refused CONNECT leaves the connection HTTP."""
    target = servers(Origin("o1"))
    echo = servers(EchoServer())
    proxy = servers(ConnectProxy())
    net = http_line(router_factory, 2, proxy.port, management={"port": 0})
    port = net.http_port("A", "in")

    def tunnelled():
        out = subprocess.run(["curl", "-sS", "--max-time", "10", "-p", "-x",
                              f"http://127.0.0.1:{port}", f"http://127.0.0.1:{target.port}/hello"],
                             capture_output=True, timeout=20)
        return out.returncode == 0 and out.stdout == b"hello from o1\n"
    eventually(20, tunnelled, interval=0.2, what="curl through a CONNECT tunnel")
    assert f"127.0.0.1:{target.port}" in proxy.targets
    assert any("x-forwarded-for: 127.0.0.1" in h.lower() for h in proxy.seen), proxy.seen

    # raw: bytes both ways, then the client's half-close reaches the echo
    # server, whose close comes back
    data = payload(4 * MiB, 5)
    with RawClient(port, timeout=30) as c:
        c.send(f"CONNECT 127.0.0.1:{echo.port} HTTP/1.1\r\nHost: 127.0.0.1:{echo.port}\r\n\r\n"
               .encode())
        status, _, _ = c.response(head_only=True)
        assert status == 200
        got = bytearray(c.buf)
        sender = threading.Thread(target=lambda: (c.sock.sendall(data),
                                                  c.sock.shutdown(socket.SHUT_WR)))
        sender.start()
        while True:
            piece = c.sock.recv(65536)
            if not piece:
                break
            got += piece
        sender.join(30)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), len(got)

    # refused by the proxy: an ordinary answer, and the connection goes on
    with RawClient(port) as c:
        c.send(b"CONNECT blocked.invalid:443 HTTP/1.1\r\nHost: blocked.invalid:443\r\n\r\n")
        status, h, body = c.response()
        assert (status, body) == (403, b"not allowed: blocked.invalid:443\n"), (status, body)
        c.send(b"CONNECT blocked.invalid:80 HTTP/1.1\r\nHost: blocked.invalid:80\r\n\r\n")
        assert c.response()[0] == 403
    # the target closes first while the client still writes: the flows end
    closer = servers(StubbornServer("close"))
    with RawClient(port, timeout=30) as c:
        c.send(f"CONNECT 127.0.0.1:{closer.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert c.response(head_only=True)[0] == 200
        try:
            for _ in range(20):
                c.send(b"x" * 1000)
                time.sleep(0.05)
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    for r in ("A", "B"):
        eventually(10, lambda: metric(metrics(net[r]), "vane_http_requests_active") == 0,
                   what=f"no request left active on {r}")
    # a CONNECT the router cannot forward
    with RawClient(port) as c:
        c.send(b"CONNECT /x HTTP/1.1\r\nHost: t\r\n\r\n")
        assert c.response()[0] == 400
