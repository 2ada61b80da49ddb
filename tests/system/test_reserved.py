"""The router's reserved namespace ("_vane/") is closed to clients.

Addresses under _vane/ carry TCP flows (_vane/tcp/<service>, flow reply
addresses) and router links. A hostile client on a normal listener must not
receive other people's TCP connections, make a connector dial its backend,
inject bytes into a flow, or listen on someone's reply address; it may still
send to a dynamic reply address (request/response)."""

import hashlib
import re

from proton import Message

from tcp_tools import EchoServer, echo_roundtrip
from vane_harness import eventually, make_config, never

UNAUTHORIZED = "amqp:unauthorized-access"


def web_router(router_factory, servers):
    echo = servers(EchoServer())
    cfg = make_config(router_id="R")
    cfg["tcp_listeners"] = [{"name": "web-in", "host": "127.0.0.1", "port": 0, "address": "web"}]
    cfg["tcp_connectors"] = [{"name": "web", "host": "127.0.0.1", "port": echo.port,
                              "address": "web"}]
    cfg["management"] = {"port": 0}
    r = router_factory(cfg)
    return r, echo


def refused(link):
    eventually(10, lambda: link.remote_closed or link.conn.closed, what="the link refused")
    return link.remote_condition


def refusals(router):
    text = router.api("GET", "/metrics").body.decode()
    m = re.search(r"^vane_reserved_address_refusals_total (\d+)", text, re.M)
    return int(m.group(1)) if m else None


def test_client_cannot_take_tcp_connections(router_factory, reactor, servers):
    r, echo = web_router(router_factory, servers)
    port = r.tcp_port("web-in")
    attacker = reactor.connect(r.port).wait_open()
    thief = attacker.receiver("_vane/tcp/web", credit=100, wait=False)
    cond = refused(thief)
    assert cond is not None and cond[0] == UNAUTHORIZED, cond
    # The service is untouched: every connection reaches the real server.
    for i in range(5):
        data = f"request {i}".encode() * 100
        got, digest = echo_roundtrip(port, data)
        assert (got, digest) == (len(data), hashlib.sha256(data).hexdigest())
    assert thief.count() == 0
    assert refusals(r) >= 1


def test_client_cannot_send_into_the_namespace(router_factory, reactor, servers):
    r, echo = web_router(router_factory, servers)
    c = reactor.connect(r.port).wait_open()
    # A named sender: refused at attach (it would make the connector dial).
    for address in ("_vane/tcp/web", "_vane/temp/R/flow/0/1", "_vane/data", "_vane/x"):
        tx = c.sender(address, wait=False)
        cond = refused(tx)
        assert cond is not None and cond[0] == UNAUTHORIZED, (address, cond)
    # An anonymous sender: each such message is rejected.
    anon = c.sender(None)
    eventually(10, lambda: anon.credit_seen > 0, what="credit for the anonymous sender")
    recs = [anon.send(Message(address=a, body=b"GET / HTTP/1.1\r\n\r\n"))
            for a in ("_vane/tcp/web", "_vane/temp/R/flow/0/1")]
    anon.wait_all_settled()
    assert [rec.outcome for rec in recs] == ["REJECTED", "REJECTED"], recs
    assert all(rec.condition and rec.condition[0] == UNAUTHORIZED for rec in recs), recs
    never(0.5, lambda: echo.accepted > 0, what="the connector dialling its server for a client")
    assert refusals(r) >= 6


def test_reply_addresses_are_private_and_unguessable(router_factory, reactor):
    r = router_factory(make_config(router_id="R"))
    owner = reactor.connect(r.port).wait_open()
    inbox = owner.receiver(None, dynamic=True)
    other = owner.receiver(None, dynamic=True)
    addr = inbox.remote_source_address
    assert re.fullmatch(r"_vane/temp/R/[0-9a-f]{32}", addr), addr
    assert other.remote_source_address != addr
    # Nobody else can listen on it ...
    spy = reactor.connect(r.port).wait_open().receiver(addr, wait=False)
    cond = refused(spy)
    assert cond is not None and cond[0] == UNAUTHORIZED, cond
    # ... but anyone may reply to it, with a named or an anonymous sender.
    peer = reactor.connect(r.port).wait_open()
    named = peer.sender(addr)
    anon = peer.sender(None)
    eventually(10, lambda: anon.credit_seen > 0, what="credit for the anonymous sender")
    recs = [named.send(Message(body="reply 1")), anon.send(Message(address=addr, body="reply 2"))]
    inbox.wait_count(2)
    named.wait_all_settled()
    anon.wait_all_settled()
    assert [rec.outcome for rec in recs] == ["ACCEPTED", "ACCEPTED"], recs
    assert sorted(inbox.bodies()) == ["reply 1", "reply 2"]
    assert spy.count() == 0
