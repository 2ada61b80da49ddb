"""The router network: inter-router links, multi-hop routing, edge routers,
failover. Every test runs real vaned processes linked over loopback."""

import collections
import time

import pytest
from proton import Message

from vane_client import ACCEPTED, MODIFIED, REJECTED, RELEASED
from vane_harness import eventually, make_config, never
from vane_network import Network

MC = [{"prefix": "mc/", "distribution": "multicast"},
      {"prefix": "near/", "distribution": "closest"}]


def line(factory, n, **kw):
    net = Network(factory, addresses=MC, **kw)
    names = [chr(ord("A") + i) for i in range(n)]
    for x in names:
        net.interior(x)
    for a, b in zip(names, names[1:]):
        net.link(a, b)
    return net.start().wait_converged()


def ring(factory, n, **kw):
    net = Network(factory, addresses=MC, **kw)
    names = [f"R{i}" for i in range(n)]
    for x in names:
        net.interior(x)
    for i in range(n):
        net.link(names[i], names[(i + 1) % n])
    return net.start().wait_converged()


def wait_credit(tx, timeout=15.0):
    eventually(timeout, lambda: tx.credit_seen > 0, what="sender gets credit")


def outcomes(records):
    return collections.Counter(r.outcome for r in records)


def assert_multicast_exactly_once(tx, receivers, count, reach_timeout=15):
    """Probes until every receiver gets multicast (address knowledge has
    spread), then sends `count` messages and checks each receiver got each
    exactly once, in order."""
    def all_reached():
        rec = tx.send(Message(body="probe"))
        tx.wait_all_settled(records=[rec])
        time.sleep(0.1)
        return all(r.count() > 0 for r in receivers)
    eventually(reach_timeout, all_reached, interval=0.1,
               what=f"multicast reaches all {len(receivers)} consumers")
    for r in receivers:
        r.received.clear()
    tx.send_many([Message(id=i, body=i) for i in range(count)])
    for r in receivers:
        r.wait_count(count)
    # Give any duplicate time to show up.
    never(0.3, lambda: any(r.count() > count for r in receivers), what="a duplicate copy")
    for i, r in enumerate(receivers):
        got = [x.message.id for x in r.received if x.message.body != "probe"]
        assert got == list(range(count)), f"receiver {i}: duplicates or losses: {len(got)}"


# --------------------------------------------------------------------------
# Links and paths

def test_line_of_three_end_to_end(router_factory, reactor):
    net = line(router_factory, 3)
    rc = reactor.connect(net.port("C")).wait_open()
    sc = reactor.connect(net.port("A")).wait_open()
    rx = rc.receiver("q.line", credit=100)
    tx = sc.sender("q.line")
    wait_credit(tx)
    recs = tx.send_many([Message(id=i, body=f"m{i}") for i in range(50)])
    rx.wait_count(50)
    tx.wait_all_settled()
    assert outcomes(recs) == {"ACCEPTED": 50}
    assert [r.message.id for r in rx.received] == list(range(50)), "in order over two hops"
    assert rx.received[7].body == "m7"


@pytest.mark.parametrize("outcome,expect", [(REJECTED, "REJECTED"), (RELEASED, "RELEASED"),
                                            (MODIFIED, "MODIFIED")])
def test_outcomes_travel_back_over_hops(router_factory, reactor, outcome, expect):
    net = line(router_factory, 3)
    rc = reactor.connect(net.port("C")).wait_open()
    sc = reactor.connect(net.port("A")).wait_open()
    rx = rc.receiver("q.outcome", credit=10, outcome=outcome)
    if outcome == REJECTED:
        rx.outcome_condition = ("app:bad", "not today")
    tx = sc.sender("q.outcome")
    wait_credit(tx)
    recs = tx.send_many([Message(body=i) for i in range(3)])
    tx.wait_all_settled()
    assert [r.outcome for r in recs] == [expect] * 3
    if outcome == REJECTED:
        assert recs[0].condition == ("app:bad", "not today")


