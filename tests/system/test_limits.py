"""What one client can make the router create and hold is bounded.

Each limit is hit by a real hostile (or careless) client: the offending
session, link or connection is refused with a clear AMQP error, the router
counts it (/metrics) and logs it once, and everything else the client and
others do goes on. Limits that only pause (unsettled deliveries) lose
nothing: sending resumes as the consumer settles."""

import re
import socket
import time

from proton import Endpoint, Message

from vane_client import ACCEPTED, RawAmqp
from vane_harness import eventually, make_config, never

LIMIT = "amqp:resource-limit-exceeded"


def limit_router(router_factory, listeners=None, **router_fields):
    cfg = make_config(listeners=listeners, **router_fields)
    cfg["management"] = {"port": 0}
    return router_factory(cfg)


def metric(router, name, **labels):
    """The value of one sample in /metrics (0 if absent)."""
    text = router.api("GET", "/metrics").body.decode()
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}" + (rf"\{{{re.escape(want)}\}}" if labels else "") + r" (\S+)$"
    m = re.search(pattern, text, re.M)
    return float(m.group(1)) if m else 0.0


def limit_hits(router, field):
    return metric(router, "vane_limit_hits_total", limit=field)


def refused(link):
    eventually(10, lambda: link.remote_closed or link.conn.closed, what="the link refused")
    assert not link.conn.closed, f"the connection closed: {link.conn.remote_condition}"
    return link.remote_condition


def round_trip(reactor, port, address, conn=None):
    """One message from a sender to a receiver on `address` (on `conn`, or
    on two new connections)."""
    rx = (conn or reactor.connect(port).wait_open()).receiver(address, credit=1)
    tx = (conn or reactor.connect(port).wait_open()).sender(address)
    rec = tx.send(Message(body="ping"))
    rx.wait_count(1)
    tx.wait_all_settled()
    return rec.outcome


def test_sessions_per_connection(router_factory):
    r = limit_router(router_factory, max_sessions_per_connection=2)
    raw = RawAmqp(r.port)
    raw.open()  # session 1
    s2 = raw.connection.session()
    s2.open()
    s3 = raw.connection.session()
    s3.open()
    raw.run_until(lambda: s3.state & Endpoint.REMOTE_CLOSED and s2.state & Endpoint.REMOTE_ACTIVE)
    assert s2.state & Endpoint.REMOTE_ACTIVE and not s2.state & Endpoint.REMOTE_CLOSED
    assert s3.state & Endpoint.REMOTE_CLOSED, "the third session was not ended"
    assert s3.remote_condition is not None and s3.remote_condition.name == LIMIT
    assert "max_sessions_per_connection" in s3.remote_condition.description
    # The connection and its two sessions go on; a session ended frees a slot.
    assert not raw.remote_closed and not raw.eof
    s3.close()
    s2.close()
    raw.run_until(lambda: s2.state & Endpoint.REMOTE_CLOSED)
    s4 = raw.connection.session()
    s4.open()
    raw.run_until(lambda: s4.state & Endpoint.REMOTE_ACTIVE or s4.state & Endpoint.REMOTE_CLOSED)
    assert s4.state & Endpoint.REMOTE_ACTIVE and not s4.state & Endpoint.REMOTE_CLOSED
    assert limit_hits(r, "router.max_sessions_per_connection") == 1
    raw.close()
    assert r.log_text().count("limit reached: at most 2 sessions per connection") == 1


def test_sessions_flood_is_cut_without_harm(router_factory, reactor):
    # A client that opens thousands of sessions holds two; the router logs
    # one line for the connection and serves others throughout.
    r = limit_router(router_factory, max_sessions_per_connection=2)
    raw = RawAmqp(r.port)
    raw.open()
    sessions = [raw.connection.session() for _ in range(500)]
    for s in sessions:
        s.open()
    raw.run_until(lambda: all(s.state & Endpoint.REMOTE_CLOSED for s in sessions[1:]), timeout=20)
    ended = sum(1 for s in sessions if s.state & Endpoint.REMOTE_CLOSED)
    assert ended == 499, f"{ended} of 500 sessions ended"
    assert not raw.eof
    assert round_trip(reactor, r.port, "after.flood") == "ACCEPTED"
    assert limit_hits(r, "router.max_sessions_per_connection") == 499
    assert r.log_text().count("sessions per connection") == 1


def test_links_per_connection(router_factory, reactor):
    r = limit_router(router_factory, max_links_per_connection=3)
    c = reactor.connect(r.port).wait_open()
    a = c.receiver("l.a", credit=5)
    c.sender("l.b")
    c.sender("l.c")
    extra = c.sender("l.d", wait=False)
    cond = refused(extra)
    assert cond is not None and cond[0] == LIMIT, cond
    assert "max_links_per_connection" in cond[1], cond
    more = c.receiver("l.e", wait=False)
    assert refused(more)[0] == LIMIT
    # The links it holds work; closing one makes room.
    tx = reactor.connect(r.port).wait_open().sender("l.a")
    tx.send(Message(body="x"))
    a.wait_count(1)
    a.detach()
    c.sender("l.f")
    assert limit_hits(r, "router.max_links_per_connection") == 2


