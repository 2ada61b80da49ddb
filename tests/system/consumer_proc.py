"""A consumer in its own process, so a test can SIGKILL it mid-delivery.

usage: consumer_proc.py PORT ADDRESS CREDIT

Attaches a receiver to ADDRESS with CREDIT credit, never settles anything,
and reports progress on stdout: "ATTACHED" once the link is attached, then
"RECEIVED <message id>" per message.  Exits after 60 s at the latest.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vane_client import Reactor  # noqa: E402


def main():
    port, address, credit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    reactor = Reactor("consumer-proc")
    conn = reactor.connect(port).wait_open()
    rx = conn.receiver(address, credit=credit, outcome=None, auto_credit=False)
    print("ATTACHED", flush=True)
    reported = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        while reported < len(rx.received):
            print("RECEIVED", rx.received[reported].message.id, flush=True)
            reported += 1
        if conn.closed:
            print("CLOSED", conn.remote_condition, flush=True)
            break
        time.sleep(0.01)
    reactor.close()


if __name__ == "__main__":
    main()