def test_no_credit_until_a_consumer_anywhere(router_factory, reactor):
    net = line(router_factory, 3)
    sc = reactor.connect(net.port("A")).wait_open()
    tx = sc.sender("q.later")
    never(0.5, lambda: tx.credit_seen > 0, what="credit without any consumer")
    rc = reactor.connect(net.port("C")).wait_open()
    rx = rc.receiver("q.later")
    wait_credit(tx)
    tx.send(Message(body="x"))
    rx.wait_count(1)


def test_unsettled_held_end_to_end(router_factory, reactor):
    """The sender's delivery stays unsettled until the far consumer settles."""
    net = line(router_factory, 3)
    rc = reactor.connect(net.port("C")).wait_open()
    sc = reactor.connect(net.port("A")).wait_open()
    rx = rc.receiver("q.hold", credit=5, outcome=None)
    tx = sc.sender("q.hold")
    wait_credit(tx)
    rec = tx.send(Message(body="held"))
    rx.wait_count(1)
    never(0.3, lambda: rec.remote_settled, what="settled before the consumer settled")
    rx.settle(rx.received[0], ACCEPTED)
    tx.wait_all_settled()
    assert rec.outcome == "ACCEPTED"


def test_closest_prefers_local_then_fewest_hops(router_factory, reactor):
    net = line(router_factory, 3)
    rb = reactor.connect(net.port("B")).wait_open().receiver("near/x", credit=200)
    rc = reactor.connect(net.port("C")).wait_open().receiver("near/x", credit=200)
    tx = reactor.connect(net.port("C")).wait_open().sender("near/x")
    wait_credit(tx)
    tx.send_many([Message(body=i) for i in range(20)])
    rc.wait_count(20)
    assert rb.count() == 0, "closest: the local consumer wins"
    # From A, B is one hop away and C two: B gets everything.
    ta = reactor.connect(net.port("A")).wait_open().sender("near/x")
    wait_credit(ta)
    ta.send_many([Message(body=i) for i in range(20)])
    rb.wait_count(20)
    ta.wait_all_settled()
    assert rc.count() == 20


def test_balanced_spreads_over_routers(router_factory, reactor):
    net = line(router_factory, 3)
    # Consumers that hold deliveries unsettled: balanced must spread by load.
    ra = reactor.connect(net.port("A")).wait_open().receiver("work", credit=500, outcome=None)
    rc = reactor.connect(net.port("C")).wait_open().receiver("work", credit=500, outcome=None)
    tx = reactor.connect(net.port("B")).wait_open().sender("work")
    wait_credit(tx)
    tx.send_many([Message(body=i) for i in range(60)])
    eventually(10, lambda: ra.count() + rc.count() == 60)
    assert ra.count() >= 20 and rc.count() >= 20, (ra.count(), rc.count())
    ra.settle_all()
    rc.settle_all()
    tx.wait_all_settled()


def test_request_response_across_three_hops(router_factory, reactor):
    net = line(router_factory, 4)  # A-B-C-D: 3 hops
    server = reactor.connect(net.port("D")).wait_open()
    replies = server.sender(None)
    service = server.receiver("service", credit=50)

    def serve(link, rcv):
        msg = rcv.message
        replies._enqueue([(Message(address=msg.reply_to, correlation_id=msg.id,
                                   body=f"echo:{msg.body}"), False)])
    service.on_message = serve

    client = reactor.connect(net.port("A")).wait_open()
    inbox = client.receiver(None, dynamic=True, credit=50)
    assert inbox.remote_source_address.startswith("_vane/temp/A/")
    req = client.sender("service")
    wait_credit(req)
    req.send_many([Message(id=i, reply_to=inbox.remote_source_address, body=i)
                   for i in range(20)])
    inbox.wait_count(20, timeout=15)
    assert sorted(r.message.correlation_id for r in inbox.received) == list(range(20))
    req.wait_all_settled()
    replies.wait_all_settled()
    assert outcomes(replies.records) == {"ACCEPTED": 20}


# --------------------------------------------------------------------------
# Multicast

def test_multicast_ring_exactly_once(router_factory, reactor):
    net = ring(router_factory, 6)
    rxs = {}
    for rid in net.order:
        c = reactor.connect(net.port(rid)).wait_open()
        rxs[rid] = [c.receiver("mc/ring", credit=500) for _ in range(2)]
    tx = reactor.connect(net.port("R0")).wait_open().sender("mc/ring")
    wait_credit(tx)
    assert_multicast_exactly_once(tx, [r for rs in rxs.values() for r in rs], 100)


