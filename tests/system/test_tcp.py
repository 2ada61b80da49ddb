"""The TCP adaptor: tcp_listeners carry TCP connections across the router
network to tcp_connectors, which connect to the real servers. Every test
runs real vaned processes and real sockets (and iperf3, and network
namespaces for overlapping subnets)."""

import hashlib
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from tcp_tools import (DigestServer, EchoServer, EchoSwarm, connect, echo_roundtrip, free_port,
                       how_it_ends, recv_all, recv_line, set_reset_on_close)
from vane_harness import build_sanitizer, eventually, make_config
from vane_network import Network

MiB = 1024 * 1024




@pytest.fixture(autouse=True)
def small_asan_quarantine(monkeypatch):
    # As scripts/test.sh: ASan otherwise keeps up to 256 MiB of freed memory
    # in quarantine, which would swamp the RSS bounds measured here. Routers
    # inherit the environment.
    if "quarantine_size_mb" not in os.environ.get("ASAN_OPTIONS", ""):
        opts = os.environ.get("ASAN_OPTIONS", "")
        monkeypatch.setenv("ASAN_OPTIONS", (opts + ":" if opts else "") + "quarantine_size_mb=8")


def tcp_line(factory, n, backend_port, address="echo", **kw):
    """Routers A..: in a line; a tcp listener `in` on A, a tcp connector on
    the last router for `address` at 127.0.0.1:backend_port."""
    net = Network(factory, **kw)
    names = [chr(ord("A") + i) for i in range(n)]
    for x in names:
        net.interior(x)
    for a, b in zip(names, names[1:]):
        net.link(a, b)
    net.tcp_listener("A", "in", address)
    net.tcp_connector(names[-1], "out", address, backend_port)
    net.start().wait_converged()
    return net


def wait_served(port, timeout=20.0):
    """Polls until a connection through tcp listener `port` gets a reply
    from a backend (an echo or a digest): a tcp connector for it has become
    reachable (its address spreads with the routing protocol)."""
    def served():
        try:
            with connect(port) as s:
                s.sendall(b"probe")
                s.shutdown(socket.SHUT_WR)
                return recv_all(s, timeout=5) != b""
        except OSError:   # reset: no connector reachable yet
            return False
    eventually(timeout, served, interval=0.1, what=f"a reply through tcp listener port {port}")


def connect_to_backend(port, server, timeout=20.0):
    """A connection through tcp listener `port` that `server` (a
    DigestServer) has accepted; retried while the listener resets them."""
    def attempt():
        n = len(server.conns)
        try:
            s = connect(port)
        except ConnectionResetError:   # no connector reachable yet
            return None
        if server.wait_conns(n + 1, timeout=1.0):
            return s
        s.close()
        return None
    return eventually(timeout, attempt, interval=0.05,
                      what=f"a connection through port {port} reaching the backend")


def payload(size, seed=0):
    return random.Random(seed).randbytes(size)


# --------------------------------------------------------------------------
# Echo over 1, 2 and 3 routers

SIZES = {"1B": 1, "64KiB+1": 64 * 1024 + 1, "1MB": 1000 * 1000}


@pytest.mark.parametrize("hops", [1, 2, 3])
def test_echo_payloads(router_factory, servers, hops):
    echo = servers(EchoServer())
    net = tcp_line(router_factory, hops, echo.port)
    port = net.tcp_port("A", "in")
    wait_served(port)
    for name, size in SIZES.items():
        data = payload(size, seed=size)
        got, digest = echo_roundtrip(port, data, timeout=30)
        assert (got, digest) == (len(data), hashlib.sha256(data).hexdigest()), (
            f"{name} echo through {hops} router(s) came back different: {got} bytes")


def test_echo_between_edge_routers(router_factory, servers):
    """Listener on an edge router attached to A, connector on an edge router
    attached to B: the flow crosses E1 -> A -> B -> E2, and the reply stream
    goes back through both uplinks (an edge router knows only its uplink)."""
    echo = servers(EchoServer())
    net = Network(router_factory)
    net.interior("A").interior("B").link("A", "B")
    net.edge("E1", uplinks=["A"]).edge("E2", uplinks=["B"])
    net.tcp_listener("E1", "in", "svc")
    net.tcp_connector("E2", "out", "svc", echo.port)
    # A listener on an interior router reaching the same edge-side service.
    net.tcp_listener("A", "in", "svc")
    net.start().wait_converged()
    for rid in ("E1", "A"):
        port = net.tcp_port(rid, "in")
        wait_served(port)
        data = payload(300 * 1000, seed=7)
        got, digest = echo_roundtrip(port, data, timeout=30)
        assert (got, digest) == (len(data), hashlib.sha256(data).hexdigest()), (
            f"echo from a tcp listener on {rid} to a connector on edge router E2: {got} bytes")


