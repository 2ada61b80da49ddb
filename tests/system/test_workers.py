"""Routers with several workers (I/O threads), where every delivery, TCP
flow and management answer crosses from one thread to another: AMQP traffic
from connections on one worker to consumers on the others (anycast,
multicast, large streamed messages, consumers coming and going, replies),
TCP flows spread over the workers, router networks whose routers all have
several workers, and the management API (reads, entities added and deleted,
connectors made and removed) and SIGHUP reloads while traffic flows.

scripts/test.sh runs these (with every other `multiworker` test) under the
ThreadSanitizer build too, where any data race fails the test (conftest.py
checks every router's log for sanitizer reports).

A listener hands the connections it accepts to the workers in turn, so on a
fresh router with N workers the k-th AMQP connection (opened after the one
before it is open) is on worker k mod N: the tests below open clients one at
a time to know which worker each is on.
"""

import hashlib
import random
import threading
import time

import pytest
from proton import Message

from tcp_tools import EchoServer, EchoSwarm, connect, echo_roundtrip, wait_echo
from vane_client import ACCEPTED, body_digest
from vane_harness import eventually, make_config
from vane_network import Network

pytestmark = pytest.mark.multiworker

MiB = 1024 * 1024
MGMT = {"port": 0}


# --------------------------------------------------------------------------
# Helpers

def one_per_worker(reactor, port, n):
    """n connections opened one after another: on a fresh listener of a
    router with n workers, one on each worker (0, 1, ... n-1)."""
    return [reactor.connect(port).wait_open() for _ in range(n)]


def payload(size, seed=0):
    return random.Random(seed).randbytes(size)


def ids(receiver):
    return [r.message.id for r in receiver.received]


def get(router, path):
    res = router.api("GET", path)
    assert res.status == 200, f"GET {path} on {router.name}: {res}"
    return res.json()


class Background:
    """Runs `step()` over and over on a thread until stop(); the first
    exception ends it and is raised again by stop()."""

    def __init__(self, step, name="background"):
        self.step = step
        self.rounds = 0
        self.error = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                self.step()
                self.rounds += 1
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def wait_rounds(self, n, timeout=60.0):
        start = self.rounds
        eventually(timeout, lambda: self.rounds >= start + n or self.error is not None,
                   interval=0.05, what=f"{n} more rounds of {self._thread.name}")
        self.check()

    def check(self):
        if self.error is not None:
            raise AssertionError(f"{self._thread.name} failed: {self.error!r}") from self.error

    def stop(self, timeout=60.0):
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"{self._thread.name} did not stop"
        self.check()


def echo_loop(port, size=20000):
    """A Background step: one echo of `size` bytes through tcp listener `port`."""
    counter = [0]

    def step():
        counter[0] += 1
        data = payload(size, seed=counter[0])
        got, digest = echo_roundtrip(port, data, timeout=60)
        assert (got, digest) == (len(data), hashlib.sha256(data).hexdigest()), (
            f"echo #{counter[0]} through port {port}: {got} bytes came back different")
    return step


# --------------------------------------------------------------------------
# AMQP across the workers of one router

@pytest.mark.parametrize("workers", [2, 3, 4])
def test_anycast_between_all_workers(router_factory, reactor, workers):
    """Receivers on every worker, senders on every worker: each message
    reaches one receiver exactly once and its outcome comes back."""
    r = router_factory(make_config(workers=workers))
    rconns = one_per_worker(reactor, r.port, workers)
    rxs = [c.receiver("w.any", credit=30) for c in rconns]
    sconns = one_per_worker(reactor, r.port, workers)
    n = 40
    txs = [c.sender("w.any") for c in sconns]
    recs = []
    for s, tx in enumerate(txs):
        recs += tx.send_many([Message(id=f"{s}-{i}", body=f"{s}/{i}") for i in range(n)])
    total = n * workers
    eventually(30, lambda: sum(rx.count() for rx in rxs) >= total,
               what=lambda: f"{total} messages (have {[rx.count() for rx in rxs]})")
    for tx in txs:
        tx.wait_all_settled(timeout=30)
    assert [rec.outcome for rec in recs] == ["ACCEPTED"] * total
    got = sorted(i for rx in rxs for i in ids(rx))
    assert got == sorted(f"{s}-{i}" for s in range(workers) for i in range(n)), \
        "every message exactly once"
    assert sum(1 for rx in rxs if rx.count()) >= 2, \
        f"balanced spread over receivers on different workers: {[rx.count() for rx in rxs]}"
    for rx in rxs:   # one sender's messages keep their order on each receiver
        for s in range(workers):
            seq = [int(i.split("-")[1]) for i in ids(rx) if i.startswith(f"{s}-")]
            assert seq == sorted(seq), f"sender {s}'s messages reordered: {seq}"


