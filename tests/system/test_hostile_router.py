"""A linked router that misbehaves (tests/system/fake_router.py, a real
AMQP peer speaking the router protocol) against one real vaned.

A router link is trusted with traffic, not with everything: a neighbour that
guesses or forges the reply address of a TCP flow must not be able to
inject bytes into someone else's connection. (Forged routing records:
test_forged_records.py.)"""

import re
import socket
import time

from fake_router import FakeRouter, encode_route_header
from proton import Message
from vane_harness import eventually, make_config, never


def metric(router, name):
    text = router.api("GET", "/metrics").body.decode()
    m = re.search(rf"^{name} (\d+)", text, re.M)
    return int(m.group(1)) if m else None


def linked_router(router_factory, **extra):
    cfg = make_config(router_id="A", listeners=[
        {"name": "amqp", "host": "127.0.0.1", "port": 0, "role": "normal"},
        {"name": "inter", "host": "127.0.0.1", "port": 0, "role": "inter-router", **extra}])
    cfg["tcp_listeners"] = [{"name": "web-in", "host": "127.0.0.1", "port": 0, "address": "web"}]
    cfg["management"] = {"port": 0}
    return router_factory(cfg)


def join(router, rid="F"):
    """A fake interior router F linked to `router` (id A), with the link in
    its link-state record, so that A has a path to F."""
    f = FakeRouter(f"127.0.0.1:{router.ports['inter']}", rid).start()
    eventually(10, lambda: f.controls("hello"), what="A's hello")
    f.send_control(f.lsu([f.ls_record({"A": 1})]))
    return f


def test_forged_flow_address_cannot_inject_into_a_tcp_connection(router_factory):
    """F advertises the TCP service, so A sends it a client's stream with
    the flow's reply address. F answers once to that address with one token
    digit changed, and with the old token-less form (what an address was
    before tokens): both are dropped and counted, the client receives
    nothing; then once to the real address: the client gets exactly that."""
    a = linked_router(router_factory)
    f = join(a)
    try:
        f.send_control(f.mau([f.address_record(["_vane/tcp/web"])]))
        client = None

        def connected():
            nonlocal client
            try:
                s = socket.create_connection(("127.0.0.1", a.tcp_port("web-in")), timeout=5)
                s.sendall(b"hello")
            except OSError:
                return False
            try:
                s.settimeout(0.3)
                if s.recv(1) == b"":
                    s.close()
                    return False     # reset / closed at once: no route to F yet
            except socket.timeout:
                client = s
                return True
            except OSError:
                s.close()
                return False
            s.close()
            return False
        eventually(10, connected, interval=0.2, what="a TCP connection routed to F")
        eventually(10, lambda: any(x.address == "_vane/tcp/web" for x in f.got()),
                   what="the client's stream at F")
        stream = next(x for x in f.got() if x.address == "_vane/tcp/web")
        reply_to = None

        def parsed():
            nonlocal reply_to
            try:
                reply_to = stream.message().reply_to
            except Exception:  # noqa: BLE001 - the stream is still partial
                reply_to = None
                # a partial stream: decode the properties section alone
                try:
                    m = Message()
                    m.decode(stream.body[:stream.body.find(b"\x00Su") if b"\x00Su" in
                                         stream.body else len(stream.body)])
                    reply_to = m.reply_to
                except Exception:  # noqa: BLE001
                    return False
            return bool(reply_to)
        eventually(10, parsed, what="the stream's reply-to")
        assert re.fullmatch(r"_vane/temp/A/flow/\d+/\d+/[0-9a-f]{32}", reply_to), reply_to

        def answer(to, payload):
            m = Message(address=to, body=payload)
            m.inferred = True
            f.send_data(encode_route_header(to, dest="A", origin="F"), m.encode())

        token = reply_to[-32:]
        wrong = reply_to[:-1] + ("0" if token[-1] != "0" else "1")
        tokenless = reply_to[:-33]
        before = metric(a, "vane_flow_token_mismatches_total")
        assert before == 0
        answer(wrong, b"EVIL1")
        answer(tokenless, b"EVIL2")
        eventually(10, lambda: metric(a, "vane_flow_token_mismatches_total") == 1,
                   what="the wrong token counted")
        client.settimeout(0.1)

        def client_got_something():
            try:
                return client.recv(100)
            except socket.timeout:
                return b""
        never(1.0, client_got_something, what="bytes from a forged flow address")
        answer(reply_to, b"GOOD")
        client.settimeout(5)
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            chunk = client.recv(100)
            if not chunk:
                break
            got += chunk
        assert got == b"GOOD"
        client.close()
        assert a.alive()
    finally:
        f.close()