def test_receivers_per_connection(router_factory, reactor):
    r = limit_router(router_factory, max_receivers_per_connection=2)
    c = reactor.connect(r.port).wait_open()
    c.receiver("r.a")
    c.receiver("r.b")
    cond = refused(c.receiver("r.c", wait=False))
    assert cond[0] == LIMIT and "max_receivers_per_connection" in cond[1], cond
    # Senders are not receivers.
    c.sender("r.a")
    # Nothing of the refused receiver stays in routing: no consumer for r.c.
    addrs = {a["address"]: a for a in r.api("GET", "/api/v1/addresses").json()}
    assert "r.c" not in addrs or addrs["r.c"].get("local_consumers", 0) == 0, addrs.get("r.c")
    assert limit_hits(r, "router.max_receivers_per_connection") == 1


def test_dynamic_addresses_per_connection(router_factory, reactor):
    r = limit_router(router_factory, max_dynamic_addresses_per_connection=1)
    c = reactor.connect(r.port).wait_open()
    first = c.receiver(None, dynamic=True)
    cond = refused(c.receiver(None, dynamic=True, wait=False))
    assert cond[0] == LIMIT and "max_dynamic_addresses_per_connection" in cond[1], cond
    # Request/response through the one it has works; once it is gone the
    # connection may have another.
    reply_to = first.remote_source_address
    assert reply_to and reply_to.startswith("_vane/temp/"), reply_to
    tx = reactor.connect(r.port).wait_open().sender(reply_to)
    tx.send(Message(body="answer"))
    first.wait_count(1)
    first.detach()
    again = c.receiver(None, dynamic=True)
    assert again.remote_source_address.startswith("_vane/temp/")
    # A second connection has its own allowance.
    reactor.connect(r.port).wait_open().receiver(None, dynamic=True)
    assert limit_hits(r, "router.max_dynamic_addresses_per_connection") == 1


def test_unsettled_per_connection_pauses_and_loses_nothing(router_factory, reactor):
    # Two consumers on one connection grant credit and never settle: the
    # connection holds at most 10 unsettled deliveries over both links.
    r = limit_router(router_factory, max_unsettled_per_connection=10)
    c = reactor.connect(r.port).wait_open()
    rx = [c.receiver(f"u.{i}", credit=100, outcome=None) for i in range(2)]
    txc = reactor.connect(r.port).wait_open()
    tx = [txc.sender(f"u.{i}") for i in range(2)]
    recs = [t.send_many([Message(id=n, body=f"m{n}") for n in range(20)]) for t in tx]
    eventually(10, lambda: rx[0].count() + rx[1].count() == 10, what="10 deliveries held")
    never(0.5, lambda: rx[0].count() + rx[1].count() > 10,
          what="more than 10 unsettled deliveries on one connection")
    assert limit_hits(r, "router.max_unsettled_per_connection") >= 1
    # Settling resumes both links; every message arrives once, in order.
    for link in rx:
        link.outcome = ACCEPTED
        link.settle_all(ACCEPTED)
    for link in rx:
        link.wait_count(20)
    for t, rs in zip(tx, recs):
        t.wait_all_settled()
        assert [rec.outcome for rec in rs] == ["ACCEPTED"] * 20
    for link in rx:
        assert [x.message.id for x in link.received] == list(range(20))


def test_listener_max_connections(router_factory, reactor):
    listeners = [{"name": "small", "host": "127.0.0.1", "port": 0, "max_connections": 2},
                 {"name": "amqp", "host": "127.0.0.1", "port": 0}]
    r = limit_router(router_factory, listeners=listeners)
    small = r.ports["small"]
    a = reactor.connect(small).wait_open()
    b = reactor.connect(small).wait_open()
    c = reactor.connect(small)
    eventually(10, lambda: c.closed, what="the third connection refused")
    assert not c.remote_open
    assert not a.closed and not b.closed
    # The other listener is not affected.
    assert round_trip(reactor, r.ports["amqp"], "other.listener") == "ACCEPTED"
    assert metric(r, "vane_listener_connections_refused_total", listener="small") >= 1
    assert metric(r, "vane_listener_connections_refused_total", listener="amqp") == 0
    info = {l["name"]: l for l in r.api("GET", "/api/v1/listeners").json()}
    assert info["small"]["max_connections"] == 2 and info["small"]["connections_active"] == 2
    # A slot freed is a slot taken.
    a.close()
    eventually(10, lambda: metric(r, "vane_listener_connections_active", listener="small") == 1)
    reactor.connect(small).wait_open()
    assert "listener small: 1 connection(s) refused: limit listeners.max_connections" in \
        r.log_text()