def test_echo_100mb_three_routers(router_factory, servers):
    echo = servers(EchoServer())
    net = tcp_line(router_factory, 3, echo.port)
    port = net.tcp_port("A", "in")
    wait_served(port)
    data = payload(100 * MiB, seed=7)
    start = time.monotonic()
    got, digest = echo_roundtrip(port, data, timeout=90)
    took = time.monotonic() - start
    assert got == len(data), f"100 MiB echo: {got} bytes came back in {took:.1f}s"
    assert digest == hashlib.sha256(data).hexdigest(), "100 MiB echo corrupted"


# --------------------------------------------------------------------------
# Many connections at once

def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@pytest.mark.parametrize("hops", [1, 2])
def test_thousand_concurrent_connections(router_factory, servers, hops):
    n = 1000
    # This process holds both ends (2n sockets); the routers inherit the limit.
    limit = raise_nofile()
    if limit < 2 * n + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {limit} is below {2 * n + 200}")
    echo = servers(EchoServer())
    net = tcp_line(router_factory, hops, echo.port)
    port = net.tcp_port("A", "in")
    wait_served(port)
    before = echo.accepted
    payloads = [payload(2048 + 7 * i, seed=1000 + i) for i in range(n)]
    swarm = EchoSwarm(port, payloads)

    start = time.monotonic()
    # Every connection has sent half its payload and the backend holds all
    # of them open at the same time before any of them finishes.
    results = swarm.run(timeout=60, ready=lambda: echo.active >= n)
    took = time.monotonic() - start
    assert not swarm.errors, (
        f"{len(swarm.errors)}/{n} connections failed (backend: {echo.accepted - before} "
        f"accepted, {echo.active} open, peak {echo.peak_active}), e.g. "
        f"{dict(list(swarm.errors.items())[:3])}")
    bad = [i for i, (p, r) in enumerate(zip(payloads, results)) if r != p]
    assert not bad, (f"{len(bad)}/{n} echoes wrong, e.g. #{bad[0]}: sent {len(payloads[bad[0]])}"
                     f" bytes, got {len(results[bad[0]] or b'')}")
    assert echo.accepted - before == n
    assert echo.peak_active >= n
    print(f"{n} concurrent echo connections through {hops} router(s) in {took:.1f}s")
    # The routers are still fine.
    wait_served(port, timeout=10)


# --------------------------------------------------------------------------
# Half-close and resets

@pytest.mark.parametrize("hops", [1, 2])
def test_half_close_reply_after_eof(router_factory, servers, hops):
    server = servers(DigestServer())
    net = tcp_line(router_factory, hops, server.port)
    port = net.tcp_port("A", "in")
    wait_served(port)
    data = payload(300 * 1000, seed=3)
    with connect(port) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)   # half-close: we keep reading
        reply = recv_all(s, timeout=10)
    # The server answers only after it read EOF: the reply proves the
    # half-close arrived and the other direction stayed open; recv_all
    # returning proves the server's own half-close came back as EOF.
    assert reply == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode(), reply
    assert server.conns[-1]["end"] == "eof", server.conns[-1]


def test_server_half_close_reaches_client(router_factory, servers):
    """The server sends, then closes its side first; the client reads EOF,
    then still writes, and the server still reads that."""
    server = servers(DigestServer(greeting=b"bye-from-server", shut_first=True))
    net = tcp_line(router_factory, 2, server.port)
    s = connect_to_backend(net.tcp_port("A", "in"), server)
    with s:
        assert recv_all(s, timeout=10) == b"bye-from-server"
        rec = server.conns[-1]
        assert rec["end"] is None, "the server's half-close ended the whole connection"
        s.sendall(b"client-still-talking")
        s.shutdown(socket.SHUT_WR)
        eventually(10, lambda: rec["end"] is not None, what="the server reads the client's EOF")
    assert rec["end"] == "eof", rec
    assert rec["received"] == 20 and rec["digest"] == hashlib.sha256(
        b"client-still-talking").hexdigest(), rec


