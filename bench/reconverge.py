#!/usr/bin/python3
"""How long a vaned network takes to route around a failure.

Run with Debian's interpreter (it has python3-qpid-proton):

    /usr/bin/python3 bench/reconverge.py [--repeat 5] [--cases kill,freeze,freeze-fast,link]

Network: a diamond of four interior routers, A-B-D (cost 1 + 1) and A-C-D
(cost 5 + 5), so traffic from A to D goes through B while B is there. A
sender on A sends a steady stream of unsettled messages (one every
--interval-ms, default 1 ms) to a receiver on D, which accepts them. Once the
stream flows, one failure is injected:

  kill         SIGKILL the transit router B. Its sockets close, so A and D see
               the link drop at once.
  freeze       SIGSTOP B with the default timers (hello 1000 ms, dead 3000 ms):
               the sockets stay open and only the hellos stop, so the
               neighbours notice only when the dead interval expires. B is
               SIGKILLed afterwards.
  freeze-fast  the same with hello 200 ms, dead 600 ms.
  link         close only the A-B connection: B's connector to A goes through
               a TCP relay in this script, which closes both sockets and stops
               listening (so B cannot reconnect). B stays up and linked to D.

Measured per run, from the moment of the failure:
  reroute   until the receiver on D gets the first message that the sender
            transmitted after the failure and that ends up accepted (it can
            only have come through C; a frozen B may still forward a message
            in the instant after SIGSTOP, but its outcome cannot come back, so
            it ends up modified and does not count);
  accepted  until the sender gets that message's outcome;
  detect    until A logs "link to router B down" or "dropping link to router B"
            (log timestamps, 1 ms resolution);
  handback  until the last delivery stranded on the failed path was handed back
            to the sender (released or modified);
and what happened to the messages: released / modified (handed back to the
sender), still unsettled at the end (lost), received twice at D.

Every run uses a fresh network on free loopback ports. Each figure is printed
per run, then as median / max over the runs, then as a Markdown table.
Every wait is bounded; the whole default run takes about 1.5-2 minutes.

The vaned binary is $VANED, else build/src/vaned, else the newest
build*/src/vaned (see tests/system/vane_harness.py).
"""

import argparse
import collections
import datetime
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))

from proton import Handler, Message  # noqa: E402

from vane_client import ACCEPTED, MODIFIED, RELEASED, Reactor  # noqa: E402
from vane_harness import Router, eventually, find_vaned  # noqa: E402
from vane_network import Network  # noqa: E402

CASES = {
    # name: (description, hello_ms, dead_ms)
    "kill": ("SIGKILL transit router B", None, None),
    "freeze": ("SIGSTOP B, hello 1000 / dead 3000 ms", 1000, 3000),
    "freeze-fast": ("SIGSTOP B, hello 200 / dead 600 ms", 200, 600),
    "link": ("close the A-B connection only", None, None),
}

ADDRESS = "reconverge"
WARMUP_ACCEPTED = 300        # messages accepted before the failure is injected
REROUTE_TIMEOUT = 15.0       # seconds allowed for the first rerouted delivery
AFTER_REROUTE = 0.3          # seconds the stream keeps going after rerouting
SETTLE_TIMEOUT = 10.0        # seconds allowed for every delivery to be settled
FROZEN_SETTLE = 3.0          # freeze: seconds allowed for settlement while B is still stopped
LOG_TS_RE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")


# --------------------------------------------------------------------------
# A TCP relay whose sockets the script controls.

