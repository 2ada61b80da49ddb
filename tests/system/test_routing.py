"""Routing semantics: addressing, distribution, multicast, dynamic receivers."""

import pytest
from proton import Message
from vane_client import ACCEPTED, MODIFIED, REJECTED, RELEASED

from vane_harness import eventually, make_config, never

WORKERS = pytest.mark.parametrize("workers", [1, 2])


@pytest.fixture
def make_router(router_factory):
    def make(workers=1, **kw):
        return router_factory(make_config(workers=workers, **kw))
    return make


def ids(receiver):
    return [r.message.id for r in receiver.received]


@WORKERS
def test_sender_target_to_receiver_source(make_router, reactor, workers):
    r = make_router(workers)
    rc = reactor.connect(r.port).wait_open()
    sc = reactor.connect(r.port).wait_open()
    rx = rc.receiver("q.basic", credit=50)
    tx = sc.sender("q.basic")
    recs = tx.send_many([Message(id=i, body=f"m{i}", properties={"i": i}) for i in range(20)])
    rx.wait_count(20)
    tx.wait_all_settled()
    assert [r.outcome for r in recs] == ["ACCEPTED"] * 20
    assert ids(rx) == list(range(20)), "messages must arrive in order on one link"
    assert rx.received[3].message.properties == {"i": 3}
    assert rx.received[3].body == "m3"


def test_addresses_are_distinct(make_router, reactor):
    r = make_router()
    c = reactor.connect(r.port).wait_open()
    rx_a = c.receiver("q.a")
    rx_b = c.receiver("q.b")
    c.sender("q.a").send_many([Message(body="a") for _ in range(3)])
    c.sender("q.b").send_many([Message(body="b") for _ in range(5)])
    rx_a.wait_count(3)
    rx_b.wait_count(5)
    assert set(rx_a.bodies()) == {"a"} and set(rx_b.bodies()) == {"b"}


@WORKERS
def test_anonymous_sender_routes_by_to(make_router, reactor, workers):
    r = make_router(workers)
    rc = reactor.connect(r.port).wait_open()
    sc = reactor.connect(r.port).wait_open()
    rxs = {a: rc.receiver(a) for a in ("anon.1", "anon.2", "mc/anon")}
    tx = sc.sender(None)
    assert tx.remote_target_address is None
    eventually(5, lambda: tx.credit_seen > 0, what="anonymous sender gets credit")
    recs = []
    for i in range(9):
        addr = ("anon.1", "anon.2", "mc/anon")[i % 3]
        recs.append(tx.send(Message(address=addr, body=f"{addr}:{i}")))
    for a, rx in rxs.items():
        rx.wait_count(3)
    tx.wait_all_settled()
    assert all(rec.outcome == "ACCEPTED" for rec in recs), recs
    for a, rx in rxs.items():
        assert all(b.startswith(a + ":") for b in rx.bodies()), (a, rx.bodies())


def test_anonymous_sender_no_consumer_released(make_router, reactor):
    r = make_router()
    c = reactor.connect(r.port).wait_open()
    tx = c.sender(None)
    recs = [tx.send(Message(address="nobody.home", body="x")),
            tx.send(Message(address="mc/nobody", body="y"))]
    tx.wait_all_settled()
    assert [rec.outcome for rec in recs] == ["RELEASED", "RELEASED"], recs
    # ...and the link still works afterwards.
    rx = c.receiver("somebody")
    rec = tx.send(Message(address="somebody", body="z"))
    rx.wait_count(1)
    tx.wait_all_settled()
    assert rec.outcome == "ACCEPTED"


@WORKERS
def test_balanced_each_message_to_exactly_one(make_router, reactor, workers):
    r = make_router(workers)
    consumers = [reactor.connect(r.port).wait_open().receiver("q.bal", credit=100)
                 for _ in range(3)]
    tx = reactor.connect(r.port).wait_open().sender("q.bal")
    n = 60
    tx.send_many([Message(id=i, body=i) for i in range(n)])
    tx.wait_all_settled()
    eventually(5, lambda: sum(c.count() for c in consumers) >= n)
    got = sorted(i for c in consumers for i in ids(c))
    assert got == list(range(n)), "every message exactly once"
    assert all(rec.outcome == "ACCEPTED" for rec in tx.records)