def test_server_reset_resets_client(router_factory, servers):
    server = servers(DigestServer(reset_after=1000))
    net = tcp_line(router_factory, 2, server.port)
    s = connect_to_backend(net.tcp_port("A", "in"), server)
    with s:
        s.sendall(b"x" * 1000)
        end, _, took = how_it_ends(s, timeout=5)
    assert server.conns[-1]["end"] == "reset-by-server", server.conns[-1]
    assert end == "reset", (f"the server reset its connection; the client saw {end} after "
                            f"{took:.2f}s")


def test_client_reset_resets_server(router_factory, servers):
    server = servers(DigestServer())
    net = tcp_line(router_factory, 2, server.port)
    s = connect_to_backend(net.tcp_port("A", "in"), server)
    rec = server.conns[-1]
    s.sendall(b"y" * 5000)
    eventually(5, lambda: rec["received"] == 5000, what="the client's bytes at the server")
    set_reset_on_close(s)
    s.close()
    eventually(5, lambda: rec["end"] is not None, what="the server's connection ends")
    assert rec["end"] == "reset", f"the client reset; the server's side ended with {rec['end']}"


# --------------------------------------------------------------------------
# Anycast over connectors on two routers

def open_greeted(port, n, timeout=10.0):
    """Opens `n` connections through `port` (kept open) and reads each
    backend's greeting line: returns [(socket, greeting)]."""
    out = []
    for _ in range(n):
        s = None
        try:
            s = connect(port)
            out.append((s, recv_line(s, timeout=timeout).decode()))
        except (OSError, EOFError):
            if s is not None:
                s.close()
            out.append((None, "reset"))
    return out


def close_all(conns):
    for s, _ in conns:
        if s is not None:
            s.close()


def test_anycast_spreads_and_fails_over(router_factory, servers):
    backend = {x: servers(EchoServer(greeting=f"{x}\n".encode())) for x in ("B", "C")}
    net = Network(router_factory)
    net.interior("A").interior("B").interior("C").link("A", "B").link("A", "C")
    net.tcp_listener("A", "in", "svc")
    for x in ("B", "C"):
        net.tcp_connector(x, "svc", "svc", backend[x].port)
    net.start().wait_converged()
    port = net.tcp_port("A", "in")

    held = []
    try:
        # Both connectors are reachable once connections held open have
        # reached both backends.
        def both():
            held.extend(open_greeted(port, 1))
            return {"B", "C"} <= {g for _, g in held}
        eventually(20, both, interval=0.05,
                   what=lambda: f"connections reach both backends: {[g for _, g in held]}")
        close_all(held)
        held.clear()
        eventually(5, lambda: backend["B"].active + backend["C"].active == 0,
                   what="probe connections closed at the backends")

        # Balanced by open connections: 20 held connections spread evenly.
        held = open_greeted(port, 20)
        counts = {x: sum(1 for _, g in held if g == x) for x in ("B", "C", "reset")}
        assert counts["reset"] == 0, counts
        assert min(counts["B"], counts["C"]) >= 8, f"20 open connections not spread: {counts}"

        # C's router dies: its flows are reset, B's continue, and new ones
        # all go to B.
        net.kill("C")
        for s, g in held:
            if g == "C":
                end, _, took = how_it_ends(s, timeout=5)
                assert end == "reset", f"a flow through the dead router C: {end} after {took}s"
        net.wait_converged()
        for s, g in held:
            if g == "B":
                assert talk(s, b"still here") == b"still here"
        after = open_greeted(port, 10)
        held += after
        assert [g for _, g in after] == ["B"] * 10, f"after C died: {[g for _, g in after]}"
        assert talk(after[-1][0], b"ping") == b"ping"
    finally:
        close_all(held)


# --------------------------------------------------------------------------
# Failures: no connector, refused target

def send_and_end(port, data, half_close=False, timeout=5.0):
    """Connects, sends `data` (optionally half-closes) and reads until the
    connection ends: ("eof"|"reset", bytes read, seconds since connect).
    A reset that comes before or during the send counts (on loopback it
    can even beat connect() returning)."""
    start = time.monotonic()
    try:
        s = connect(port)
    except ConnectionResetError:
        return "reset", 0, time.monotonic() - start
    with s:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except (ConnectionResetError, BrokenPipeError):
            return "reset", 0, time.monotonic() - start
        try:
            end, got, _ = how_it_ends(s, timeout=timeout)
        except TimeoutError:
            end, got = f"still open after {timeout}s", 0
    return end, got, time.monotonic() - start