class Relay:
    """Accepts connections on a free loopback port and relays each to target."""

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.peers = {}                   # socket -> the socket it relays to
        self.connections = 0
        self.closed_at = None             # time.monotonic() when the sockets were shut down
        self._closing = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self.lsock, selectors.EVENT_READ)
        self._sel.register(self._wake_r, selectors.EVENT_READ)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._thread.start()

    def _run(self):
        try:
            while not self._closing:
                for key, _ in self._sel.select(timeout=0.5):
                    sock = key.fileobj
                    if sock is self._wake_r:
                        continue
                    if sock is self.lsock:
                        self._accept()
                    elif sock in self.peers:
                        self._relay(sock)
            self._shutdown()
        finally:
            self._done.set()

    def _accept(self):
        client, _ = self.lsock.accept()
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()
            return
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.settimeout(5)  # bounded sendall
        self.peers[client] = upstream
        self.peers[upstream] = client
        self._sel.register(client, selectors.EVENT_READ)
        self._sel.register(upstream, selectors.EVENT_READ)
        self.connections += 1

    def _drop(self, sock):
        peer = self.peers.pop(sock, None)
        for s in (sock, peer):
            if s is None:
                continue
            self.peers.pop(s, None)
            try:
                self._sel.unregister(s)
            except (KeyError, ValueError):
                pass
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _relay(self, sock):
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            self.peers[sock].sendall(data)
        except OSError:
            self._drop(sock)

    def _shutdown(self):
        self.closed_at = time.monotonic()
        self.lsock.close()  # B's connector now gets "connection refused"
        for s in list(self.peers):
            self._drop(s)

    def close(self, timeout=5.0):
        """Shut every relayed connection and the listening socket; returns closed_at."""
        self._closing = True
        self._wake_w.send(b"x")
        if not self._done.wait(timeout):
            raise RuntimeError("relay thread did not stop")
        self._wake_r.close()
        self._wake_w.close()
        return self.closed_at


class Diamond(Network):
    """A-B-D (cost 1) and A-C-D (cost 5); optionally B's link to A through a Relay."""

    def __init__(self, factory, relay=False, **kw):
        super().__init__(factory, **kw)
        self.use_relay = relay
        self.relay = None
        for x in ("A", "B", "C", "D"):
            self.interior(x)
        self.link("A", "B", cost=1).link("B", "D", cost=1)
        self.link("A", "C", cost=5).link("C", "D", cost=5)

    def start_router(self, rid):
        if rid == "B" and self.use_relay and self.relay is None:
            self.relay = Relay(self.port("A", "inter"))
        return super().start_router(rid)

    def _config(self, rid):
        cfg = super()._config(rid)
        if rid == "B" and self.relay is not None:
            for c in cfg["connectors"]:
                if c["name"] == "to-A":
                    c["port"] = self.relay.port
        return cfg


# --------------------------------------------------------------------------
# The steady stream

class Stream(Handler):
    """Queues one unsettled message every `interval` seconds on the sender's
    proton thread (catching up if a timer fires late); the SenderLink sends
    them as credit allows and records when each went out (sent_at)."""

    def __init__(self, reactor, sender, interval):
        super().__init__()
        self.reactor = reactor
        self.sender = sender
        self.interval = interval
        self.queued = 0
        self.t0 = None
        self.stopped = False
        self.body = b"x" * 100
        reactor.call(lambda: reactor.schedule(0, self))

    def on_timer_task(self, event):
        if self.stopped:
            return
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        due = int((now - self.t0) / self.interval) + 1
        items = []
        while self.queued < due:
            items.append((Message(id=self.queued, body=self.body), False))
            self.queued += 1
        if items:
            self.sender._enqueue(items)
        self.reactor.schedule(self.interval, self)

    def stop(self):
        self.reactor.call(lambda: setattr(self, "stopped", True))


# --------------------------------------------------------------------------

