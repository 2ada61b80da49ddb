"""A linked site must not be able to rewrite routing for the whole network
(docs/design/trust-model.md). F, a fake router (fake_router.py) linked to A
of a real network A - B - C, forges records about the real routers and
announces a real router's id.

Before records were signed, every one of these stuck: a router took a
link-state or address record about *any* router id from *any* neighbour as
soon as its instance was larger than the one held, and re-flooded it. So F
could move B's traffic onto itself, empty B's address set, or link in as C.
Now every record carries its originator's key and signature, a key is bound
to its router id while the id is in the network (trust on first use), and
the forgeries are refused and counted, the routing unchanged."""

import base64
import os
import re

from fake_router import FakeRouter
from vane_harness import eventually, never
from vane_network import Network

HUGE = 2 ** 63  # an instance larger than any real router's


def metric(router, name, labels=""):
    text = router.api("GET", "/metrics").body.decode()
    m = re.search(rf"^{re.escape(name + labels)} (\d+)", text, re.M)
    return int(m.group(1)) if m else None


def routes(router):
    """{router id: next hop} of every router `router` has a path to."""
    body = router.api("GET", "/api/v1/routers").json()
    return {r["id"]: r["next_hop"] for r in body["routers"] if not r["self"]}


def remote_routers(router, address):
    for e in router.api("GET", "/api/v1/addresses").json():
        if e["address"] == address:
            return e["remote_routers"]
    return []


def network(router_factory):
    net = Network(router_factory, hello_ms=200, dead_ms=1000, management={"port": 0})
    net.interior("A").interior("B").interior("C").link("A", "B").link("B", "C")
    # A TCP service at B: the address "web" with B as its router.
    net.tcp_connector("B", "web-out", "web", 9)
    net.start().wait_converged()
    eventually(20, lambda: remote_routers(net["A"], "web") == ["B"], what="web at B, seen by A")
    return net


def join(router, rid="F", **kwargs):
    """F linked to `router` (A), with its own signed link-state record."""
    f = FakeRouter(f"127.0.0.1:{router.ports['inter']}", rid, **kwargs).start()
    f.send_control(f.lsu([f.ls_record({"A": 1})]))
    eventually(10, lambda: rid in routes(router), what=f"a path to {rid}")
    return f


def record_of(f, rid):
    """The link-state record of `rid` that the router sent F. A's path to F
    may be up a moment before F has read the records A sent it, so this
    waits for them."""
    def find():
        for m in f.controls("lsu"):
            for rec in m["records"]:
                if rec["id"] == rid:
                    return rec
        return None
    return eventually(10, find, what=f"{rid}'s link-state record at F")


def test_forged_link_state_record_is_refused(router_factory):
    """F sends, signed with its own key, a link-state record with B's id, a
    larger instance and links to F and C only, and its own record linking
    to A and B. Before: A took it, so the edge A-B was one-way, and A sent
    everything for B (and C) through F: {"B": "F", "C": "F"}. Now: refused
    as an id conflict (counted, F stays linked: it sent a validly signed
    record, just for an id that is not its own), and A's paths are those of
    before F came."""
    net = network(router_factory)
    a = net["A"]
    f = join(a)
    try:
        before = routes(a)
        assert before == {"B": "B", "C": "B", "F": "F"}
        conflicts = metric(a, "vane_router_id_conflicts_total")
        f.send_control(f.lsu([f.ls_record({"F": 1, "C": 1}, rid="B", instance=HUGE),
                              f.ls_record({"A": 1, "B": 1}, seq=2)]))
        eventually(10, lambda: metric(a, "vane_router_id_conflicts_total") > conflicts,
                   what="the id conflict counted")
        never(1.0, lambda: routes(a) != before, what="A's paths changed")
        assert routes(net["C"]) == {"A": "B", "B": "B", "F": "B"}
        assert not f.closed.is_set()
        a.wait_for_log(r"router id 'B' is already in the network with another key")
    finally:
        f.close()