def test_no_connector_resets_then_serves(router_factory, servers):
    echo = servers(EchoServer())
    net = Network(router_factory)
    net.interior("A").interior("B").link("A", "B")
    net.tcp_listener("A", "in", "late")
    net.tcp_connector("B", "late", "late", echo.port)
    net.start_router("A")       # B (with the connector) is not up yet
    port = net.tcp_port("A", "in")
    for i in range(5):
        end, got, took = send_and_end(port, b"anyone?")
        assert end == "reset" and got == 0, f"connection {i}: {end}, {got} bytes"
        assert took < 0.5, f"connection {i} took {took:.2f}s to be reset"
    net["A"].wait_for_log(r"tcp listener in: no tcp connector for 'late' is reachable")
    assert echo.accepted == 0

    net.start_router("B")
    wait_served(port, timeout=20)
    got, digest = echo_roundtrip(port, b"now served", timeout=10)
    assert (got, digest) == (10, hashlib.sha256(b"now served").hexdigest())
    net["A"].wait_for_log(r"tcp listener in: a tcp connector for 'late' is reachable again")


@pytest.mark.parametrize("hops", [1, 2])
def test_refused_target_resets_client(router_factory, hops):
    """The connector's server refuses: the client, which has sent a request
    and waits for the answer (no half-close), is reset at once."""
    closed = free_port()
    net = tcp_line(router_factory, hops, closed, address="nothing-there")
    port = net.tcp_port("A", "in")
    connector = net[net.order[-1]]
    line = f"tcp connector out: cannot connect to 127.0.0.1:{closed}"

    def failures():
        return connector.log_text().count(line)

    # Until the connector is reachable the listener resets on its own; the
    # half-close makes each probe end at once either way.
    eventually(20, lambda: send_and_end(port, b"probe", half_close=True) and failures() > 0,
               interval=0.1, what="the connector tries the closed port")
    connector.wait_for_log(rf"\[info\] {line}: Connection refused")
    for i in range(3):
        before = failures()
        end, got, took = send_and_end(port, b"GET / HTTP/1.0\r\n\r\n", timeout=3)
        assert end == "reset" and got == 0, (
            f"connection {i} to a refused server through {hops} router(s): {end}, {got} bytes "
            f"read (the connector's router logged the refusal: {failures() > before})")
        assert took < 1.0, f"connection {i} took {took:.2f}s to be reset"
        eventually(5, lambda: failures() > before, what="a 'cannot connect' line for it")


# --------------------------------------------------------------------------
# Flow control: bounded memory

