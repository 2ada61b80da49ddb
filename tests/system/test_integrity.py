"""Message integrity: every byte and every outcome, through 1, 2 and 3 routers.

Every body is pseudo-random (SHAKE-128 of the message's seed, which is also
its message id), so a byte replaced, a block moved or repeated, or bytes
taken from another message are all caught. A body that differs is located:
the first bad offset, its 4 KiB block and the bytes found there.

Clients: the event-driven ones in vane_client.py, Proton's
``proton.utils.BlockingConnection`` (each on its own thread, as a blocking
client program would be), and the C++ bench client ``vane-bench``, which
checks counts, order, duplicates, settlement and outcomes but not body bytes
(its receiver reads only the 16-byte stamp at the start of each body).

Run against $VANED (release or ASan build); ``-m integrity`` selects this
suite.
"""

import functools
import hashlib
import os
import re
import subprocess
import threading
import time
import traceback
from pathlib import Path

import pytest
from proton import Message
from proton.reactor import AtMostOnce
from proton.utils import BlockingConnection, SendException

from vane_client import ACCEPTED, MODIFIED, REJECTED, RELEASED, SASL, outcome_name
from vane_harness import REPO_ROOT, eventually, never
from vane_network import Network

pytestmark = pytest.mark.integrity

KiB = 1024
MiB = 1024 * KiB
SIZES = [0, 1, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 1 * MiB, 10 * MiB]
MC = [{"prefix": "mc/", "distribution": "multicast"}]
ROUTERS = "ABC"
T = 60.0   # generous per-wait limit: ASan builds are several times slower


def size_id(size):
    for unit, name in ((MiB, "MiB"), (KiB, "KiB")):
        if size >= unit and size % unit in (0, 1, unit - 1):
            base, rest = divmod(size, unit)
            if rest == unit - 1:
                return f"{base + 1}{name}-1"
            return f"{base}{name}" + ("+1" if rest else "")
    return f"{size}B"


# --------------------------------------------------------------------------
# Bodies and their checks

@functools.lru_cache(maxsize=32)
def payload(size, seed):
    return hashlib.shake_128(f"vane-integrity-{seed}".encode()).digest(size)


def message(size, seed):
    """A message with one data section of `size` bytes; id = seed."""
    return Message(id=seed, body=payload(size, seed), inferred=True,
                   properties={"size": size})


def body_problem(body, size, seed):
    """None if `body` is message `seed`'s body, else where and how it differs."""
    want = payload(size, seed)
    if not isinstance(body, (bytes, bytearray)):
        return f"message {seed}: body is {type(body).__name__}, not one data section"
    if body == want:
        return None
    if len(body) != size:
        return f"message {seed}: {len(body)} bytes arrived, {size} sent"
    bad_blocks = [b for b in range(0, size, 4096) if body[b:b + 4096] != want[b:b + 4096]]
    first = bad_blocks[0]
    off = next(i for i in range(first, first + 4096) if body[i] != want[i])
    return (f"message {seed} ({size} B) corrupted in {len(bad_blocks)} 4 KiB block(s), first "
            f"at offset {off}: got {bytes(body[off:off + 32]).hex()} "
            f"expected {want[off:off + 32].hex()}")


def check_arrivals(got, expected, where):
    """`got`: [(id, body, presettled)] in arrival order; `expected`:
    [(seed, size, presettled)] in sending order. Asserts the same messages,
    in order, each intact, each pre-settled exactly when expected."""
    problems = []
    ids, want_ids = [g[0] for g in got], [e[0] for e in expected]
    if ids != want_ids:
        problems.append(f"{where}: message ids {ids} arrived, {want_ids} were sent "
                        "(lost, duplicated or reordered)")
    sizes = {seed: size for seed, size, _ in expected}
    settle = {seed: p for seed, _, p in expected}
    for mid, body, presettled in got:
        if mid not in sizes:
            problems.append(f"{where}: unknown message id {mid!r}")
            continue
        p = body_problem(body, sizes[mid], mid)
        if p:
            problems.append(f"{where}: {p}")
        if presettled != settle[mid]:
            problems.append(f"{where}: message {mid} arrived "
                            f"{'pre-settled' if presettled else 'unsettled'}, expected "
                            f"{'pre-settled' if settle[mid] else 'unsettled'}")
    assert not problems, "\n".join(problems)