def test_forged_address_record_is_refused(router_factory):
    """F sends a full address record with B's id, a larger instance and no
    addresses. Before: A replaced B's address set with it, so "web" had no
    router left at A. Now: refused (an id conflict), "web" still at B. Then
    F copies B's real key (from the record A sent it) onto a record with a
    made-up signature: a bad signature, and A drops F with a protocol error;
    still nothing changed."""
    net = network(router_factory)
    a = net["A"]
    f = join(a)
    try:
        conflicts = metric(a, "vane_router_id_conflicts_total")
        f.send_control(f.mau([f.address_record([], rid="B", instance=HUGE)]))
        eventually(10, lambda: metric(a, "vane_router_id_conflicts_total") > conflicts,
                   what="the id conflict counted")
        never(1.0, lambda: remote_routers(a, "web") != ["B"], what="web gone from B at A")

        b_key = record_of(f, "B")["key"]
        bad = metric(a, "vane_router_bad_signatures_total")
        forged = {"id": "B", "instance": HUGE, "seq": 1, "exist": [], "key": b_key,
                  "sig": base64.b64encode(os.urandom(64)).decode()}
        f.send_control(f.mau([forged]))
        eventually(10, f.closed.is_set, what="A dropping F")
        assert f.remote_condition is not None
        assert f.remote_condition.name == "vane:protocol-error"
        assert "bad signature" in f.remote_condition.description
        assert metric(a, "vane_router_bad_signatures_total") == bad + 1
        assert remote_routers(a, "web") == ["B"]
        assert remote_routers(net["C"], "web") == ["B"]
        eventually(10, lambda: routes(a) == {"B": "B", "C": "B"}, what="F gone from A's paths")
    finally:
        f.close()


def test_unsigned_records_drop_the_neighbour(router_factory):
    """A record without key and sig (what every record was before) is a
    bad signature: the neighbour is dropped, the routing unchanged."""
    net = network(router_factory)
    a = net["A"]
    f = join(a)
    try:
        f.send_control(f.lsu([{"id": "B", "instance": HUGE, "seq": 1, "links": {"F": 1}}]))
        eventually(10, f.closed.is_set, what="A dropping F")
        assert f.remote_condition.name == "vane:protocol-error"
        assert "not signed" in f.remote_condition.description
        assert routes(a) == {"B": "B", "C": "B"}
    finally:
        f.close()


def test_an_existing_router_id_with_another_key_is_refused_at_hello(router_factory):
    """F learns C's instance from the records A sends it, then a second fake
    links to A as C, with that instance and its own key. Before: the same id
    *and* instance passed every check ("not detected" in the protocol), and
    A had two routers called C. Now: A refuses it at its first hello with
    vane:duplicate-router-id (the key differs), and C is still reached
    through B."""
    net = network(router_factory)
    a = net["A"]
    f = join(a)
    try:
        c_instance = record_of(f, "C")["instance"]
        conflicts = metric(a, "vane_router_id_conflicts_total")
        impostor = FakeRouter(f"127.0.0.1:{a.ports['inter']}", "C", instance=c_instance)
        try:
            try:
                impostor.start()
            except AssertionError:
                pass  # refused before the exchange of hellos finished
            eventually(10, impostor.closed.is_set, what="A refusing the second C")
            assert impostor.remote_condition.name == "vane:duplicate-router-id"
            assert "already in the network with another key" in \
                impostor.remote_condition.description
        finally:
            impostor.close()
        assert metric(a, "vane_router_id_conflicts_total") == conflicts + 1
        assert routes(a)["C"] == "B"
    finally:
        f.close()


def test_a_fake_with_a_real_routers_key_but_no_private_key_is_refused(router_factory):
    """A hello carrying C's (public) key must be signed by C's private key:
    a copied key with a made-up signature is a bad signature."""
    net = network(router_factory)
    a = net["A"]
    f = join(a)
    try:
        c = record_of(f, "C")
        impostor = FakeRouter(f"127.0.0.1:{a.ports['inter']}", "C", instance=c["instance"],
                              sign_hello=False, send_hello=False).start()
        try:
            impostor.send_control(dict(impostor.hello(), key=c["key"],
                                       sig=base64.b64encode(os.urandom(64)).decode()))
            eventually(10, impostor.closed.is_set, what="A refusing the second C")
            assert impostor.remote_condition.name == "vane:protocol-error"
            assert "bad signature" in impostor.remote_condition.description
        finally:
            impostor.close()
        assert routes(a)["C"] == "B"
    finally:
        f.close()