@WORKERS
def test_balanced_prefers_fewest_unsettled(make_router, reactor, workers):
    r = make_router(workers)
    holder = reactor.connect(r.port).wait_open().receiver("q.pref", credit=100, outcome=None)
    settler = reactor.connect(r.port).wait_open().receiver("q.pref", credit=100)
    tx = reactor.connect(r.port).wait_open().sender("q.pref")
    n = 40
    for i in range(n):
        held_before = holder.count()
        rec = tx.send(Message(id=i, body=i))
        # Wait until the router has placed this message (the holder has it, or the
        # settler's ACCEPTED came back) before sending the next, so every choice
        # is made with up-to-date unsettled counts.
        eventually(10, lambda: holder.count() > held_before or rec.remote_settled,
                   what=f"message {i} placed")
    assert holder.count() + settler.count() == n
    assert holder.count() <= 2, (f"holder (never settles) got {holder.count()} of {n}; "
                                 f"settler got {settler.count()}")
    assert settler.count() >= n - 2
    holder.settle_all()
    tx.wait_all_settled()


def test_closest_pattern_round_robin(make_router, reactor):
    r = make_router(workers=1)
    a = reactor.connect(r.port).wait_open().receiver("orders.x.eu", credit=200)
    b = reactor.connect(r.port).wait_open().receiver("orders.x.eu", credit=200)
    tx = reactor.connect(r.port).wait_open().sender("orders.x.eu")
    n = 40
    tx.send_many([Message(id=i, body=i) for i in range(n)])
    tx.wait_all_settled()
    eventually(5, lambda: a.count() + b.count() >= n)
    assert a.count() + b.count() == n
    assert abs(a.count() - b.count()) <= 2, f"uneven split {a.count()}/{b.count()}"
    assert sorted(ids(a) + ids(b)) == list(range(n))


@WORKERS
def test_multicast_copy_to_every_consumer(make_router, reactor, workers):
    r = make_router(workers)
    consumers = [reactor.connect(r.port).wait_open().receiver("mc/news", credit=100)
                 for _ in range(3)]
    consumers.append(consumers[0].conn.receiver("mc/news", credit=100))  # same connection too
    tx = reactor.connect(r.port).wait_open().sender("mc/news")
    n = 25
    recs = tx.send_many([Message(id=i, body=f"n{i}") for i in range(n)])
    for c in consumers:
        c.wait_count(n)
    tx.wait_all_settled()
    for c in consumers:
        assert ids(c) == list(range(n)), "each consumer gets every message once, in order"
        assert not any(rcv.presettled for rcv in c.received), \
            "copies of unsettled messages are unsettled: each consumer settles its own"
    assert all(rec.outcome == "ACCEPTED" for rec in recs), recs
    never(0.3, lambda: any(c.count() > n for c in consumers), what="duplicate copies")


