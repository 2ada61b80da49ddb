"""AMQP features the router does not implement are refused as the
specification says, never accepted silently: a consumer's source filter is
left out of the attach the router returns (so the client sees it is not
filtered), and a transaction coordinator link is refused with
amqp:not-implemented (so the client does not hang on its declare)."""

import threading

from proton import Message
from proton.handlers import MessagingHandler, TransactionHandler
from proton.reactor import Container, Selector
from proton.utils import BlockingConnection

from vane_harness import make_config


def test_selector_filter_is_left_out_of_the_attach(router_factory, reactor):
    r = router_factory(make_config())
    url = f"127.0.0.1:{r.port}"
    rc = BlockingConnection(url)
    try:
        rx = rc.create_receiver("colours", credit=10, options=Selector("colour = 'red'"))
        # We asked for a filter ...
        assert rx.link.source.filter.format() != ""
        # ... and the router says it applies none.
        assert rx.link.remote_source.filter.format() == "", \
            f"router echoed a filter it does not apply: {rx.link.remote_source.filter.format()}"
        tx = reactor.connect(r.port).wait_open().sender("colours")
        recs = tx.send_many([Message(body=c, properties={"colour": c}) for c in ("red", "green")])
        # Unfiltered, as announced: both arrive.
        got = []
        for _ in range(2):
            got.append(rx.receive(timeout=10).body)
            rx.accept()
        assert sorted(got) == ["green", "red"]
        rc.wait(lambda: tx.settled_count() == 2, timeout=10)
        assert [rec.outcome for rec in recs] == ["ACCEPTED"] * 2
    finally:
        rc.close()
    assert r.alive()


class _Declare(MessagingHandler, TransactionHandler):
    """Declares a transaction and records how the router answers."""

    def __init__(self, url):
        super().__init__()
        self.url = url
        self.result = None
        self.condition = None
        self.done = threading.Event()

    def on_start(self, event):
        self.conn = event.container.connect(self.url)
        event.container.declare_transaction(self.conn, handler=self)

    def on_transaction_declared(self, event):
        self._finish("declared")

    def on_transaction_declare_failed(self, event):
        self._finish("declare-failed")

    def on_link_error(self, event):
        cond = event.link.remote_condition
        self.condition = (cond.name, cond.description) if cond else None
        self._finish("link-error")

    def on_link_remote_close(self, event):
        cond = event.link.remote_condition
        if cond is not None and self.condition is None:
            self.condition = (cond.name, cond.description)
        self._finish("link-closed")

    def _finish(self, what):
        if self.result is None:
            self.result = what
            self.done.set()
            self.conn.close()


def test_transaction_coordinator_is_refused(router_factory):
    r = router_factory(make_config())
    h = _Declare(f"127.0.0.1:{r.port}")
    c = Container(h)
    t = threading.Thread(target=c.run, daemon=True)
    t.start()
    try:
        assert h.done.wait(10), "no answer to the coordinator attach: the client hangs"
        assert h.result in ("link-error", "link-closed"), h.result
        assert h.condition is not None and h.condition[0] == "amqp:not-implemented", h.condition
    finally:
        c.stop()
        t.join(5)
    assert r.alive()
