"""Bad input: garbage, protocol violations and vanishing peers affect only the
offending connection.  A separate sender/receiver pair keeps exchanging
messages throughout and afterwards, and the router stays up."""

import os
import random
import socket
import time

import pytest
from proton import Message

from vane_client import (ACCEPTED, AMQP_HEADER, MODIFIED, RELEASED, RawAmqp, Traffic,
                         amqp_frame, body_digest, encode_transfer)
from vane_harness import eventually, make_config

MiB = 1024 * 1024


@pytest.fixture(params=[1, 2], ids=["workers1", "workers2"])
def guarded(request, router_factory, reactor):
    """A router with background traffic that must keep flowing."""
    r = router_factory(make_config(workers=request.param))
    traffic = Traffic(reactor, r.port, address="traffic")
    traffic.wait_flowing(5)
    yield r, traffic
    traffic.wait_flowing(5)     # still flowing after the test
    traffic.stop()
    assert r.alive(), f"vaned died; log:\n{r.log_tail()}"


def read_until_closed(sock, timeout=10.0):
    """Read until EOF or reset; returns (closed, bytes received)."""
    sock.settimeout(0.1)
    data = bytearray()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return True, bytes(data)
        if not chunk:
            return True, bytes(data)
        data += chunk
    return False, bytes(data)


rng = random.Random(1234)
GARBAGE = [
    pytest.param(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", id="http"),
    pytest.param(bytes(rng.randrange(256) for _ in range(4096)), id="random"),
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), id="tls-hello"),
    pytest.param(b"AMQP\x09\x01\x00\x00", id="unknown-protocol-id"),
    pytest.param(b"AMQP\x00\x02\x00\x00", id="unsupported-version"),
    pytest.param(b"\x00" * 1000, id="zeros"),
    pytest.param(b"AMQP\x00\x01\x00\x00" + b"\xff" * 64, id="header-then-junk"),
]


@pytest.mark.parametrize("junk", GARBAGE)
def test_garbage_closes_only_that_connection(guarded, junk):
    r, traffic = guarded
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        try:
            s.sendall(junk)
        except OSError:
            pass   # the router may already have hung up
        closed, data = read_until_closed(s, timeout=10)
    assert closed, "router kept a connection open after garbage input"
    if data:
        assert data.startswith(b"AMQP"), f"unexpected reply {data[:32]!r}"
    traffic.wait_flowing(5)


def test_many_garbage_connections_at_once(guarded):
    r, traffic = guarded
    socks = [socket.create_connection(("127.0.0.1", r.port), timeout=5) for _ in range(50)]
    try:
        for i, s in enumerate(socks):
            try:
                s.sendall(os.urandom(512) if i % 2 else b"AMQP\x00\x01\x00\x00" + os.urandom(512))
            except OSError:
                pass
        for s in socks:
            closed, _ = read_until_closed(s, timeout=10)
            assert closed
    finally:
        for s in socks:
            s.close()
    traffic.wait_flowing(5)


def test_silent_and_half_open_connections_do_not_block(guarded):
    r, traffic = guarded
    # Connections that say nothing, or only part of a header, must not stall others.
    socks = [socket.create_connection(("127.0.0.1", r.port), timeout=5) for _ in range(10)]
    try:
        for s in socks[:5]:
            s.sendall(b"AM")
        traffic.wait_flowing(20)
    finally:
        for s in socks:
            s.close()


VIOLATIONS = [
    # frame size smaller than the 8-byte frame header
    pytest.param(b"\x00\x00\x00\x04\x02\x00\x00\x00", id="frame-size-too-small"),
    # data offset below 2 (header is at least 8 bytes)
    pytest.param(b"\x00\x00\x00\x0c\x01\x00\x00\x00\x00\x53\x10\x45", id="bad-doff"),
    # a frame whose performative encoding is truncated (list claims 200 bytes)
    pytest.param(amqp_frame(b"\x00\x53\x12\xc0\xc8\x05\x52\x01"), id="truncated-performative"),
    # a body that is not a described type at all
    pytest.param(amqp_frame(b"\xa1\x05hello"), id="not-a-performative"),
    # a transfer on a handle that was never attached (session 0 is begun)
    pytest.param(amqp_frame(encode_transfer(7, 0, b"t1", payload=b"\x00\x53\x77\xa1\x01x")),
                 id="transfer-unattached-handle"),
    # a transfer on a channel with no session
    pytest.param(amqp_frame(encode_transfer(0, 0, b"t1", payload=b"\x00\x53\x77\xa1\x01x"),
                            channel=9), id="transfer-unknown-channel"),
    # a frame larger than the max-frame-size the router offered
    pytest.param(b"\x00\x10\x00\x00\x02\x00\x00\x00" + bytes(1024), id="frame-too-large"),
]


