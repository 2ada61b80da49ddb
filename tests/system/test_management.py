"""The management HTTP API (docs/management.md): probes, the JSON reads and
writes, bearer tokens and Prometheus metrics, against real vaned processes
(mostly three interior routers in a line, A -2- B -3- C) driven by real AMQP
clients and real TCP connections. HTTP is Python's http.client; /metrics is
read with prometheus_client's parser."""

import hashlib
import http.client
import random
import socket
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from proton import Message

from tcp_tools import EchoServer, connect, echo_roundtrip, recv_all, wait_echo
from vane_harness import eventually, make_config, never, run_vaned, self_signed_cert, to_yaml
from vane_network import Network

MGMT = {"port": 0}
TOKEN = "0123456789abcdef-token"




# --------------------------------------------------------------------------
# Helpers

def line3(factory, tcp=None, **kw):
    """A -2- B -3- C, every router with the management API. `tcp(net)` may
    declare tcp listeners and connectors before the routers start."""
    net = Network(factory, management=MGMT, **kw)
    net.interior("A").interior("B").interior("C")
    net.link("A", "B", cost=2).link("B", "C", cost=3)
    if tcp:
        tcp(net)
    return net.start().wait_converged()


def single(factory, management=None, name="solo", **router_extra):
    cfg = make_config(router_id=name, **router_extra)
    cfg["management"] = dict(management or MGMT)
    return factory(cfg, name=name)


def get(router, path, token=None):
    """GET `path` from `router`; asserts 200 and returns the decoded JSON."""
    res = router.api("GET", path, token=token)
    assert res.status == 200, f"GET {path} on {router.name}: {res.status} {res.body!r}"
    assert res.headers.get("content-type", "").startswith("application/json"), res.headers
    return res.json()


def by_key(items, key="name"):
    return {item[key]: item for item in items}


def routers_of(router):
    return by_key(get(router, "/api/v1/routers")["routers"], "id")


def addresses_of(router):
    return by_key(get(router, "/api/v1/addresses"), "address")


def entities(router):
    """Everything a bad request must leave as it was."""
    return {path: get(router, path) for path in
            ("/api/v1/tcp-listeners", "/api/v1/tcp-connectors", "/api/v1/listeners",
             "/api/v1/connectors")}


def metrics(router, token=None):
    """/metrics parsed by prometheus_client: {family name: Family}. Every
    family must have a TYPE (the parser calls untyped ones "unknown", also
    samples that stray from their family's block) and a HELP."""
    res = router.api("GET", "/metrics", token=token)
    assert res.status == 200, f"/metrics on {router.name}: {res.status} {res.body!r}"
    assert res.headers["content-type"].startswith("text/plain; version=0.0.4"), res.headers
    families = {}
    for fam in text_string_to_metric_families(res.body.decode()):
        assert fam.type in ("counter", "gauge", "histogram"), (
            f"family {fam.name} on {router.name} has no TYPE (samples {fam.samples[:3]})")
        assert fam.documentation, f"family {fam.name} has no HELP"
        assert fam.name not in families, f"family {fam.name} appears twice"
        families[fam.name] = fam
    return families


def sample(families, family, missing=None, **labels):
    """The value of the one sample of `family` whose labels include
    `labels`; `missing` (if not None) when there is none."""
    fam = families[family]
    name = family + "_total" if fam.type == "counter" else family
    hits = [s for s in fam.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    if not hits and missing is not None:
        return missing
    assert len(hits) == 1, f"{name}{labels}: {len(hits)} samples in {fam.samples}"
    return hits[0].value


def wait_idle(router, path):
    """Waits until the tcp entity at `path` has no open flow (a probe's flow
    may still be closing at the far router after the client saw its end)."""
    eventually(10, lambda: get(router, path)["counters"]["flows_active"] == 0, interval=0.05,
               what=f"no open flow at {path} on {router.name}")


def echo_once(port, data):
    """One echo connection; returns the client's local "host:port"."""
    with connect(port) as s:
        local = "%s:%d" % s.getsockname()[:2]
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s, timeout=20)
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), (
        f"echo of {len(data)} bytes through port {port}: {len(got)} bytes came back different")
    return local


def recv_exact(sock, n, timeout=10.0):
    deadline = time.monotonic() + timeout
    out = b""
    while len(out) < n:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(n - len(out))
        assert data, f"EOF after {out!r}"
        out += data
    return out


def payload(size, seed=0):
    return random.Random(seed).randbytes(size)


# --------------------------------------------------------------------------
# Probes and the router itself

def test_probes_and_edge_readiness(router_factory):
    """/healthz and /readyz answer 200 on an interior router; an edge router
    is alive but not ready (503 with a reason) until its uplink is up."""
    net = Network(router_factory, management=MGMT)
    net.interior("A").edge("E", uplinks=["A"])
    net.start_router("A")
    a = net["A"]
    assert a.management_port, "no 'management listening on' line in A's log"
    for path, status in (("/healthz", "ok"), ("/readyz", "ready")):
        res = a.api("GET", path)
        assert (res.status, res.json()) == (200, {"status": status}), (path, res)
    # Keep-alive: several requests on one connection.
    conn = http.client.HTTPConnection("127.0.0.1", a.management_port, timeout=10)
    try:
        for path in ("/healthz", "/readyz", "/api/v1/router"):
            conn.request("GET", path)
            res = conn.getresponse()
            body = res.read()
            assert res.status == 200, (path, res.status, body)
    finally:
        conn.close()

    # The edge router starts while its interior router is down.
    net.kill("A")
    e = net.start_router("E")
    assert e.api("GET", "/healthz").status == 200
    res = e.api("GET", "/readyz")
    assert res.status == 503, f"edge router without an uplink: {res}"
    assert res.json()["status"] == "not ready" and res.json()["reason"], res
    assert get(e, "/api/v1/router")["mode"] == "edge"

    net.restart("A")
    eventually(20, lambda: e.api("GET", "/readyz").status == 200, interval=0.1,
               what="edge router E ready once A is up")
    assert e.api("GET", "/readyz").json() == {"status": "ready"}
    links = get(e, "/api/v1/routers")["links"]
    assert [(x["peer"], x["role"], x["up"]) for x in links] == [("A", "uplink", True)], links
    eventually(10, lambda: [(x["peer"], x["role"], x["up"])
                            for x in get(net["A"], "/api/v1/routers")["links"]]
               == [("E", "edge", True)], what="A lists edge router E as an edge link")