def test_multicast_sender_waits_for_every_copy(make_router, reactor):
    # The sender's delivery is settled only when the last consumer settles
    # its copy; the outcome is the best any consumer gave.
    r = make_router()
    c1 = reactor.connect(r.port).wait_open().receiver("mc/hold", credit=10, outcome=None)
    c2 = reactor.connect(r.port).wait_open().receiver("mc/hold", credit=10, outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("mc/hold")
    recs = tx.send_many([Message(body=i) for i in range(3)])
    c1.wait_count(3)
    c2.wait_count(3)
    assert not any(rcv.presettled for rcv in c1.received + c2.received)
    c1.settle(0, REJECTED)
    c1.settle(1, RELEASED)
    c1.settle(2, REJECTED)
    never(0.3, lambda: tx.settled_count() > 0, what="sender settled before every copy was")
    c2.settle(0, ACCEPTED)   # accepted beats rejected
    c2.settle(1, MODIFIED)   # modified beats released
    c2.settle(2, REJECTED)   # nobody accepted
    tx.wait_all_settled()
    assert [rec.outcome for rec in recs] == ["ACCEPTED", "MODIFIED", "REJECTED"], recs


def test_multicast_consumer_leaving_counts_as_released(make_router, reactor):
    r = make_router()
    stay = reactor.connect(r.port).wait_open().receiver("mc/leave", credit=10, outcome=None)
    leave = reactor.connect(r.port).wait_open().receiver("mc/leave", credit=10, outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("mc/leave")
    recs = tx.send_many([Message(body="x")])
    stay.wait_count(1)
    leave.wait_count(1)
    stay.settle(0, RELEASED)
    never(0.3, lambda: tx.settled_count() > 0, what="sender settled while a copy is out")
    leave.conn.close()  # its copy was sent: modified (delivery-failed)
    tx.wait_all_settled()
    assert recs[0].outcome == "MODIFIED", recs


def test_multicast_presettled_sender(make_router, reactor):
    r = make_router()
    c1 = reactor.connect(r.port).wait_open().receiver("mc/ps", credit=10)
    tx = reactor.connect(r.port).wait_open().sender("mc/ps", settled=True)
    tx.send_many([Message(body=i) for i in range(5)])
    c1.wait_count(5)
    assert c1.bodies() == list(range(5))


def test_pattern_and_prefix_resolution(make_router, reactor):
    # "orders.*.eu" is closest, "mc/" is multicast, everything else balanced.
    r = make_router()
    c = reactor.connect(r.port).wait_open()
    mc = [c.receiver("mc/x"), c.receiver("mc/x")]
    other = [c.receiver("orders.x.us"), c.receiver("orders.x.us")]
    tx = reactor.connect(r.port).wait_open().sender(None)
    tx.send(Message(address="mc/x", body="m"))
    for rx in mc:
        rx.wait_count(1)
    tx.send_many([Message(address="orders.x.us", body=i) for i in range(4)])
    eventually(5, lambda: sum(rx.count() for rx in other) >= 4)
    tx.wait_all_settled()
    assert sum(rx.count() for rx in other) == 4, "orders.x.us is anycast (one copy each)"


@WORKERS
def test_dynamic_receivers_unique(make_router, reactor, workers):
    r = make_router(workers)
    c1 = reactor.connect(r.port).wait_open()
    c2 = reactor.connect(r.port).wait_open()
    d1 = c1.receiver(None, dynamic=True)
    d2 = c1.receiver(None, dynamic=True)
    d3 = c2.receiver(None, dynamic=True)
    addrs = [d.remote_source_address for d in (d1, d2, d3)]
    assert all(addrs), f"dynamic receivers must get an address: {addrs}"
    assert len(set(addrs)) == 3, f"dynamic addresses must be unique: {addrs}"
    # Messages to a dynamic address reach exactly that receiver.
    tx = c2.sender(None)
    for i, a in enumerate(addrs):
        tx.send(Message(address=a, body=i))
    for i, d in enumerate((d1, d2, d3)):
        d.wait_count(1)
        assert d.bodies() == [i]
    tx.wait_all_settled()
    assert all(rec.outcome == "ACCEPTED" for rec in tx.records)


@WORKERS
def test_request_response(make_router, reactor, workers):
    r = make_router(workers)
    server_conn = reactor.connect(r.port).wait_open()
    replies = server_conn.sender(None)
    service = server_conn.receiver("service", credit=20)

    def serve(link, rcv):
        # Runs on the proton thread for every request.
        msg = rcv.message
        reply = Message(address=msg.reply_to, correlation_id=msg.id, body=f"echo:{msg.body}")
        replies._enqueue([(reply, False)])
    service.on_message = serve

    clients = []
    for k in range(3):
        conn = reactor.connect(r.port).wait_open()
        inbox = conn.receiver(None, dynamic=True, credit=20)
        clients.append((conn.sender("service"), inbox))
    for k, (req, inbox) in enumerate(clients):
        req.send_many([Message(id=f"{k}-{i}", reply_to=inbox.remote_source_address,
                               body=f"{k}/{i}") for i in range(5)])
    for k, (req, inbox) in enumerate(clients):
        inbox.wait_count(5)
        assert [rc.message.correlation_id for rc in inbox.received] == \
            [f"{k}-{i}" for i in range(5)]
        assert inbox.bodies() == [f"echo:{k}/{i}" for i in range(5)]
        req.wait_all_settled()
    replies.wait_all_settled()
    assert all(rec.outcome == "ACCEPTED" for rec in replies.records)


def test_reply_to_vanished_dynamic_address_released(make_router, reactor):
    r = make_router()
    c = reactor.connect(r.port).wait_open()
    d = c.receiver(None, dynamic=True)
    addr = d.remote_source_address
    d.detach()
    tx = c.sender(None)
    rec = tx.send(Message(address=addr, body="late reply"))
    tx.wait_all_settled()
    assert rec.outcome == "RELEASED"
