#!/usr/bin/python3
"""What two routers keep in use after a burst of concurrent TCP streams.

Routers A - B (1 worker each, the management API on each), a tcp listener on
A and a tcp connector on B to an echo server. After one small flow warms the
path, every round opens --flows connections at once, each echoing --mib MiB
(checked by sha256), and waits until all are closed; a second later it
prints the memory in use of each router (vane_memory_heap_in_use_bytes)
above what it was after the warm-up. The router link between A and B stays
open throughout, so what is printed is what that connection keeps once no
traffic is left.

    VANED=build/src/vaned /usr/bin/python3 bench/stream_retention.py --flows 16 --mib 16

Not a test: it prints figures (bench/README.md, "Stream retention").
"""

import argparse
import concurrent.futures
import hashlib
import os
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "system"))

from tcp_tools import EchoServer, echo_roundtrip  # noqa: E402
from vane_harness import Router, find_vaned  # noqa: E402
from vane_network import Network  # noqa: E402

MiB = 1 << 20


def heap_in_use(router):
    for line in router.api("GET", "/metrics").body.decode().splitlines():
        if line.startswith("vane_memory_heap_in_use_bytes "):
            return float(line.split()[1])
    raise RuntimeError("no vane_memory_heap_in_use_bytes in /metrics")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--flows", type=int, default=16, help="connections at once (default 16)")
    p.add_argument("--mib", type=int, default=16, help="MiB echoed per connection (default 16)")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    p.add_argument("--stream-window", type=int, default=None,
                   help="router.stream_window_bytes (default: vaned's)")
    args = p.parse_args()

    vaned = find_vaned()
    workdir = Path(tempfile.mkdtemp(prefix="vane-retention."))
    routers = []

    def factory(cfg, name, log_level="debug", **_):
        r = Router(vaned, workdir, config=cfg, name=name, log_level=log_level)
        routers.append(r)
        r.start(timeout=20)
        return r

    extra = {} if args.stream_window is None else {"stream_window_bytes": args.stream_window}
    echo = EchoServer()
    try:
        net = Network(factory, management={"port": 0}, workers=1, router_extra=extra)
        net.interior("A")
        net.interior("B")
        net.link("A", "B")
        net.tcp_listener("A", "in", "echo")
        net.tcp_connector("B", "out", "echo", echo.port)
        net.start().wait_converged()
        port = net.tcp_port("A", "in")
        deadline = time.monotonic() + 20
        while True:
            try:
                echo_roundtrip(port, b"warm" * 256, timeout=10)
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        time.sleep(1)
        base = {n: heap_in_use(net[n]) for n in ("A", "B")}
        print(f"vaned {vaned}; {args.flows} flows x {args.mib} MiB per round, stream window "
              f"{args.stream_window or 'default'}; in use after the warm-up: "
              + ", ".join(f"{n} {v / MiB:.1f} MiB" for n, v in base.items()), flush=True)
        data = random.Random(1).randbytes(args.mib * MiB)
        want = (len(data), hashlib.sha256(data).hexdigest())
        for rnd in range(1, args.rounds + 1):
            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.flows) as ex:
                got = list(ex.map(lambda _: echo_roundtrip(port, data, timeout=300),
                                  range(args.flows)))
            took = time.monotonic() - t0
            bad = sum(1 for g in got if g != want)
            time.sleep(1)
            grown = {n: (heap_in_use(net[n]) - base[n]) / MiB for n in ("A", "B")}
            print(f"round {rnd}: {args.flows * args.mib * 2 / took:.0f} MiB/s echoed, "
                  f"{bad} bad; in use above the warm-up, idle: "
                  + ", ".join(f"{n} {v:+.1f} MiB" for n, v in grown.items()), flush=True)
    finally:
        for r in routers:
            r.stop()
        echo.close()


if __name__ == "__main__":
    main()
