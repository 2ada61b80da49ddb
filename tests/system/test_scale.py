"""Scale: many links per connection, many connections, many addresses."""

import pytest
from proton import Message

from vane_client import ACCEPTED
from vane_harness import eventually, make_config

MAX_TIME = 120


@pytest.mark.parametrize("workers", [1, 2])
def test_200_links_on_one_connection(router_factory, reactor, workers):
    r = router_factory(make_config(workers=workers))
    conn = reactor.connect(r.port).wait_open()
    n = 100
    addrs = [f"links.{i}" for i in range(n)]
    rxs = conn.receivers(addrs, credit=2)
    txs = conn.senders(addrs)
    assert len(conn.links) == 2 * n

    def send_all():
        for i, tx in enumerate(txs):
            tx._enqueue([(Message(id=i, body=f"to {addrs[i]}"), False)])
    reactor.call(send_all)
    eventually(MAX_TIME, lambda: all(rx.count() >= 1 for rx in rxs),
               what=lambda: f"{sum(1 for rx in rxs if rx.count())}/{n} receivers got their message")
    for i, rx in enumerate(rxs):
        assert rx.bodies() == [f"to {addrs[i]}"]
    eventually(30, lambda: all(tx.settled_count() == 1 for tx in txs), what="all settled")
    assert all(tx.records[0].state == ACCEPTED for tx in txs)
    # Detach half the links; the connection and the rest keep working.
    for tx in txs[: n // 2]:
        tx.detach(wait=False)
    eventually(30, lambda: all(tx.remote_closed for tx in txs[: n // 2]), what="detaches")
    txs[-1].send(Message(body="again"))
    rxs[-1].wait_count(2)
    assert not conn.closed


@pytest.mark.multiworker
def test_300_connections(router_factory, reactor):
    r = router_factory(make_config(workers=2))
    n = 300
    conns = [reactor.connect(r.port) for _ in range(n)]
    eventually(MAX_TIME, lambda: all(c.remote_open or c.closed for c in conns),
               what=lambda: f"{sum(1 for c in conns if c.remote_open)}/{n} connections open")
    assert all(c.remote_open and not c.closed for c in conns)
    rxs = []
    for i, c in enumerate(conns):
        rxs.extend(c.receivers([f"conn.{i}"], wait=False, credit=2))
    eventually(MAX_TIME, lambda: all(rx.remote_open for rx in rxs),
               what=lambda: f"{sum(1 for rx in rxs if rx.remote_open)}/{n} receivers attached")
    sconn = reactor.connect(r.port).wait_open()
    tx = sconn.sender(None)
    tx.send_many([Message(address=f"conn.{i}", body=i) for i in range(n)])
    eventually(MAX_TIME, lambda: all(rx.count() >= 1 for rx in rxs),
               what=lambda: f"{sum(1 for rx in rxs if rx.count())}/{n} connections got a message")
    for i, rx in enumerate(rxs):
        assert rx.bodies() == [i]
    tx.wait_all_settled(timeout=30)
    assert all(rec.state == ACCEPTED for rec in tx.records)
    assert not any(c.closed for c in conns)
    # Closing them all is orderly and the router stays healthy.
    reactor.call(lambda: [c._close_local() for c in conns])
    eventually(60, lambda: all(c.transport_closed for c in conns), what="300 connections closed")
    rx = sconn.receiver("after.close")
    tx.send(Message(address="after.close", body="ok"))
    rx.wait_count(1)


@pytest.mark.multiworker
def test_10000_addresses(router_factory, reactor):
    r = router_factory(make_config(workers=2))
    n, nconns = 10000, 4
    per = n // nconns
    conns = [reactor.connect(r.port).wait_open() for _ in range(nconns)]
    rxs = []
    for k, c in enumerate(conns):
        rxs.extend(c.receivers([f"addr.{i}" for i in range(k * per, (k + 1) * per)],
                               credit=1, auto_credit=False, wait=False))
    eventually(MAX_TIME, lambda: all(rx.remote_open for rx in rxs) or any(c.closed for c in conns),
               interval=0.2,
               what=lambda: f"{sum(1 for rx in rxs if rx.remote_open)}/{n} receivers attached")
    assert not any(c.closed for c in conns)
    assert not any(rx.remote_closed for rx in rxs)
    tx = reactor.connect(r.port).wait_open().sender(None)
    tx.send_many([Message(address=f"addr.{i}", body=i) for i in range(n)])
    eventually(MAX_TIME, lambda: all(rx.count() >= 1 for rx in rxs), interval=0.2,
               what=lambda: f"{sum(1 for rx in rxs if rx.count())}/{n} addresses got a message")
    for i, rx in enumerate(rxs):
        assert rx.bodies() == [i], f"addr.{i} got {rx.bodies()}"
    tx.wait_all_settled(timeout=60)
    bad = [rec for rec in tx.records if rec.state != ACCEPTED]
    assert not bad, f"{len(bad)} not accepted, e.g. {bad[:3]}"