def router_metric(router, name):
    """The value of the unlabelled metric `name` on `router`'s /metrics."""
    text = router.api("GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def buffered(router):
    """vane_traffic_buffered_bytes of `router` (bytes of traffic it holds)."""
    return router_metric(router, "vane_traffic_buffered_bytes")


class RssSampler:
    """Samples the routers' RSS every `interval` seconds on a thread."""

    def __init__(self, routers, interval=0.05):
        self.routers = routers
        self.interval = interval
        self.baseline = {r.name: r.rss() for r in routers}
        self.peak = dict(self.baseline)
        self.samples = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        t0 = time.monotonic()
        while not self._stop.wait(self.interval):
            row = {r.name: r.rss() for r in self.routers if r.alive()}
            for k, v in row.items():
                self.peak[k] = max(self.peak[k], v)
            self.samples.append((round(time.monotonic() - t0, 1), row))

    def stop(self):
        self._stop.set()
        self._t.join(5)

    def growth(self):
        return {k: self.peak[k] - self.baseline[k] for k in self.baseline}

    def describe(self):
        rows = self.samples[:: max(1, len(self.samples) // 20)]
        return "; ".join(f"t={t}: " + ", ".join(f"{k} {v / MiB:.0f}" for k, v in row.items())
                         for t, row in rows)


@pytest.mark.release
def test_many_streams_at_once_leave_no_engine_buffer_behind(router_factory, servers, vaned_bin):
    """16 TCP connections at once through two routers, each moving more
    than a stream window: every stream has its own session on the router
    link, and the engine frames what all of them may send into one output
    buffer that never shrinks while the link lives. The router limits what
    a connection moves into the engine ahead of the socket, so once the
    traffic is over the routers are back near where they were (before:
    about 16 x the 1 MiB stream window stayed in use on both routers)."""
    if build_sanitizer(vaned_bin) is not None:
        pytest.skip("the heap in use is measured with glibc's allocator (not a sanitizer's)")
    echo = servers(EchoServer())
    net = tcp_line(router_factory, 2, echo.port, management={"port": 0}, workers=1)
    port = net.tcp_port("A", "in")
    wait_served(port)
    time.sleep(0.5)
    heap_in_use = lambda r: router_metric(r, "vane_memory_heap_in_use_bytes")  # noqa: E731
    base = {n: heap_in_use(net[n]) for n in "AB"}
    data = payload(4 * MiB, seed=16)
    want = (len(data), hashlib.sha256(data).hexdigest())
    for _ in range(2):
        results = [None] * 16

        def run(i):
            results[i] = echo_roundtrip(port, data, timeout=120)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        assert results == [want] * 16, "an echo came back different"
    time.sleep(1)
    grown = {n: (heap_in_use(net[n]) - base[n]) / MiB for n in "AB"}
    assert all(g < 10 for g in grown.values()), (
        "in use once the 16 streams are over, above where the routers were: "
        + ", ".join(f"{n} {g:+.1f} MiB" for n, g in grown.items()))


def test_bounded_memory_server_not_reading(router_factory, servers):
    """A client offers 200 MiB to a server that reads nothing: the routers
    stop reading from the client after a window per hop instead of
    buffering, so little gets in and RSS stays flat. Then the server reads
    and all 200 MiB arrive intact (the flow was paused, not broken), RSS
    still bounded. vane_traffic_buffered_bytes shows what each router holds
    of the stream: at most a window per hop and direction while stalled,
    nothing once the flow has ended."""
    total = 200 * MiB
    gate = threading.Event()
    server = servers(DigestServer(gate=gate))
    net = tcp_line(router_factory, 2, server.port, management={"port": 0})
    port = net.tcp_port("A", "in")
    s = connect_to_backend(port, server)
    block = payload(MiB, seed=11)
    sampler = RssSampler([net["A"], net["B"]])
    try:
        # Phase 1: the server reads nothing. Push for 3 s (and 1 s without
        # progress): the routers must stop reading rather than buffer.
        s.setblocking(False)
        pushed = 0
        deadline = time.monotonic() + 3.0
        last_progress = time.monotonic()
        while pushed < total and time.monotonic() < deadline:
            try:
                off = pushed % MiB
                n = s.send(block[off:])
                pushed += n
                last_progress = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - last_progress > 1.0:
                    break
                time.sleep(0.01)
        stalled_at = pushed
        stalled_growth = sampler.growth()
        held = {x: buffered(net[x]) for x in "AB"}
        # Phase 2: the server reads; the rest of the 200 MiB goes through.
        gate.set()
        s.setblocking(True)
        s.settimeout(30)
        while pushed < total:
            off = pushed % MiB
            n = min(MiB - off, total - pushed)
            s.sendall(block[off:off + n])
            pushed += n
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s, timeout=30)
    finally:
        sampler.stop()
        s.close()
    expect = hashlib.sha256()
    for _ in range(total // MiB):
        expect.update(block)
    assert reply == f"{total} {expect.hexdigest()}\n".encode(), reply
    # Stalled, the stream sat in the routers: B holds the window it may send
    # to the server's socket, A the window of its outgoing stream link (1 MiB
    # each by default, plus up to one read's overshoot).
    assert held["A"] > 0 and held["B"] > 0, held
    assert all(v <= 2 * MiB + 256 * 1024 for v in held.values()), held
    eventually(10, lambda: buffered(net["A"]) == 0 and buffered(net["B"]) == 0,
               what="the routers to hold no stream bytes once the flow ended")
    # What the client got into the network while the server read nothing:
    # kernel socket buffers (a few MiB at each of the 4 sockets on the way)
    # plus one window per hop; never anywhere near the 200 MiB offered.
    assert stalled_at < 48 * MiB, (
        f"the client pushed {stalled_at / MiB:.0f} MiB into a server that reads nothing")
    # Each router holds at most one window (1 MiB by default) per direction
    # and hop of the flow: A the client side's and its outgoing stream
    # link's, B the incoming stream's and the server side's write queue, so
    # a few MiB of stream data. On top come ASan's 8 MiB quarantine of freed
    # buffers, allocator caches and Proton's transport buffers: about 15-20
    # MiB measured with ASan (and ~30 MiB with an 8 MiB window). A router
    # that buffered the stream would grow towards the 200 MiB offered.
    growth = sampler.growth()
    assert all(g < 32 * MiB for g in growth.values()), (
        f"RSS growth (MiB): { {k: round(v / MiB, 1) for k, v in growth.items()} }; pushed "
        f"{stalled_at / MiB:.0f} MiB before the server read; samples (MiB): {sampler.describe()}")
    print(f"stalled at {stalled_at / MiB:.1f} MiB, routers holding {held}; RSS growth MiB stalled "
          f"{ {k: round(v / MiB, 1) for k, v in stalled_growth.items()} } overall "
          f"{ {k: round(v / MiB, 1) for k, v in growth.items()} } baseline "
          f"{ {k: round(v / MiB, 1) for k, v in sampler.baseline.items()} }")


# --------------------------------------------------------------------------
# SIGHUP: tcp listeners and connectors come and go at run time

def talk(s, data):
    """One echo exchange on an open connection."""
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(len(data) - len(got))
        assert chunk, f"EOF after {got!r} while waiting for the echo of {data!r}"
        got += chunk
    return got


def with_tcp(cfg, listeners=None, connectors=None):
    cfg = dict(cfg)
    cfg.pop("tcp_listeners", None)
    cfg.pop("tcp_connectors", None)
    if listeners:
        cfg["tcp_listeners"] = listeners
    if connectors:
        cfg["tcp_connectors"] = connectors
    return cfg


def test_sighup_adds_and_removes_tcp_listeners(router_factory, servers):
    echo = servers(EchoServer())
    net = Network(router_factory)
    net.interior("A").interior("B").link("A", "B")
    net.start().wait_converged()
    a, b = net["A"], net["B"]
    a_cfg, b_cfg = a.config, b.config
    in1 = {"name": "in1", "host": "127.0.0.1", "port": 0, "address": "svc"}
    in2 = {"name": "in2", "host": "127.0.0.1", "port": 0, "address": "svc"}
    conn = {"name": "svc-backend", "host": "127.0.0.1", "port": echo.port, "address": "svc"}

    # Add: a connector on B, two listeners on A.
    assert b.reload(with_tcp(b_cfg, connectors=[conn])).endswith("reload done")
    b.wait_for_log(r"tcp connector svc-backend: serving address svc")
    assert a.reload(with_tcp(a_cfg, listeners=[in1, in2])).endswith("reload done")
    port1, port2 = a.tcp_port("in1"), a.tcp_port("in2")
    wait_served(port1)
    wait_served(port2)

    with connect(port1) as f1:
        assert talk(f1, b"f1 before") == b"f1 before"
        # Remove listener in1: its port refuses; its open flow goes on; in2
        # is untouched.
        assert a.reload(with_tcp(a_cfg, listeners=[in2])).endswith("reload done")
        a.wait_for_log(r"tcp listener in1: closed")
        with pytest.raises(ConnectionRefusedError):
            connect(port1).close()
        assert talk(f1, b"f1 after its listener went") == b"f1 after its listener went"
        f1.shutdown(socket.SHUT_WR)
        assert recv_all(f1, timeout=5) == b"", "f1's half-close should come back as EOF"
    got = echo_roundtrip(port2, b"in2 still serves", timeout=10)
    assert got == (16, hashlib.sha256(b"in2 still serves").hexdigest())
    assert a.alive() and b.alive()


def test_sighup_removes_tcp_connector_open_flow_continues(router_factory, servers):
    server = servers(DigestServer())
    net = Network(router_factory)
    net.interior("A").interior("B").link("A", "B")
    net.tcp_listener("A", "in", "svc")
    net.tcp_connector("B", "svc-backend", "svc", server.port)
    net.start().wait_converged()
    a, b = net["A"], net["B"]
    port = a.tcp_port("in")
    b_cfg = b.config
    flow = connect_to_backend(port, server)
    rec = server.conns[-1]
    with flow:
        flow.sendall(b"a" * 1000)
        eventually(5, lambda: rec["received"] == 1000, what="bytes before the reload")

        # Remove the connector: new connections are reset once A knows.
        assert b.reload(with_tcp(b_cfg)).endswith("reload done")
        b.wait_for_log(r"tcp connector svc-backend: removed")
        eventually(10, lambda: send_and_end(port, b"anyone?")[0] == "reset", interval=0.1,
                   what="new connections reset after the connector went")
        a.wait_for_log(r"tcp listener in: no tcp connector for 'svc' is reachable")

        # The open flow goes on, both ways.
        flow.sendall(b"b" * 1000)
        eventually(5, lambda: rec["received"] == 2000 or rec["end"],
                   what=lambda: f"bytes sent after the connector was removed reach the server "
                                f"(server has {rec['received']} of 2000, end {rec['end']})")
        flow.shutdown(socket.SHUT_WR)
        try:
            reply = recv_all(flow, timeout=5)
        except OSError as exc:
            reply = repr(exc)
    data = b"a" * 1000 + b"b" * 1000
    assert reply == f"2000 {hashlib.sha256(data).hexdigest()}\n".encode(), (
        f"open flow after its connector was removed: reply {reply!r}; server side {rec}")

    # And back: the connector serves again.
    assert b.reload(with_tcp(b_cfg, connectors=b_cfg["tcp_connectors"])).endswith("reload done")
    wait_served(port)


# --------------------------------------------------------------------------
# iperf3: a control connection and data connections, all through vane

def test_iperf3_through_two_routers(router_factory, tmp_path):
    iperf3 = shutil.which("iperf3")
    if iperf3 is None:
        pytest.skip("iperf3 is not installed (scripts/install-deps.sh installs it)")
    iport = free_port()
    out = open(tmp_path / "iperf3-server.log", "w")
    server = subprocess.Popen([iperf3, "-s", "-B", "127.0.0.1", "-p", str(iport), "--forceflush"],
                              stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        eventually(10, lambda: "Server listening" in (tmp_path / "iperf3-server.log").read_text()
                   or server.poll() is not None, what="iperf3 server listening")
        assert server.poll() is None, (tmp_path / "iperf3-server.log").read_text()
        net = tcp_line(router_factory, 2, iport, address="iperf")
        port = net.tcp_port("A", "in")
        attempts = []

        def run_client():
            # Until the connector is reachable the listener resets at once
            # and iperf3 fails fast; then one run of 2 seconds.
            p = subprocess.run([iperf3, "-c", "127.0.0.1", "-p", str(port), "-t", "2", "-J"],
                               capture_output=True, text=True, timeout=40)
            attempts.append(p)
            return p.returncode == 0
        eventually(30, run_client, interval=0.2,
                   what=lambda: f"an iperf3 run through vane; last: rc {attempts[-1].returncode}"
                                f" {attempts[-1].stdout[-600:]} {attempts[-1].stderr[-300:]}")
        result = json.loads(attempts[-1].stdout)
        assert "error" not in result, result["error"]
        sent = result["end"]["sum_sent"]["bytes"]
        received = result["end"]["sum_received"]["bytes"]
        assert sent > 0 and received > 0, result["end"]
        # The receiver got what the sender sent, apart from what was in
        # flight when the test ended.
        assert received >= sent * 0.9, (sent, received)
        print(f"iperf3 through 2 routers: "
              f"{result['end']['sum_received']['bits_per_second'] / 1e9:.2f} Gbit/s")
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        out.close()


# --------------------------------------------------------------------------
# Overlapping subnets: the same service address at two sites

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tcp_tools.py")


def ip(*args):
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


@pytest.fixture
def netns():
    """``make(name) -> namespace``: network namespaces with unique names
    and their loopback up, deleted at teardown (with their interfaces).
    Skips the test where namespaces cannot be created (e.g. not root)."""
    if shutil.which("ip") is None:
        pytest.skip("no `ip` command (iproute2) for network namespaces")
    tag = f"vane-{os.getpid()}-{random.randrange(1 << 20):x}"
    made = []

    def make(name):
        ns = f"{tag}-{name}"
        try:
            ip("netns", "add", ns)
        except RuntimeError as exc:
            if not made:
                pytest.skip(f"cannot create network namespaces here: {exc}")
            raise
        made.append(ns)
        ip("-n", ns, "link", "set", "lo", "up")
        return ns
    yield make
    for ns in made:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=15)


def veth(ns1, name1, addr1, ns2, name2, addr2=None):
    """A veth pair from ns1 to ns2, addressed and up."""
    ip("link", "add", name1, "netns", ns1, "type", "veth", "peer", "name", name2, "netns", ns2)
    ip("-n", ns1, "addr", "add", addr1, "dev", name1)
    if addr2:
        ip("-n", ns2, "addr", "add", addr2, "dev", name2)
    ip("-n", ns1, "link", "set", name1, "up")
    ip("-n", ns2, "link", "set", name2, "up")


def in_ns(ns, *cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          **kw)


def test_overlapping_subnets_in_namespaces(netns, router_factory, tmp_path):
    """Two sites with the same private subnet and the same service address
    (10.77.0.2:8080); a third site with no IP route to it reaches both
    services by name through vane."""
    ns = {x: netns(x) for x in ("a", "b", "c")}
    for x in ("a", "b"):
        # The site's LAN: 10.77.0.0/24 with the service at 10.77.0.2.
        veth(ns[x], "lan0", "10.77.0.2/24", ns[x], "lan1")
    # Transit links: C-A on 10.78.1.0/30, C-B on 10.78.2.0/30.
    veth(ns["c"], "to-a", "10.78.1.1/30", ns["a"], "to-c", "10.78.1.2/30")
    veth(ns["c"], "to-b", "10.78.2.1/30", ns["b"], "to-c", "10.78.2.2/30")
    # No route from C's namespace to the sites' subnet: only vane gets there.
    assert ip("-n", ns["c"], "route", "show").count("10.77.") == 0
    no_route = in_ns(ns["c"], sys.executable, TOOLS, "fetch", "10.77.0.2", "8080", timeout=15)
    assert "error" in no_route.stdout, f"10.77.0.2 is reachable from ns c: {no_route.stdout}"

    services = []
    try:
        for x in ("a", "b"):
            log = open(tmp_path / f"service-{x}.log", "w")
            services.append((subprocess.Popen(
                ["ip", "netns", "exec", ns[x], sys.executable, TOOLS, "identity", "10.77.0.2",
                 "8080", f"service-in-site-{x}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log))
        for x, (proc, _) in zip(("a", "b"), services):
            eventually(10, lambda: "listening on" in (tmp_path / f"service-{x}.log").read_text()
                       or proc.poll() is not None, what=f"service in site {x} listening")
            assert proc.poll() is None, (tmp_path / f"service-{x}.log").read_text()

        amqp = {"name": "amqp", "host": "127.0.0.1", "port": 0, "role": "normal"}
        c_cfg = make_config(router_id="C", listeners=[
            amqp, {"name": "inter", "host": "0.0.0.0", "port": 55672, "role": "inter-router"}])
        c_cfg["tcp_listeners"] = [
            {"name": f"svc-{x}-in", "host": "127.0.0.1", "port": 0, "address": f"svc-{x}"}
            for x in ("a", "b")]
        routers = {"C": router_factory(c_cfg, name="C",
                                       command_prefix=("ip", "netns", "exec", ns["c"]))}
        for x, transit in (("a", "10.78.1.1"), ("b", "10.78.2.1")):
            cfg = make_config(router_id=x.upper(), listeners=[amqp])
            cfg["connectors"] = [{"name": "to-C", "host": transit, "port": 55672,
                                  "role": "inter-router"}]
            cfg["tcp_connectors"] = [{"name": f"svc-{x}", "host": "10.77.0.2", "port": 8080,
                                      "address": f"svc-{x}"}]
            routers[x.upper()] = router_factory(
                cfg, name=x.upper(), command_prefix=("ip", "netns", "exec", ns[x]))
        routers["C"].wait_for_log(r"router C: 2 router\(s\) reachable", timeout=20)

        for x in ("a", "b"):
            port = routers["C"].tcp_ports[f"svc-{x}-in"]
            last = []

            def fetch():
                p = in_ns(ns["c"], sys.executable, TOOLS, "fetch", "127.0.0.1", str(port),
                          timeout=15)
                last.append(p.stdout + p.stderr)
                return p.stdout == f"service-in-site-{x}\nping\n"
            eventually(20, fetch, interval=0.1,
                       what=lambda: f"svc-{x} through C answers as site {x}; last: {last[-1:]}")
    finally:
        for proc, log in services:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            log.close()