# --------------------------------------------------------------------------
# Failover

def diamond(factory, **kw):
    net = Network(factory, addresses=MC, **kw)
    for x in ("A", "B", "C", "D"):
        net.interior(x)
    net.link("A", "B", cost=1).link("B", "D", cost=1)
    net.link("A", "C", cost=5).link("C", "D", cost=5)
    return net.start().wait_converged()


def triangle(factory, **kw):
    net = Network(factory, addresses=MC, **kw)
    for x in ("A", "B", "C"):
        net.interior(x)
    net.link("A", "B").link("B", "C").link("A", "C", cost=5)
    return net.start().wait_converged()


# (topology, sender's router, receiver's router, preferred transit, other path?)
TRANSIT_CASES = {
    "line3": (lambda f: line(f, 3), "A", "C", "B", False),
    "triangle": (triangle, "A", "C", "B", True),
    "ring6": (lambda f: ring(f, 6), "R0", "R2", "R1", True),
    "diamond": (diamond, "A", "D", "B", True),
}


@pytest.mark.parametrize("case", list(TRANSIT_CASES))
def test_transit_killed_midstream(router_factory, reactor, case):
    build, src, dst, transit, other_path = TRANSIT_CASES[case]
    net = build(router_factory)
    rx = reactor.connect(net.port(dst)).wait_open().receiver("q.mid", credit=1000, outcome=None)
    tx = reactor.connect(net.port(src)).wait_open().sender("q.mid")
    wait_credit(tx)
    first = tx.send_many([Message(id=i, body=i) for i in range(40)])
    rx.wait_count(40)
    # The consumer holds them unsettled: all 40 are in flight through the
    # preferred transit router when it dies.
    net.kill(transit)
    tx.wait_all_settled(records=first, timeout=15)
    got = outcomes(first)
    assert got == {"MODIFIED": 40}, f"delivered copies come back modified: {got}"
    assert all(r.failed for r in first), "modified with delivery-failed"
    net.wait_converged()
    rx.received.clear()
    rx.outcome = ACCEPTED
    second = tx.send_many([Message(id=100 + i, body=i) for i in range(40)])
    if other_path:
        tx.wait_all_settled(records=second, timeout=15)
        assert outcomes(second) == {"ACCEPTED": 40}, outcomes(second)
        assert [r.message.id for r in rx.received] == [100 + i for i in range(40)]
    else:
        # No path left: whatever credit the sender still had is answered
        # with released, never silence.
        def settled_or_waiting():
            return all(r.remote_settled or not r.sent for r in second)
        eventually(15, settled_or_waiting, what="sent deliveries settled")
        assert set(outcomes([r for r in second if r.sent])) <= {"RELEASED"}
        assert rx.count() == 0


def test_link_loss_reroutes_and_restart_rejoins(router_factory, reactor):
    net = diamond(router_factory)
    rx = reactor.connect(net.port("D")).wait_open().receiver("q.re", credit=1000)
    tx = reactor.connect(net.port("A")).wait_open().sender("q.re")
    wait_credit(tx)
    net.kill("B")
    net.wait_converged()
    recs = tx.send_many([Message(body=i) for i in range(30)])
    tx.wait_all_settled(records=recs)
    assert outcomes(recs) == {"ACCEPTED": 30}
    net.restart("B")
    net.wait_converged()
    recs = tx.send_many([Message(body=i) for i in range(30)])
    tx.wait_all_settled(records=recs)
    assert outcomes(recs) == {"ACCEPTED": 30}
    assert rx.count() == 60


def test_dead_router_addresses_vanish(router_factory, reactor):
    net = line(router_factory, 3)
    rc = reactor.connect(net.port("C")).wait_open()
    rc.receiver("q.gone")
    tx = reactor.connect(net.port("A")).wait_open().sender(None)
    wait_credit(tx)
    ok = tx.send(Message(address="q.gone", body="1"))
    tx.wait_all_settled(records=[ok])
    assert ok.outcome == "ACCEPTED"
    net.kill("C")
    net.wait_converged()
    late = tx.send(Message(address="q.gone", body="2"))
    tx.wait_all_settled(records=[late])
    assert late.outcome == "RELEASED", "no route may remain to a dead router's consumers"