def proc_state(pid):
    """The state letter from /proc/PID/stat (R, S, T, Z, ...), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def log_time(router, pattern):
    """Wall-clock time (s since the epoch) of the first log line matching pattern."""
    rx = re.compile(pattern)
    for line in router.log_text().splitlines():
        if rx.search(line):
            m = LOG_TS_RE.match(line)
            if m:
                dt = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
                return dt.timestamp()
    return None


def ms(x):
    return None if x is None else x * 1000.0


def fmt(x, digits=0):
    return "-" if x is None else f"{x:.{digits}f}"


class Run:
    """One failure on one fresh network."""

    def __init__(self, case, vaned, workdir, interval):
        self.case = case
        self.vaned = vaned
        self.workdir = workdir
        self.interval = interval
        self.result = {}
        self.problems = []
        self.routers = []

    def factory(self, cfg, name, log_level):
        r = Router(self.vaned, self.workdir, config=cfg, name=name, log_level=log_level)
        self.routers.append(r)
        r.start(timeout=20)
        return r

    def execute(self):
        _, hello, dead = CASES[self.case]
        net = Diamond(self.factory, relay=(self.case == "link"), hello_ms=hello, dead_ms=dead)
        rr = sr = None
        try:
            net.start().wait_converged(timeout=30)
            rr, sr = Reactor("rx"), Reactor("tx")
            rx = rr.connect(net.port("D")).wait_open().receiver(ADDRESS, credit=1000)
            tx = sr.connect(net.port("A")).wait_open().sender(ADDRESS)
            stream = Stream(sr, tx, self.interval)

            def accepted():
                return sum(1 for r in list(tx.records) if r.remote_settled and r.state == ACCEPTED)
            eventually(15, lambda: accepted() >= WARMUP_ACCEPTED, interval=0.01,
                       what=lambda: f"{WARMUP_ACCEPTED} accepted before the failure "
                                    f"(have {accepted()})")
            self.result["before_failure_received"] = rx.count()

            # -- the failure ------------------------------------------------
            if self.case == "kill":
                t_fail = time.monotonic()
                net["B"].kill()
            elif self.case.startswith("freeze"):
                t_fail = time.monotonic()
                os.kill(net["B"].pid, signal.SIGSTOP)
            else:
                t_fail = net.relay.close()  # when the relay thread shut the sockets
            wall_fail = time.time() - (time.monotonic() - t_fail)  # for the log timestamps

            if self.case.startswith("freeze"):
                eventually(2, lambda: proc_state(net["B"].pid) in ("T", "t"), interval=0.0005,
                           what="B stopped")

            # -- first message sent after the failure, received at D, accepted --
            # Only an accepted one counts: right after the signal B may still run
            # for a moment and forward a message whose outcome then cannot come
            # back (it ends up modified).
            seen = [0]
            cands = []  # (Received at D, SentRecord) for messages sent after the failure

            def scan():
                got = rx.received
                recs = tx.records
                while seen[0] < len(got):
                    rec = got[seen[0]]
                    seen[0] += 1
                    mid = rec.message.id if rec.message is not None else None
                    if isinstance(mid, int) and mid < len(recs):
                        sent_at = recs[mid].sent_at
                        if sent_at is not None and sent_at > t_fail:
                            cands.append((rec, recs[mid]))

            def first_accepted():
                ok = [(rec, srec) for rec, srec in cands
                      if srec.remote_settled and srec.state == ACCEPTED]
                return min(ok, key=lambda x: x[0].received_at) if ok else None

            def rerouted():
                scan()
                return first_accepted() is not None
            eventually(REROUTE_TIMEOUT, rerouted, interval=0.002,
                       what="a message sent after the failure is received at D and accepted")
            time.sleep(AFTER_REROUTE)
            stream.stop()

            # -- every delivery settled? --------------------------------------
            def unsettled():
                return [r for r in list(tx.records) if r.sent and not r.remote_settled]
            if self.case.startswith("freeze"):
                try:
                    eventually(FROZEN_SETTLE, lambda: not unsettled(), interval=0.02)
                except AssertionError:
                    pass
                self.result["unsettled_while_frozen"] = len(unsettled())
                net["B"].kill()  # SIGKILL works on a stopped process
            try:
                eventually(SETTLE_TIMEOUT, lambda: not unsettled(), interval=0.02)
            except AssertionError:
                pass
            left = unsettled()
            recs = list(tx.records)
            scan()
            rec, srec = first_accepted()  # final: earlier candidates may have settled since
            self.result["reroute_ms"] = ms(rec.received_at - t_fail)
            self.result["accepted_ms"] = ms(srec.settled_at - t_fail)
            self.result["via_failed_after_signal"] = sum(
                1 for _, x in cands if x.remote_settled and x.state != ACCEPTED)
            back = [r.settled_at for r in recs if r.remote_settled and r.settled_at is not None
                    and r.state in (RELEASED, MODIFIED)]
            self.result["handback_ms"] = ms(max(back) - t_fail) if back else None
            outcome = collections.Counter(
                "accepted" if r.state == ACCEPTED else "released" if r.state == RELEASED else
                "modified" if r.state == MODIFIED else "other" for r in recs if r.remote_settled)
            ids = collections.Counter(r.message.id for r in list(rx.received)
                                      if r.message is not None)
            accepted_ids = {i for i, r in enumerate(recs) if r.remote_settled and r.state == ACCEPTED}
            self.result.update(
                sent=sum(1 for r in recs if r.sent), unsent=sum(1 for r in recs if not r.sent),
                accepted=outcome["accepted"], released=outcome["released"],
                modified=outcome["modified"], other=outcome["other"], unsettled=len(left),
                duplicates=sum(n - 1 for n in ids.values() if n > 1),
                accepted_not_received=len(accepted_ids - set(ids)))
            if left:
                self.problems.append(f"{len(left)} deliveries never settled, e.g. {left[:3]}")
            if self.result["duplicates"]:
                self.problems.append(f"{self.result['duplicates']} duplicate(s) at D")
            if self.result["accepted_not_received"]:
                self.problems.append(f"{self.result['accepted_not_received']} accepted but "
                                     f"never received at D")
            if outcome["other"]:
                self.problems.append(f"{outcome['other']} unexpected outcome(s)")

            if os.environ.get("RECONVERGE_DEBUG"):
                self._timeline(t_fail, recs, list(rx.received))
            t_down = log_time(net["A"], r"router A: (link to router B down|dropping link to router B)")
            # Log timestamps are truncated to the millisecond: clamp the rounding.
            self.result["detect_ms"] = None if t_down is None else max(0.0, ms(t_down - wall_fail))
        except Exception as exc:  # keep going with the other runs
            self.problems.append(f"{type(exc).__name__}: {exc}")
            if os.environ.get("RECONVERGE_DEBUG"):
                traceback.print_exc()
        finally:
            for r in (sr, rr):
                if r is not None:
                    try:
                        r.close()
                    except Exception as exc:
                        self.problems.append(f"closing a client: {exc}")
            self._stop_routers(net)
            if net.relay is not None and not net.relay._done.is_set():
                net.relay.close()
        self.result["log_problems"] = self._log_problems()
        return self

    def _timeline(self, t_fail, recs, received):
        """RECONVERGE_DEBUG=1: one line per message, times in ms from the failure."""
        at_d = {}
        for r in received:
            if r.message is not None:
                at_d.setdefault(r.message.id, r.received_at)

        def rel(t):
            return "-" if t is None else f"{(t - t_fail) * 1000:.1f}"
        with open(os.path.join(self.workdir, "timeline.txt"), "w") as f:
            f.write("# id sent_ms settled_ms outcome received_at_D_ms (from the failure)\n")
            for i, r in enumerate(recs):
                f.write(f"{i} {rel(r.sent_at)} {rel(r.settled_at)} {r.outcome} "
                        f"{rel(at_d.get(i))}\n")

    def _stop_routers(self, net):
        for r in self.routers:
            if r.proc is None:
                continue
            if r.proc.poll() is not None:
                if not r.expected_exit:
                    self.problems.append(f"vaned {r.name} died with status {r.proc.returncode}")
                r._close_log()
                continue
            if r.name == "B" and r.proc.poll() is None and self.case != "link":
                r.kill()  # B is the failed router in every case but "link"
                continue
            try:
                r.stop(timeout=10)
            except AssertionError as exc:
                first_line = str(exc).splitlines()[0]
                self.problems.append(first_line)
                r.kill()

    def _log_problems(self):
        """Distinct warning/error messages (numbers masked) with counts, all routers."""
        out = collections.Counter()
        for r in self.routers:
            for line in r.log_text().splitlines():
                m = re.search(r"\[(warning|error|critical)\] (.*)", line)
                if m:
                    out[f"{r.name}: [{m.group(1)}] " + re.sub(r"\d+", "N", m.group(2))] += 1
        return out


def summary(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, None
    return statistics.median(vals), max(vals), min(vals)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per case (default 5)")
    ap.add_argument("--cases", default="kill,freeze,freeze-fast,link",
                    help="comma-separated, from: " + ", ".join(CASES))
    ap.add_argument("--interval-ms", type=float, default=1.0,
                    help="stream: one message every this many ms (default 1)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the router logs")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            ap.error(f"unknown case {c!r}")
    vaned = find_vaned()
    top = tempfile.mkdtemp(prefix="vane-reconverge.")
    print(f"vaned {vaned}; {args.repeat} run(s) per case; stream one message every "
          f"{args.interval_ms} ms; logs in {top}", file=sys.stderr)
    load_before = open("/proc/loadavg").read().split()[:3]
    t_start = time.monotonic()
    results = {c: [] for c in cases}
    any_problem = False
    for case in cases:
        for i in range(1, args.repeat + 1):
            wd = os.path.join(top, f"{case}-{i}")
            os.makedirs(wd)
            run = Run(case, vaned, wd, args.interval_ms / 1000.0).execute()
            results[case].append(run)
            r = run.result
            print(f"  {case} run {i}: reroute {fmt(r.get('reroute_ms'), 1)} ms, accepted "
                  f"{fmt(r.get('accepted_ms'), 1)} ms, A detects {fmt(r.get('detect_ms'))} ms, "
                  f"handed back by {fmt(r.get('handback_ms'))} ms; "
                  f"sent {r.get('sent', '-')}: accepted {r.get('accepted', '-')}, released "
                  f"{r.get('released', '-')}, modified {r.get('modified', '-')}, unsettled "
                  f"{r.get('unsettled', '-')}"
                  + (f" ({r['unsettled_while_frozen']} while B frozen)"
                     if "unsettled_while_frozen" in r else "")
                  + f", duplicates {r.get('duplicates', '-')}"
                  + (f"; {r['via_failed_after_signal']} sent after the failure reached D but "
                     f"were not accepted" if r.get("via_failed_after_signal") else ""),
                  file=sys.stderr)
            for p in run.problems:
                any_problem = True
                print(f"    PROBLEM: {p}", file=sys.stderr)

    # -- report ---------------------------------------------------------------
    print()
    print("| failure | runs | reroute median ms | reroute max ms | accepted median ms "
          "| A detects median ms | stranded handed back by, median ms "
          "| released + modified per run (median) | unsettled at end | duplicates |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for case in cases:
        runs = results[case]
        ok = [r for r in runs if r.result.get("reroute_ms") is not None]
        rmed, rmax, _ = summary([r.result.get("reroute_ms") for r in runs])
        amed, _, _ = summary([r.result.get("accepted_ms") for r in runs])
        dmed, _, _ = summary([r.result.get("detect_ms") for r in runs])
        hmed, _, _ = summary([r.result.get("handback_ms") for r in runs])
        handed_back = [r.result["released"] + r.result["modified"] for r in runs
                       if "released" in r.result]
        hb = statistics.median(handed_back) if handed_back else None
        unsettled = sum(r.result.get("unsettled", 0) for r in runs)
        dups = sum(r.result.get("duplicates", 0) for r in runs)
        print(f"| {CASES[case][0]} | {len(ok)}/{len(runs)} | {fmt(rmed, 1)} | {fmt(rmax, 1)} "
              f"| {fmt(amed, 1)} | {fmt(dmed)} | {fmt(hmed)} | {fmt(hb)} | {unsettled} | {dups} |")
    print()
    for case in cases:
        logs = collections.Counter()
        for r in results[case]:
            logs.update(r.result.get("log_problems", {}))
        if logs:
            print(f"{case}: vaned warnings/errors over {len(results[case])} run(s):")
            for msg, n in logs.most_common(8):
                print(f"    {n} x {msg[:200]}")
    print(f"{os.cpu_count()} CPUs; load average before: {' '.join(load_before)}, after: "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}; "
          f"total {time.monotonic() - t_start:.0f} s")
    if any_problem or args.keep_logs:
        print(f"logs kept in {top}", file=sys.stderr)
    else:
        shutil.rmtree(top, ignore_errors=True)
    return 1 if any_problem else 0


if __name__ == "__main__":
    sys.exit(main())