def arrivals(receiver):
    """An event-driven ReceiverLink's deliveries as check_arrivals wants them."""
    return [(r.message.id if r.message else None, r.message.body if r.message else None,
             r.presettled) for r in receiver.received]


def send_plan(tx, plan):
    """Queues `plan` [(seed, size, presettled)] on an event-driven sender in
    one call; returns the SentRecords."""
    return tx.reactor.call(tx._enqueue, [(message(size, seed), pre) for seed, size, pre in plan])


def assert_outcomes(records, expected, where="sender"):
    got = [outcome_name(r.state) if r.remote_settled else "unsettled" for r in records]
    assert got == expected, f"{where}: outcomes {got}, expected {expected}"


# --------------------------------------------------------------------------
# Networks

def line(router_factory, hops, management=False):
    """Routers A[-B[-C]] in a line; returns the converged Network."""
    net = Network(router_factory, addresses=MC,
                  management={"port": 0} if management else None)
    names = ROUTERS[:hops]
    for rid in names:
        net.interior(rid)
    for a, b in zip(names, names[1:]):
        net.link(a, b)
    return net.start().wait_converged()


def wait_credit(tx, timeout=T):
    eventually(timeout, lambda: tx.credit_seen > 0, what=f"credit for {tx.address}")


class ConnectionLost(Exception):
    """A client's link or connection closed while it was waited on (not an
    AssertionError, so `eventually` stops at once)."""


def _alive(link, role):
    if link.closed:
        raise ConnectionLost(
            f"{role} on {link.address} closed: link {link.remote_condition}, connection "
            f"{link.conn.remote_condition} {link.conn.transport_condition}")


def wait_count(rx, n, timeout=T):
    """Waits for `n` deliveries on `rx`; fails at once if it is closed."""
    def check():
        if rx.count() >= n:
            return True
        _alive(rx, "receiver")
        return False
    eventually(timeout, check, what=lambda: f"{n} messages on {rx.address}; have {rx.count()}")
    return rx.received


def wait_settled(tx, records, timeout=T):
    """Waits until every record is settled by the router; fails at once if
    the sender is closed."""
    def check():
        if all(r.remote_settled for r in records):
            return True
        _alive(tx, "sender")
        return False
    eventually(timeout, check, what=lambda: f"{sum(not r.remote_settled for r in records)} of "
                                            f"{len(records)} deliveries on {tx.address} unsettled")


def wait_consumers_known(net, address, local):
    """Waits until every router knows every consumer of `address`: `local`
    maps router id -> number of consumers attached there."""
    for rid in net.order:
        want_remote = sorted(r for r, n in local.items() if n and r != rid)

        def known():
            entries = {e["address"]: e for e in net[rid].api("GET", "/api/v1/addresses").json()}
            e = entries.get(address) or {}
            got = (e.get("local_consumers", 0), sorted(e.get("remote_routers", [])))
            assert got == (local.get(rid, 0), want_remote), f"{rid} sees {got}"
            return True
        eventually(T, known, interval=0.05, what=f"consumers of {address} known at {rid}")


# --------------------------------------------------------------------------
# Blocking clients (proton.utils), each on its own thread

def blocking_connection(port):
    kwargs = {"allowed_mechs": "ANONYMOUS"} if SASL else {"sasl_enabled": False}
    return BlockingConnection(f"amqp://127.0.0.1:{port}", timeout=T, **kwargs)


