"""Credit (flow control), slow consumers, and large (streamed) messages."""

import os
import time

import pytest
from proton import Message

from vane_client import ACCEPTED, RELEASED, body_digest
from vane_harness import build_sanitizer, eventually, make_config, never

WORKERS = pytest.mark.parametrize("workers", [1, 2])
MiB = 1024 * 1024


@pytest.fixture
def make_router(router_factory):
    def make(workers=1, **kw):
        return router_factory(make_config(workers=workers, **kw))
    return make


@WORKERS
def test_no_credit_until_consumer_attaches(make_router, reactor, workers):
    r = make_router(workers)
    tx = reactor.connect(r.port).wait_open().sender("q.nocredit")
    assert tx.credit == 0
    never(1.0, lambda: tx.max_credit > 0 or tx.credit > 0,
          what="credit to a sender whose address has no consumer")
    rx = reactor.connect(r.port).wait_open().receiver("q.nocredit", credit=5)
    eventually(5, lambda: tx.credit > 0, what="credit once a consumer attached")
    rec = tx.send(Message(body="finally"))
    rx.wait_count(1)
    tx.wait_all_settled()
    assert rec.state == ACCEPTED


def test_message_sent_without_credit_waits(make_router, reactor):
    # Nothing is lost or released while the sender waits for credit: the
    # client simply cannot send until the consumer appears.
    r = make_router()
    tx = reactor.connect(r.port).wait_open().sender("q.wait")
    recs = tx.send_many([Message(id=i, body=i) for i in range(3)])
    never(0.5, lambda: any(rec.sent for rec in recs), what="a send without credit")
    rx = reactor.connect(r.port).wait_open().receiver("q.wait", credit=10)
    rx.wait_count(3)
    tx.wait_all_settled()
    assert [rec.state for rec in recs] == [ACCEPTED] * 3


@WORKERS
def test_credit_window_is_link_capacity(make_router, reactor, workers):
    cap = 37
    r = make_router(workers, link_capacity=cap)
    rx = reactor.connect(r.port).wait_open().receiver("q.window", credit=10)
    tx = reactor.connect(r.port).wait_open().sender("q.window")
    eventually(5, lambda: tx.credit == cap, what=lambda: f"credit == {cap} (is {tx.credit})")
    # The router may top credit up in batches, but the window never exceeds
    # link_capacity and does not shrink (leak) over repeated rounds of traffic.
    for rnd in range(3):
        recs = tx.send_many([Message(id=i, body=i) for i in range(150)])
        tx.wait_all_settled(timeout=20, records=recs)
        assert all(rec.state == ACCEPTED for rec in recs)
        eventually(5, lambda: tx.credit >= cap - cap // 4,
                   what=lambda: f"round {rnd}: credit back near {cap} (is {tx.credit})")
    rx.wait_count(450, timeout=20)
    assert tx.max_credit <= cap, f"router granted {tx.max_credit} > link_capacity {cap}"