def test_anonymous_sender_to_consumers_on_other_workers(router_factory, reactor):
    r = router_factory(make_config(workers=3))
    c0, c1, c2 = one_per_worker(reactor, r.port, 3)
    rx1 = c1.receiver("w.anon.1", credit=50)
    rx2 = c2.receiver("w.anon.2", credit=50)
    tx = c0.sender(None)
    eventually(5, lambda: tx.credit_seen > 0, what="anonymous sender gets credit")
    recs = tx.send_many([Message(id=i, address=f"w.anon.{1 + i % 2}", body=i) for i in range(60)]
                        + [Message(id="nobody", address="w.anon.none", body="x")])
    tx.wait_all_settled(timeout=30)
    assert [rec.outcome for rec in recs[:-1]] == ["ACCEPTED"] * 60
    assert recs[-1].outcome == "RELEASED", "no consumer anywhere: released"
    assert ids(rx1) == list(range(0, 60, 2)) and ids(rx2) == list(range(1, 60, 2))


def test_multicast_between_all_workers(router_factory, reactor):
    """A copy to every consumer on every worker (two on one connection),
    from an unsettled and a pre-settled sender on yet other workers."""
    r = router_factory(make_config(workers=4))
    conns = one_per_worker(reactor, r.port, 4)
    rxs = [c.receiver("mc/w", credit=100) for c in conns]
    rxs.append(conns[2].receiver("mc/w", credit=100))
    tx = conns[0].sender("mc/w")
    tx_settled = reactor.connect(r.port).wait_open().sender("mc/w", settled=True)
    n = 30
    recs = tx.send_many([Message(id=i, body=f"m{i}") for i in range(n)])
    tx.wait_all_settled(timeout=30)
    tx_settled.send_many([Message(id=n + i, body=f"p{i}") for i in range(n)])
    for rx in rxs:
        rx.wait_count(2 * n, timeout=30)
    assert all(rec.outcome == "ACCEPTED" for rec in recs), recs
    for rx in rxs:
        assert ids(rx) == list(range(2 * n)), "every copy once, in order"


@pytest.mark.parametrize("size", [0, 1, 64 * 1024 - 1, 64 * 1024 + 1, MiB, 8 * MiB])
def test_message_sizes_between_workers(router_factory, reactor, size):
    """Sender on worker 0, receiver with credit 1 on worker 1: the bytes
    cross threads in chunks while the sender streams them."""
    r = router_factory(make_config(workers=2))
    rconn, sconn = one_per_worker(reactor, r.port, 2)
    rx = rconn.receiver("w.size", credit=1)
    tx = sconn.sender("w.size")
    bodies = [payload(size, seed=k) for k in range(3)]
    recs = tx.send_many([Message(id=k, body=b) for k, b in enumerate(bodies)])
    rx.wait_count(3, timeout=60)
    tx.wait_all_settled(timeout=30)
    assert [rec.outcome for rec in recs] == ["ACCEPTED"] * 3
    for k, b in enumerate(bodies):
        got = rx.received[k]
        assert (got.size, got.digest) == (len(b), body_digest(b)), f"message {k} corrupted"


