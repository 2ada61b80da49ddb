#!/usr/bin/python3
"""Soak test: minutes of mixed traffic through three routers, every byte checked.

Run with Debian's interpreter (it has python3-qpid-proton):

    /usr/bin/python3 bench/soak.py [--minutes 30] [--restart-every 4] [--seed N]

Network: three interior routers in a line, A - B - C (`vaned` processes from
$VANED, else build/src/vaned, else the newest build*/src/vaned; `workers: 2`
each; every listener on a free 127.0.0.1 port; the management API on each),
started and restarted with the system-test harness (tests/system).

Traffic, all of it at once, at a moderate rate (a few messages in flight per
sender; the machine is shared):

  AMQP   seven kinds of message: anycast and multicast, small (100 B - 4 KiB)
         and large (1 - 10 MiB), from unsettled and pre-settled senders:
           any-small      unsettled  A, C -> soak/any/small   consumers on A, B, C
           any-small-pre  settled    B    -> soak/any/small
           any-large      unsettled  C    -> soak/any/large   consumers on A, B
           any-large-pre  settled    A    -> soak/any/large
           mc-small       unsettled  A    -> mc/soak/small    consumers on A (snd-settle-mode
           mc-small-pre   settled    C    -> mc/soak/small      settled), B, C, and one more on B
           mc-large       unsettled  B    -> mc/soak/large    consumers on A, B (settled), C
         Every body is pseudo-random (a function of the run's seed and the
         message's id) and carries its sha256, size, id and kind in
         application properties; a consumer checks each one, and a body that
         differs is located (first bad offset, the bytes found there).
  TCP    flows through a tcp_listener on A to a tcp_connector on C whose
         server is an echo server in this script: each sends 1 KiB - 20 MiB
         (log-uniform), half-closes and checks the echoed bytes' sha256.
  Churn  senders and some consumers attach, run 5-60 s, stop and detach, again
         and again (half the time on a new connection). A sender stops by
         waiting for every outcome; a consumer by draining its credit, so
         neither leaves anything in flight. Every --restart-every minutes one
         router is killed (SIGKILL, or SIGTERM every third time) and started
         again on the same ports: B (the transit router) every other time,
         else A or C. After each restart the network must converge (every
         router sees the others in its management API) and a probe message
         A -> C and C -> A and a probe TCP flow must get through within
         --recover-timeout (10 s) of the router being ready, and every kind
         of traffic must flow again within 30 s.
  Memory every router's RSS every 10 s.

What counts (per kind; a multicast message is received once per consumer):
  accepted     the sender got `accepted`; it must have been received by a
               consumer (else LOST), exactly once for anycast, once per
               consumer for multicast (else DUPLICATE).
  released / modified
               fine around a restart (the message was in flight while a router
               was down: from 1 s before the kill to 10 s after recovery),
               counted apart; also counted apart if a consumer of the address
               was detaching at the time; otherwise UNEXPLAINED. A released
               message that a consumer received is WRONG (released means not
               delivered).
  in doubt     the sender's connection died before the outcome came (a router
               restart); outside a restart window it is UNEXPLAINED.
  STUCK        no outcome 60 s after the sender stopped, its link still up.
  CORRUPT      a received body (or its properties) that fails its checks.
  missed copies a multicast message (accepted, or pre-settled) that a consumer
               attached throughout (5 s before it was sent to 2 s after it
               settled, no restart in between) never got.
  wrongly pre-settled  an unsettled sender's message that reached a consumer
               which asked for unsettled deliveries pre-settled.
  TCP          ok; failed at a restart (reset, refused); failed otherwise;
               corrupt (same length, other bytes); truncated (clean EOF, too
               few bytes); hung (no end within 120 s).
  RSS          per router: start (after --warmup), peak, end; for each process
               (a restart starts a new one) the slope of a least-squares line
               through its samples after the warm-up (MiB/hour), and the
               growth that line shows over the process's life; the same for
               the memory in use (vane_memory_heap_in_use_bytes: live
               blocks, not what the allocator keeps) and for "held": in use
               less the traffic in flight at that moment
               (vane_traffic_buffered_bytes). A process that lived
               --rss-span minutes or more whose held memory grew more than
               --rss-growth MiB is flagged (its RSS, when the router does not
               report the heap). Also each router's RSS at every recovery
               (the same point of the traffic cycle), and what each holds
               5 s after the traffic ended.

A progress line every minute; a summary at the end. Exit status 1 if anything
was CORRUPT, LOST, DUPLICATE, WRONG, UNEXPLAINED, STUCK, missed, wrongly
pre-settled, a TCP flow was corrupt, truncated, hung or failed outside a
restart, a router crashed, did not exit 0 on SIGTERM, did not recover in
time, traffic stalled, or memory growth was flagged; 2 if the run could not be
set up. Ctrl-C (or SIGTERM) stops early and cleanly (a second Ctrl-C stops at
once); every router is stopped at the end in every case. Router logs are kept
in the work directory (printed) if the run fails or with --keep.
"""

import argparse
import collections
import datetime
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))

from proton import Message  # noqa: E402

from tcp_tools import EchoServer, echo_roundtrip, sha256  # noqa: E402
from vane_client import (ACCEPTED, MODIFIED, REJECTED, RELEASED, ClientError,  # noqa: E402
                         Reactor, ReceiverLink)
from vane_harness import (Router, VanedNotFound, find_vaned,  # noqa: E402
                          sanitizer_reports)
from vane_network import Network  # noqa: E402

KiB = 1024
MiB = 1024 * KiB
INF = float("inf")
ROUTERS = ("A", "B", "C")

RESTART_GRACE = 10.0     # s after recovery during which in-flight failures are the restart's
DETACH_GRACE = 2.0       # s after a consumer detached during which a release is its doing
SETTLE_WAIT = 60.0       # s a stopping sender waits for its outcomes
RESUME_TIMEOUT = 30.0    # s after a restart within which every kind must flow again
STALL_AFTER = 90.0       # s without progress (outside restarts) that count as a stall
TCP_TIMEOUT = 120.0      # s allowed per TCP flow
TCP_MAX = 20 * MiB


class Kind:
    def __init__(self, name, address, multicast, presettled, sizes):
        self.name = name
        self.address = address
        self.multicast = multicast
        self.presettled = presettled
        self.sizes = sizes


KINDS = {k.name: k for k in [
    Kind("any-small", "soak/any/small", False, False, (100, 4 * KiB)),
    Kind("any-small-pre", "soak/any/small", False, True, (100, 4 * KiB)),
    Kind("any-large", "soak/any/large", False, False, (1 * MiB, 10 * MiB)),
    Kind("any-large-pre", "soak/any/large", False, True, (1 * MiB, 10 * MiB)),
    Kind("mc-small", "mc/soak/small", True, False, (100, 4 * KiB)),
    Kind("mc-small-pre", "mc/soak/small", True, True, (100, 4 * KiB)),
    Kind("mc-large", "mc/soak/large", True, False, (1 * MiB, 10 * MiB)),
]}

# name, router, kind, window (messages in flight), interval (s), session length (s)
SENDERS = [
    ("tx-any-small-A", "A", "any-small", 8, 0.05, (10, 40)),
    ("tx-any-small-C", "C", "any-small", 8, 0.05, (10, 40)),
    ("tx-any-small-pre-B", "B", "any-small-pre", 4, 0.1, (10, 40)),
    ("tx-any-large-C", "C", "any-large", 1, 3.0, (20, 60)),
    ("tx-any-large-pre-A", "A", "any-large-pre", 1, 8.0, (20, 60)),
    ("tx-mc-small-A", "A", "mc-small", 4, 0.1, (10, 40)),
    ("tx-mc-small-pre-C", "C", "mc-small-pre", 4, 0.2, (10, 40)),
    ("tx-mc-large-B", "B", "mc-large", 1, 5.0, (20, 60)),
]

# slot, router, address, snd-settle-mode settled, credit, session length (s) or None: stays
RECEIVERS = [
    ("rx-any-small-A", "A", "soak/any/small", False, 20, (5, 30)),
    ("rx-any-small-B", "B", "soak/any/small", False, 20, (5, 30)),
    ("rx-any-small-C", "C", "soak/any/small", False, 20, None),
    ("rx-any-large-A", "A", "soak/any/large", False, 2, None),
    ("rx-any-large-B", "B", "soak/any/large", False, 2, (10, 40)),
    ("rx-mc-small-A-settled", "A", "mc/soak/small", True, 20, None),
    ("rx-mc-small-B", "B", "mc/soak/small", False, 20, None),
    ("rx-mc-small-C", "C", "mc/soak/small", False, 20, None),
    ("rx-mc-small-B-churn", "B", "mc/soak/small", False, 10, (5, 30)),
    ("rx-mc-large-A", "A", "mc/soak/large", False, 2, None),
    ("rx-mc-large-B-settled", "B", "mc/soak/large", True, 2, None),
    ("rx-mc-large-C", "C", "mc/soak/large", False, 2, None),
]