def test_credit_window_fills_exactly(make_router, reactor):
    # With a consumer that grants no credit, exactly link_capacity messages
    # can be sent into the router, and no more.
    cap = 25
    r = make_router(link_capacity=cap)
    rx = reactor.connect(r.port).wait_open().receiver("q.fill", credit=1, auto_credit=False,
                                                      outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("q.fill")
    eventually(5, lambda: tx.credit > 0)
    tx.send_many([Message(id=i, body=i) for i in range(cap + 20)])
    rx.wait_count(1)
    # One delivery is at the consumer; `cap` messages fit in the router in total.
    eventually(5, lambda: tx.sent_count() >= cap, what=lambda: f"sent {tx.sent_count()}")
    never(1.0, lambda: tx.sent_count() > cap + 1, what="more than link_capacity accepted")
    rx.flow(100)
    rx.wait_count(cap + 20)
    rx.settle_all()
    tx.wait_all_settled()


def test_anonymous_sender_credit_bounded(make_router, reactor):
    cap = 20
    r = make_router(link_capacity=cap)
    tx = reactor.connect(r.port).wait_open().sender(None)
    eventually(5, lambda: tx.credit > 0, what="anonymous sender gets credit without consumers")
    assert tx.credit <= cap
    # A burst to nobody: every message comes back RELEASED, credit never exceeds the window.
    recs = tx.send_many([Message(address="void.x", body=i) for i in range(100)])
    tx.wait_all_settled(timeout=20)
    assert all(rec.state == RELEASED for rec in recs), [r for r in recs if r.state != RELEASED][:3]
    assert tx.max_credit <= cap


def test_consumer_credit_respected(make_router, reactor):
    # The router never sends a consumer more than the credit it granted.
    r = make_router()
    rx = reactor.connect(r.port).wait_open().receiver("q.credit", credit=3, auto_credit=False)
    tx = reactor.connect(r.port).wait_open().sender("q.credit")
    tx.send_many([Message(id=i, body=i) for i in range(10)])
    rx.wait_count(3)
    never(0.5, lambda: rx.count() > 3, what="delivery beyond granted credit")
    rx.flow(4)
    rx.wait_count(7)
    never(0.3, lambda: rx.count() > 7, what="delivery beyond granted credit")
    rx.flow(10)
    rx.wait_count(10)
    assert [rc.message.id for rc in rx.received] == list(range(10))
    tx.wait_all_settled()


@WORKERS
def test_slow_consumer_bounded_memory(make_router, reactor, workers):
    cap = 100
    body = os.urandom(64 * 1024)
    digest = body_digest(body)
    r = make_router(workers, link_capacity=cap)
    rx = reactor.connect(r.port).wait_open().receiver("q.slow", credit=1, auto_credit=False,
                                                      keep_bodies=False)
    tx = reactor.connect(r.port).wait_open().sender("q.slow")
    baseline = r.rss()
    # Far more than fits in the window: if the router buffered without bound
    # (credit not tied to the consumer) this would be 2000 x 64 KiB = 125 MiB.
    tx.send_many([(lambda i=i: Message(id=i, body=body)) for i in range(2000)])
    seconds = 8
    samples = []
    start = time.monotonic()
    for second in range(seconds):
        # one credit per second
        while time.monotonic() < start + second + 1:
            samples.append((time.monotonic() - start, r.rss(), tx.sent_count(), rx.count()))
            sent, got = tx.sent_count(), rx.count()
            assert sent <= got + cap + 1, (
                f"sender got {sent} messages in while the consumer took {got}: "
                f"credit is not bounded by link_capacity={cap}")
            time.sleep(0.1)
        rx.flow(1)
    rx.wait_count(seconds)
    assert r.alive()
    received = rx.received
    assert [rc.message.id for rc in received] == list(range(len(received)))
    assert all(rc.digest == digest for rc in received)
    assert len(received) <= seconds + 1
    if build_sanitizer(r.binary) == "tsan":
        return  # RSS there is mostly ThreadSanitizer's shadow memory and history
    peak = max(s[1] for s in samples)
    window_bytes = cap * len(body)
    growth = peak - baseline
    assert growth < 3 * window_bytes + 32 * MiB, (
        f"RSS grew by {growth / MiB:.1f} MiB with a {window_bytes / MiB:.1f} MiB window; "
        f"samples (t, rss MiB, sent, received): "
        f"{[(round(t, 1), round(m / MiB, 1), s, g) for t, m, s, g in samples[::5]]}")
    # Flat: after the window has filled (first 2 s) memory must not keep rising.
    later = [s[1] for s in samples if s[0] >= 2.0]
    settled_level = min(later)
    assert max(later) - settled_level < 16 * MiB, (
        f"RSS kept growing under a slow consumer: {round(settled_level / MiB, 1)} -> "
        f"{round(max(later) / MiB, 1)} MiB")


@WORKERS
@pytest.mark.parametrize("size_mb", [10, 20])
def test_large_message_intact(make_router, reactor, workers, size_mb):
    r = make_router(workers)
    body = os.urandom(size_mb * MiB)
    rx = reactor.connect(r.port).wait_open().receiver("q.large", credit=2)
    tx = reactor.connect(r.port).wait_open().sender("q.large")
    rec = tx.send(Message(id="big", body=body))
    rx.wait_count(1, timeout=60)
    got = rx.received[0]
    assert got.size == len(body)
    assert got.digest == body_digest(body), "large message corrupted in transit"
    tx.wait_all_settled(timeout=30)
    assert rec.state == ACCEPTED
    # A small message behind it on the same link still arrives.
    tx.send(Message(id="small", body=b"x"))
    rx.wait_count(2)


@pytest.mark.multiworker
def test_large_message_anonymous_sender(make_router, reactor):
    # The router must route by 'to' while the rest of the message is still arriving.
    r = make_router(workers=2)
    body = os.urandom(10 * MiB)
    rx = reactor.connect(r.port).wait_open().receiver("q.large.anon", credit=2)
    tx = reactor.connect(r.port).wait_open().sender(None)
    rec = tx.send(Message(address="q.large.anon", body=body))
    rx.wait_count(1, timeout=60)
    assert rx.received[0].digest == body_digest(body)
    tx.wait_all_settled(timeout=30)
    assert rec.state == ACCEPTED


@pytest.mark.multiworker
def test_large_message_multicast(make_router, reactor):
    r = make_router(workers=2)
    body = os.urandom(10 * MiB)
    rxs = [reactor.connect(r.port).wait_open().receiver("mc/large", credit=2) for _ in range(2)]
    tx = reactor.connect(r.port).wait_open().sender("mc/large")
    rec = tx.send(Message(body=body))
    for rx in rxs:
        rx.wait_count(1, timeout=60)
        assert rx.received[0].digest == body_digest(body)
        assert not rx.received[0].presettled, "a copy of an unsettled message is unsettled"
    tx.wait_all_settled(timeout=30)
    assert rec.state == ACCEPTED


@WORKERS
def test_large_message_streamed_not_buffered(make_router, reactor, workers):
    size = 50 * MiB
    body = os.urandom(size)
    # The router may hold up to session_capacity + max_message_inflight_bytes
    # of one sending session; with a 4 MiB window that bound stays far below
    # the 50 MiB message, so buffering the message whole would show.
    r = make_router(workers, session_capacity=4 * MiB)
    # A slow reader: 1 MiB session window (64 KiB frames), at most 1 MiB read
    # every 50 ms, so the router has to hold back the sender rather than
    # buffer the message.
    rconn = reactor.connect(r.port, max_frame_size=65536).wait_open()
    rx = rconn.receiver("q.stream", credit=1, session_capacity=1 * MiB, read_chunk=1 * MiB,
                        read_interval=0.05, keep_bodies=False)
    tx = reactor.connect(r.port).wait_open().sender("q.stream")
    baseline = r.rss()
    rec = tx.send(Message(id="huge", body=body))
    samples = []
    deadline = time.monotonic() + 90
    while rx.count() < 1 and time.monotonic() < deadline:
        samples.append((rx.bytes_read, r.rss()))
        time.sleep(0.05)
    rx.wait_count(1, timeout=1)
    got = rx.received[0]
    assert got.size == size and got.digest == body_digest(body), "50 MiB message corrupted"
    tx.wait_all_settled(timeout=30)
    assert rec.state == ACCEPTED
    if build_sanitizer(r.binary) == "tsan":
        return  # RSS there is mostly ThreadSanitizer's shadow memory and history
    peak = max(m for _, m in samples)
    growth = peak - baseline
    assert growth < 30 * MiB, (
        f"vaned RSS grew by {growth / MiB:.1f} MiB while a {size // MiB} MiB message passed "
        f"to a slow reader: it buffers instead of streaming. Samples (MiB read, RSS MiB): "
        f"{[(round(b / MiB), round(m / MiB)) for b, m in samples[::10]]}")


def _metric(router, name):
    text = router.api("GET", "/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


@pytest.mark.release
def test_paused_sender_bytes_are_counted_and_freed(router_factory, reactor):
    """A sender whose consumer stops reading: the router holds back the
    sender with the session window. The bytes that window lets in while the
    link's budget is full wait in the router's own budgeted chunks (counted
    in vane_traffic_buffered_bytes), not in Proton's delivery buffers, which
    Proton pools at their largest size for as long as the connection lives:
    once the messages are through, the memory in use is back where it was
    although both connections stay open."""
    capacity = 8 * MiB
    cfg = make_config(workers=1, session_capacity=capacity)
    cfg["management"] = {"port": 0}
    r = router_factory(cfg)
    # The consumer reads one byte per tick: as good as stalled. Its session
    # window (which needs a max frame size) stops the router sending more.
    rx = reactor.connect(r.port, max_frame_size=65536).wait_open().receiver(
        "q.paused", credit=64, session_capacity=1 * MiB, read_chunk=1, read_interval=0.05,
        keep_bodies=False)
    tx = reactor.connect(r.port).wait_open().sender("q.paused")
    # Warm the path once so that the baseline has the links' own state.
    rx.read_chunk = 64 * MiB
    tx.send(Message(id="warm", body=b"w" * 1024))
    rx.wait_count(1)
    rx.read_chunk = 1
    measure_heap = build_sanitizer(r.binary) is None  # a sanitizer has its own allocator
    heap = lambda: _metric(r, "vane_memory_heap_in_use_bytes")  # noqa: E731
    traffic = lambda: _metric(r, "vane_traffic_buffered_bytes")  # noqa: E731
    baseline = heap()
    bodies = [os.urandom(1 * MiB) for _ in range(24)]
    tx.send_many([(lambda i=i: Message(id=i, body=bodies[i])) for i in range(len(bodies))])

    # Held back: what the router holds stops growing well below 24 MiB.
    samples = []

    def settled():
        samples.append(traffic())
        return (samples[-1] > 0 and len(samples) > 10
                and max(samples[-10:]) - min(samples[-10:]) < 64 * 1024)

    eventually(30, settled, interval=0.1, what="the held-back sender to come to rest")
    held = samples[-1]
    inflight_limit = 1 * MiB
    assert held <= inflight_limit + capacity + 2 * MiB, (
        f"the router holds {held / MiB:.1f} MiB for one paused sender: more than its budget "
        f"({inflight_limit / MiB:.0f} MiB) and session window ({capacity / MiB:.0f} MiB)")
    assert held >= capacity / 2, (
        f"only {held / MiB:.1f} MiB counted as traffic while the sender filled an "
        f"{capacity / MiB:.0f} MiB session window: the rest is uncounted somewhere")
    if measure_heap:
        uncounted = heap() - baseline - held
        assert uncounted < 3 * MiB, (
            f"{uncounted / MiB:.1f} MiB in use beyond the {held / MiB:.1f} MiB of counted "
            f"traffic while the sender is held back (Proton holding the window's bytes?)")

    rx.read_chunk = 64 * MiB
    rx.wait_count(1 + len(bodies), timeout=60)
    got = rx.received[1:]
    assert [g.message.id for g in got] == list(range(len(bodies)))
    assert all(g.digest == body_digest(b) for g, b in zip(got, bodies)), "corrupted in transit"
    tx.wait_all_settled(timeout=30)
    eventually(10, lambda: traffic() == 0, what="traffic gauge back to 0")
    if measure_heap:
        eventually(10, lambda: heap() - baseline < 3 * MiB,
                   what="memory in use back to its level before the burst")
    assert r.alive()