def pump_until(conn, condition, timeout=T):
    """Runs a BlockingConnection's I/O until `condition()` (its own wait()
    only re-checks after an event, so wait in short slices)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out running a blocking connection"
        try:
            conn.wait(condition, timeout=0.05)
        except Exception as exc:  # proton.Timeout: not there yet
            if type(exc).__name__ != "Timeout":
                raise


class BlockingConsumer(threading.Thread):
    """A standard blocking consumer: `receive()` then `accept()` for each of
    `count` messages (accept=False: a consumer of pre-settled messages, which
    must not settle). `settled=True` attaches with snd-settle-mode settled.
    After the last message the connection keeps running until stop() so its
    dispositions reach the router."""

    def __init__(self, port, address, count, credit=10, settled=False, accept=True):
        super().__init__(daemon=True, name=f"blocking-consumer-{address}")
        self.port, self.address, self.count = port, address, count
        self.credit, self.settled, self.accept = credit, settled, accept
        self.got = []            # (id, body, presettled)
        self.error = None
        self.attached = threading.Event()
        self.done = threading.Event()
        self._halt = threading.Event()
        self.start()

    def run(self):
        conn = None
        try:
            conn = blocking_connection(self.port)
            rx = conn.create_receiver(self.address, credit=self.credit,
                                      options=AtMostOnce() if self.settled else None)
            self.attached.set()
            for _ in range(self.count):
                msg = rx.receive(timeout=T)
                # The Fetcher queues a delivery for accept() only if it
                # arrived unsettled.
                self.got.append((msg.id, msg.body, not rx.fetcher.unsettled))
                if self.accept:
                    try:
                        rx.accept()
                    except IndexError:
                        raise AssertionError(
                            f"accept() of message {msg.id} raised IndexError: the router sent "
                            f"a pre-settled copy to a consumer that asked for unsettled ones")
            self.done.set()
            pump_until(conn, self._halt.is_set)
        except BaseException:
            self.error = traceback.format_exc()
            self.done.set()
        finally:
            self.attached.set()
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass

    def wait_attached(self):
        assert self.attached.wait(T), f"consumer of {self.address} not attached"
        assert self.error is None, self.error

    def finish(self):
        """Waits for every message, stops the thread; asserts no error."""
        self.done.wait(T * 2)
        self._halt.set()
        self.join(T)
        assert self.error is None, f"blocking consumer of {self.address}:\n{self.error}"
        assert self.done.is_set(), f"blocking consumer of {self.address}: {len(self.got)} " \
                                   f"of {self.count} messages within the limit"


def blocking_send(port, address, plan, until):
    """Sends `plan` [(seed, size, presettled)] with a BlockingConnection:
    unsettled ones on one link (send() waits for each outcome), pre-settled
    ones on an AtMostOnce link. Then runs the connection until `until()`.
    Returns {seed: outcome name} for the unsettled ones."""
    conn = blocking_connection(port)
    outcomes = {}
    try:
        # Two links to one address need their own names (proton's default
        # name is container id + address).
        unsettled = conn.create_sender(address, name=f"{address}-unsettled")
        presettled = conn.create_sender(address, name=f"{address}-presettled",
                                        options=AtMostOnce())
        for seed, size, pre in plan:
            if pre:
                presettled.send(message(size, seed))
                continue
            try:
                dlv = unsettled.send(message(size, seed), timeout=T)
                outcomes[seed] = outcome_name(dlv.remote_state)
            except SendException as exc:
                outcomes[seed] = outcome_name(exc.state)
        pump_until(conn, until)
    finally:
        conn.close()
    return outcomes


# --------------------------------------------------------------------------
# Sizes, event-driven clients

@pytest.mark.parametrize("size", SIZES, ids=size_id)
@pytest.mark.parametrize("hops", [1, 2, 3])
def test_sizes_event_driven(router_factory, reactor, hops, size):
    """Messages of each size cross 1-3 routers intact, in order, once: the
    unsettled ones come back ACCEPTED and reach the receiver unsettled; the
    pre-settled ones (same mixed-mode link) arrive pre-settled."""
    net = line(router_factory, hops)
    rx = reactor.connect(net.port(ROUTERS[hops - 1])).wait_open().receiver("q.sizes", credit=10)
    tx = reactor.connect(net.port("A")).wait_open().sender("q.sizes")
    wait_credit(tx)
    plan = [(seed, size, pre) for seed, pre in enumerate([False, True, False, True])]
    recs = [tx.send(message(size, seed), settled=pre) for seed, _, pre in plan]
    wait_count(rx, len(plan), timeout=T)
    wait_settled(tx, [r for r in recs if not r.presettled], timeout=T)
    check_arrivals(arrivals(rx), plan, f"{size} B through {hops} router(s)")
    assert_outcomes([r for r in recs if not r.presettled], ["ACCEPTED"] * 2)
    never(0.2, lambda: rx.count() > len(plan), what="a duplicate delivery")


# --------------------------------------------------------------------------
# Sizes, blocking clients

@pytest.mark.parametrize("presettled", [False, True], ids=["unsettled", "presettled"])
@pytest.mark.parametrize("hops", [1, 2, 3])
def test_sizes_blocking_clients(router_factory, hops, presettled):
    """proton.utils.BlockingConnection sender and receiver, every size.
    Unsettled: each send() returns ACCEPTED, and the receiver's accept()
    works because every delivery reaches it unsettled. Pre-settled
    (AtMostOnce sender): every message arrives, pre-settled."""
    net = line(router_factory, hops)
    plan = [(seed, size, presettled) for seed, size in enumerate(SIZES)]
    consumer = BlockingConsumer(net.port(ROUTERS[hops - 1]), "q.blocking", len(plan), credit=5,
                                accept=not presettled)
    consumer.wait_attached()
    outcomes = blocking_send(net.port("A"), "q.blocking", plan, until=consumer.done.is_set)
    consumer.finish()
    check_arrivals(consumer.got, plan, f"blocking receiver behind {hops} router(s)")
    if not presettled:
        assert outcomes == {seed: "ACCEPTED" for seed, _, _ in plan}, outcomes


# --------------------------------------------------------------------------
# Credit and receiver speed

MIX = [0, 1, 100, 4 * KiB, 64 * KiB - 1, 64 * KiB, 64 * KiB + 1, 200 * KiB]


@pytest.mark.parametrize("speed", ["fast", "slow"])
@pytest.mark.parametrize("credit", [1, 10, 1000])
def test_credit_and_receiver_speed(router_factory, reactor, credit, speed):
    """Through 2 routers to a receiver keeping `credit` outstanding, reading
    at full speed or slowly (16 KiB every 10 ms through a 256 KiB session
    window, so the routers must hold back): a mix of sizes, one in three
    pre-settled, all arrive intact, in order, once; the unsettled ones are
    ACCEPTED."""
    net = line(router_factory, 2)
    conn = reactor.connect(net.port("B")).wait_open()
    if speed == "slow":
        rx = conn.receiver("q.credit", credit=credit, session_capacity=256 * KiB,
                           read_chunk=16 * KiB, read_interval=0.01)
        count = 48
    else:
        rx = conn.receiver("q.credit", credit=credit)
        count = 400
    tx = reactor.connect(net.port("A")).wait_open().sender("q.credit")
    wait_credit(tx)
    plan = [(seed, MIX[seed % len(MIX)], seed % 3 == 2) for seed in range(count)]
    recs = send_plan(tx, plan)
    wait_count(rx, count, timeout=T)
    unsettled = [r for r in recs if not r.presettled]
    wait_settled(tx, unsettled, timeout=T)
    check_arrivals(arrivals(rx), plan, f"credit {credit}, {speed} receiver")
    assert_outcomes(unsettled, ["ACCEPTED"] * len(unsettled))
    never(0.2, lambda: rx.count() > count, what="a duplicate delivery")


# --------------------------------------------------------------------------
# 100 MiB

def test_100mib_event_driven_three_routers(router_factory, reactor):
    """One unsettled 100 MiB message over two hops to a receiver with credit
    1: every byte arrives, and the sender gets ACCEPTED."""
    net = line(router_factory, 3)
    rx = reactor.connect(net.port("C")).wait_open().receiver("q.huge", credit=1)
    tx = reactor.connect(net.port("A")).wait_open().sender("q.huge")
    wait_credit(tx)
    plan = [(7, 100 * MiB, False)]
    recs = send_plan(tx, plan)
    wait_count(rx, 1, timeout=4 * T)
    wait_settled(tx, recs, timeout=T)
    check_arrivals(arrivals(rx), plan, "100 MiB through 3 routers")
    assert_outcomes(recs, ["ACCEPTED"])


def test_100mib_blocking_receiver(router_factory, reactor):
    """A BlockingConnection receiver (it reads a message only once it is
    complete, so the whole 100 MiB sits in its session) gets a 100 MiB
    message through 2 routers intact and accepts it: the sender sees
    ACCEPTED."""
    net = line(router_factory, 2)
    consumer = BlockingConsumer(net.port("B"), "q.huge.blocking", 1, credit=1)
    consumer.wait_attached()
    tx = reactor.connect(net.port("A")).wait_open().sender("q.huge.blocking")
    wait_credit(tx)
    plan = [(8, 100 * MiB, False)]
    recs = send_plan(tx, plan)
    consumer.done.wait(4 * T)
    wait_settled(tx, recs, timeout=T)
    consumer.finish()
    check_arrivals(consumer.got, plan, "100 MiB to a blocking receiver")
    assert_outcomes(recs, ["ACCEPTED"])


# --------------------------------------------------------------------------
# The C++ bench client: counts, order, duplicates, settlement, outcomes
# (it does not look at body bytes beyond the 16-byte stamp)

@pytest.fixture
def bench(vaned_bin):
    """vane-bench: $VANE_BENCH, else next to vaned's build, else the newest
    build*/bench/vane-bench (an ASan build has no bench; a release one
    serves)."""
    env = os.environ.get("VANE_BENCH")
    if env:
        assert os.access(env, os.X_OK), f"$VANE_BENCH={env} is not executable"
        return env
    candidates = [Path(vaned_bin).resolve().parents[1] / "bench" / "vane-bench"]
    candidates += sorted(REPO_ROOT.glob("build*/bench/vane-bench"),
                         key=lambda p: p.stat().st_mtime, reverse=True)
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    pytest.skip("vane-bench is not built (a release build builds it: scripts/build.sh; "
                "or set $VANE_BENCH): the bench-client integrity checks did not run")


def bench_result(proc_out, role):
    m = re.search(r"^RESULT (.*)$", proc_out, re.M)
    assert m, f"vane-bench {role} printed no RESULT line:\n{proc_out}"
    return dict(kv.split("=", 1) for kv in m.group(1).split())


def run_bench(bench, recv_port, send_port, address, size, count, credit, presettled):
    """vane-bench recv and send as two processes; returns their RESULTs."""
    common = ["--address", address, "--count", str(count), "--size", str(size),
              "--timeout", str(int(T))]
    recv = subprocess.Popen([bench, "recv", "--connect", f"127.0.0.1:{recv_port}",
                             "--credit", str(credit)] + common,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        send = subprocess.run([bench, "send", "--connect", f"127.0.0.1:{send_port}"] + common +
                              (["--presettled"] if presettled else []),
                              capture_output=True, text=True, timeout=T + 15)
        r_out, r_err = recv.communicate(timeout=T + 15)
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()
    what = f"{count} x {size} B, credit {credit}, {'pre-settled' if presettled else 'unsettled'}"
    assert send.returncode == 0, f"vane-bench send ({what}) failed: {send.stderr}{send.stdout}"
    assert recv.returncode == 0, f"vane-bench recv ({what}) failed: {r_err}{r_out}"
    return bench_result(r_out, "recv"), bench_result(send.stdout, "send"), what


BENCH_CASES = [(100, 20000, 1000), (64 * KiB + 1, 300, 10), (10 * MiB, 4, 1)]


@pytest.mark.parametrize("presettled", [False, True], ids=["unsettled", "presettled"])
@pytest.mark.parametrize("hops", [1, 2, 3])
def test_bench_counts_and_outcomes(router_factory, bench, hops, presettled):
    """vane-bench through 1-3 routers: 20,000 x 100 B with credit 1000,
    300 x 64 KiB+1 with credit 10, 4 x 10 MiB with credit 1. The receiver
    gets each message once, in order, settled as sent (unsettled or
    pre-settled); every unsettled message is ACCEPTED at the sender."""
    net = line(router_factory, hops)
    for i, (size, count, credit) in enumerate(BENCH_CASES):
        r, s, what = run_bench(bench, net.port(ROUTERS[hops - 1]), net.port("A"), f"q.bench.{i}",
                               size, count, credit, presettled)
        got = {k: int(r[k]) for k in ("received", "duplicates", "out_of_order", "unsettled",
                                      "presettled")}
        assert got == {"received": count, "duplicates": 0, "out_of_order": 0,
                       "unsettled": 0 if presettled else count,
                       "presettled": count if presettled else 0}, f"{what}: receiver {r}"
        assert int(s["sent"]) == count, f"{what}: sender {s}"
        if not presettled:
            assert {k: int(s[k]) for k in ("accepted", "rejected", "released", "modified",
                                           "other")} == {
                "accepted": count, "rejected": 0, "released": 0, "modified": 0, "other": 0}, \
                f"{what}: sender outcomes {s}"


# --------------------------------------------------------------------------
# Multicast across routers

def test_multicast_blocking_consumers_across_routers(router_factory, reactor):
    """Three standard BlockingConnection consumers of a multicast address,
    on A, B and C, each receive() and accept() every message: accept() never
    fails (each copy arrives unsettled), every copy is intact, in order,
    once, and the sender sees every message ACCEPTED."""
    net = line(router_factory, 3, management=True)
    addr = "mc/blocking"
    plan = [(seed, SIZES[seed % 6], False) for seed in range(12)]   # up to 1 MiB
    consumers = {rid: BlockingConsumer(net.port(rid), addr, len(plan), credit=3)
                 for rid in ROUTERS}
    for c in consumers.values():
        c.wait_attached()
    wait_consumers_known(net, addr, {"A": 1, "B": 1, "C": 1})
    tx = reactor.connect(net.port("A")).wait_open().sender(addr)
    wait_credit(tx)
    recs = send_plan(tx, plan)
    for c in consumers.values():
        c.done.wait(T)
    wait_settled(tx, recs, timeout=T)
    for rid, c in consumers.items():
        c.finish()
        check_arrivals(c.got, plan, f"blocking multicast consumer on {rid}")
    assert_outcomes(recs, ["ACCEPTED"] * len(plan))


def test_multicast_mixed_settle_modes(router_factory, reactor):
    """Multicast over A-B-C to a consumer attached with snd-settle-mode
    settled on A, a slow unsettled consumer on B and an unsettled consumer
    on C that holds its copies. A's copies arrive pre-settled, B's and C's
    unsettled, all intact, in order, once; the sender's deliveries stay
    unsettled until C settles too, then are ACCEPTED."""
    net = line(router_factory, 3, management=True)
    addr = "mc/mixed"
    ps = reactor.connect(net.port("A")).wait_open().receiver(addr, credit=10, settled=True)
    slow = reactor.connect(net.port("B")).wait_open().receiver(
        addr, credit=2, session_capacity=256 * KiB, read_chunk=32 * KiB, read_interval=0.01)
    hold = reactor.connect(net.port("C")).wait_open().receiver(addr, credit=20, outcome=None)
    wait_consumers_known(net, addr, {"A": 1, "B": 1, "C": 1})
    tx = reactor.connect(net.port("A")).wait_open().sender(addr)
    wait_credit(tx)
    plan = [(seed, size, False) for seed, size in enumerate(SIZES[:6])]
    recs = send_plan(tx, plan)
    for rx in (ps, slow, hold):
        wait_count(rx, len(plan), timeout=T)
    check_arrivals(arrivals(ps), [(s, z, True) for s, z, _ in plan], "settled-mode consumer on A")
    check_arrivals(arrivals(slow), plan, "slow consumer on B")
    check_arrivals(arrivals(hold), plan, "holding consumer on C")
    never(0.3, lambda: tx.settled_count() > 0, what="sender settled while C holds every copy")
    hold.settle_all(ACCEPTED)
    wait_settled(tx, recs, timeout=T)
    assert_outcomes(recs, ["ACCEPTED"] * len(plan))
    never(0.2, lambda: any(rx.count() > len(plan) for rx in (ps, slow, hold)),
          what="a duplicate copy")


DETACH = "detach"
MC_OUTCOMES = [
    # What the consumers on A, B and C do with their copies, in that order,
    # and what the sender may then see.
    ((ACCEPTED, REJECTED, RELEASED), {"ACCEPTED"}),
    ((REJECTED, RELEASED, MODIFIED), {"REJECTED"}),
    ((REJECTED, REJECTED, REJECTED), {"REJECTED"}),
    ((RELEASED, RELEASED, RELEASED), {"RELEASED"}),
    ((RELEASED, MODIFIED, RELEASED), {"RELEASED", "MODIFIED"}),
    ((DETACH, RELEASED, ACCEPTED), {"ACCEPTED"}),
    ((DETACH, RELEASED, RELEASED), {"RELEASED", "MODIFIED"}),
]


def outcome_id(case):
    return "-".join(x if isinstance(x, str) else outcome_name(x).lower() for x in case[0])


@pytest.mark.parametrize("case", MC_OUTCOMES, ids=outcome_id)
def test_multicast_outcome_of_every_copy(router_factory, reactor, case):
    """Three unsettled consumers on A, B and C settle (or detach with) their
    copies one after another; the sender's deliveries stay unsettled until
    the last copy is settled, then carry ACCEPTED if any consumer accepted,
    else REJECTED if any rejected, else RELEASED or MODIFIED."""
    actions, expect = case
    net = line(router_factory, 3, management=True)
    addr = "mc/outcomes"
    rxs = [reactor.connect(net.port(rid)).wait_open().receiver(addr, credit=10, outcome=None)
           for rid in ROUTERS]
    wait_consumers_known(net, addr, {"A": 1, "B": 1, "C": 1})
    tx = reactor.connect(net.port("B")).wait_open().sender(addr)
    wait_credit(tx)
    plan = [(seed, size, False) for seed, size in enumerate([0, 64 * KiB + 1, 1 * MiB])]
    recs = send_plan(tx, plan)
    for rid, rx in zip(ROUTERS, rxs):
        wait_count(rx, len(plan), timeout=T)
        check_arrivals(arrivals(rx), plan, f"consumer on {rid}")
    for rid, rx, action in zip(ROUTERS, rxs, actions):
        never(0.3, lambda: tx.settled_count() > 0,
              what=f"sender settled before the consumer on {rid} settled")
        if action == DETACH:
            rx.detach()
        else:
            rx.settle_all(action)
    wait_settled(tx, recs, timeout=T)
    got = [r.outcome for r in recs]
    assert all(o in expect for o in got), f"consumers {actions}: sender saw {got}, " \
                                          f"expected one of {sorted(expect)}"


def test_multicast_presettled_sender(router_factory, reactor):
    """A pre-settled sender's multicast copies are pre-settled for every
    consumer, whatever its link asked for: an unsettled-mode consumer on A
    that never settles, a BlockingConnection consumer on B (which must not
    settle them) and a settled-mode one on C all get every copy intact."""
    net = line(router_factory, 3, management=True)
    addr = "mc/presettled"
    plan = [(seed, SIZES[seed % 6], True) for seed in range(12)]
    holder = reactor.connect(net.port("A")).wait_open().receiver(addr, credit=5, outcome=None)
    blocking = BlockingConsumer(net.port("B"), addr, len(plan), credit=5, accept=False)
    blocking.wait_attached()
    ps = reactor.connect(net.port("C")).wait_open().receiver(addr, credit=5, settled=True)
    wait_consumers_known(net, addr, {"A": 1, "B": 1, "C": 1})
    tx = reactor.connect(net.port("A")).wait_open().sender(addr, settled=True)
    wait_credit(tx)
    send_plan(tx, plan)
    wait_count(holder, len(plan), timeout=T)
    wait_count(ps, len(plan), timeout=T)
    blocking.finish()
    check_arrivals(arrivals(holder), plan, "unsettled-mode consumer on A")
    check_arrivals(blocking.got, plan, "blocking consumer on B")
    check_arrivals(arrivals(ps), plan, "settled-mode consumer on C")