# --------------------------------------------------------------------------
# Edge routers

def edge_net(factory, **kw):
    net = Network(factory, addresses=MC, **kw)
    net.interior("I1").interior("I2").link("I1", "I2")
    net.edge("E1", uplinks=["I1", "I2"])
    net.edge("E2", uplinks=["I2", "I1"])
    net.edge("E3", uplinks=["I1", "I2"])
    return net.start().wait_converged()


def test_edge_to_edge_through_interiors(router_factory, reactor):
    net = edge_net(router_factory)
    rx = reactor.connect(net.port("E2")).wait_open().receiver("q.edge", credit=100)
    tx = reactor.connect(net.port("E1")).wait_open().sender("q.edge")
    wait_credit(tx)
    recs = tx.send_many([Message(id=i, body=i) for i in range(30)])
    rx.wait_count(30)
    tx.wait_all_settled()
    assert outcomes(recs) == {"ACCEPTED": 30}
    # Local delivery on an edge stays local for closest.
    rl = reactor.connect(net.port("E1")).wait_open().receiver("near/e", credit=100)
    rr = reactor.connect(net.port("E2")).wait_open().receiver("near/e", credit=100)
    t2 = reactor.connect(net.port("E1")).wait_open().sender("near/e")
    wait_credit(t2)
    t2.send_many([Message(body=i) for i in range(10)])
    rl.wait_count(10)
    t2.wait_all_settled()
    assert rr.count() == 0


def test_edge_multicast_exactly_once(router_factory, reactor):
    net = edge_net(router_factory)
    rxs = {rid: reactor.connect(net.port(rid)).wait_open().receiver("mc/e", credit=300)
           for rid in ("I1", "I2", "E1", "E2", "E3")}
    tx = reactor.connect(net.port("E1")).wait_open().sender("mc/e")
    wait_credit(tx)
    assert_multicast_exactly_once(tx, list(rxs.values()), 50)


def test_edge_fails_over_to_next_interior(router_factory, reactor):
    net = edge_net(router_factory, hello_ms=200, dead_ms=600)
    # E1's consumer, reached from E2 (attached to I2).
    rx = reactor.connect(net.port("E1")).wait_open().receiver("q.fo", credit=500)
    tx = reactor.connect(net.port("E2")).wait_open().sender(None)
    eventually(15, lambda: tx.send(Message(address="q.fo", body="p")) and
               (tx.wait_all_settled() or True) and rx.count() > 0, interval=0.2)
    assert net._current_uplink("E1") == "I1"
    net.kill("I1")
    eventually(15, lambda: net._current_uplink("E1") == "I2", what="E1 fails over to I2")

    def reached():
        before = rx.count()
        rec = tx.send(Message(address="q.fo", body="after"))
        tx.wait_all_settled(records=[rec])
        return rec.outcome == "ACCEPTED" and rx.count() > before
    eventually(15, reached, interval=0.2, what="E1's consumer reachable again")


def test_ten_routers_mixed(router_factory, reactor):
    """Six interiors in a ring with chords, four edges: anycast, multicast and
    replies across the whole network."""
    net = Network(router_factory, addresses=MC)
    ids = [f"I{i}" for i in range(6)]
    for x in ids:
        net.interior(x)
    for i in range(6):
        net.link(ids[i], ids[(i + 1) % 6])
    net.link("I0", "I3", cost=3)
    for k in range(4):
        net.edge(f"E{k}", uplinks=[ids[k], ids[(k + 2) % 6]])
    net.start().wait_converged(timeout=60)
    every = net.order
    assert len(every) == 10
    rxs = {rid: reactor.connect(net.port(rid)).wait_open().receiver("mc/all", credit=200)
           for rid in every}
    tx = reactor.connect(net.port("E0")).wait_open().sender("mc/all")
    wait_credit(tx)
    assert_multicast_exactly_once(tx, list(rxs.values()), 20, reach_timeout=20)
    # Anycast from every router to one consumer on E3.
    sink = reactor.connect(net.port("E3")).wait_open().receiver("q.sink", credit=500)
    for rid in every:
        s = reactor.connect(net.port(rid)).wait_open().sender("q.sink")
        wait_credit(s)
        recs = s.send_many([Message(body=f"{rid}-{i}") for i in range(5)])
        s.wait_all_settled(records=recs)
        assert outcomes(recs) == {"ACCEPTED": 5}, rid
    assert sink.count() == 50