def test_slow_reader_on_other_worker_pauses_and_resumes_sender(router_factory, reactor):
    """A 24 MiB message to a slow reader on another worker, with a small
    in-flight budget: the egress worker's drain resumes the ingress worker
    many times over."""
    r = router_factory(make_config(workers=2, max_message_inflight_bytes=256 * 1024,
                                   session_capacity=1 * MiB))
    rconn = reactor.connect(r.port, max_frame_size=65536).wait_open()
    sconn = reactor.connect(r.port).wait_open()
    rx = rconn.receiver("w.slow", credit=1, session_capacity=1 * MiB, read_chunk=2 * MiB,
                        read_interval=0.02, keep_bodies=False)
    tx = sconn.sender("w.slow")
    body = payload(24 * MiB, seed=3)
    rec = tx.send(Message(id="big", body=body))
    rx.wait_count(1, timeout=120)
    tx.wait_all_settled(timeout=30)
    assert rec.outcome == "ACCEPTED"
    assert (rx.received[0].size, rx.received[0].digest) == (len(body), body_digest(body))


def test_consumers_come_and_go_on_other_workers(router_factory, reactor):
    """While a sender on worker 0 keeps sending, receivers on workers 1 and
    2 attach, take some messages and detach (or their connections close):
    every delivery ends with an outcome and none is lost or duplicated."""
    r = router_factory(make_config(workers=3))
    c0, c1, c2 = one_per_worker(reactor, r.port, 3)
    stay = c1.receiver("w.churn", credit=5)
    tx = c0.sender("w.churn")
    recs = []
    got = []
    for rnd in range(6):
        recs += tx.send_many([Message(id=f"{rnd}-{i}", body=i) for i in range(30)])
        conn = c2 if rnd % 2 else reactor.connect(r.port).wait_open()
        leaving = conn.receiver("w.churn", credit=3, outcome=None if rnd % 3 == 0 else ACCEPTED)
        eventually(10, lambda: leaving.count() > 0 or stay.count() > len(got),
                   what="traffic reaches the receivers")
        if conn is c2:
            leaving.detach()
        else:
            conn.close()
        got += [rec for rec in leaving.received if rec.local_outcome == ACCEPTED]
    tx.wait_all_settled(timeout=60)
    outcomes = {rec.outcome for rec in recs}
    assert outcomes <= {"ACCEPTED", "RELEASED", "MODIFIED"}, outcomes
    accepted = [rec.message.id for rec in recs if rec.outcome == "ACCEPTED"]
    delivered = ids(stay) + [rec.message.id for rec in got]
    assert sorted(accepted) == sorted(delivered), "accepted exactly what consumers accepted"
    assert len(set(ids(stay))) == len(ids(stay)), "no duplicates"


def test_request_response_across_workers(router_factory, reactor):
    """Requests from worker 0 with a dynamic reply address there; the
    service on worker 1 answers through an anonymous sender."""
    r = router_factory(make_config(workers=2))
    client, service = one_per_worker(reactor, r.port, 2)
    replies = client.receiver(None, dynamic=True, credit=50)
    reply_to = replies.remote_source_address
    assert reply_to and reply_to.startswith("_vane/temp/"), reply_to
    requests = service.receiver("w.service", credit=50)
    answer = service.sender(None)
    tx = client.sender("w.service")
    n = 25
    tx.send_many([Message(id=i, reply_to=reply_to, body=f"q{i}") for i in range(n)])
    requests.wait_count(n, timeout=30)
    recs = answer.send_many([Message(id=q.message.id, address=q.message.reply_to,
                                     correlation_id=q.message.id, body=f"a{q.message.id}")
                             for q in requests.received])
    replies.wait_count(n, timeout=30)
    answer.wait_all_settled(timeout=30)
    assert [rec.outcome for rec in recs] == ["ACCEPTED"] * n
    assert sorted(m.message.correlation_id for m in replies.received) == list(range(n))


# --------------------------------------------------------------------------
# TCP flows over several workers