# Restart plan, cycled: which router, and how.
VICTIMS = ["B", "A", "B", "C"]
HOWS = ["kill", "kill", "term"]


def now():
    return time.monotonic()


def make_body(seed, mid, size):
    return random.Random(seed * 1000003 + mid).randbytes(size)


def mib(n):
    return n / MiB


def diff_ranges(expected, actual, limit=3):
    """Where `actual` differs from `expected`: up to `limit` (offset, length,
    hex of the first 16 bytes found there), scanning 4 KiB blocks."""
    out = []
    n = min(len(expected), len(actual))
    off = 0
    while off < n and len(out) < limit:
        end = min(n, off + 4096)
        if expected[off:end] != actual[off:end]:
            i = off
            while i < end and len(out) < limit:
                if expected[i] != actual[i]:
                    j = i
                    while j < n and expected[j] != actual[j] and j - i < 1 << 20:
                        j += 1
                    out.append((i, j - i, bytes(actual[i:min(j, i + 16)]).hex()))
                    i = j
                else:
                    i += 1
            off = max(end, i)
        else:
            off = end
    return out


def heap_metrics(router):
    """(in use, free, traffic buffered) bytes from the router's /metrics
    (glibc's mallinfo2 and vane_traffic_buffered_bytes; the last 0 where the
    router does not report it), or None."""
    text = router.api("GET", "/metrics").body.decode()
    got = [re.search(rf"^{name} (\S+)$", text, re.M)
           for name in ("vane_memory_heap_in_use_bytes", "vane_memory_heap_free_bytes")]
    if not all(got):
        return None
    b = re.search(r"^vane_traffic_buffered_bytes (\S+)$", text, re.M)
    return (*(float(g.group(1)) for g in got), float(b.group(1)) if b else 0.0)


def fit_slope(samples):
    """Least-squares slope (bytes/s) through [(t, rss)], or None."""
    if len(samples) < 3:
        return None
    mt = sum(t for t, _ in samples) / len(samples)
    mr = sum(r for _, r in samples) / len(samples)
    sxx = sum((t - mt) ** 2 for t, _ in samples)
    if sxx <= 0:
        return None
    return sum((t - mt) * (r - mr) for t, r in samples) / sxx


def first_line(exc):
    lines = str(exc).splitlines()
    return lines[0] if lines else repr(exc)