def silent_socket(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def closed_within(sock, seconds):
    """Seconds until the router closed `sock` (None if it did not)."""
    start = time.monotonic()
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return time.monotonic() - start
    except (socket.timeout, TimeoutError):
        return None
    except OSError:
        return time.monotonic() - start


def test_handshake_timeout_covers_sasl_and_open(router_factory):
    listeners = [{"name": "amqp", "host": "127.0.0.1", "port": 0, "handshake_timeout_ms": 600}]
    r = limit_router(router_factory, listeners=listeners)
    # Silent after connecting.
    s1 = silent_socket(r.port)
    # The SASL header, then nothing: SASL never finishes.
    s2 = silent_socket(r.port)
    s2.sendall(b"AMQP\x03\x01\x00\x00")
    # The AMQP header, then no open.
    s3 = silent_socket(r.port)
    s3.sendall(b"AMQP\x00\x01\x00\x00")
    for s in (s1, s2, s3):
        t = closed_within(s, 5)
        assert t is not None, "a silent peer was not closed within 5 s"
        s.close()
    assert metric(r, "vane_handshake_timeouts_total") >= 3
    # A real client opens well within the limit.
    raw = RawAmqp(r.port)
    raw.open()
    never(1.0, lambda: (raw.pump(), raw.eof)[1], what="an opened client closed")
    raw.close()


def test_listener_idle_timeout(router_factory):
    listeners = [{"name": "amqp", "host": "127.0.0.1", "port": 0, "idle_timeout_ms": 2000},
                 {"name": "default", "host": "127.0.0.1", "port": 0}]
    r = limit_router(router_factory, listeners=listeners, idle_timeout_ms=16000)
    raw = RawAmqp(r.ports["amqp"])
    raw.open()
    # Proton announces half the timeout it enforces (the peer then has time
    # for its heartbeat to arrive).
    assert raw.transport.remote_idle_timeout == 1.0
    other = RawAmqp(r.ports["default"])
    other.open()
    assert other.transport.remote_idle_timeout == 8.0
    # A peer that opens and then says nothing (no heartbeats) is closed
    # after the listener's idle timeout.
    raw.write_output = False
    start = time.monotonic()
    assert raw.run_until(lambda: raw.eof, timeout=10), "idle peer not closed"
    assert time.monotonic() - start < 8
    other.close()
    raw.close()


def test_neighbour_opening_too_many_stream_links_is_closed(router_factory):
    # A Vane router opens at most router.max_stream_links stream links on
    # one connection; a neighbour that opens more (each may hold a window of
    # bytes here) is hostile or broken: its connection is closed.
    from fake_router import FakeRouter
    from proton import Link
    cfg = make_config(router_id="A", max_stream_links=3, listeners=[
        {"name": "amqp", "host": "127.0.0.1", "port": 0, "role": "normal"},
        {"name": "inter", "host": "127.0.0.1", "port": 0, "role": "inter-router"}])
    cfg["management"] = {"port": 0}
    r = router_factory(cfg)
    f = FakeRouter(f"127.0.0.1:{r.ports['inter']}", "F").start()
    links = []

    def open_streams(n):
        for _ in range(n):
            ssn = f.conn.session()
            ssn.open()
            link = ssn.sender(f"stream-{len(links)}")
            link.target.address = "_vane/stream"
            link.source.address = "_vane/stream"
            link.open()
            links.append(link)

    f.call(lambda: open_streams(3))
    eventually(10, lambda: f.call(lambda: all(l.state & Link.REMOTE_ACTIVE for l in links)),
               what="3 stream links attached")
    assert not f.closed.is_set()
    f.call(lambda: open_streams(1))
    eventually(10, lambda: f.remote_condition is not None, what="the neighbour closed")
    assert f.remote_condition.name == LIMIT, f.remote_condition
    eventually(10, lambda: "link to router F down" in r.log_text(), what="the link down")
    assert "max_stream_links" in f.remote_condition.description
    assert metric(r, "vane_stream_links_refused_total") == 1
    # Clients are not affected.
    raw = RawAmqp(r.port)
    raw.open()
    raw.close()
    f.close()


def test_client_that_never_answers_refusals_is_closed(router_factory, reactor):
    # Each refused attach lives in the router until the client answers the
    # detach; one that attaches again and again without answering is cut
    # off once 256 are waiting, instead of growing them without bound.
    r = limit_router(router_factory)
    raw = RawAmqp(r.port)
    raw.open()
    links = []
    for i in range(300):
        link = raw.session.receiver(f"thief-{i}")
        link.source.address = "_vane/tcp/web"
        link.target.address = f"thief-{i}"
        link.open()
        links.append(link)
    assert raw.wait_closed(10), "the connection stayed open"
    assert raw.remote_condition is not None and raw.remote_condition[0] == LIMIT, \
        raw.remote_condition
    # A client that answers its refusals is never cut off.
    c = reactor.connect(r.port).wait_open()
    for i in range(300):
        link = c.receiver("_vane/tcp/web", wait=False)
        eventually(10, lambda: link.remote_closed, what="refused")
    assert not c.closed
    assert round_trip(reactor, r.port, "still.fine", conn=c) == "ACCEPTED"