def test_tcp_flows_spread_over_workers(router_factory, servers):
    """One router with 4 workers, its tcp listener and connector for the
    same address: 200 concurrent echo connections accepted on every worker,
    each flow's two sides possibly on different workers, and one 16 MB
    echo."""
    echo = servers(EchoServer())
    cfg = make_config(workers=4)
    cfg["tcp_listeners"] = [{"name": "in", "host": "127.0.0.1", "port": 0, "address": "w-echo"}]
    cfg["tcp_connectors"] = [{"name": "out", "host": "127.0.0.1", "port": echo.port,
                              "address": "w-echo"}]
    r = router_factory(cfg)
    port = r.tcp_ports["in"]
    wait_echo(port)
    payloads = [payload(1 + (i * 7919) % 70000, seed=i) for i in range(200)]
    swarm = EchoSwarm(port, payloads)
    results = swarm.run(timeout=120)
    assert not swarm.errors, dict(list(swarm.errors.items())[:5])
    bad = [i for i, (got, p) in enumerate(zip(results, payloads)) if got != p]
    assert not bad, f"{len(bad)} echoes came back different, e.g. #{bad[:5]}"
    data = payload(16 * 1000 * 1000, seed=99)
    assert echo_roundtrip(port, data, timeout=120) == (len(data),
                                                       hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------
# Networks of multi-worker routers

def test_network_of_multiworker_routers(router_factory, reactor, servers):
    """A -1- B -1- C plus edge router E on B, every router with 3 workers
    and the management API: anycast from A to consumers on C (on every
    worker there), multicast to A, C and E, a TCP echo from A to a
    connector on C, and management reads on every router, all at once."""
    echo = servers(EchoServer())
    net = Network(router_factory, workers=3, management=MGMT)
    net.interior("A").interior("B").interior("C").link("A", "B").link("B", "C")
    net.edge("E", uplinks=["B"])
    net.tcp_listener("A", "in", "net-echo")
    net.tcp_connector("C", "out", "net-echo", echo.port)
    net.start().wait_converged()
    port = net.tcp_port("A", "in")
    wait_echo(port)

    rxs = [c.receiver("w.net", credit=50) for c in one_per_worker(reactor, net.port("C"), 3)]
    mcs = [reactor.connect(net.port(rid)).wait_open().receiver("mc/net", credit=200)
           for rid in ("A", "C", "E", "C")]
    eventually(20, lambda: all(
        any(a["address"] == "mc/net" for a in get(net[rid], "/api/v1/addresses"))
        for rid in ("A", "B", "C")), interval=0.1, what="mc/net known everywhere")

    paths = ["/api/v1/router", "/api/v1/routers", "/api/v1/addresses", "/api/v1/connections",
             "/api/v1/links", "/api/v1/flows", "/api/v1/listeners", "/api/v1/connectors",
             "/api/v1/tcp-listeners", "/api/v1/tcp-connectors", "/metrics"]

    def read_all():
        for rid in ("A", "B", "C", "E"):
            for path in paths:
                res = net[rid].api("GET", path)
                assert res.status == 200, f"GET {path} on {rid}: {res}"
    readers = Background(read_all, "management reads")
    echoes = Background(echo_loop(port, 50000), "tcp echoes")
    try:
        senders = [c.sender("w.net") for c in one_per_worker(reactor, net.port("A"), 3)]
        mc_tx = reactor.connect(net.port("E")).wait_open().sender("mc/net")
        n = 30
        recs = []
        for s, tx in enumerate(senders):
            recs += tx.send_many([Message(id=f"{s}-{i}", body=payload(300 + i, seed=i))
                                  for i in range(n)])
        mc_recs = mc_tx.send_many([Message(id=i, body=f"mc{i}") for i in range(n)])
        for tx in senders + [mc_tx]:
            tx.wait_all_settled(timeout=60)
        readers.wait_rounds(2)
        echoes.wait_rounds(3)
    finally:
        readers.stop()
        echoes.stop()
    assert [rec.outcome for rec in recs] == ["ACCEPTED"] * (3 * n)
    assert sorted(i for rx in rxs for i in ids(rx)) == sorted(
        f"{s}-{i}" for s in range(3) for i in range(n))
    assert all(rec.outcome == "ACCEPTED" for rec in mc_recs), mc_recs
    for rx in mcs:
        rx.wait_count(n, timeout=30)
        assert ids(rx) == list(range(n)), "each multicast consumer: every message once"


# --------------------------------------------------------------------------
# Management and reload while traffic crosses the workers

def test_management_reads_gathered_from_every_worker(router_factory, reactor, servers):
    """The connections, links, flows, addresses and metrics are gathered
    from every worker: many of those reads at once from several clients,
    on a router with 4 workers carrying AMQP links and open TCP flows on
    each, are all answered (and whatever a read holds is released on the
    thread that owns it)."""
    echo = servers(EchoServer())
    cfg = make_config(router_id="gather", workers=4)
    cfg["management"] = dict(MGMT)
    cfg["tcp_listeners"] = [{"name": "in", "host": "127.0.0.1", "port": 0, "address": "g"}]
    cfg["tcp_connectors"] = [{"name": "out", "host": "127.0.0.1", "port": echo.port,
                              "address": "g"}]
    r = router_factory(cfg, name="gather")
    wait_echo(r.tcp_ports["in"])
    for k, c in enumerate(one_per_worker(reactor, r.port, 4)):
        c.receiver(f"w.gather.{k}", credit=5)
    held = [connect(r.tcp_ports["in"]) for _ in range(4)]
    try:
        eventually(20, lambda: len(get(r, "/api/v1/flows")) >= 8, interval=0.1,
                   what="both sides of 4 open flows listed")
        paths = ["/api/v1/connections", "/api/v1/links", "/api/v1/flows",
                 "/api/v1/addresses", "/metrics"]

        def reads():
            for _ in range(25):
                for path in paths:
                    res = r.api("GET", path)
                    assert res.status == 200, f"GET {path}: {res}"
        clients = [Background(reads, f"reader {i}") for i in range(4)]
        for c in clients:
            c.wait_rounds(1)
        for c in clients:
            c.stop()
    finally:
        for s in held:
            s.close()


def test_management_changes_and_reload_while_traffic_flows(router_factory, reactor, servers):
    """One router with 3 workers carrying AMQP messages and TCP echoes while
    the management API reads everything and adds and deletes tcp listeners,
    tcp connectors, AMQP listeners and address rules, and SIGHUP reloads
    add and remove a tcp listener."""
    echo = servers(EchoServer())
    cfg = make_config(router_id="busy", workers=3)
    cfg["management"] = dict(MGMT)
    cfg["tcp_listeners"] = [{"name": "in", "host": "127.0.0.1", "port": 0, "address": "busy"}]
    cfg["tcp_connectors"] = [{"name": "out", "host": "127.0.0.1", "port": echo.port,
                              "address": "busy"}]
    r = router_factory(cfg, name="busy")
    port = r.tcp_ports["in"]
    wait_echo(port)

    rx = [c.receiver("w.busy", credit=50) for c in one_per_worker(reactor, r.port, 3)]
    tx = reactor.connect(r.port).wait_open().sender("w.busy")
    sent = []

    def send_some():
        sent.extend(tx.send_many([Message(id=len(sent) + i, body=f"b{i}") for i in range(10)]))
        tx.wait_all_settled(timeout=30)
        time.sleep(0.01)

    def api_round():
        for path in ("/api/v1/router", "/api/v1/connections", "/api/v1/links",
                     "/api/v1/flows", "/api/v1/addresses", "/api/v1/tcp-listeners",
                     "/api/v1/tcp-connectors", "/api/v1/listeners", "/metrics"):
            assert r.api("GET", path).status == 200, path
        # A reload makes the tcp listeners and connectors match the file, so
        # one running meanwhile may remove those made here (404 below).
        res = r.api("POST", "/api/v1/tcp-listeners",
                    {"name": "api-in", "host": "127.0.0.1", "port": 0, "address": "busy"})
        assert res.status == 201, res
        res = r.api("POST", "/api/v1/tcp-connectors",
                    {"name": "api-out", "host": "127.0.0.1", "port": echo.port,
                     "address": "busy2"})
        assert res.status == 201, res
        res = r.api("POST", "/api/v1/listeners", {"name": "api-amqp", "port": 0})
        assert res.status == 201, res
        res = r.api("POST", "/api/v1/address-rules", {"prefix": "w.rule/",
                                                      "distribution": "closest"})
        assert res.status == 201, res
        for path in ("/api/v1/tcp-listeners/api-in", "/api/v1/tcp-connectors/api-out"):
            res = r.api("DELETE", path)
            assert res.status in (204, 404), f"DELETE {path}: {res}"
        res = r.api("DELETE", "/api/v1/listeners/api-amqp")
        assert res.status == 204, res
        res = r.api("DELETE", "/api/v1/address-rules?prefix=w.rule%2F")
        assert res.status == 204, res

    messages = Background(send_some, "amqp traffic")
    echoes = Background(echo_loop(port), "tcp echoes")
    api = Background(api_round, "management changes")
    try:
        base = dict(cfg)
        for k in range(4):
            extra = dict(base)
            extra["tcp_listeners"] = base["tcp_listeners"] + (
                [{"name": "hup-in", "host": "127.0.0.1", "port": 0, "address": "busy"}]
                if k % 2 == 0 else [])
            line = r.reload(extra, timeout=30)
            assert "reload done" in line, line
            if k % 2 == 0:
                hup_port = r.tcp_port("hup-in")
                assert echo_roundtrip(hup_port, b"hup", timeout=30)[0] == 3
        api.wait_rounds(2)
        messages.wait_rounds(3)
        echoes.wait_rounds(3)
    finally:
        api.stop()
        messages.stop()
        echoes.stop()
    tx.wait_all_settled(timeout=30)
    assert {rec.outcome for rec in sent} == {"ACCEPTED"}
    eventually(30, lambda: sum(x.count() for x in rx) == len(sent),
               what=lambda: f"{len(sent)} messages at the receivers")


def test_connectors_added_and_deleted_while_traffic_flows(router_factory, reactor):
    """B (3 workers) links to A (2 workers) through connectors made and
    deleted with the management API, again and again (some deleted while
    still connecting), while a link through a connector from the file keeps
    carrying messages from A to B."""
    a = router_factory(make_config(
        router_id="A", workers=2,
        listeners=[{"name": "amqp", "host": "127.0.0.1", "port": 0},
                   {"name": "inter", "host": "127.0.0.1", "port": 0, "role": "inter-router"},
                   {"name": "inter2", "host": "127.0.0.1", "port": 0,
                    "role": "inter-router"}]), name="A")
    cfg = make_config(router_id="B", workers=3)
    cfg["management"] = dict(MGMT)
    cfg["connectors"] = [{"name": "file", "host": "127.0.0.1", "port": a.ports["inter"],
                          "role": "inter-router"}]
    b = router_factory(cfg, name="B")
    a.wait_for_log(r"link to router B up", timeout=20)
    rx = reactor.connect(b.port).wait_open().receiver("w.link", credit=100)
    tx = reactor.connect(a.port).wait_open().sender("w.link")
    sent = []

    def send_some():
        sent.extend(tx.send_many([Message(id=len(sent) + i, body=i) for i in range(10)]))
        tx.wait_all_settled(timeout=30)
    messages = Background(send_some, "amqp A to B")
    try:
        for k in range(6):
            name = f"api-{k}"
            body = {"name": name, "host": "127.0.0.1", "port": a.ports["inter2"],
                    "role": "inter-router", "cost": 1}
            res = b.api("POST", "/api/v1/connectors", body)
            assert res.status == 201, res
            if k % 2 == 0:
                # A second link to the same router is refused as a duplicate
                # by the routing protocol; the connector keeps trying.
                eventually(20, lambda: get(b, f"/api/v1/connectors/{name}")["attempts"] >= 1,
                           interval=0.05, what=f"connector {name} attempts")
            res = b.api("DELETE", f"/api/v1/connectors/{name}")
            assert res.status == 204, res
            assert name not in [c["name"] for c in get(b, "/api/v1/connectors")]
        messages.wait_rounds(3)
    finally:
        messages.stop()
    eventually(20, lambda: [c["name"] for c in get(b, "/api/v1/connectors")] == ["file"],
               interval=0.1, what="only the file's connector left")
    eventually(20, lambda: len([c for c in get(b, "/api/v1/connections")
                                if c["role"] == "inter-router"]) == 1,
               interval=0.1, what="one inter-router connection left at B")
    assert {rec.outcome for rec in sent} == {"ACCEPTED"}
    eventually(30, lambda: rx.count() == len(sent), what=lambda: f"{len(sent)} at B")
