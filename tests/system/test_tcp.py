"""The TCP adaptor: tcp_listeners carry TCP connections across the router
network to tcp_connectors, which connect to the real servers. Every test
runs real vaned processes and real sockets (and iperf3, and network
namespaces for overlapping subnets)."""

import hashlib
import os
import random
import resource
import signal
import socket
import subprocess
import threading
import time

import pytest

from tcp_tools import (DigestServer, EchoServer, EchoSwarm, connect, echo_roundtrip, free_port,
                       how_it_ends, recv_all, recv_line, set_reset_on_close)
from vane_harness import eventually, never
from vane_network import Network

MiB = 1024 * 1024


@pytest.fixture
def servers():
    """Test servers, closed at teardown."""
    made = []

    def add(server):
        made.append(server)
        return server
    yield add
    for s in made:
        s.close()


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
    """Polls until an echo through `port` works: a tcp connector for it has
    become reachable (its address spreads with the routing protocol)."""
    def works():
        try:
            return echo_roundtrip(port, b"probe", timeout=5) == (5, hashlib.sha256(b"probe").hexdigest())
        except OSError:
            return False
    eventually(timeout, works, interval=0.1, what=f"an echo through tcp listener port {port}")


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


def test_thousand_concurrent_connections(router_factory, servers):
    n = 1000
    # This process holds both ends (2n sockets); the routers inherit the limit.
    limit = raise_nofile()
    if limit < 2 * n + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {limit} is below {2 * n + 200}")
    echo = servers(EchoServer())
    net = tcp_line(router_factory, 2, echo.port)
    port = net.tcp_port("A", "in")
    wait_served(port)
    before = echo.accepted
    payloads = [payload(2048 + 7 * i, seed=1000 + i) for i in range(n)]
    swarm = EchoSwarm(port, payloads)

    def all_open_at_once():
        # Every connection has sent half its payload: the backend must hold
        # all of them open at the same time.
        eventually(30, lambda: echo.active >= n, interval=0.05,
                   what=lambda: f"{n} connections open at the backend (open: {echo.active}, "
                                f"accepted: {echo.accepted - before})")

    start = time.monotonic()
    results = swarm.run(timeout=90, hold=all_open_at_once)
    took = time.monotonic() - start
    bad = [i for i, (p, r) in enumerate(zip(payloads, results)) if r != p]
    assert not bad, (f"{len(bad)}/{n} echoes wrong, e.g. #{bad[0]}: sent {len(payloads[bad[0]])}"
                     f" bytes, got {len(results[bad[0]] or b'')}; errors: "
                     f"{dict(list(swarm.errors.items())[:5])}")
    assert echo.accepted - before == n
    assert echo.peak_active >= n
    print(f"{n} concurrent echo connections through 2 routers in {took:.1f}s")
    # The routers are still fine.
    wait_served(port, timeout=10)


# --------------------------------------------------------------------------
# Half-close and resets

@pytest.mark.parametrize("hops", [1, 2])
def test_half_close_reply_after_eof(router_factory, servers, hops):
    server = servers(DigestServer())
    net = tcp_line(router_factory, hops, server.port)
    port = net.tcp_port("A", "in")
    data = payload(300 * 1000, seed=3)

    def reply_after_eof():
        with connect(port) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)   # half-close: we still read
            return recv_all(s, timeout=10)
    # The server answers only after it read EOF: the reply proves the
    # half-close arrived and the other direction stayed open.
    reply = eventually(20, lambda: _ignore_resets(reply_after_eof), interval=0.1,
                       what="a reply after EOF through the routers")
    assert reply == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode(), reply
    # Server to client: the server's half-close reached the client as EOF
    # (recv_all returned), and the server saw the client's EOF, not a reset.
    assert server.conns[-1]["end"] == "eof", server.conns[-1]


def _ignore_resets(fn):
    try:
        return fn()
    except (ConnectionResetError, EOFError, BrokenPipeError):
        return None


def test_server_half_close_reaches_client(router_factory, servers):
    """The server closes its side first; the client still writes after
    that, and the server still reads it."""
    got = {}
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(20)

    def serve():
        s, _ = lsock.accept()
        with s:
            s.settimeout(10)
            s.sendall(b"bye-from-server")
            s.shutdown(socket.SHUT_WR)
            got["after"] = recv_all(s, timeout=10)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        net = tcp_line(router_factory, 2, lsock.getsockname()[1])
        port = net.tcp_port("A", "in")
        # The one accepted connection must be ours: wait until the
        # connector is reachable without probing the backend.
        net["A"].wait_for_log(r"router A: 1 router\(s\) reachable")
        def first():
            s = connect(port)
            try:
                return s, recv_all(s, timeout=10)
            except OSError:
                s.close()
                return None
        s, early = eventually(20, first, interval=0.1, what="the server's bytes and EOF")
        with s:
            assert early == b"bye-from-server"
            # Our direction is still open.
            s.sendall(b"client-still-talking")
            s.shutdown(socket.SHUT_WR)
        t.join(15)
        assert got.get("after") == b"client-still-talking", got
    finally:
        lsock.close()


def test_server_reset_resets_client(router_factory, servers):
    server = servers(DigestServer(reset_after=1000))
    net = tcp_line(router_factory, 2, server.port)
    port = net.tcp_port("A", "in")
    wait_connector(net, "A")
    with connect(port) as s:
        s.sendall(b"x" * 1000)
        end, _, took = how_it_ends(s, timeout=5)
    assert server.conns and server.conns[-1]["end"] == "reset-by-server"
    assert end == "reset", f"the server reset its connection; the client saw {end} after {took:.2f}s"


def test_client_reset_resets_server(router_factory, servers):
    server = servers(DigestServer())
    net = tcp_line(router_factory, 2, server.port)
    port = net.tcp_port("A", "in")
    wait_connector(net, "A")
    s = connect(port)
    s.sendall(b"y" * 5000)
    assert server.wait_conns(1), "the connection never reached the server"
    rec = server.conns[-1]
    eventually(5, lambda: rec["received"] == 5000, what="the client's bytes at the server")
    set_reset_on_close(s)
    s.close()
    eventually(5, lambda: rec["end"] is not None, what="the server's connection ends")
    assert rec["end"] == "reset", f"client reset; the server's side ended with {rec['end']}"
    assert rec["t_end"] - rec["t_accept"] < 5


def wait_connector(net, rid, timeout=20.0):
    """Waits until router `rid` has routers to reach (so that its first
    connections find the connector); tests then need no probe connection."""
    eventually(timeout, lambda: net.reachable(rid) >= 1, what=f"router {rid} reaches others")