def test_router_identity_and_uptime(router_factory, vaned_bin):
    r = single(router_factory, name="ident", workers=2)
    info = get(r, "/api/v1/router")
    start = time.monotonic()  # before anything else: `vaned --version` takes time too
    assert {k: info[k] for k in ("id", "mode", "workers")} == {
        "id": "ident", "mode": "interior", "workers": 2}, info
    out = run_vaned(vaned_bin, ["--version"], cwd=r.workdir)[1]
    assert info["version"] and info["version"] in out, (info["version"], out)
    first = info["uptime_seconds"]
    assert 0 <= first < 60, info

    def grown():
        now = get(r, "/api/v1/router")["uptime_seconds"]
        return now if now >= first + 0.5 else None
    later = eventually(10, grown, interval=0.1, what="uptime grows by 0.5 s")
    elapsed = time.monotonic() - start
    assert later - first <= elapsed + 0.5, f"uptime grew {later - first:.2f}s in {elapsed:.2f}s"


# --------------------------------------------------------------------------
# Routers, links and addresses

def test_routers_costs_next_hops_and_links(router_factory):
    net = line3(router_factory)
    a, b = net["A"], net["B"]

    def a_routers():
        got = {rid: (x["self"], x["cost"], x["next_hop"]) for rid, x in routers_of(a).items()}
        want = {"A": (True, 0, None), "B": (False, 2, "B"), "C": (False, 5, "B")}
        assert got == want, f"A's routers (self, cost, next_hop): {got}"
        return True
    eventually(10, a_routers, what="A's path table over the API")
    c_view = routers_of(net["C"])
    assert (c_view["A"]["cost"], c_view["A"]["next_hop"]) == (5, "B"), c_view
    # A link's `cost` is the one configured on this side: B's connectors
    # carry 2 (to A) and 3 (C's, to B); the listeners' default is 1.
    assert [(x["peer"], x["role"], x["cost"], x["up"]) for x in get(a, "/api/v1/routers")["links"]
            ] == [("B", "interior", 1, True)]
    assert sorted((x["peer"], x["cost"], x["up"]) for x in get(b, "/api/v1/routers")["links"]
                  ) == [("A", 2, True), ("C", 1, True)]

    net.kill("C")
    eventually(10, lambda: set(routers_of(a)) == {"A", "B"}, interval=0.1,
               what=lambda: f"C gone from A's routers (now {sorted(routers_of(a))})")
    eventually(10, lambda: all(x["peer"] != "C" or not x["up"]
                               for x in get(b, "/api/v1/routers")["links"]),
               what="B's link to C down or gone")


def test_addresses_amqp_and_tcp(router_factory, reactor):
    net = line3(router_factory, tcp=lambda n: n.tcp_connector("C", "svc-out", "svc", 9))
    a, c = net["A"], net["C"]
    conn = reactor.connect(net.port("C")).wait_open()
    rx = conn.receiver("q")
    conn.receiver("mc/news")

    def a_sees():
        got = addresses_of(a)
        assert {"q", "svc", "mc/news"} <= set(got), f"A's addresses: {sorted(got)}"
        return got
    got = eventually(10, a_sees, interval=0.1, what="addresses of C on A")
    q, svc, mc = got["q"], got["svc"], got["mc/news"]
    assert (q["kind"], q["distribution"], q["local_consumers"], q["remote_routers"]) == (
        "amqp", "balanced", 0, ["C"]), q
    assert (svc["kind"], svc["local_consumers"], svc["remote_routers"]) == ("tcp", 0, ["C"]), svc
    assert (mc["kind"], mc["distribution"], mc["remote_routers"]) == ("amqp", "multicast", ["C"])
    local = addresses_of(c)
    assert (local["q"]["local_consumers"], local["q"]["remote_routers"]) == (1, []), local["q"]
    assert local["svc"]["kind"] == "tcp", local["svc"]
    assert not [x for x in got if x.startswith("_vane/")], f"internal addresses listed: {got}"

    rx.detach()
    eventually(10, lambda: "q" not in addresses_of(a), interval=0.1,
               what="address q gone from A once its only receiver detached")


# --------------------------------------------------------------------------
# Listeners, connectors, tcp entities

