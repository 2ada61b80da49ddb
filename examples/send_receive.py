#!/usr/bin/python3
"""Sends messages to an address through a Vane router and receives them back.

Uses Qpid Proton's Python binding (Debian: python3-qpid-proton, for /usr/bin/python3).
"""
import argparse
import sys

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


class SendReceive(MessagingHandler):
    def __init__(self, url, address, count):
        super().__init__()
        self.url, self.address, self.count = url, address, count
        self.sent = self.received = self.accepted = 0

    def on_start(self, event):
        conn = event.container.connect(self.url)
        self.receiver = event.container.create_receiver(conn, self.address)
        self.conn = conn

    def on_link_opened(self, event):
        # Attach the sender once the consumer exists: the router gives a
        # sender no credit while its address has no consumer.
        if event.receiver == self.receiver:
            event.container.create_sender(self.conn, self.address)

    def on_sendable(self, event):
        while event.sender.credit and self.sent < self.count:
            self.sent += 1
            event.sender.send(Message(body=f"hello {self.sent} via vane"))
            print(f"sent     '{self.address}': hello {self.sent} via vane")

    def on_message(self, event):
        self.received += 1
        print(f"received '{self.address}': {event.message.body}")

    def on_accepted(self, event):
        self.accepted += 1
        if self.accepted == self.count:
            print(f"all {self.count} messages accepted by the consumer, end to end")
            event.connection.close()

    def on_transport_error(self, event):
        print(f"cannot reach router at {self.url}: {event.transport.condition}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="127.0.0.1:5672")
    p.add_argument("--address", default="demo")
    p.add_argument("--count", type=int, default=3)
    a = p.parse_args()
    h = SendReceive(a.url, a.address, a.count)
    Container(h).run()
    sys.exit(0 if h.accepted == a.count else 1)


if __name__ == "__main__":
    main()