# --------------------------------------------------------------------------
# Refusals and configuration

def test_duplicate_router_id_refused(router_factory, reactor):
    a = router_factory(make_config(router_id="dup", listeners=[
        {"name": "amqp", "host": "127.0.0.1", "port": 0, "role": "normal"},
        {"name": "inter", "host": "127.0.0.1", "port": 0, "role": "inter-router"}]), name="a")
    b = router_factory(make_config(router_id="dup", listeners=[
        {"name": "amqp", "host": "127.0.0.1", "port": 0, "role": "normal"}]), name="b")
    b.stop()
    cfg = make_config(router_id="dup")
    cfg["connectors"] = [{"name": "to-a", "host": "127.0.0.1", "port": a.ports["inter"],
                          "role": "inter-router"}]
    b = router_factory(cfg, name="b2")
    a.wait_for_log(r"refused: the peer has our own router id 'dup'")
    b.wait_for_log(r"vane:duplicate-router-id")


def test_normal_client_refused_on_inter_router_listener(router_factory, reactor):
    net = line(router_factory, 2)
    c = reactor.connect(net.port("A", "inter")).wait_open()
    c.receiver("q.x", wait=False)
    eventually(10, lambda: c.closed, what="connection refused")
    assert c.remote_condition[0] == "amqp:not-allowed", c.remote_condition
    # The routers' own link is unaffected.
    rx = reactor.connect(net.port("B")).wait_open().receiver("q.ok")
    tx = reactor.connect(net.port("A")).wait_open().sender("q.ok")
    wait_credit(tx)
    tx.send(Message(body="fine"))
    rx.wait_count(1)


def test_silent_neighbour_dropped_after_dead_interval(router_factory, reactor):
    """A frozen transit router (its sockets stay open) is dropped once its
    hellos stop for dead_interval_ms, and traffic moves to the other path;
    when it thaws it rejoins."""
    import signal
    net = diamond(router_factory, hello_ms=200, dead_ms=600)
    rx = reactor.connect(net.port("D")).wait_open().receiver("q.frozen", credit=1000)
    tx = reactor.connect(net.port("A")).wait_open().sender("q.frozen")
    wait_credit(tx)
    net["B"].proc.send_signal(signal.SIGSTOP)
    try:
        net["A"].wait_for_log(r"dropping link to router B: .*", timeout=10)
        net["D"].wait_for_log(r"dropping link to router B: .*", timeout=10)
        recs = tx.send_many([Message(body=i) for i in range(20)])
        tx.wait_all_settled(records=recs, timeout=15)
        assert outcomes(recs) == {"ACCEPTED": 20}, outcomes(recs)
    finally:
        net["B"].proc.send_signal(signal.SIGCONT)
    net.wait_converged(timeout=30)
    assert rx.count() == 20


def test_duplicate_id_elsewhere_in_network_refused(router_factory, reactor):
    net = line(router_factory, 2)  # A - B
    cfg = make_config(router_id="A")
    cfg["connectors"] = [{"name": "to-b", "host": "127.0.0.1", "port": net.port("B", "inter"),
                          "role": "inter-router"}]
    imposter = router_factory(cfg, name="imposter")
    net["B"].wait_for_log(r"refusing link from router A: router id A is already in use", timeout=15)
    imposter.wait_for_log(r"vane:duplicate-router-id", timeout=15)
    # The real A is still reachable through B.
    rx = reactor.connect(net.port("A")).wait_open().receiver("q.real")
    tx = reactor.connect(net.port("B")).wait_open().sender("q.real")
    wait_credit(tx)
    tx.send(Message(body="to the real A"))
    rx.wait_count(1)