def test_listeners_connectors_and_tcp_entities(router_factory, servers):
    echo = servers(EchoServer())

    def tcp(net):
        net.tcp_listener("A", "in", "svc")
        net.tcp_connector("C", "out", "svc", echo.port)
    net = line3(router_factory, tcp=tcp)
    a, b, c = net["A"], net["B"], net["C"]

    got = {x["name"]: (x["host"], x["port"], x["role"]) for x in get(a, "/api/v1/listeners")}
    assert got == {"amqp": ("127.0.0.1", a.ports["amqp"], "normal"),
                   "inter": ("127.0.0.1", a.ports["inter"], "inter-router"),
                   "edge": ("127.0.0.1", a.ports["edge"], "edge")}, got
    assert get(a, "/api/v1/listeners/inter")["port"] == a.ports["inter"]
    assert get(a, "/api/v1/connectors") == []
    got = [(x["name"], x["host"], x["port"], x["role"], x["cost"])
           for x in get(b, "/api/v1/connectors")]
    assert got == [("to-A", "127.0.0.1", a.ports["inter"], "inter-router", 2)], got
    to_a = get(b, "/api/v1/connectors")[0]
    assert to_a["state"] == "connected" and to_a["attempts"] >= 1, to_a

    zero = {"flows_opened": 0, "flows_failed": 0, "flows_active": 0, "refused": 0,
            "connect_failures": 0, "malformed": 0, "bytes_in": 0, "bytes_out": 0}
    listeners = get(a, "/api/v1/tcp-listeners")
    assert listeners == [{"name": "in", "host": "127.0.0.1", "port": net.tcp_port("A", "in"),
                          "address": "svc", "state": "listening", "counters": zero}], listeners
    assert get(a, "/api/v1/tcp-listeners/in") == listeners[0]
    connectors = get(c, "/api/v1/tcp-connectors")
    assert connectors == [{"name": "out", "host": "127.0.0.1", "port": echo.port,
                           "address": "svc", "state": "ok", "counters": zero}], connectors
    assert get(c, "/api/v1/tcp-connectors/out") == connectors[0]
    assert get(a, "/api/v1/tcp-connectors") == [] and get(c, "/api/v1/tcp-listeners") == []

    # Counters move with traffic.
    port = net.tcp_port("A", "in")
    wait_echo(port)
    wait_idle(a, "/api/v1/tcp-listeners/in")
    wait_idle(c, "/api/v1/tcp-connectors/out")
    before_a = get(a, "/api/v1/tcp-listeners/in")["counters"]
    before_c = get(c, "/api/v1/tcp-connectors/out")["counters"]
    echo_once(port, payload(10_007, seed=1))

    def moved(router, path, before):
        now = get(router, path)["counters"]
        delta = {k: now[k] - before[k] for k in now}
        assert delta == dict(zero, flows_opened=1, bytes_in=10_007, bytes_out=10_007), (
            f"{path} on {router.name}: counters changed by {delta}")
        return True
    eventually(10, lambda: moved(a, "/api/v1/tcp-listeners/in", before_a), what="A's counters")
    eventually(10, lambda: moved(c, "/api/v1/tcp-connectors/out", before_c), what="C's counters")

    for r, path in ((a, "/api/v1/tcp-listeners/nope"), (c, "/api/v1/tcp-connectors/nope"),
                    (c, "/api/v1/tcp-listeners/out"), (a, "/api/v1/tcp-connectors/in"),
                    (a, "/api/v1/listeners/nope"), (b, "/api/v1/connectors/nope")):
        res = r.api("GET", path)
        assert res.status == 404 and res.json()["error"], f"GET {path} on {r.name}: {res}"


# --------------------------------------------------------------------------
# Creating and deleting through the API

def test_tcp_listener_created_and_deleted_through_api(router_factory, servers):
    echo = servers(EchoServer())
    net = line3(router_factory, tcp=lambda n: n.tcp_connector("C", "svc-out", "svc", echo.port))
    a, c = net["A"], net["C"]

    res = a.api("POST", "/api/v1/tcp-listeners", {"name": "api-in", "port": 0, "address": "svc"})
    assert res.status == 201, f"POST tcp listener: {res}"
    made = res.json()
    port = made["port"]
    assert ({k: made[k] for k in ("name", "host", "address", "state")} ==
            {"name": "api-in", "host": "127.0.0.1", "address": "svc", "state": "listening"}
            and port > 0), made
    assert a.tcp_port("api-in") == port, "the log's listening line names another port"
    assert by_key(get(a, "/api/v1/tcp-listeners"))["api-in"]["port"] == port

    wait_echo(port)
    data = payload(100_003, seed=6)
    client = echo_once(port, data)

    def flow(router, name):
        """The one flow of `name` that carried `data`, once it has ended."""
        flows = [f for f in get(router, "/api/v1/flows")
                 if f["name"] == name and f["bytes_in"] == len(data)]
        assert len(flows) == 1, f"flows of {name} with {len(data)} bytes in: {flows}"
        assert flows[0]["state"] == "closed", flows[0]
        return flows[0]
    fa = eventually(10, lambda: flow(a, "api-in"), what="the flow at A")
    fc = eventually(10, lambda: flow(c, "svc-out"), what="the flow at C")
    assert ({k: fa[k] for k in ("side", "address", "peer_router", "endpoint", "bytes_out")} ==
            {"side": "listener", "address": "svc", "peer_router": "C", "endpoint": client,
             "bytes_out": len(data)}), fa
    assert ({k: fc[k] for k in ("side", "address", "peer_router", "endpoint", "bytes_out")} ==
            {"side": "connector", "address": "svc", "peer_router": "A",
             "endpoint": f"127.0.0.1:{echo.port}", "bytes_out": len(data)}), fc
    now_ms = time.time() * 1000
    for f in (fa, fc):
        assert f["end_ms"] is not None, f
        assert now_ms - 60_000 < f["start_ms"] <= f["end_ms"] <= now_ms, f
    counters = get(a, "/api/v1/tcp-listeners/api-in")["counters"]
    assert counters["flows_opened"] >= 2 and counters["bytes_in"] >= len(data), counters

    # A connection opened before the delete keeps working after it.
    kept = connect(port)
    try:
        kept.sendall(b"before")
        assert recv_exact(kept, 6) == b"before"
        local = "%s:%d" % kept.getsockname()[:2]
        open_flows = [f for f in get(a, "/api/v1/flows") if f["endpoint"] == local]
        assert [(f["state"], f["end_ms"]) for f in open_flows] == [("open", None)], open_flows

        res = a.api("DELETE", "/api/v1/tcp-listeners/api-in")
        assert (res.status, res.body) == (204, b""), f"DELETE tcp listener: {res}"
        assert a.api("GET", "/api/v1/tcp-listeners/api-in").status == 404
        assert "api-in" not in by_key(get(a, "/api/v1/tcp-listeners"))
        with pytest.raises(ConnectionRefusedError):
            connect(port).close()

        kept.sendall(b"after")
        kept.shutdown(socket.SHUT_WR)
        assert recv_all(kept, timeout=10) == b"after"
    finally:
        kept.close()
    eventually(10, lambda: [f["state"] for f in get(a, "/api/v1/flows") if f["endpoint"] == local]
               == ["closed"], what="the flow kept across the delete ends closed")

    # The name and the port are free again.
    res = a.api("POST", "/api/v1/tcp-listeners", {"name": "api-in", "port": port, "address": "svc"})
    assert res.status == 201 and res.json()["port"] == port, f"re-create on port {port}: {res}"
    wait_echo(port)