@pytest.mark.parametrize("bad", VIOLATIONS)
def test_protocol_violation_closes_with_error(guarded, bad):
    r, traffic = guarded
    raw = RawAmqp(r.port)
    try:
        raw.open(session=True)
        raw.inject(bad)
        closed = raw.wait_closed(timeout=10)
        assert closed, "connection not closed after a protocol violation"
        assert raw.remote_closed, (f"router dropped the socket without an AMQP close; "
                                   f"got {bytes(raw.received[-64:])!r}")
        assert raw.remote_condition is not None, "close frame carried no error condition"
        assert raw.remote_condition[0].startswith("amqp:"), raw.remote_condition
    finally:
        raw.close()
    traffic.wait_flowing(5)


@pytest.mark.parametrize("bad", [
    pytest.param(b"\x00\x00\x00\x04\x02\x00\x00\x00", id="frame-size-too-small"),
    pytest.param(amqp_frame(b"\x00\x53\x10\xc0\xc8\x05\xa1\x01x"), id="truncated-open"),
    pytest.param(amqp_frame(encode_transfer(0, 0, b"t")), id="transfer-before-open"),
])
def test_malformed_frame_right_after_header(guarded, bad):
    # A plain AMQP header (no SASL, no open) immediately followed by a bad frame.
    r, traffic = guarded
    raw = RawAmqp(r.port, sasl=False)
    try:
        raw.inject(AMQP_HEADER + bad)
        closed = raw.wait_closed(timeout=10)
        assert closed, "connection not closed after a malformed frame"
        assert raw.received.startswith(AMQP_HEADER), bytes(raw.received[:16])
        assert raw.remote_closed, (f"router dropped the socket without an AMQP close; "
                                   f"got {bytes(raw.received[-64:])!r}")
        assert raw.remote_condition is not None, "close frame carried no error condition"
    finally:
        raw.close()
    traffic.wait_flowing(5)


def _raw_sender(r, address, max_frame_size=None):
    raw = RawAmqp(r.port, max_frame_size=max_frame_size)
    raw.open(session=True)
    snd = raw.session.sender("raw-sender")
    snd.target.address = address
    snd.source.address = "raw-sender"
    snd.open()
    ok = raw.run_until(lambda: snd.credit > 0 or raw.eof, timeout=10)
    assert ok and snd.credit > 0 and not raw.eof, "raw sender got no credit"
    return raw, snd


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_sender_vanishes_mid_large_message(guarded, reactor, how):
    r, traffic = guarded
    rconn = reactor.connect(r.port).wait_open()
    victim = rconn.receiver("victim", credit=5)
    raw, snd = _raw_sender(r, "victim")
    try:
        body = os.urandom(10 * MiB)
        data = Message(body=body).encode()
        snd.delivery("big")
        snd.send(data)     # buffered in the client transport; we push only half of it
        half = len(data) // 2
        written = 0
        deadline = time.monotonic() + 30
        while written < half and time.monotonic() < deadline:
            written += raw.pump(max_out=half - written)
        assert written >= half, f"could only push {written} bytes"
    finally:
        raw.close(linger_reset=(how == "rst"))
    # The victim's connection survives; any partial delivery is aborted, never completed.
    traffic.wait_flowing(5)
    assert victim.count() == 0, "a half-sent message must never be delivered as complete"
    tx = reactor.connect(r.port).wait_open().sender("victim")
    rec = tx.send(Message(body="still here"))
    eventually(10, lambda: victim.count() == 1, what="victim receives a later message")
    assert victim.received[0].body == "still here"
    tx.wait_all_settled()
    assert rec.state == ACCEPTED
    assert not rconn.closed


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_receiver_vanishes_mid_large_message(guarded, reactor, how):
    r, traffic = guarded
    raw = RawAmqp(r.port, max_frame_size=65536)
    try:
        raw.open(session=True, session_capacity=1 * MiB)
        rcv = raw.session.receiver("raw-receiver")
        rcv.source.address = "sink"
        rcv.target.address = "raw-receiver"
        rcv.open()
        rcv.flow(1)
        assert raw.run_until(lambda: rcv.state & rcv.REMOTE_ACTIVE, timeout=10)
        tx = reactor.connect(r.port).wait_open().sender("sink")
        body = os.urandom(10 * MiB)
        rec = tx.send(Message(body=body))
        # Take part of it (the receiver never reads, so its 1 MiB session window
        # stops the router part way), then vanish.
        ok = raw.run_until(lambda: len(raw.received) >= 512 * 1024 or raw.eof, timeout=30)
        assert ok and not raw.eof
    finally:
        raw.close(linger_reset=(how == "rst"))
    tx.wait_all_settled(timeout=10)
    assert rec.state in (MODIFIED, RELEASED), rec
    if rec.state == MODIFIED:
        assert rec.failed, rec
    traffic.wait_flowing(5)
    # The sender's connection is unaffected and the address works with a new consumer.
    assert not tx.conn.closed
    rx = reactor.connect(r.port).wait_open().receiver("sink", credit=2)
    rec2 = tx.send(Message(body=body))
    rx.wait_count(1, timeout=30)
    assert rx.received[0].digest == body_digest(body)
    tx.wait_all_settled(records=[rec2], timeout=10)
    assert rec2.state == ACCEPTED


