"""A linked router that misbehaves (tests/system/fake_router.py, a real
AMQP peer speaking the router protocol) against one real vaned.

A router link is trusted with traffic, not with everything: a neighbour that
guesses or forges the reply address of a TCP flow must not be able to
inject bytes into someone else's connection. (Forged routing records:
test_forged_records.py.)"""

import http.client
import re
import socket
import struct
import time

import pytest
from fake_router import FakeRouter, encode_route_header
from http_tools import Origin
from proton import Data, Message, ulong
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


# -- HTTP: a request stream from a linked router is parsed again -----------

def _stream_message(to, reply_to, subject, payload):
    """A whole stream message (adaptors/stream_codec.hpp): its properties
    section, then the payload in one data section."""
    d = Data()
    d.put_described()
    d.enter()
    d.put_ulong(ulong(0x73))
    d.put_list()
    d.enter()
    d.put_null()            # message-id
    d.put_null()            # user-id
    d.put_string(to)
    d.put_string(subject)
    d.put_string(reply_to)
    d.exit()
    d.exit()
    return d.encode() + b"\x00\x53\x75\xb0" + struct.pack(">I", len(payload)) + payload


@pytest.mark.parametrize("case", ["smuggled", "cut-short", "bad-chunk", "two-lengths"])
def test_hostile_router_cannot_smuggle_requests_to_an_http_origin(router_factory, case):
    """F advertises nothing; A has an http connector for `web`. F sends A's
    connector request streams that an honest listener never sends: a
    second request behind the first, a body shorter than its length,
    broken chunking, two framings. Each flow is reset and counted; the
    origin never sees a smuggled request, and no server connection
    carrying one is kept for the next request (a real client through A's
    own listener gets its own answer)."""
    origin = Origin("o1")
    cfg = make_config(router_id="A", listeners=[
        {"name": "amqp", "host": "127.0.0.1", "port": 0, "role": "normal"},
        {"name": "inter", "host": "127.0.0.1", "port": 0, "role": "inter-router"}])
    cfg["http_listeners"] = [{"name": "in", "host": "127.0.0.1", "port": 0, "address": "web"}]
    cfg["http_connectors"] = [{"name": "out", "host": "127.0.0.1", "port": origin.port,
                               "address": "web"}]
    cfg["management"] = {"port": 0}
    a = router_factory(cfg)
    f = join(a)
    try:
        def f_reachable():
            body = a.api("GET", "/api/v1/routers").json()
            return any(r["id"] == "F" and r["next_hop"] for r in body["routers"])
        eventually(10, f_reachable, what="A's path to F (its answers go there)")
        payloads = {
            "smuggled": b"GET /first HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody"
                        b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
            "cut-short": b"POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n"
                         b"GET /smuggled HTTP/1.1\r\n",
            "bad-chunk": b"POST /first HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"4\r\nbody\r\nzz\r\nGET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
            "two-lengths": b"POST /first HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                           b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n",
        }
        to = "_vane/http/web"
        reply_to = "_vane/temp/F/" + "ab" * 16
        m = _stream_message(to, reply_to, "F", payloads[case])
        f.send_data(encode_route_header(to, dest="A", origin="F"), m)
        label = 'vane_http_malformed_total{kind="connector",name="out",address="web"}'

        def counted():
            text = a.api("GET", "/metrics").body.decode()
            mm = re.search(rf"^{re.escape(label)} (\d+)", text, re.M)
            return mm and int(mm.group(1)) == 1
        eventually(10, counted, what="the malformed request stream counted")
        # A real client through A's own listener: its answer, on whatever
        # server connection the pool has.
        for _ in range(3):
            c = http.client.HTTPConnection("127.0.0.1", a.http_ports["in"], timeout=10)
            c.request("GET", "/hello?mine")
            r = c.getresponse()
            assert r.status == 200
            assert r.getheader("X-Origin") == "o1"
            r.read()
            c.close()
        assert "/smuggled" not in origin.paths, origin.paths
        assert origin.paths.count("/hello?mine") == 3, origin.paths
        assert a.alive()
    finally:
        f.close()
        origin.close()