def test_tcp_connector_created_and_deleted_through_api(router_factory, servers):
    echo = servers(EchoServer())
    net = line3(router_factory, tcp=lambda n: n.tcp_listener("A", "in", "svc2"))
    a, b, c = net["A"], net["B"], net["C"]
    assert "svc2" not in addresses_of(a)

    body = {"name": "api-out", "host": "127.0.0.1", "port": echo.port, "address": "svc2"}
    res = c.api("POST", "/api/v1/tcp-connectors", body)
    assert res.status == 201, f"POST tcp connector: {res}"
    made = res.json()
    assert {k: made[k] for k in body} == body and made["state"] == "ok", made
    assert get(c, "/api/v1/tcp-connectors/api-out") == made
    for r in (a, b):
        eventually(10, lambda: (addresses_of(r).get("svc2") or {}).get("remote_routers") == ["C"],
                   interval=0.1, what=f"svc2 from C on {r.name}")
    assert addresses_of(a)["svc2"]["kind"] == "tcp"
    port = net.tcp_port("A", "in")
    wait_echo(port)
    got, digest = echo_roundtrip(port, payload(5000, seed=2), timeout=20)
    assert (got, digest) == (5000, hashlib.sha256(payload(5000, seed=2)).hexdigest())

    res = c.api("DELETE", "/api/v1/tcp-connectors/api-out")
    assert (res.status, res.body) == (204, b""), f"DELETE tcp connector: {res}"
    assert c.api("GET", "/api/v1/tcp-connectors/api-out").status == 404
    assert get(c, "/api/v1/tcp-connectors") == []
    for r in (a, b, c):
        eventually(10, lambda: "svc2" not in addresses_of(r), interval=0.1,
                   what=f"svc2 gone from {r.name}")
    res = c.api("DELETE", "/api/v1/tcp-connectors/api-out")
    assert res.status == 404, f"second DELETE: {res}"


def test_api_changes_are_undone_by_reload(router_factory):
    """Changes made through the API are not written to the file: a SIGHUP
    reload makes the tcp listeners and connectors match the file again."""
    r = single(router_factory, name="reloaded")
    res = r.api("POST", "/api/v1/tcp-listeners", {"name": "api-in", "port": 0, "address": "svc"})
    assert res.status == 201, res
    port = res.json()["port"]
    res = r.api("POST", "/api/v1/tcp-connectors", {"name": "api-out", "port": 9, "address": "svc"})
    assert res.status == 201, res
    line = r.reload(r.config)
    assert "reload done" in line, line
    assert get(r, "/api/v1/tcp-listeners") == [] and get(r, "/api/v1/tcp-connectors") == []
    with pytest.raises(ConnectionRefusedError):
        connect(port).close()


def test_amqp_listener_and_connector_created_through_api(router_factory, reactor):
    net = line3(router_factory)
    a, c = net["A"], net["C"]

    # A listener on C: clients attach through it; deleting it refuses new
    # connections while the one already open keeps its receiver.
    res = c.api("POST", "/api/v1/listeners", {"name": "amqp2", "port": 0})
    assert res.status == 201, f"POST listener: {res}"
    port = res.json()["port"]
    assert port > 0 and res.json()["role"] == "normal", res.json()
    assert by_key(get(c, "/api/v1/listeners"))["amqp2"]["port"] == port
    conn = reactor.connect(port).wait_open()
    rx = conn.receiver("via-api")
    eventually(10, lambda: "via-api" in addresses_of(a), interval=0.1, what="via-api at A")
    res = c.api("DELETE", "/api/v1/listeners/amqp2")
    assert (res.status, res.body) == (204, b""), f"DELETE listener: {res}"
    assert "amqp2" not in by_key(get(c, "/api/v1/listeners"))
    with pytest.raises(ConnectionRefusedError):
        connect(port).close()
    tx = reactor.connect(net.port("A")).wait_open().sender("via-api")
    tx.wait_all_settled(records=[tx.send(Message(body="still here"))])
    rx.wait_count(1)

    # A connector from A straight to C: C becomes one hop away at cost 1
    # (the larger of the connector's 1 and C's listener's 1), and back to 5
    # through B once it is deleted.
    body = {"name": "to-C", "host": "127.0.0.1", "port": c.ports["inter"],
            "role": "inter-router", "cost": 1}
    res = a.api("POST", "/api/v1/connectors", body)
    assert res.status == 201, f"POST connector: {res}"

    def path_to_c():
        x = routers_of(a).get("C") or {}
        return x.get("cost"), x.get("next_hop")
    eventually(10, lambda: path_to_c() == (1, "C"), interval=0.1,
               what=lambda: f"C one hop from A (now {path_to_c()})")
    assert by_key(get(a, "/api/v1/connectors"))["to-C"]["state"] == "connected"
    res = a.api("DELETE", "/api/v1/connectors/to-C")
    assert (res.status, res.body) == (204, b""), f"DELETE connector: {res}"
    eventually(10, lambda: path_to_c() == (5, "B"), interval=0.1,
               what=lambda: f"C through B again (now {path_to_c()})")
    assert get(a, "/api/v1/connectors") == []


