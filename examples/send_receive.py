#!/usr/bin/python3
"""Sends messages to an address through Vane and receives them back.

The receiver attaches at --receive-url (default: the same router as --url),
the sender at --url: with two routers of a network, the messages cross it.
Uses Qpid Proton's Python binding (Debian: python3-qpid-proton, for /usr/bin/python3).
"""
import argparse
import sys

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import Container


class SendReceive(MessagingHandler):
    def __init__(self, url, receive_url, address, count):
        super().__init__()
        self.url, self.receive_url, self.address, self.count = url, receive_url, address, count
        self.sent = self.received = self.accepted = 0

    def on_start(self, event):
        self.rconn = event.container.connect(self.receive_url)
        self.receiver = event.container.create_receiver(self.rconn, self.address)

    def on_link_opened(self, event):
        # Attach the sender once the consumer exists. The router gives a
        # sender credit once a consumer of its address is reachable, which
        # across a network takes a moment to be known everywhere.
        if event.receiver == self.receiver:
            sconn = (self.rconn if self.url == self.receive_url
                     else event.container.connect(self.url))
            event.container.create_sender(sconn, self.address)

    def on_sendable(self, event):
        while event.sender.credit and self.sent < self.count:
            self.sent += 1
            event.sender.send(Message(body=f"hello {self.sent} via vane"))
            print(f"sent     '{self.address}' at {self.url}: hello {self.sent} via vane")

    def on_message(self, event):
        self.received += 1
        print(f"received '{self.address}' at {self.receive_url}: {event.message.body}")

    def on_accepted(self, event):
        self.accepted += 1
        if self.accepted == self.count:
            print(f"all {self.count} messages accepted by the consumer, end to end")
            event.container.stop()

    def on_transport_error(self, event):
        print(f"cannot reach router: {event.transport.condition}", file=sys.stderr)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", default="127.0.0.1:5672", help="router the sender attaches to")
    p.add_argument("--receive-url", default=None, help="router the receiver attaches to")
    p.add_argument("--address", default="demo")
    p.add_argument("--count", type=int, default=3)
    a = p.parse_args()
    h = SendReceive(a.url, a.receive_url or a.url, a.address, a.count)
    Container(h).run()
    sys.exit(0 if h.accepted == a.count else 1)


if __name__ == "__main__":
    main()