def test_header_only_then_close(guarded):
    r, traffic = guarded
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            s.sendall(AMQP_HEADER)
    traffic.wait_flowing(5)


# Inputs that crash or leak memory in the AMQP engine (Proton 0.37) itself if
# they reach it; the router refuses them before they do.
ENGINE_KILLERS = os.path.join(os.path.dirname(__file__), "..", "fuzz", "frames", "corpus")


@pytest.mark.parametrize("step", [1, 5, 4096], ids=["bytewise", "5-bytes", "at-once"])
def test_transfer_starting_delivery_without_id_is_refused(guarded, step):
    """A first transfer frame with more=true and no delivery-id aborts Proton
    0.37 (an assert): the router must refuse it and stay up."""
    r, traffic = guarded
    path = os.path.join(ENGINE_KILLERS, "bug-proton-assert-transfer-more-without-delivery-id")
    data = open(path, "rb").read()
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        for i in range(0, len(data), step):
            s.sendall(data[i:i + step])
        closed, got = read_until_closed(s, timeout=10)
    assert closed
    assert b"amqp:invalid-field" in got, got[-120:]
    assert r.alive()
    traffic.wait_flowing(5)


def test_sasl_frames_after_plain_header_are_refused(guarded):
    """SASL frames after a plain AMQP header leak memory in Proton on each
    frame; the router refuses the first one."""
    r, traffic = guarded
    path = os.path.join(ENGINE_KILLERS, "bug-proton-sasl-init-leak")
    data = open(path, "rb").read()
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        s.sendall(data)
        closed, got = read_until_closed(s, timeout=10)
    assert closed
    assert b"framing-error" in got, got[-120:]
    assert r.alive()


def test_sender_past_the_session_window_is_closed(router_factory, reactor):
    """A sender that ignores the session window (keeps sending transfers the
    router never made room for) while its consumer is stalled: its
    connection is closed with session:window-violation and counted, instead
    of the router buffering whatever it sends; other clients carry on."""
    cfg = make_config(workers=1, session_capacity=1 * MiB)
    cfg["management"] = {"port": 0}
    r = router_factory(cfg)
    traffic = Traffic(reactor, r.port, address="traffic")
    traffic.wait_flowing(5)
    rx = reactor.connect(r.port, max_frame_size=65536).wait_open().receiver(
        "q.window", credit=250, session_capacity=1 * MiB, read_chunk=1, keep_bodies=False)
    raw, snd = _raw_sender(r, "q.window", max_frame_size=65536)
    try:
        data = b"\x00\x53\x75\xb0" + (60 * 1024).to_bytes(4, "big") + os.urandom(60 * 1024)
        for i in range(240):   # 14 MiB against a 1 MiB window
            raw.inject(amqp_frame(encode_transfer(0, i, b"t%d" % i, payload=data)))
            raw.pump()
            if raw.eof:
                break
        assert raw.run_until(lambda: raw.remote_closed or raw.eof, timeout=10)
        assert raw.remote_condition is not None, "closed without an AMQP error"
        assert raw.remote_condition[0] == "amqp:session:window-violation", (
            raw.remote_condition)
    finally:
        raw.close()
    errors = [line for line in r.api("GET", "/metrics").body.decode().splitlines()
              if line.startswith("vane_protocol_errors_total ")]
    assert errors and float(errors[0].split()[1]) >= 1, errors
    assert not rx.conn.closed
    traffic.wait_flowing(5)
    traffic.stop()
    assert r.alive()