class HeldListener:
    """A TCP port whose connects hang: its accept queue (backlog 0) is filled
    by one parked connection, so the kernel drops new SYNs and the connecting
    side keeps retransmitting. release() starts accepting and relays every
    later connection to `target`, counting them and the bytes they send."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.parked = socket.create_connection(("127.0.0.1", self.port))
        self.accepted = 0
        self.bytes_from_clients = 0
        self._threads = []

    def release(self):
        first, _ = self.sock.accept()  # the parked connection
        first.close()
        self.parked.close()
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)

    def _accept_loop(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b, count in ((client, upstream, True), (upstream, client, False)):
                t = threading.Thread(target=self._pipe, args=(a, b, count), daemon=True)
                t.start()

    def _pipe(self, src, dst, count):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:
                    self.bytes_from_clients += len(data)
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        self.parked.close()


def test_connector_deleted_while_connecting_never_links(router_factory):
    # A connector deleted while its TCP connect is still pending must never
    # bring its link up when the connect completes later.
    b = single(router_factory, name="B",
               listeners=[{"name": "amqp", "host": "127.0.0.1", "port": 0},
                          {"name": "inter", "host": "127.0.0.1", "port": 0,
                           "role": "inter-router"}])
    a = single(router_factory, name="A")
    held = HeldListener(b.ports["inter"])
    try:
        body = {"name": "to-B", "host": "127.0.0.1", "port": held.port,
                "role": "inter-router"}
        res = a.api("POST", "/api/v1/connectors", body)
        assert res.status == 201, f"POST connector: {res}"
        time.sleep(0.3)  # the connect is under way (its SYN is being dropped)
        assert by_key(get(a, "/api/v1/connectors"))["to-B"]["state"] == "connecting"
        res = a.api("DELETE", "/api/v1/connectors/to-B")
        assert res.status == 204, f"DELETE connector: {res}"
        held.release()
        # The kernel retransmits the SYN (after 1 s, then 3 s): that connect
        # completes now; the deleted connector must drop it unused.
        eventually(10, lambda: held.accepted >= 1, interval=0.05,
                   what="the pending connect to complete")
        never(2.0, lambda: "A" in routers_of(b) or held.bytes_from_clients > 0,
              what="a link from a deleted connector")
        assert get(a, "/api/v1/connectors") == []
    finally:
        held.close()


def _amqp_open_frame(container_id):
    """An AMQP open performative (type 0 frame, channel 0) with raw bytes as
    its container-id, which a well-behaved client could not send."""
    cid = b"\xa1" + bytes([len(container_id)]) + container_id   # str8-utf8
    fields = cid
    body = b"\x00\x53\x10" + b"\xc0" + bytes([len(fields) + 1, 1]) + fields
    size = 8 + len(body)
    return size.to_bytes(4, "big") + b"\x02\x00\x00\x00" + body


def test_non_utf8_from_peers_never_kills_the_router(router_factory):
    r = single(router_factory, name="utf8")
    # A request line with bytes that are not UTF-8: an answer, not a crash.
    with socket.create_connection(("127.0.0.1", r.management_port), timeout=10) as s:
        s.sendall(b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        reply = recv_all(s, timeout=10)
    assert reply.startswith(b"HTTP/1.1 404"), reply[:200]
    assert r.alive()
    # An AMQP peer whose container id is not UTF-8; the API shows it with
    # U+FFFD in its place.
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as s:
        s.sendall(b"AMQP\x00\x01\x00\x00" + _amqp_open_frame(b"bad\xff\xfeid"))
        eventually(10, lambda: any("bad" in (c.get("container") or "")
                                   for c in get(r, "/api/v1/connections")),
                   interval=0.1, what="the connection in the API")
        shown = [c["container"] for c in get(r, "/api/v1/connections")
                 if "bad" in (c.get("container") or "")]
        assert shown == ["bad\ufffd\ufffdid"], shown
    assert r.alive()


# --------------------------------------------------------------------------
# Invalid requests

BIG = 64 * 1024


def test_invalid_requests_change_nothing(router_factory):
    r = single(router_factory, name="strict")
    res = r.api("POST", "/api/v1/tcp-listeners", {"name": "dup", "port": 0, "address": "svc"})
    assert res.status == 201, res
    res = r.api("POST", "/api/v1/tcp-connectors", {"name": "dup", "port": 9, "address": "svc"})
    assert res.status == 201, res
    before = entities(r)

    L, C = "/api/v1/tcp-listeners", "/api/v1/tcp-connectors"
    ok = {"name": "x", "port": 0, "address": "svc"}
    cases = [
        # (method, path, body, status, field)
        ("POST", L, '{"name": "x", "port": 0,', 400, None),
        ("POST", L, "", 400, None),
        ("POST", L, "[1, 2]", 400, None),
        ("POST", L, '"name"', 400, None),
        ("POST", L, "null", 400, None),
        ("POST", L, "3E44444", 400, None),                        # beyond a double
        ("POST", L, '{"name": "x", "port": 3E44444}', 400, None),
        ("POST", L, dict(ok, port="eighty"), 400, "port"),
        ("POST", L, dict(ok, port=True), 400, "port"),
        ("POST", L, dict(ok, port=65536), 400, "port"),
        ("POST", L, dict(ok, port=-1), 400, "port"),
        ("POST", L, dict(ok, port=1.5), 400, "port"),
        ("POST", C, dict(ok, port=0), 400, "port"),
        ("POST", L, dict(ok, colour="red"), 400, "colour"),
        ("POST", L, {"name": "x", "port": 0}, 400, "address"),
        ("POST", C, {"name": "x", "port": 9}, 400, "address"),
        ("POST", L, dict(ok, address="_vane/x"), 400, "address"),
        ("POST", L, dict(ok, port=r.port), 400, None),    # cannot be bound
        ("POST", L, dict(ok, name="dup"), 409, None),
        ("POST", C, {"name": "dup", "port": 9, "address": "svc"}, 409, None),
        ("DELETE", L + "/nope", None, 404, None),
        ("DELETE", C + "/nope", None, 404, None),
        ("GET", "/api/v1/nope", None, 404, None),
        ("GET", "/api/v2/router", None, 404, None),
        ("GET", "/nope", None, 404, None),
        ("PUT", L, ok, 405, None),
        ("DELETE", L, None, 405, None),
        ("POST", L + "/dup", ok, 405, None),
        ("POST", "/metrics", None, 405, None),
        ("POST", L, dict(ok, pad="x" * BIG), 413, None),
    ]
    problems = []
    for method, path, body, status, field in cases:
        res = r.api(method, path, body)
        what = f"{method} {path} {str(body)[:60]!r}: {res.status} {res.body[:200]!r}"
        if res.status != status:
            problems.append(f"{what} (expected {status})")
            continue
        err = res.json()
        if not (isinstance(err, dict) and isinstance(err.get("error"), str) and err["error"]):
            problems.append(f"{what} (no error message)")
        if field is not None and err.get("field") != field:
            problems.append(f"{what} (expected field {field!r})")
        after = entities(r)
        if after != before:
            problems.append(f"{what} changed the entities: {before} -> {after}")
            before = after
    assert not problems, "\n".join(problems)
    # The router still serves requests (the 413 closed only that connection).
    assert get(r, "/api/v1/router")["id"] == "strict"


def test_connection_limit(router_factory):
    """At most management.max_connections (64) clients at once: the 65th is
    closed at once, and a place that frees up is used again. (All from one
    address here, so its per-source limit is raised for the test.)"""
    r = single(router_factory, name="busy",
               management=dict(MGMT, max_connections_per_source=100))
    held = [socket.create_connection(("127.0.0.1", r.management_port), timeout=5)
            for _ in range(64)]
    try:
        def refused():
            try:
                res = r.api("GET", "/healthz", timeout=5)
                return False if res.status == 200 else res
            except (ConnectionError, http.client.RemoteDisconnected):
                return True
        eventually(10, refused, interval=0.1, what="the 65th client refused")
        r.wait_for_log(r"management: \d+ connection\(s\) refused \(last from 127\.0\.0\.1\): "
                       r"limit max_connections reached")
        held.pop().close()

        def served():
            try:
                return r.api("GET", "/healthz", timeout=5).status == 200
            except (ConnectionError, http.client.RemoteDisconnected):
                return False
        eventually(10, served, interval=0.1, what="a client served once one of 64 left")
    finally:
        for s in held:
            s.close()


def test_head_response_has_no_body(router_factory):
    """RFC 9110 9.3.2: no content in an answer to HEAD. Otherwise a client
    reads the body as the start of its next response on the connection."""
    r = single(router_factory, name="head")
    with socket.create_connection(("127.0.0.1", r.management_port), timeout=5) as s:
        s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: vaned\r\n\r\n"
                  b"GET /readyz HTTP/1.1\r\nHost: vaned\r\nConnection: close\r\n\r\n")
        data = recv_all(s, timeout=10)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), data
    assert rest.startswith(b"HTTP/1.1 200"), (
        f"after the answer to HEAD the next bytes are {rest[:40]!r}, not the GET's status line; "
        f"all: {data!r}")


def test_body_with_a_key_twice_is_refused(router_factory):
    """docs/management.md: "a body is accepted exactly when the same entry in
    a file would be", and a key given twice in a file is an error."""
    r = single(router_factory, name="strict")
    before = entities(r)
    res = r.api("POST", "/api/v1/tcp-listeners",
                '{"name": "x", "port": 0, "address": "svc", "address": "other"}')
    after = entities(r)
    assert res.status == 400, f"a body with 'address' twice: {res}"
    assert after == before


