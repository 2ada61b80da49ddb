"""End-to-end settlement: consumer outcomes reach the sender, and deliveries in
flight to a consumer that goes away are settled back (never silence, never a
made-up ACCEPTED)."""

import os
import signal
import subprocess
import sys
import threading

import pytest
from proton import Message

from vane_client import ACCEPTED, MODIFIED, REJECTED, RELEASED
from vane_harness import eventually, make_config, never

WORKERS = pytest.mark.parametrize("workers", [1, 2])
HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def make_router(router_factory):
    def make(workers=1, **kw):
        return router_factory(make_config(workers=workers, **kw))
    return make


OUTCOMES = [
    pytest.param(ACCEPTED, {}, id="accepted"),
    pytest.param(REJECTED, {"condition": ("vane:test-reject", "not today")}, id="rejected"),
    pytest.param(RELEASED, {}, id="released"),
    pytest.param(MODIFIED, {"failed": True, "undeliverable": False}, id="modified-failed"),
    pytest.param(MODIFIED, {"failed": False, "undeliverable": True},
                 id="modified-undeliverable"),
    pytest.param(MODIFIED, {"failed": True, "undeliverable": True}, id="modified-both"),
]


@WORKERS
@pytest.mark.parametrize("outcome,extra", OUTCOMES)
def test_consumer_outcome_reaches_sender(make_router, reactor, workers, outcome, extra):
    r = make_router(workers)
    rx = reactor.connect(r.port).wait_open().receiver("q.outcome", credit=10, outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("q.outcome")
    rec = tx.send(Message(id=1, body="judge me"))
    rx.wait_count(1)
    got = rx.received[0]
    assert not got.presettled, "an unsettled delivery must be forwarded unsettled"
    assert not rec.remote_settled, "the router must not settle before the consumer does"
    rx.settle(got, outcome, **extra)
    tx.wait_all_settled()
    assert rec.state == outcome, f"sender saw {rec!r}"
    if outcome == REJECTED:
        assert rec.condition == ("vane:test-reject", "not today"), rec
    if outcome == MODIFIED:
        assert bool(rec.failed) == extra["failed"], rec
        assert bool(rec.undeliverable) == extra["undeliverable"], rec


@WORKERS
def test_mixed_outcomes_on_one_link(make_router, reactor, workers):
    r = make_router(workers)
    rx = reactor.connect(r.port).wait_open().receiver("q.mixed", credit=20, outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("q.mixed")
    recs = tx.send_many([Message(id=i, body=i) for i in range(8)])
    rx.wait_count(8)
    plan = [ACCEPTED, REJECTED, RELEASED, MODIFIED, ACCEPTED, REJECTED, RELEASED, MODIFIED]
    # Settle out of order.
    for i in (7, 0, 5, 2, 3, 6, 1, 4):
        rx.settle(i, plan[i], condition=("vane:c", f"r{i}"))
    tx.wait_all_settled()
    assert [rec.state for rec in recs] == plan, recs
    assert recs[1].condition == ("vane:c", "r1") and recs[5].condition == ("vane:c", "r5")


def _check_settled_back(tx, recs, received_ids, pre_outcomes=None):
    """Every record settled; the ones the consumer held are MODIFIED(failed)."""
    pre_outcomes = pre_outcomes or {}
    tx.wait_all_settled(timeout=10, records=recs)
    for rec in recs:
        i = rec.message.id
        if i in pre_outcomes:
            assert rec.state == pre_outcomes[i], f"#{i}: consumer's outcome lost: {rec!r}"
        elif i in received_ids:
            assert rec.state == MODIFIED and rec.failed, (
                f"#{i} was sent to the consumer, which went away without settling: "
                f"expected MODIFIED(delivery-failed), got {rec!r}")
        else:
            assert rec.state in (RELEASED, MODIFIED), f"#{i}: {rec!r}"
            if rec.state == MODIFIED:
                assert rec.failed, rec


@WORKERS
def test_consumer_detach_settles_in_flight(make_router, reactor, workers):
    r = make_router(workers)
    rx = reactor.connect(r.port).wait_open().receiver("q.detach", credit=10, outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("q.detach")
    recs = tx.send_many([Message(id=i, body=i) for i in range(6)])
    rx.wait_count(6)
    rx.settle(0, ACCEPTED)
    rx.settle(1, REJECTED, condition=("vane:no", "no"))
    eventually(5, lambda: recs[0].remote_settled and recs[1].remote_settled)
    rx.detach()
    _check_settled_back(tx, recs, received_ids=set(range(6)),
                        pre_outcomes={0: ACCEPTED, 1: REJECTED})


@WORKERS
def test_consumer_connection_close_settles_in_flight(make_router, reactor, workers):
    r = make_router(workers)
    rconn = reactor.connect(r.port).wait_open()
    rx = rconn.receiver("q.close", credit=10, outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("q.close")
    recs = tx.send_many([Message(id=i, body=i) for i in range(5)])
    rx.wait_count(5)
    rconn.close()
    _check_settled_back(tx, recs, received_ids=set(range(5)))


@WORKERS
def test_undelivered_backlog_after_detach(make_router, reactor, workers):
    # The consumer has credit for 3 of 6; it leaves; a new consumer arrives.
    # The 3 it held come back MODIFIED(failed); the others are either delivered
    # to the new consumer (and carry its outcome) or RELEASED -- never lost,
    # never ACCEPTED by nobody.
    r = make_router(workers)
    rx = reactor.connect(r.port).wait_open().receiver("q.backlog", credit=3, outcome=None,
                                                      auto_credit=False)
    tx = reactor.connect(r.port).wait_open().sender("q.backlog")
    recs = tx.send_many([Message(id=i, body=i) for i in range(6)])
    rx.wait_count(3)
    held = {rc.message.id for rc in rx.received}
    rx.detach()
    rx2 = reactor.connect(r.port).wait_open().receiver("q.backlog", credit=10)
    tx.wait_all_settled(timeout=10)
    second = {rc.message.id for rc in rx2.received}
    for rec in recs:
        i = rec.message.id
        if i in held:
            assert rec.state == MODIFIED and rec.failed, f"#{i}: {rec!r}"
        elif rec.state == ACCEPTED:
            assert i in second, f"#{i} ACCEPTED but no consumer received it"
        else:
            assert rec.state == RELEASED or (rec.state == MODIFIED and rec.failed), rec


@WORKERS
def test_consumer_killed_settles_in_flight(make_router, reactor, workers):
    r = make_router(workers)
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "consumer_proc.py"),
                             str(r.port), "q.kill", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []

    def reader():
        for line in proc.stdout:
            lines.append(line.strip())
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        eventually(15, lambda: "ATTACHED" in lines, what="consumer process attached")
        tx = reactor.connect(r.port).wait_open().sender("q.kill")
        recs = tx.send_many([Message(id=i, body=i) for i in range(5)])
        eventually(10, lambda: sum(1 for l in lines if l.startswith("RECEIVED")) >= 5,
                   what="consumer process received 5")
        assert not any(rec.remote_settled for rec in recs), recs
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _check_settled_back(tx, recs, received_ids=set(range(5)))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    # The router is fine and the address usable again.
    rx = reactor.connect(r.port).wait_open().receiver("q.kill")
    rec = tx.send(Message(id=99, body="after"))
    rx.wait_count(1)
    tx.wait_all_settled(records=[rec])
    assert rec.state == ACCEPTED


def test_sender_gone_before_consumer_settles(make_router, reactor):
    r = make_router()
    rx = reactor.connect(r.port).wait_open().receiver("q.orphan", credit=10, outcome=None)
    sconn = reactor.connect(r.port).wait_open()
    tx = sconn.sender("q.orphan")
    tx.send_many([Message(id=i, body=i) for i in range(4)])
    rx.wait_count(4)
    sconn.close()
    # Settling deliveries whose sender has gone must be harmless.
    rx.settle_all(ACCEPTED)
    rx.outcome = ACCEPTED    # from now on the consumer accepts on receipt
    tx2 = reactor.connect(r.port).wait_open().sender("q.orphan")
    rec = tx2.send(Message(id=10, body="next"))
    tx2.wait_all_settled()
    assert rec.state == ACCEPTED
    assert rx.count() == 5
    assert not rx.conn.closed


def test_consumer_release_reaches_sender(make_router, reactor):
    # A RELEASED outcome from the only consumer reaches the sender (it is not
    # swallowed or turned into something else); the sender may resend.
    r = make_router()
    rx = reactor.connect(r.port).wait_open().receiver("q.rel", credit=10, outcome=RELEASED)
    tx = reactor.connect(r.port).wait_open().sender("q.rel")
    recs = tx.send_many([Message(id=i, body=i) for i in range(3)])
    tx.wait_all_settled()
    assert [rec.state for rec in recs] == [RELEASED] * 3
    assert rx.count() == 3


def test_consumer_that_never_settles_is_sent_at_most_the_limit(router_factory, reactor):
    # router.max_unsettled_per_link bounds what a consumer that grants credit
    # but never settles can hold; it resumes as the consumer settles, and the
    # sender's deliveries wait in the router meanwhile (no loss).
    r = router_factory(make_config(max_unsettled_per_link=10))
    rx = reactor.connect(r.port).wait_open().receiver("hoard", credit=100, outcome=None)
    tx = reactor.connect(r.port).wait_open().sender("hoard")
    recs = tx.send_many([Message(id=i, body=f"m{i}") for i in range(30)])
    rx.wait_count(10)
    never(0.5, lambda: rx.count() > 10, what="more than 10 unsettled deliveries on one link")
    assert tx.settled_count() == 0
    for i in range(5):
        rx.settle(i)
    rx.wait_count(15)
    never(0.3, lambda: rx.count() > 15, what="more than 10 unsettled after 5 settled")
    rx.outcome = ACCEPTED
    rx.settle_all()
    rx.wait_count(30)  # those held are settled now, later ones on arrival
    tx.wait_all_settled()
    assert [rec.outcome for rec in recs] == ["ACCEPTED"] * 30
    assert [x.message.id for x in rx.received] == list(range(30))