def fmt_t(seconds):
    seconds = max(0, int(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------
# What was sent and what arrived

class Msg:
    __slots__ = ("kind", "size", "sent_at", "settled_at", "outcome", "rx")

    def __init__(self, kind, size, t):
        self.kind = kind
        self.size = size
        self.sent_at = t
        self.settled_at = None
        self.outcome = "presettled" if kind.presettled else None
        self.rx = ()          # consumer slots that received it, one entry per copy


class Ledger:
    def __init__(self, soak):
        self.soak = soak
        self.lock = threading.Lock()
        self.msgs = {}
        self.next_id = 0
        self.count = {k: collections.Counter() for k in KINDS}   # running counters
        self.last_ok = {k: 0.0 for k in KINDS}   # last accepted outcome / pre-settled receipt
        self.corrupt = []       # details
        self.duplicates = []
        self.wrong_presettled = []

    def new_id(self):
        with self.lock:
            self.next_id += 1
            return self.next_id

    def sent(self, mid, kind, size):
        with self.lock:
            self.msgs[mid] = Msg(kind, size, now())
            self.count[kind.name]["sent"] += 1
            self.count[kind.name]["bytes"] += size

    def outcome(self, mid, state, t):
        name = ("accepted" if state == ACCEPTED else "released" if state == RELEASED else
                "modified" if state == MODIFIED else "rejected" if state == REJECTED else
                f"other:{state}")
        with self.lock:
            m = self.msgs[mid]
            m.outcome = name
            m.settled_at = t
            self.count[m.kind.name][name] += 1
            if name == "accepted":
                self.last_ok[m.kind.name] = max(self.last_ok[m.kind.name], t)

    def no_outcome(self, mid, why):
        """`why`: "in-doubt" (the link or connection went) or "stuck"."""
        with self.lock:
            m = self.msgs[mid]
            if m.outcome is None:
                m.outcome = why
                m.settled_at = now()
                self.count[m.kind.name][why] += 1

    def receipt(self, slot, settled_mode, rec):
        """A complete delivery on consumer `slot` (proton thread)."""
        t = now()
        msg = rec.message
        props = (msg.properties or {}) if msg is not None else {}
        try:
            mid = int(props["soak-id"])
            kname = str(props["soak-kind"])
            size = int(props["soak-size"])
            digest = str(props["soak-sha256"])
        except (KeyError, TypeError, ValueError):
            self._corrupt(slot, None, "undecodable message or properties missing",
                          f"size {rec.size}, properties {str(props)[:200]}")
            return
        with self.lock:
            m = self.msgs.get(mid)
        if m is None or m.kind.name != kname or m.size != size:
            self._corrupt(slot, mid, "id, kind or size unknown or changed",
                          f"kind {kname} size {size}, sent as "
                          f"{None if m is None else (m.kind.name, m.size)}")
            return
        if rec.digest != digest or rec.size != size:
            where = ""
            body = msg.body
            if isinstance(body, (bytes, bytearray, memoryview)):
                where = diff_ranges(make_body(self.soak.seed, mid, size), bytes(body))
            self._corrupt(slot, mid, "body differs",
                          f"{kname} size {size} got {rec.size} bytes; differs at "
                          f"(offset, length, bytes found): {where}")
            return
        with self.lock:
            c = self.count[kname]
            c["received"] += 1
            if m.kind.presettled:
                self.last_ok[kname] = max(self.last_ok[kname], t)
            dup = (slot in m.rx) if m.kind.multicast else bool(m.rx)
            m.rx = m.rx + (slot,)
            if dup:
                c["duplicate"] += 1
                self.duplicates.append((t, mid, kname, slot, m.rx))
            if not m.kind.presettled and not settled_mode and rec.presettled:
                c["wrong-presettled"] += 1
                self.wrong_presettled.append((t, mid, kname, slot))

    def _corrupt(self, slot, mid, what, detail):
        with self.lock:
            self.soak.corrupt_count += 1
            if len(self.corrupt) < 100:
                self.corrupt.append((now(), slot, mid, what, detail))
        self.soak.say(f"CORRUPT on {slot}: message {mid}: {what}: {detail}")


class Producer:
    """Builds a message when the sender link has credit for it (the
    SenderLink calls it); the body is never kept."""

    __slots__ = ("soak", "kind", "mid", "size")

    def __init__(self, soak, kind, mid, size):
        self.soak, self.kind, self.mid, self.size = soak, kind, mid, size

    def __call__(self):
        body = make_body(self.soak.seed, self.mid, self.size)
        props = {"soak-id": self.mid, "soak-kind": self.kind.name, "soak-size": self.size,
                 "soak-sha256": hashlib.sha256(body).hexdigest()}
        self.soak.ledger.sent(self.mid, self.kind, self.size)
        return Message(id=self.mid, body=body, properties=props)


# --------------------------------------------------------------------------
# Clients, each on its own thread

class Agent(threading.Thread):
    def __init__(self, soak, name, rid, stop, reactor):
        super().__init__(name=name, daemon=True)
        self.soak = soak
        self.rid = rid
        self.stop = stop
        self.reactor = reactor
        self.rng = random.Random(f"{soak.seed}-{name}")
        self.sessions = 0

    def event(self, what, detail=""):
        self.soak.event(what, self.name, detail)

    def connect(self):
        conn = self.reactor.connect(self.soak.net.port(self.rid))
        try:
            conn.wait_open(10)
        except AssertionError:
            self.forget(conn)
            raise
        self.soak.bump("connections")
        return conn

    def forget(self, conn):
        """Drop a closed connection from the reactor's list (memory stays bounded)."""
        def drop():
            if conn in self.reactor.conns:
                self.reactor.conns.remove(conn)
        try:
            self.reactor.call(drop)
        except ClientError:
            pass

    def close_conn(self, conn):
        if conn is None:
            return
        try:
            if not conn.closed:
                conn.close(timeout=10)
        except AssertionError:
            self.event("close-timeout", f"connection to {self.rid} did not close within 10 s")
        except ClientError as exc:
            self.event("client-error", str(exc)[:300])
        self.forget(conn)

    def backoff(self):
        self.stop.wait(self.rng.uniform(0.3, 1.0))

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None or conn.closed:
                    if conn is not None:
                        self.forget(conn)
                    conn = self.connect()
                self.session(conn)
                self.sessions += 1
                if conn.closed or self.stop.is_set() or self.rng.random() < 0.5:
                    self.close_conn(conn)
                    conn = None
            except (AssertionError, ClientError, OSError) as exc:
                self.event("failed", f"{type(exc).__name__}: {first_line(exc)[:300]}")
                if conn is not None:
                    self.close_conn(conn)
                    conn = None
                self.backoff()
            except Exception:  # a bug in this script: report it, keep going
                self.event("client-error", traceback.format_exc()[-800:])
                self.backoff()
        self.close_conn(conn)


class SenderAgent(Agent):
    def __init__(self, soak, name, rid, kind, window, interval, lifetime):
        super().__init__(soak, name, rid, soak.stop_senders, soak.tx)
        self.kind = KINDS[kind]
        self.window = window
        self.interval = interval / soak.args.rate
        self.lifetime = lifetime

    def collect(self, open_recs):
        left = []
        for r in open_recs:
            if r.remote_settled:
                self.soak.ledger.outcome(r.message.mid, r.state, r.settled_at or now())
            else:
                left.append(r)
        return left

    def session(self, conn):
        kind, soak = self.kind, self.soak
        link = conn.sender(kind.address, settled=kind.presettled, timeout=10)
        soak.bump("links")
        open_recs = []
        end = now() + self.rng.uniform(*self.lifetime)
        try:
            while now() < end and not self.stop.is_set() and not link.closed:
                open_recs = self.collect(open_recs)
                busy = len(open_recs) + link.unsent_count()
                if busy < self.window:
                    size = self.rng.randint(*kind.sizes)
                    rec = link.send(Producer(soak, kind, soak.ledger.new_id(), size))
                    if not kind.presettled:
                        open_recs.append(rec)
                self.stop.wait(self.interval * self.rng.uniform(0.5, 1.5))
            # Stop: no new messages; wait for every outcome (or for the
            # pre-settled ones to be written).
            t_stop = now()
            deadline = now() + (5.0 if soak.abort.is_set() else SETTLE_WAIT)
            while now() < deadline and not link.closed:
                open_recs = self.collect(open_recs)
                if not open_recs and link.unsent_count() == 0 and link._stream is None:
                    break
                time.sleep(0.05)
            open_recs = self.collect(open_recs)
            if open_recs:
                if link.closed:
                    why = f"link {link.remote_condition} conn {conn.remote_condition} " \
                          f"{conn.transport_condition}"
                    self.event("in-doubt", f"{len(open_recs)} deliveries without outcome: {why}")
                    for r in open_recs:
                        soak.ledger.no_outcome(r.message.mid, "in-doubt")
                else:
                    ages = [round(now() - r.sent_at, 1) for r in open_recs[:5]]
                    self.event("stuck", f"{len(open_recs)} deliveries without outcome "
                                        f"{SETTLE_WAIT:.0f} s after the sender stopped, "
                                        f"ids {[r.message.mid for r in open_recs[:5]]}, "
                                        f"sent {ages} s ago")
                    for r in open_recs:
                        soak.ledger.no_outcome(r.message.mid, "stuck")
            if link.remote_closed and not conn.closed:
                self.event("link-closed-by-router", f"{link.remote_condition}")
            elif conn.closed:
                self.event("connection-lost", f"{conn.remote_condition} {conn.transport_condition}")
            if not link.closed:
                link.detach(timeout=10)
            soak.sender_stops[kind.name].append((t_stop, now()))
        finally:
            for r in open_recs:   # after an exception: nothing more will be learnt
                soak.ledger.no_outcome(r.message.mid, "in-doubt")
            link.records = []
            try:
                soak.tx.call(lambda: conn.links.remove(link) if link in conn.links else None)
            except ClientError:
                pass


class ReceiverAgent(Agent):
    def __init__(self, soak, slot, rid, address, settled, credit, lifetime):
        super().__init__(soak, slot, rid, soak.stop_receivers, soak.rx)
        self.slot = slot
        self.address = address
        self.settled = settled
        self.credit = credit
        self.lifetime = lifetime
        self.stable = lifetime is None

    def on_message(self, link, rec):      # proton thread
        try:
            self.soak.ledger.receipt(self.slot, self.settled, rec)
        except Exception:
            self.soak.event("client-error", self.slot, traceback.format_exc()[-800:])
        finally:
            rec.message = None
            rec.body = None
            link.received.clear()

    def session(self, conn):
        soak = self.soak
        link = ReceiverLink(conn, self.address, credit=self.credit, outcome=ACCEPTED,
                            keep_bodies=False, settled=self.settled)
        link.on_message = self.on_message
        self.reactor.call(link._open, False, None)
        conn.links.append(link)
        try:
            link.wait_open(10)
            soak.bump("links")
            interval = [now(), INF]
            soak.attached[self.slot].append(interval)
            end = INF if self.stable else now() + self.rng.uniform(*self.lifetime)
            while not self.stop.is_set() and not link.closed and now() < end:
                self.stop.wait(0.1)
            if link.closed:
                interval[1] = now()
                if link.remote_closed and not conn.closed:
                    self.event("link-closed-by-router", f"{link.remote_condition}")
                else:
                    self.event("connection-lost",
                               f"{conn.remote_condition} {conn.transport_condition}")
                return
            # Drain: no more credit; wait until the router has used or
            # returned all of it and no message is half received; detach.
            t0 = now()

            def drain():
                link.auto_credit = False
                link.link.drain(0)
            self.reactor.call(drain)

            def drained():
                return not link.link.draining() and link.link.credit <= 0 and not link._buffers
            deadline = now() + 20
            done = False
            while now() < deadline and not link.closed:
                if self.reactor.call(drained):
                    done = True
                    break
                time.sleep(0.05)
            if not done and not link.closed:
                self.event("drain-timeout",
                           f"credit {self.reactor.call(lambda: link.link.credit)} not drained "
                           f"within 20 s")
            interval[1] = now()
            if not link.closed:
                link.detach(timeout=10)
            soak.detaches[self.address].append((t0, now()))
        finally:
            try:
                self.reactor.call(lambda: conn.links.remove(link) if link in conn.links else None)
            except ClientError:
                pass


class TcpAgent(threading.Thread):
    def __init__(self, soak, n):
        super().__init__(name=f"tcp-{n}", daemon=True)
        self.soak = soak
        self.rng = random.Random(f"{soak.seed}-tcp-{n}")

    def run(self):
        soak = self.soak
        while not soak.stop_tcp.is_set():
            size = int(math.exp(self.rng.uniform(math.log(KiB), math.log(TCP_MAX))))
            data = self.rng.randbytes(size)
            want = sha256(data)
            flow = {"size": size, "start": now(), "end": None, "got": 0, "result": None}
            try:
                got, digest = echo_roundtrip(soak.net.tcp_port("A", "soak-tcp"), data,
                                             timeout=TCP_TIMEOUT)
                flow["got"] = got
                if got == size and digest == want:
                    flow["result"] = "ok"
                elif got == size:
                    flow["result"] = "corrupt"
                else:
                    flow["result"] = "truncated"
            except TimeoutError as exc:
                flow["result"] = "hung" if "sent" in str(exc) else "connect-timeout"
                flow["detail"] = str(exc)
            except ConnectionRefusedError:
                flow["result"] = "refused"
            except ConnectionResetError:
                flow["result"] = "reset"
            except OSError as exc:
                flow["result"] = "error"
                flow["detail"] = repr(exc)
            flow["end"] = now()
            soak.tcp_done(flow)
            del data
            soak.stop_tcp.wait(self.rng.uniform(1.0, 3.0) / soak.args.rate)


# --------------------------------------------------------------------------
# The run

class Soak:
    def __init__(self, args, vaned):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random(args.seed)
        self.vaned = vaned
        self.workdir = Path(tempfile.mkdtemp(prefix="vane-soak."))
        self.ledger = Ledger(self)
        self.lock = threading.Lock()
        self.events = []                  # (t, what, who, detail)
        self.counters = collections.Counter()
        self.corrupt_count = 0
        self.windows = []                 # [start, end]: restart windows
        self.restarts = []                # dicts
        self.attached = collections.defaultdict(list)   # slot -> [[t_attached, t_detached]]
        self.detaches = collections.defaultdict(list)   # address -> [(t_drain, t_detached)]
        self.sender_stops = collections.defaultdict(list)   # kind -> [(t_stop, t_detached)]
        self.interrupted = False
        self.instances = {r: [] for r in ROUTERS}        # rid -> [{router, start, samples}]
        self.tcp_flows = []
        self.tcp_last_ok = 0.0
        self.problems = []                # things that fail the run, found while running
        self.stop_senders = threading.Event()
        self.stop_receivers = threading.Event()
        self.stop_tcp = threading.Event()
        self.stop_sampler = threading.Event()
        self.abort = threading.Event()
        self.net = None
        self.echo = None
        self.tx = self.rx = self.probe_reactor = None
        self.agents = []
        self.tcp_agents = []
        self.sampler = None
        self.t0 = None
        self.traffic_start = None
        self.probe_no = 0
        self.stalled = set()
        chosen = set(args.traffic.split(","))
        unknown = chosen - set(KINDS) - {"tcp"}
        if unknown:
            raise SystemExit(f"soak.py: --traffic: unknown {sorted(unknown)}; choose from "
                             f"{', '.join(KINDS)}, tcp")
        self.kinds = [k for k in KINDS if k in chosen]
        self.tcp = "tcp" in chosen
        self.prefix = (["setpriv", "--pdeathsig", "KILL"] if shutil.which("setpriv") else [])

    # -- bookkeeping -----------------------------------------------------------
    def say(self, text):
        t = "" if self.t0 is None else f"[{fmt_t(now() - self.t0):>6}] "
        print(f"{t}{text}", flush=True)

    def event(self, what, who, detail=""):
        with self.lock:
            self.events.append((now(), what, who, detail))

    def bump(self, name, n=1):
        with self.lock:
            self.counters[name] += n

    def problem(self, text):
        self.problems.append(text)
        self.say(f"PROBLEM: {text}")

    def tcp_done(self, flow):
        with self.lock:
            self.tcp_flows.append(flow)
            if flow["result"] == "ok":
                self.tcp_last_ok = max(self.tcp_last_ok, flow["end"])
        if flow["result"] in ("corrupt", "truncated", "hung"):
            self.say(f"TCP flow of {flow['size']} bytes {flow['result']}: got {flow['got']} "
                     f"{flow.get('detail', '')}")

    def in_window(self, t0, t1):
        return any(w0 <= t1 and t0 <= w1 for w0, w1 in self.windows)

    # -- routers ------------------------------------------------------------------
    def factory(self, cfg, name, log_level):
        runs = self.instances[name]
        log = self.workdir / f"{name}.log"
        if runs and log.exists():
            kept = self.workdir / f"{name}.run{len(runs)}.log"
            log.rename(kept)
            runs[-1]["router"].log_path = kept
        r = Router(self.vaned, self.workdir, config=cfg, name=name, log_level=log_level,
                   command_prefix=self.prefix)
        try:
            r.start(timeout=20)
        except BaseException:
            r.kill()
            raise
        runs.append({"router": r, "start": now(), "samples": [], "index": len(runs) + 1})
        return r

    def converged(self):
        for rid in ROUTERS:
            r = self.net[rid]
            if not r.alive():
                return False
            try:
                reply = r.api("GET", "/api/v1/routers", timeout=2)
                ids = {x["id"] for x in reply.json()["routers"]}
            except (OSError, ValueError, KeyError):
                return False
            if ids != set(ROUTERS):
                return False
        return True

    def wait_until(self, deadline, predicate, interval=0.1):
        while True:
            if predicate():
                return True
            if now() >= deadline:
                return False
            time.sleep(interval)

    def probe_amqp(self, src, dst, address, deadline):
        """One unsettled message from a client of src to a consumer on dst."""
        rc = sc = None
        reactor = self.probe_reactor
        try:
            rc = reactor.connect(self.net.port(dst))
            rc.wait_open(max(0.1, deadline - now()))
            rl = rc.receiver(address, credit=5, timeout=max(0.1, deadline - now()))
            sc = reactor.connect(self.net.port(src))
            sc.wait_open(max(0.1, deadline - now()))
            sl = sc.sender(address, timeout=max(0.1, deadline - now()))
            rec = sl.send(Message(body=b"probe"))
            self.wait_until(deadline, lambda: rec.remote_settled or sl.closed or rl.closed, 0.02)
            return rec.remote_settled and rec.state == ACCEPTED and rl.count() == 1
        except (AssertionError, ClientError, OSError):
            return False
        finally:
            for c in (rc, sc):
                if c is not None:
                    try:
                        c.close(wait=False)
                    except ClientError:
                        pass

    def probe_tcp(self, deadline):
        data = random.Random(self.probe_no).randbytes(64 * KiB)
        try:
            got, digest = echo_roundtrip(self.net.tcp_port("A", "soak-tcp"), data,
                                         timeout=max(0.5, deadline - now()))
            return got == len(data) and digest == sha256(data)
        except OSError:
            return False

    def probe(self, deadline):
        """Converged, then a message A -> C and C -> A and a TCP flow through,
        before the deadline. Returns (converged at, probes ok at) or Nones."""
        t_conv = now() if self.wait_until(deadline, self.converged) else None
        if t_conv is None:
            return None, None, {}
        self.probe_no += 1
        ok = {"ac": False, "ca": False, "tcp": False}
        while now() < deadline and not all(ok.values()):
            if not ok["ac"]:
                ok["ac"] = self.probe_amqp("A", "C", f"soak/probe/{self.probe_no}/ac", deadline)
            if not ok["ca"]:
                ok["ca"] = self.probe_amqp("C", "A", f"soak/probe/{self.probe_no}/ca", deadline)
            if not ok["tcp"]:
                ok["tcp"] = self.probe_tcp(deadline)
            if not all(ok.values()):
                time.sleep(0.1)
        self.probe_reactor.call(lambda: self.probe_reactor.conns.clear())
        return t_conv, (now() if all(ok.values()) else None), ok

    def resumed(self, since):
        late = [k for k in self.kinds if self.ledger.last_ok[k] <= since]
        if self.tcp and self.tcp_last_ok <= since:
            late.append("tcp")
        return late

    def rss_snapshot(self):
        out = {}
        for rid in ROUTERS:
            try:
                out[rid] = self.net[rid].rss()
            except Exception:
                out[rid] = None
        return out

    def restart(self, rid, how, planned=True):
        info = {"n": len(self.restarts) + 1, "router": rid, "how": how, "planned": planned,
                "at": now() - self.t0}
        self.restarts.append(info)
        t_kill = now()
        window = [t_kill - 1.0, INF]
        self.windows.append(window)
        r = self.net[rid]
        self.say(f"restart {info['n']}: {how} {rid}" + ("" if planned else " (it had died)"))
        if how == "term":
            try:
                r.stop(timeout=15)
                info["exit"] = 0
            except AssertionError as exc:
                info["exit"] = r.proc.returncode
                self.problem(f"router {rid} did not exit 0 within 15 s of SIGTERM: "
                             f"{first_line(exc)} (log {r.log_path.name})")
                r.kill()
        elif how == "kill":
            r.kill()
        info["down_s"] = round(self.rng.uniform(0.5, 2.0), 2)
        time.sleep(info["down_s"])
        for attempt in range(3):
            try:
                self.net.restart(rid)
                break
            except (RuntimeError, AssertionError) as exc:
                self.problem(f"router {rid} failed to start again (attempt {attempt + 1}): "
                             f"{str(exc)[:500]}")
                time.sleep(2)
        else:
            raise RuntimeError(f"router {rid} cannot be started again")
        t_ready = now()
        t_conv, t_ok, ok = self.probe(t_ready + self.args.recover_timeout)
        info["converge_s"] = None if t_conv is None else round(t_conv - t_ready, 2)
        info["probe_s"] = None if t_ok is None else round(t_ok - t_ready, 2)
        if t_ok is None:
            what = ("did not converge" if t_conv is None else
                    f"converged but probes failed: {ok}")
            self.problem(f"restart {info['n']} ({how} {rid}): network {what} within "
                         f"{self.args.recover_timeout:.0f} s of {rid} being ready")
            # keep going: wait longer so that the rest of the run means something
            t_conv, t_ok, ok = self.probe(now() + 60)
            info["late_probe_s"] = None if t_ok is None else round(t_ok - t_ready, 2)
        late = None
        deadline = now() + RESUME_TIMEOUT
        while now() < deadline:
            late = self.resumed(t_ready)
            if not late:
                break
            time.sleep(0.2)
        info["resumed_s"] = None if late else round(now() - t_ready, 2)
        if late:
            self.problem(f"restart {info['n']} ({how} {rid}): traffic {late} not flowing "
                         f"{RESUME_TIMEOUT:.0f} s after {rid} was ready")
        window[1] = now() + RESTART_GRACE
        info["rss"] = self.rss_snapshot()
        self.say(f"restart {info['n']}: {rid} ready after {info['down_s']} s down; converged "
                 f"{info['converge_s']} s, probes {info['probe_s']} s, all traffic "
                 f"{info['resumed_s']} s after ready; RSS MiB "
                 + " ".join(f"{k} {mib(v):.1f}" for k, v in info["rss"].items() if v))

    # -- sampling -------------------------------------------------------------------
    def sample_loop(self):
        while not self.stop_sampler.wait(self.args.sample_every):
            self.sample()

    def sample(self):
        t = now()
        for rid in ROUTERS:
            runs = self.instances[rid]
            if not runs:
                continue
            run = runs[-1]
            r = run["router"]
            try:
                if r.alive():
                    run["samples"].append((t, r.rss()))
                    run["cpu"] = sum(r._ps.cpu_times()[:2])
                    heap = heap_metrics(r)
                    if heap:
                        run.setdefault("heap", []).append((t, *heap))
            except Exception:
                pass

    # -- main ----------------------------------------------------------------------
    def setup(self):
        self.echo = EchoServer()
        net = Network(self.factory, workers=self.args.workers, log_level=self.args.log_level,
                      management={"port": 0})
        for rid in ROUTERS:
            net.interior(rid)
        net.link("A", "B")
        net.link("B", "C")
        net.tcp_listener("A", "soak-tcp", "soak/echo")
        net.tcp_connector("C", "soak-echo", "soak/echo", port=self.echo.port)
        self.net = net
        net.start()
        self.tx, self.rx, self.probe_reactor = Reactor("soak-tx"), Reactor("soak-rx"), \
            Reactor("soak-probe")
        t_conv, t_ok, ok = self.probe(now() + 30)
        if t_ok is None:
            raise RuntimeError(f"the network did not converge or carry probes within 30 s: {ok}")

    def start_traffic(self):
        addresses = {KINDS[k].address for k in self.kinds}
        for slot, rid, address, settled, credit, lifetime in RECEIVERS:
            if address in addresses:
                self.agents.append(ReceiverAgent(self, slot, rid, address, settled, credit,
                                                 lifetime))
        for name, rid, kind, window, interval, lifetime in SENDERS:
            if kind in self.kinds:
                self.agents.append(SenderAgent(self, name, rid, kind, window, interval, lifetime))
        self.tcp_agents = [TcpAgent(self, n) for n in range(self.args.tcp_flows if self.tcp else 0)]
        self.traffic_start = now()
        for a in self.agents + self.tcp_agents:
            a.start()
            if isinstance(a, ReceiverAgent):
                time.sleep(0.05)     # consumers first, so senders get credit soon
        self.sampler = threading.Thread(target=self.sample_loop, name="sampler", daemon=True)
        self.sampler.start()

    def check_crashes(self):
        for rid in ROUTERS:
            r = self.net[rid]
            if not r.alive() and not r.expected_exit:
                self.problem(f"router {rid} died: exit status {r.proc.returncode}; log "
                             f"{r.log_path.name}, last lines:\n{r.log_tail(15)}")
                r.expected_exit = True
                self.restart(rid, "none", planned=False)

    def check_stalls(self):
        t = now()
        if t - self.traffic_start < STALL_AFTER or self.in_window(t - STALL_AFTER, t):
            return
        last = {k: self.ledger.last_ok[k] for k in self.kinds}
        if self.tcp:
            last["tcp"] = self.tcp_last_ok
        for k, v in last.items():
            if t - max(v, self.traffic_start) > STALL_AFTER:
                if k not in self.stalled:
                    self.stalled.add(k)
                    self.problem(f"{k}: nothing completed for {STALL_AFTER:.0f} s "
                                 f"(no restart in that time)")
            else:
                self.stalled.discard(k)

    def progress(self):
        c = self.ledger.count
        tot = collections.Counter()
        for k in KINDS:
            tot.update(c[k])
        with self.lock:
            flows = list(self.tcp_flows)
            counters = dict(self.counters)
        ok = sum(1 for f in flows if f["result"] == "ok")
        tcp_bytes = sum(f["size"] for f in flows if f["result"] == "ok")
        rss = self.rss_snapshot()
        self.say(f"sent {tot['sent']} ({mib(tot['bytes']):.0f} MiB) received {tot['received']} "
                 f"accepted {tot['accepted']} released {tot['released']} modified "
                 f"{tot['modified']} in-doubt {tot['in-doubt']} | corrupt {self.corrupt_count} "
                 f"dup {tot['duplicate']} stuck {tot['stuck']} | tcp ok {ok} failed "
                 f"{len(flows) - ok} ({mib(tcp_bytes):.0f} MiB) | restarts {len(self.restarts)} "
                 f"| links {counters.get('links', 0)} conns {counters.get('connections', 0)} | "
                 f"RSS MiB " + " ".join(f"{k} {mib(v):.1f}" if v else f"{k} -"
                                        for k, v in rss.items())
                 + f" | load {os.getloadavg()[0]:.1f}")
        self.say("  " + "  ".join(
            f"{k} {c[k]['sent']}/{c[k]['accepted'] if not KINDS[k].presettled else '-'}"
            f"/{c[k]['received']}" for k in KINDS) + "  (sent/accepted/received)")

    def run(self):
        args = self.args
        self.t0 = now()
        self.say(f"vaned {self.vaned}; work directory {self.workdir}; seed {self.seed}; "
                 f"{args.minutes} min, a restart every {args.restart_every} min, "
                 f"{args.workers} workers per router")
        self.setup()
        self.say("network A - B - C up: " + ", ".join(
            f"{rid} amqp {self.net.port(rid)} pid {self.net[rid].pid}" for rid in ROUTERS)
            + f"; tcp listener on A port {self.net.tcp_port('A', 'soak-tcp')}, echo server "
            f"port {self.echo.port}")
        self.start_traffic()
        deadline = self.traffic_start + args.minutes * 60
        next_progress = self.traffic_start + 60
        period = args.restart_every * 60
        next_restart = self.traffic_start + period if period > 0 else INF
        n_restart = 0
        last_stall_check = now()
        while not self.abort.is_set():
            t = now()
            if t >= deadline:
                break
            for reactor in (self.tx, self.rx, self.probe_reactor):
                if reactor.errors:
                    raise RuntimeError(f"proton thread {reactor.name} failed: {reactor.errors}")
            self.check_crashes()
            if t >= next_progress:
                self.progress()
                next_progress += 60
            if t >= next_restart:
                if deadline - t > 45:
                    rid = VICTIMS[n_restart % len(VICTIMS)]
                    how = HOWS[n_restart % len(HOWS)]
                    n_restart += 1
                    self.restart(rid, how)
                next_restart += period
            if t - last_stall_check >= 10:
                last_stall_check = t
                self.check_stalls()
            self.abort.wait(0.25)
        self.finish()

    def finish(self):
        """Stop the traffic in order: senders (each waits for its outcomes),
        TCP flows, then consumers (drained); a last RSS sample."""
        quick = self.abort.is_set()
        self.say("stopping" + (" (interrupted)" if quick else "") + ": senders")
        self.stop_senders.set()
        for a in self.agents:
            if isinstance(a, SenderAgent):
                a.join(10 if quick else SETTLE_WAIT + 40)
        self.say("stopping: tcp flows")
        self.stop_tcp.set()
        for a in self.tcp_agents:
            a.join(5 if quick else TCP_TIMEOUT + 10)
        time.sleep(0 if quick else 2)   # the last pre-settled messages on their way
        self.say("stopping: consumers")
        self.stop_receivers.set()
        for a in self.agents:
            if isinstance(a, ReceiverAgent):
                a.join(5 if quick else 45)
        self.stop_sampler.set()
        self.sample()
        self.t_end = now()
        # With no traffic left, what each router still holds: live blocks
        # back near the start-up figure mean the growth was buffered traffic
        # (bounded by the flow budgets), not a leak.
        time.sleep(0 if quick else 5)
        self.idle = {}
        for rid in ROUTERS:
            r = self.net.routers.get(rid) if self.net is not None else None
            try:
                if r is not None and r.alive():
                    heap = heap_metrics(r)
                    self.idle[rid] = {"rss_mib": round(mib(r.rss()), 1),
                                      "in_use_mib": round(mib(heap[0]), 1) if heap else None,
                                      "free_mib": round(mib(heap[1]), 1) if heap else None,
                                      "buffered_bytes": int(heap[2]) if heap else None}
            except Exception:
                pass
        alive = [a.name for a in self.agents + self.tcp_agents if a.is_alive()]
        if alive and not quick:
            self.problem(f"client threads still running after stopping: {alive}")

    def shutdown(self):
        """Stop every process and thread this run started (each bounded)."""
        self.stop_senders.set()
        self.stop_tcp.set()
        self.stop_receivers.set()
        self.stop_sampler.set()
        self.abort.set()
        if self.net is not None:
            for rid in reversed(ROUTERS):
                r = self.net.routers.get(rid)
                if r is None or r.proc is None:
                    continue
                if r.alive():
                    try:
                        r.stop(timeout=15)
                    except AssertionError as exc:
                        self.problem(f"router {rid} at the end: {first_line(exc)}")
                        r.kill()
                elif not r.expected_exit:
                    self.problem(f"router {rid} had died: exit status {r.proc.returncode}")
                r._close_log()
        for reactor in (self.tx, self.rx, self.probe_reactor):
            if reactor is not None:
                reactor.close(timeout=3)
        if self.echo is not None:
            self.echo.close()

    # -- results ----------------------------------------------------------------
    def attached_throughout(self, slot, t0, t1):
        return any(a <= t0 and b >= t1 for a, b in self.attached[slot])

    def detaching(self, address, t):
        return any(a - 0.5 <= t <= b + DETACH_GRACE for a, b in self.detaches[address])

    def analyse(self):
        stable = collections.defaultdict(list)   # address -> stable consumer slots
        for slot, _, address, _, _, lifetime in RECEIVERS:
            if lifetime is None:
                stable[address].append(slot)
        stats = {k: collections.Counter() for k in KINDS}
        examples = collections.defaultdict(list)

        def note(what, text):
            if len(examples[what]) < 5:
                examples[what].append(text)

        with self.ledger.lock:
            msgs = list(self.ledger.msgs.items())
        for mid, m in msgs:
            k = m.kind
            st = stats[k.name]
            st["sent"] += 1
            st["copies"] += len(m.rx)
            end = m.settled_at if m.settled_at is not None else m.sent_at
            at_restart = self.in_window(m.sent_at, end)
            o = m.outcome
            desc = (f"{k.name} #{mid} {m.size} B sent at {fmt_t(m.sent_at - self.t0)}, "
                    f"{o} at {fmt_t(end - self.t0)}, received by {list(m.rx)}")
            if k.presettled:
                if not m.rx:
                    if at_restart:
                        st["not-received-restart"] += 1
                    elif self.detaching(k.address, m.sent_at):
                        st["not-received-detach"] += 1
                        note("pre-settled not received (a consumer detaching)", desc)
                    elif any(a - 1 <= m.sent_at <= b for a, b in self.sender_stops[k.name]):
                        st["not-received-sender-stop"] += 1
                        note("pre-settled not received (its sender detaching)", desc)
                    else:
                        st["not-received"] += 1
                        note("pre-settled not received (no restart, no detach)", desc)
            elif o == "accepted":
                if not m.rx:
                    st["LOST"] += 1
                    note("LOST", desc + (" (during a restart)" if at_restart else ""))
            elif o in ("released", "modified"):
                if at_restart:
                    st["rm-restart"] += 1
                elif self.detaching(k.address, end):
                    st["rm-detach"] += 1
                else:
                    st["UNEXPLAINED"] += 1
                    note("UNEXPLAINED", desc)
                if m.rx:
                    st[f"{o}-but-received"] += 1
                    if o == "released":
                        st["WRONG"] += 1
                        note("WRONG (released, but a consumer got it)", desc)
            elif o == "in-doubt":
                if not at_restart:
                    st["UNEXPLAINED"] += 1
                    note("UNEXPLAINED", desc)
                if m.rx:
                    st["in-doubt-received"] += 1
            elif o == "stuck":
                st["STUCK"] += 1
                note("STUCK", desc)
            elif o is None:
                # still unsettled and no sender left to hear (interrupted run)
                st["open"] += 1
            else:
                st["UNEXPLAINED"] += 1
                note("UNEXPLAINED", desc)
            if k.multicast and (o == "accepted" or k.presettled) and \
                    not self.in_window(m.sent_at - 5, end + 2):
                for slot in stable[k.address]:
                    if slot not in m.rx and self.attached_throughout(slot, m.sent_at - 5, end + 2):
                        if k.presettled:
                            st["pre-missed-copies"] += 1
                            note("pre-settled multicast copies missed", f"{desc}; not {slot}")
                        else:
                            st["MISSED-copies"] += 1
                            note("MISSED copies", f"{desc}; not {slot}")
        for k in KINDS:
            c = self.ledger.count[k]
            stats[k]["received"] = c["received"]
            stats[k]["duplicate"] = c["duplicate"]
            stats[k]["wrong-presettled"] = c["wrong-presettled"]
            for o in ("accepted", "released", "modified", "rejected", "in-doubt", "stuck"):
                stats[k][o] = c[o]
            stats[k]["bytes"] = c["bytes"]
        for t, mid, kname, slot, rx in self.ledger.duplicates[:5]:
            note("DUPLICATE", f"{kname} #{mid} at {fmt_t(t - self.t0)} on {slot}; copies {rx}")
        for t, mid, kname, slot in self.ledger.wrong_presettled[:5]:
            note("wrongly pre-settled", f"{kname} #{mid} at {fmt_t(t - self.t0)} on {slot}")
        return stats, examples

    def tcp_stats(self):
        st = collections.Counter()
        examples = []
        for f in self.tcp_flows:
            r = f["result"]
            st["flows"] += 1
            if r == "ok":
                st["ok"] += 1
                st["bytes"] += f["size"]
                continue
            at_restart = self.in_window(f["start"], f["end"])
            if r in ("corrupt", "truncated", "hung"):
                st[r.upper()] += 1
            elif at_restart:
                st["failed-restart"] += 1
            else:
                st["FAILED"] += 1
            if r in ("corrupt", "truncated", "hung") or not at_restart:
                if len(examples) < 5:
                    examples.append(f"{r}: {f['size']} B from {fmt_t(f['start'] - self.t0)} to "
                                    f"{fmt_t(f['end'] - self.t0)}, got {f['got']} "
                                    f"{f.get('detail', '')}"
                                    + (" (during a restart)" if at_restart else ""))
        return st, examples

    def rss_report(self):
        """Per router: start/peak/end and per process slope; flags."""
        rows, flags = {}, []
        warm = self.args.warmup
        for rid in ROUTERS:
            runs = self.instances[rid]
            procs = []
            all_samples = []
            for run in runs:
                s = [(t, r) for t, r in run["samples"] if t >= run["start"] + warm and
                     t >= self.traffic_start + warm]
                all_samples.extend(run["samples"])
                slope = fit_slope(s)
                span = (s[-1][0] - s[0][0]) if len(s) >= 2 else 0.0
                growth = slope * span if slope is not None else None
                # The allocator's view over the same span: in use (live
                # blocks) against free memory it keeps (fragmentation).
                h = [x for x in run.get("heap", []) if x[0] >= run["start"] + warm and
                     x[0] >= self.traffic_start + warm]
                heap = {}
                # "held": in use less the traffic the router holds at that
                # moment (vane_traffic_buffered_bytes), i.e. what stays when
                # the deliveries and streams in flight are taken away.
                h = [(*x, x[1] - x[3]) for x in h]
                for key, i in (("in_use", 1), ("free", 2), ("buffered", 3), ("held", 4)):
                    hs = fit_slope([(x[0], x[i]) for x in h])
                    heap[key] = {"first_mib": round(mib(h[0][i]), 1) if h else None,
                                 "last_mib": round(mib(h[-1][i]), 1) if h else None,
                                 "peak_mib": round(mib(max(x[i] for x in h)), 1) if h else None,
                                 "fit_growth_mib": None if hs is None else
                                 round(hs * (h[-1][0] - h[0][0]) / MiB, 2)}
                p = {"process": run["index"], "samples": len(s), "span_min": round(span / 60, 1),
                     "first_mib": round(mib(s[0][1]), 1) if s else None,
                     "last_mib": round(mib(s[-1][1]), 1) if s else None,
                     "slope_mib_h": None if slope is None else round(slope * 3600 / MiB, 2),
                     "fit_growth_mib": None if growth is None else round(growth / MiB, 2),
                     "cpu_s": round(run.get("cpu", 0.0), 1), "heap": heap}
                procs.append(p)
                # Judged on the memory in use (live blocks) less the traffic
                # in flight where the router reports them: RSS also moves
                # with what the allocator keeps, which is not the router's to
                # bound, and in-use with the large messages that happen to be
                # crossing at each sample. RSS where the heap is not reported.
                held_growth = heap["held"]["fit_growth_mib"]
                if span >= self.args.rss_span * 60:
                    if held_growth is not None:
                        if held_growth > self.args.rss_growth:
                            flags.append(f"router {rid} process {run['index']}: memory in use "
                                         f"less traffic in flight grew {held_growth:.1f} MiB "
                                         f"over {span / 60:.1f} min (in use "
                                         f"{heap['in_use']['fit_growth_mib']:.1f}, RSS "
                                         f"{growth / MiB:.1f} MiB)")
                    elif growth is not None and growth / MiB > self.args.rss_growth:
                        flags.append(f"router {rid} process {run['index']}: RSS grew "
                                     f"{growth / MiB:.1f} MiB over {span / 60:.1f} min "
                                     f"({slope * 3600 / MiB:.1f} MiB/h)")
            warm_samples = [r for run in runs for t, r in run["samples"]
                            if t >= run["start"] + warm and t >= self.traffic_start + warm]
            rows[rid] = {
                "start_mib": round(mib(warm_samples[0]), 1) if warm_samples else None,
                "peak_mib": round(mib(max(r for _, r in all_samples)), 1) if all_samples else None,
                "end_mib": round(mib(all_samples[-1][1]), 1) if all_samples else None,
                "processes": procs,
                "at_recovery_mib": [round(mib(x["rss"][rid]), 1) if x.get("rss", {}).get(rid)
                                    else None for x in self.restarts],
            }
        return rows, flags

    def log_summary(self):
        """Warnings and errors in the routers' logs, by message (numbers masked)."""
        out = {}
        for rid in ROUTERS:
            c = collections.Counter()
            reports = []
            for run in self.instances[rid]:
                text = run["router"].log_text()
                reports += sanitizer_reports(text)
                for line in text.splitlines():
                    m = re.search(r"\[(warning|error|critical)\] (.*)", line)
                    if m:
                        msg = re.sub(r"\d+", "N", m.group(2))
                        c[f"{m.group(1)}: {msg[:160]}"] += 1
            out[rid] = (c, reports)
        return out

    def report(self):
        args = self.args
        duration = (self.t_end - self.traffic_start) / 60
        stats, examples = self.analyse()
        tcp, tcp_examples = self.tcp_stats()
        rss, rss_flags = self.rss_report()
        logs = self.log_summary()
        with self.lock:
            events = list(self.events)
        print()
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        print(f"=== Soak summary: {duration:.1f} min of traffic, {stamp}, seed {self.seed}")
        own = os.times()
        print(f"vaned {self.vaned} ({vaned_version(self.vaned)}), {args.workers} workers per "
              f"router; load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
              f"this script used {own.user + own.system:.0f} s of CPU")
        print()
        cols = ["sent", "received", "accepted", "released", "modified", "in-doubt", "rm-restart",
                "rm-detach", "UNEXPLAINED", "WRONG", "CORRUPT", "LOST", "DUPLICATE",
                "MISSED-copies", "STUCK"]
        print("AMQP (received: copies, a multicast message once per consumer; rm-restart / "
              "rm-detach: released or modified around a restart / a consumer detach)")
        print("| kind | MiB sent | " + " | ".join(cols) + " |")
        print("|---|" + "---:|" * (len(cols) + 1))
        corrupt_by_kind = collections.Counter()
        for _, _, mid, _, _ in self.ledger.corrupt:
            m = self.ledger.msgs.get(mid) if mid is not None else None
            corrupt_by_kind[m.kind.name if m else "?"] += 1
        totals = collections.Counter()
        for k, st in stats.items():
            st["CORRUPT"] = corrupt_by_kind[k]
            st["DUPLICATE"] = st["duplicate"]
            st["STUCK"] = st["stuck"]
            pre = KINDS[k].presettled
            vals = [str(st[c]) if not (pre and c in ("accepted", "released", "modified",
                                                      "in-doubt", "rm-restart", "rm-detach",
                                                      "LOST", "STUCK", "WRONG"))
                    else "-" for c in cols]
            print(f"| {k} | {mib(st['bytes']):.0f} | " + " | ".join(vals) + " |")
            totals.update(st)
        if corrupt_by_kind["?"]:
            print(f"(and {corrupt_by_kind['?']} corrupt message(s) whose kind is unknown)")
        totals["CORRUPT"] = self.corrupt_count
        print(f"| total | {mib(totals['bytes']):.0f} | " +
              " | ".join(str(totals[c]) for c in cols) + " |")
        pre_lost = sum(stats[k]["not-received"] for k in KINDS)
        pre_lost_r = sum(stats[k]["not-received-restart"] for k in KINDS)
        pre_lost_d = sum(stats[k]["not-received-detach"] for k in KINDS)
        pre_lost_s = sum(stats[k]["not-received-sender-stop"] for k in KINDS)
        pre_missed = sum(stats[k]["pre-missed-copies"] for k in KINDS)
        print(f"pre-settled messages never received: {pre_lost_r} around restarts, {pre_lost_d} "
              f"while a consumer of the address was detaching, {pre_lost_s} in the last second "
              f"before their sender detached, {pre_lost} otherwise; pre-settled multicast copies missed by a consumer attached "
              f"throughout: {pre_missed}; unsettled messages sent pre-settled to an unsettled "
              f"consumer: {totals['wrong-presettled']}")
        print(f"modified but received (fate unknown to the sender, allowed): "
              f"{totals['modified-but-received']}; in doubt but received: "
              f"{totals['in-doubt-received']}; still open at an interrupted end: {totals['open']}")
        with self.lock:
            counters = dict(self.counters)
        print(f"links attached {counters.get('links', 0)}, connections opened "
              f"{counters.get('connections', 0)}")
        print()
        print(f"TCP: {tcp['flows']} flows, {tcp['ok']} ok ({mib(tcp['bytes']):.0f} MiB echoed and "
              f"checked), failed at a restart {tcp['failed-restart']}, failed otherwise "
              f"{tcp['FAILED']}, CORRUPT {tcp['CORRUPT']}, TRUNCATED {tcp['TRUNCATED']}, "
              f"HUNG {tcp['HUNG']}")
        print()
        print("Restarts")
        print("| # | at | router | how | down s | converged s | probes ok s | all traffic s | "
              "RSS A/B/C MiB after |")
        print("|---:|---:|---|---|---:|---:|---:|---:|---|")
        for x in self.restarts:
            rs = "/".join(f"{mib(v):.1f}" if v else "-" for v in x.get("rss", {}).values())
            print(f"| {x['n']} | {fmt_t(x['at'])} | {x['router']} | {x['how']}"
                  f"{'' if x['planned'] else ' (crashed)'} | {x.get('down_s')} | "
                  f"{x.get('converge_s')} | {x.get('probe_s')} | {x.get('resumed_s')} | {rs} |")
        print()
        print(f"RSS per router (MiB; start = first sample {args.warmup:.0f} s after traffic "
              f"began; a process's slope is fitted over its samples from {args.warmup:.0f} s "
              f"after it started)")
        print("| router | start | peak | end | per process: samples, minutes, first→last MiB, "
              "slope MiB/h, fitted growth MiB, CPU s |")
        print("|---|---:|---:|---:|---|")
        for rid, row in rss.items():
            procs = "; ".join(
                f"#{p['process']}: {p['samples']}, {p['span_min']}, {p['first_mib']}→"
                f"{p['last_mib']}, {p['slope_mib_h']}, {p['fit_growth_mib']}, {p['cpu_s']}"
                for p in row["processes"])
            print(f"| {rid} | {row['start_mib']} | {row['peak_mib']} | {row['end_mib']} | "
                  f"{procs} |")
        print()
        print("Idle 5 s after the traffic ended (MiB): " + "; ".join(
            f"{rid} RSS {v['rss_mib']}, heap in use {v['in_use_mib']}, free {v['free_mib']}, "
            f"traffic held {v.get('buffered_bytes')} B"
            for rid, v in getattr(self, "idle", {}).items()))
        print()
        print("Heap per process (glibc mallinfo2, MiB: first→last, fitted growth): "
              "in use = live blocks, free = freed memory the allocator keeps, traffic = "
              "bytes of deliveries and streams in flight (peak), held = in use - traffic")
        for rid, row in rss.items():
            for p in row["processes"]:
                h = p.get("heap") or {}
                if not h or h["in_use"]["first_mib"] is None:
                    continue
                print(f"  {rid} #{p['process']}: in use {h['in_use']['first_mib']}→"
                      f"{h['in_use']['last_mib']} ({h['in_use']['fit_growth_mib']}), free "
                      f"{h['free']['first_mib']}→{h['free']['last_mib']} "
                      f"({h['free']['fit_growth_mib']}), traffic peak {h['buffered']['peak_mib']}, "
                      f"held {h['held']['first_mib']}→{h['held']['last_mib']} "
                      f"({h['held']['fit_growth_mib']})")
        for rid, row in rss.items():
            if row["at_recovery_mib"]:
                print(f"{rid} at each recovery: {row['at_recovery_mib']}")
        print()
        print("Router logs: warnings and errors (numbers masked)")
        for rid, (c, reports) in logs.items():
            total = sum(c.values())
            print(f"  {rid}: {total} line(s)" + (f", {len(reports)} SANITIZER REPORT(S)"
                                                 if reports else ""))
            for msg, n in c.most_common(8):
                print(f"    {n:6d}  {msg}")
        ev = collections.Counter(what for _, what, _, _ in events)
        unexplained_ev = [(t, w, who, d) for t, w, who, d in events
                          if w in ("failed", "connection-lost", "link-closed-by-router",
                                   "in-doubt", "drain-timeout", "close-timeout")
                          and not self.in_window(t - 1, t)]
        bad_ev = [e for e in events if e[1] in ("stuck", "client-error", "drain-timeout",
                                                "close-timeout")]
        print()
        print("Client events: " + (", ".join(f"{w} {n}" for w, n in sorted(ev.items())) or "none")
              + f"; outside restart windows: {len(unexplained_ev)}")
        for t, w, who, d in (unexplained_ev + bad_ev)[:12]:
            print(f"  {fmt_t(t - self.t0)} {who}: {w}: {d[:300]}")
        for what, lst in examples.items():
            print(f"{what}, e.g.:")
            for x in lst:
                print(f"  {x}")
        for _, slot, mid, what, detail in self.ledger.corrupt[:10]:
            print(f"  CORRUPT on {slot}: #{mid}: {what}: {detail[:400]}")
        for x in tcp_examples:
            print(f"  TCP {x}")

        failures = list(self.problems)
        for name in ("CORRUPT", "LOST", "DUPLICATE", "WRONG", "UNEXPLAINED", "STUCK",
                     "MISSED-copies", "wrong-presettled"):
            if totals[name]:
                failures.append(f"{totals[name]} {name}")
        for name in ("CORRUPT", "TRUNCATED", "HUNG", "FAILED"):
            if tcp[name]:
                failures.append(f"TCP {tcp[name]} {name}")
        failures += rss_flags
        for rid, (c, reports) in logs.items():
            if reports:
                failures.append(f"router {rid}: {len(reports)} sanitizer report(s)")
        for _, w, who, d in bad_ev:
            if w in ("drain-timeout", "close-timeout"):
                failures.append(f"{who}: {w}: {d[:200]}")
        unexpl_conn = [e for e in unexplained_ev if e[1] in ("connection-lost",
                                                             "link-closed-by-router")]
        if unexpl_conn:
            failures.append(f"{len(unexpl_conn)} connection(s)/link(s) closed by the network "
                            f"outside restarts")
        if self.interrupted:
            failures.append("interrupted")
        print()
        if failures:
            print("RESULT: FAIL")
            for f in failures:
                print(f"  - {f.splitlines()[0]}")
        else:
            print("RESULT: PASS (no corrupt, lost, duplicate or wrongly settled delivery; every "
                  "TCP flow intact or failed only at a restart; every restart recovered; memory in use flat)")
        result = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "vaned": str(self.vaned), "version": vaned_version(self.vaned),
            "minutes": round(duration, 2), "seed": self.seed, "workers": args.workers,
            "amqp": {k: dict(v) for k, v in stats.items()}, "amqp_total": dict(totals),
            "tcp": dict(tcp), "restarts": self.restarts, "rss": rss, "rss_flags": rss_flags,
            "events": dict(ev), "failures": failures,
            "rss_samples": {rid: [[[round(t - self.t0, 1), round(mib(r), 2)] for t, r in
                                   run["samples"]] for run in self.instances[rid]]
                            for rid in ROUTERS},
            "heap_samples": {rid: [[[round(x[0] - self.t0, 1), round(mib(x[1]), 2),
                                     round(mib(x[2]), 2)] for x in run.get("heap", [])]
                                   for run in self.instances[rid]] for rid in ROUTERS},
            "idle": getattr(self, "idle", {}),
        }
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
        return not failures


def vaned_version(path):
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=5)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0, help="traffic duration (default 30)")
    p.add_argument("--restart-every", type=float, default=4.0,
                   help="minutes between router restarts (default 4; 0: none)")
    p.add_argument("--workers", type=int, default=2, help="workers per router (default 2)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock)")
    p.add_argument("--rate", type=float, default=1.0,
                   help="scale every sender's and TCP flow's pace (default 1.0)")
    p.add_argument("--traffic", default=",".join(list(KINDS) + ["tcp"]),
                   help="the kinds of traffic to run, comma-separated (default all: "
                        + ",".join(list(KINDS) + ["tcp"]) + ")")
    p.add_argument("--tcp-flows", type=int, default=2, help="TCP flows at a time (default 2)")
    p.add_argument("--recover-timeout", type=float, default=10.0,
                   help="s allowed from a restarted router being ready to probes through "
                        "(default 10)")
    p.add_argument("--sample-every", type=float, default=10.0, help="s between RSS samples")
    p.add_argument("--warmup", type=float, default=60.0,
                   help="s of a process's life (and of the traffic) before its RSS samples "
                        "count (default 60)")
    p.add_argument("--rss-growth", type=float, default=4.0,
                   help="MiB of fitted RSS growth over a process's life that is flagged "
                        "(default 4)")
    p.add_argument("--rss-span", type=float, default=5.0,
                   help="minutes a process must have been sampled for its growth to be judged "
                        "(default 5)")
    p.add_argument("--log-level", default="debug", help="vaned --log-level (default debug)")
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("--keep", action="store_true", help="keep the work directory (router logs)")
    args = p.parse_args()
    if args.seed is None:
        args.seed = int(time.time()) % 1000000
    try:
        vaned = find_vaned()
    except VanedNotFound as exc:
        print(f"soak.py: {exc}", file=sys.stderr)
        return 2

    soak = Soak(args, vaned)
    interrupts = [0]

    def on_signal(signum, frame):
        interrupts[0] += 1
        if interrupts[0] == 1:
            print(f"\n{signal.Signals(signum).name}: stopping (again to stop at once)", flush=True)
            soak.interrupted = True
            soak.abort.set()
        else:
            raise KeyboardInterrupt
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    ok = False
    status = 2
    try:
        try:
            soak.run()
            status = None
        except KeyboardInterrupt:
            print("interrupted again: stopping at once", flush=True)
        except Exception:
            traceback.print_exc()
            soak.problem("the run could not go on (see above)")
            try:
                soak.finish()
            except Exception:
                traceback.print_exc()
            status = None
    finally:
        soak.shutdown()
    if status is None:
        try:
            ok = soak.report()
        except Exception:
            traceback.print_exc()
            ok = False
        status = 0 if ok else 1
    if ok and not args.keep:
        shutil.rmtree(soak.workdir, ignore_errors=True)
    else:
        print(f"router logs: {soak.workdir}")
    return status


if __name__ == "__main__":
    sys.exit(main())