def test_wrong_method_on_a_read_only_resource(router_factory):
    """A known resource with a method it does not serve is 405 (RFC 9110
    15.5.6), with the Allow header that 405 requires."""
    r = single(router_factory, name="strict")
    problems = []
    for method, path in (("POST", "/api/v1/router"), ("DELETE", "/api/v1/routers"),
                         ("PUT", "/api/v1/flows"), ("PUT", "/api/v1/tcp-listeners")):
        res = r.api(method, path, {} if method != "DELETE" else None)
        if res.status != 405 or not res.headers.get("allow"):
            problems.append(f"{method} {path}: {res.status} allow={res.headers.get('allow')!r} "
                            f"{res.body[:120]!r}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------
# Token

def test_bearer_token(router_factory, vaned_bin, tmp_path):
    r = single(router_factory, management={"port": 0, "token": TOKEN}, name="guarded")
    res = r.api("GET", "/api/v1/router")
    assert res.status == 401 and "bearer" in res.headers.get("www-authenticate", "").lower(), res
    for bad in ("wrong-token-0123456789", TOKEN + "x", TOKEN[:-1], ""):
        res = r.api("GET", "/api/v1/router", token=bad)
        assert res.status == 401, f"token {bad!r}: {res}"
    res = r.api("GET", "/api/v1/router", headers={"Authorization": f"Basic {TOKEN}"})
    assert res.status == 401, res
    assert get(r, "/api/v1/router", token=TOKEN)["id"] == "guarded"
    for path in ("/healthz", "/readyz"):
        assert r.api("GET", path).status == 200, path
    assert r.api("GET", "/metrics").status == 401
    assert "vane_router_info" in metrics(r, token=TOKEN)
    # Writes need it too, and a refused one changes nothing.
    res = r.api("POST", "/api/v1/tcp-listeners", {"name": "x", "port": 0, "address": "svc"})
    assert res.status == 401, res
    assert get(r, "/api/v1/tcp-listeners", token=TOKEN) == []

    # A token shorter than 16 characters is a configuration error.
    cfg = make_config(router_id="short")
    cfg["management"] = {"port": 0, "token": "too-short"}
    path = tmp_path / "short.yaml"
    path.write_text(to_yaml(cfg) + "\n")
    status, out, err = run_vaned(vaned_bin, ["--config", str(path)], cwd=tmp_path)
    assert status == 2 and "token" in out + err, (status, out, err)


# --------------------------------------------------------------------------
# Metrics

def test_metrics(router_factory, reactor, servers):
    echo = servers(EchoServer())

    def tcp(net):
        net.tcp_listener("A", "in", "svc")
        net.tcp_connector("C", "out", "svc", echo.port)
    net = line3(router_factory, tcp=tcp)
    a, b, c = net["A"], net["B"], net["C"]

    m = metrics(a)
    want = {"vane_router_info", "vane_uptime_seconds", "vane_memory_resident_bytes",
            "vane_connections_active", "vane_connections_opened", "vane_connections_refused",
            "vane_protocol_errors", "vane_deliveries", "vane_routers_reachable", "vane_links_up",
            "vane_tcp_flows_opened", "vane_tcp_flows_failed", "vane_tcp_refused",
            "vane_tcp_connect_failures", "vane_tcp_malformed", "vane_tcp_flows_active", "vane_tcp_bytes"}
    assert want <= set(m), f"missing families: {sorted(want - set(m))}"
    version = get(a, "/api/v1/router")["version"]
    info = m["vane_router_info"].samples
    assert [(s.labels, s.value) for s in info] == [
        ({"id": "A", "mode": "interior", "version": version}, 1.0)], info
    assert sample(m, "vane_routers_reachable") == 2
    assert sample(m, "vane_links_up") == 1
    assert sample(metrics(b), "vane_links_up") == 2
    assert sample(m, "vane_connections_active") >= 1
    assert sample(m, "vane_memory_resident_bytes") > 0
    assert {s.labels["event"] for s in m["vane_deliveries"].samples} == {
        "in", "out", "released", "rejected", "modified", "no_route"}

    # AMQP deliveries through A.
    n = 20
    rc = reactor.connect(net.port("C")).wait_open()
    rx = rc.receiver("m", credit=100)
    eventually(10, lambda: "m" in addresses_of(a), interval=0.1, what="m known at A")
    before = metrics(a)
    sc = reactor.connect(net.port("A")).wait_open()
    tx = sc.sender("m")
    recs = tx.send_many([Message(id=i, body=f"m{i}") for i in range(n)])
    rx.wait_count(n)
    tx.wait_all_settled(records=recs)
    after = metrics(a)
    for event in ("in", "out"):
        grew = (sample(after, "vane_deliveries", event=event)
                - sample(before, "vane_deliveries", event=event))
        assert grew >= n, f"vane_deliveries_total{{event={event}}} on A grew by {grew}, not {n}"
    assert (sample(after, "vane_deliveries", event="no_route")
            == sample(before, "vane_deliveries", event="no_route"))
    per_address = (sample(after, "vane_address_deliveries", address="m", event="in")
                   - sample(before, "vane_address_deliveries", missing=0, address="m", event="in"))
    assert per_address == n, f"vane_address_deliveries_total{{address=m,event=in}}: +{per_address}"

    # Label values that need escaping survive the round trip.
    odd = 'odd "quoted" \\ back\nslash'
    odd_rx = rc.receiver(odd)
    eventually(10, lambda: odd in addresses_of(a), interval=0.1, what="the odd address at A")
    odd_tx = sc.sender(odd)
    odd_tx.wait_all_settled(records=[odd_tx.send(Message(body="x"))])
    odd_rx.wait_count(1)
    assert sample(metrics(a), "vane_address_deliveries", address=odd, event="in") == 1

    # TCP traffic.
    port = net.tcp_port("A", "in")
    wait_echo(port)
    lab_a = {"kind": "listener", "name": "in", "address": "svc"}
    lab_c = {"kind": "connector", "name": "out", "address": "svc"}
    wait_idle(a, "/api/v1/tcp-listeners/in")
    wait_idle(c, "/api/v1/tcp-connectors/out")
    before_a, before_c = metrics(a), metrics(c)
    size = 30_011
    echo_once(port, payload(size, seed=3))

    def grown(router, before, labels):
        now = metrics(router)
        delta = {
            "opened": sample(now, "vane_tcp_flows_opened", **labels)
            - sample(before, "vane_tcp_flows_opened", **labels),
            "in": sample(now, "vane_tcp_bytes", direction="in", **labels)
            - sample(before, "vane_tcp_bytes", direction="in", **labels),
            "out": sample(now, "vane_tcp_bytes", direction="out", **labels)
            - sample(before, "vane_tcp_bytes", direction="out", **labels),
            "active": sample(now, "vane_tcp_flows_active", **labels),
            "failed": sample(now, "vane_tcp_flows_failed", **labels)
            - sample(before, "vane_tcp_flows_failed", **labels),
        }
        assert delta == {"opened": 1, "in": size, "out": size, "active": 0, "failed": 0}, (
            f"{router.name} {labels}: {delta}")
        return now
    now_a = eventually(10, lambda: grown(a, before_a, lab_a), what="A's tcp metrics")
    eventually(10, lambda: grown(c, before_c, lab_c), what="C's tcp metrics")
    # The same numbers as the API's counters.
    counters = get(a, "/api/v1/tcp-listeners/in")["counters"]
    assert counters["bytes_in"] == sample(now_a, "vane_tcp_bytes", direction="in", **lab_a)
    assert counters["flows_opened"] == sample(now_a, "vane_tcp_flows_opened", **lab_a)


def test_address_rules_at_run_time(router_factory, reactor):
    """An address rule added through the API changes how messages are
    distributed at once (balanced -> multicast); removing it changes it back;
    invalid and duplicate rules are refused with the file's messages."""
    net = Network(router_factory, management=MGMT)
    net.interior("A")
    net.start()
    a = net["A"]
    assert get(a, "/api/v1/address-rules") == [] or all(
        r.get("prefix") != "fan/" for r in get(a, "/api/v1/address-rules"))
    conn = reactor.connect(net.port("A")).wait_open()
    rx1 = conn.receiver("fan/x", credit=100)
    rx2 = conn.receiver("fan/x", credit=100)
    eventually(10, lambda: "fan/x" in addresses_of(a), interval=0.1, what="fan/x known")
    tx = conn.sender("fan/x")

    # balanced (no rule): 4 messages, 4 copies in all.
    tx.wait_all_settled(records=tx.send_many([Message(body=f"b{i}") for i in range(4)]))
    eventually(10, lambda: rx1.count() + rx2.count() == 4, interval=0.05,
               what="4 balanced messages received once each")

    res = a.api("POST", "/api/v1/address-rules", {"prefix": "fan/", "distribution": "multicast"})
    assert res.status == 201, res
    assert {"prefix": "fan/", "distribution": "multicast"} in get(a, "/api/v1/address-rules")
    dist = {e["address"]: e["distribution"] for e in get(a, "/api/v1/addresses")}
    assert dist["fan/x"] == "multicast", dist
    before1, before2 = rx1.count(), rx2.count()
    tx.wait_all_settled(records=[tx.send(Message(body="m"))])
    rx1.wait_count(before1 + 1)
    rx2.wait_count(before2 + 1)

    # Duplicates (also the same rule spelt with '/' vs '.') and bad values.
    res = a.api("POST", "/api/v1/address-rules", {"prefix": "fan/", "distribution": "closest"})
    assert res.status == 409 and "duplicate address prefix" in res.json()["error"], res
    res = a.api("POST", "/api/v1/address-rules", {"pattern": "q.*", "distribution": "closest"})
    assert res.status == 201, res
    res = a.api("POST", "/api/v1/address-rules", {"pattern": "q/*", "distribution": "closest"})
    assert res.status == 409, res
    res = a.api("POST", "/api/v1/address-rules", {"prefix": "z", "distribution": "broadcast"})
    assert res.status == 400 and res.json().get("field") == "distribution", res
    res = a.api("DELETE", "/api/v1/address-rules?prefix=nothing%2F")
    assert res.status == 404, res
    res = a.api("DELETE", "/api/v1/address-rules")
    assert res.status == 400, res

    # Removed: balanced again.
    res = a.api("DELETE", "/api/v1/address-rules?prefix=fan%2F")
    assert res.status == 204, res
    assert all(r.get("prefix") != "fan/" for r in get(a, "/api/v1/address-rules"))
    before = rx1.count() + rx2.count()
    tx.wait_all_settled(records=tx.send_many([Message(body=f"c{i}") for i in range(4)]))
    eventually(10, lambda: rx1.count() + rx2.count() == before + 4, interval=0.05,
               what="balanced again: 4 more copies in all")
    time.sleep(0.3)
    assert rx1.count() + rx2.count() == before + 4, "a message was copied after the rule went"


def test_management_over_tls(router_factory, vaned_bin, tmp_path):
    """With a tls_profile the API speaks HTTPS only; the certificate verifies
    against its CA; a missing certificate file or an unknown profile stops
    startup with a message naming it."""
    import ssl
    cert, key = self_signed_cert(tmp_path)
    config = make_config("T")
    config["tls_profiles"] = [{"name": "mgmt", "certificate": str(cert), "key": str(key)}]
    config["management"] = {"port": 0, "tls_profile": "mgmt", "token": TOKEN}
    r = router_factory(config, name="T")
    port = r.management_port
    ctx = ssl.create_default_context(cafile=str(cert))

    def https(path, token=None):
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=ctx)
        try:
            hdrs = {"Authorization": f"Bearer {token}"} if token else {}
            conn.request("GET", path, headers=hdrs)
            res = conn.getresponse()
            return res.status, res.read()
        finally:
            conn.close()

    assert https("/healthz")[0] == 200
    status, body = https("/api/v1/router", token=TOKEN)
    assert status == 200 and b'"T"' in body, (status, body)
    assert https("/api/v1/router")[0] == 401
    # Plain HTTP gets no answer.
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        plain.request("GET", "/healthz")
        plain.getresponse().read()
    # A client that does not trust the certificate fails the handshake.
    with pytest.raises(ssl.SSLError):
        untrusted = http.client.HTTPSConnection("127.0.0.1", port, timeout=5,
                                                context=ssl.create_default_context())
        untrusted.request("GET", "/healthz")

    bad = tmp_path / "bad.yaml"
    bad.write_text(to_yaml({
        "router": {"id": "X"},
        "tls_profiles": [{"name": "mgmt", "certificate": str(tmp_path / "none.pem"),
                          "key": str(key)}],
        "management": {"port": 0, "tls_profile": "mgmt"}}) + "\n")
    rc, out, err = run_vaned(vaned_bin, ["--config", str(bad)], tmp_path)
    assert rc != 0 and "cannot read certificate file" in out + err and "none.pem" in out + err, (
        rc, out, err)
    bad.write_text(to_yaml({"management": {"port": 0, "tls_profile": "nope"}}) + "\n")
    rc, out, err = run_vaned(vaned_bin, ["--config", str(bad)], tmp_path)
    assert rc == 2 and "management.tls_profile" in err and "no tls profile named 'nope'" in err, (
        rc, out, err)
