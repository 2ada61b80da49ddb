"""AMQP 1.0 test clients built on Qpid Proton's Python binding.

A ``Reactor`` runs one ``proton.reactor.Container`` in a background thread.
All proton objects are touched only on that thread: the test thread calls
``Reactor.call(fn)`` which injects ``fn`` into the container and waits for the
result.  Connection and link wrappers (``Conn``, ``SenderLink``,
``ReceiverLink``) record everything the peer does (credit, deliveries,
outcomes, closes) into plain Python attributes that tests poll with
``eventually``.

Credit and settlement are fully explicit: receivers grant exactly the credit
asked for, and either settle each delivery with a configured outcome or hold
it unsettled until the test settles it.
"""

import hashlib
import os
import queue
import socket
import threading
import time
import traceback
from collections import deque

from proton import Condition, Delivery, Endpoint, Handler, Link, Message, Transport, Connection
from proton.reactor import ApplicationEvent, Container, EventInjector

from vane_harness import eventually

# Whether clients use a SASL layer (ANONYMOUS) by default, as proton clients
# do.  vaned accepts both; VANE_TEST_SASL=0 makes plain AMQP the default.
SASL = os.environ.get("VANE_TEST_SASL", "1") not in ("", "0", "false", "no")

CALL_TIMEOUT = 15.0

# Outgoing messages larger than STREAM_CHUNK are written in pieces, keeping at
# most STREAM_BUFFER bytes queued in the session.
STREAM_CHUNK = 256 * 1024
STREAM_BUFFER = 2 * 1024 * 1024

ACCEPTED = Delivery.ACCEPTED
REJECTED = Delivery.REJECTED
RELEASED = Delivery.RELEASED
MODIFIED = Delivery.MODIFIED

OUTCOME_NAMES = {ACCEPTED: "ACCEPTED", REJECTED: "REJECTED", RELEASED: "RELEASED",
                 MODIFIED: "MODIFIED"}


def outcome_name(state):
    if state is None:
        return "None"
    for k, v in OUTCOME_NAMES.items():
        if state == k:
            return v
    return str(state)


class ClientError(Exception):
    pass


class _GlobalHandler(Handler):
    def __init__(self, reactor):
        super().__init__()
        self._reactor = reactor

    def on_vane_call(self, event):
        self._reactor._drain_calls()


class Reactor:
    """One proton Container running on a background thread."""

    def __init__(self, name="vane-test"):
        self.name = name
        self._calls = queue.Queue()
        self._injector = EventInjector()
        self.container = Container(_GlobalHandler(self))
        self.container.container_id = name
        self.container.selectable(self._injector)
        self.errors = []
        self.conns = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"proton-{name}", daemon=True)
        self._thread.start()

    # -- threading -----------------------------------------------------------
    def _run(self):
        try:
            self.container.run()
        except BaseException:  # keep the failure for the test thread to report
            self.errors.append(traceback.format_exc())

    def _drain_calls(self):
        while True:
            try:
                fn = self._calls.get_nowait()
            except queue.Empty:
                return
            fn()

    def call(self, fn, *args, timeout=CALL_TIMEOUT):
        """Run ``fn(*args)`` on the container thread; return its result."""
        if threading.current_thread() is self._thread:
            return fn(*args)
        done = threading.Event()
        box = {}

        def wrapped():
            try:
                box["result"] = fn(*args)
            except BaseException as exc:  # re-raised on the calling thread
                box["error"] = exc
                box["tb"] = traceback.format_exc()
            finally:
                done.set()

        if not self._thread.is_alive():
            raise ClientError(f"proton thread {self.name} is not running: {self.errors}")
        self._calls.put(wrapped)
        self._injector.trigger(ApplicationEvent("vane_call"))
        if not done.wait(timeout):
            raise ClientError(f"call into proton thread {self.name} timed out after {timeout}s;"
                              f" errors: {self.errors}")
        if "error" in box:
            raise ClientError(f"error on proton thread: {box['tb']}") from box["error"]
        return box.get("result")

    def schedule(self, delay, handler):
        """Container.schedule; only from the container thread."""
        return self.container.schedule(delay, handler)

    def check(self):
        assert not self.errors, f"proton thread {self.name} failed:\n" + "\n".join(self.errors)

    # -- connections -----------------------------------------------------------
    def connect(self, port, host="127.0.0.1", **kwargs):
        """Open a connection (does not wait for the remote open)."""
        conn = Conn(self, host, port, **kwargs)
        self.call(conn._open)
        self.conns.append(conn)
        return conn

    def close(self, timeout=5.0):
        """Close every connection and stop the container thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            try:
                self.call(self._close_all, timeout=timeout)
            except ClientError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not all(c.transport_closed for c in self.conns):
                time.sleep(0.02)

            def stop():
                self._injector.close()
                self.container.stop()
            try:
                self.call(stop, timeout=timeout)
            except ClientError:
                pass
            self._thread.join(timeout)

    def _close_all(self):
        for c in self.conns:
            c._close_local()


class Conn(Handler):
    """A client connection with one default session."""

    def __init__(self, reactor, host, port, sasl=None, max_frame_size=None, container_id=None,
                 idle_timeout=None, properties=None):
        super().__init__()
        self.reactor = reactor
        self.host = host
        self.port = port
        self.sasl = SASL if sasl is None else sasl
        self.max_frame_size = max_frame_size
        self.container_id = container_id
        self.idle_timeout = idle_timeout
        self.properties = properties
        self.connection = None
        self.session = None
        self.links = []
        self.remote_open = False
        self.remote_closed = False
        self.remote_condition = None        # (name, description) of the peer's close
        self.transport_closed = False
        self.transport_condition = None     # (name, description)
        self.events = []

    # -- created on the container thread ------------------------------------
    def _open(self):
        kwargs = {"handler": self, "reconnect": False, "sasl_enabled": self.sasl}
        if self.sasl:
            kwargs["allowed_mechs"] = "ANONYMOUS"
        if self.max_frame_size:
            kwargs["max_frame_size"] = self.max_frame_size
        if self.idle_timeout:
            kwargs["heartbeat"] = self.idle_timeout
        if self.properties:
            kwargs["properties"] = self.properties
        self.connection = self.reactor.container.connect(
            url=f"amqp://{self.host}:{self.port}", **kwargs)
        if self.container_id:
            self.connection.container = self.container_id
        self.session = self.connection.session()
        self.session.open()

    def _close_local(self):
        if self.connection is not None and self.connection.state & Endpoint.LOCAL_ACTIVE:
            self.connection.close()

    # -- proton events -----------------------------------------------------------
    def on_connection_remote_open(self, event):
        self.remote_open = True

    def on_connection_remote_close(self, event):
        self.remote_closed = True
        cond = event.connection.remote_condition
        if cond is not None:
            self.remote_condition = (cond.name, cond.description)
        if event.connection.state & Endpoint.LOCAL_ACTIVE:
            event.connection.close()

    def on_session_remote_open(self, event):
        if event.session.state & Endpoint.LOCAL_UNINIT:
            event.session.open()

    def on_session_remote_close(self, event):
        if event.session.state & Endpoint.LOCAL_ACTIVE:
            event.session.close()

    def on_link_remote_open(self, event):
        # Links we did not create (the router never should): refuse them.
        if event.link.state & Endpoint.LOCAL_UNINIT:
            self.events.append(("unexpected-link", event.link.name))
            event.link.close()

    def on_transport_error(self, event):
        cond = event.transport.condition
        if cond is not None:
            self.transport_condition = (cond.name, cond.description)

    def on_transport_closed(self, event):
        self.transport_closed = True

    # -- API for the test thread ------------------------------------------------
    def wait_open(self, timeout=10.0):
        eventually(timeout, lambda: self.remote_open or self.transport_closed,
                   what=f"connection to port {self.port} opened")
        assert self.remote_open, (f"connection to port {self.port} failed: "
                                  f"{self.transport_condition} {self.remote_condition}")
        return self

    def sender(self, address, settled=False, name=None, new_session=False, wait=True,
               timeout=10.0):
        link = SenderLink(self, address, settled=settled, name=name)
        self.reactor.call(link._open, new_session)
        self.links.append(link)
        if wait:
            link.wait_open(timeout)
        return link

    def receiver(self, address, credit=10, outcome=ACCEPTED, auto_credit=True, dynamic=False,
                 name=None, new_session=False, session_capacity=None, read_chunk=None,
                 read_interval=0.05, keep_bodies=True, settled=False, wait=True, timeout=10.0):
        link = ReceiverLink(self, address, credit=credit, outcome=outcome, auto_credit=auto_credit,
                            dynamic=dynamic, name=name, read_chunk=read_chunk,
                            read_interval=read_interval, keep_bodies=keep_bodies,
                            settled=settled)
        self.reactor.call(link._open, new_session or session_capacity is not None,
                          session_capacity)
        self.links.append(link)
        if wait:
            link.wait_open(timeout)
        return link

    def receivers(self, addresses, wait=True, timeout=60.0, **kwargs):
        """Attach many receivers in one go (one call into the proton thread)."""
        links = [ReceiverLink(self, a, **kwargs) for a in addresses]
        self.reactor.call(lambda: [link._open(False, None) for link in links])
        self.links.extend(links)
        if wait:
            _wait_links_open(links, timeout)
        return links

    def senders(self, addresses, wait=True, timeout=60.0, **kwargs):
        links = [SenderLink(self, a, **kwargs) for a in addresses]
        self.reactor.call(lambda: [link._open(False) for link in links])
        self.links.extend(links)
        if wait:
            _wait_links_open(links, timeout)
        return links

    def close(self, wait=True, timeout=10.0):
        self.reactor.call(self._close_local)
        if wait:
                eventually(timeout, lambda: self.transport_closed,
                       what=f"connection to port {self.port} closed")

    @property
    def closed(self):
        return self.remote_closed or self.transport_closed


def _wait_links_open(links, timeout):
    def check():
        bad = [link for link in links if link.remote_closed]
        assert not bad, f"{len(bad)} links refused, e.g. {bad[0].address}: {bad[0].remote_condition}"
        conns = {id(link.conn): link.conn for link in links}
        dead = [c for c in conns.values() if c.closed]
        assert not dead, f"connection closed: {dead[0].remote_condition} {dead[0].transport_condition}"
        return all(link.remote_open for link in links)
    eventually(timeout, check, interval=0.05,
               what=lambda: f"{sum(1 for l in links if l.remote_open)}/{len(links)} links attached")


_link_counter = [0]
_link_counter_lock = threading.Lock()


def _unique_name(prefix):
    with _link_counter_lock:
        _link_counter[0] += 1
        return f"{prefix}-{os.getpid()}-{_link_counter[0]}"


class _LinkBase(Handler):
    def __init__(self, conn, address, name):
        super().__init__()
        self.conn = conn
        self.reactor = conn.reactor
        self.address = address
        self.name = name
        self.link = None
        self.remote_open = False
        self.remote_closed = False
        self.remote_condition = None
        self.remote_source_address = None
        self.remote_target_address = None
        self.remote_source_dynamic = None

    def _session(self, new_session, capacity=None):
        if not new_session:
            return self.conn.session
        ssn = self.conn.connection.session()
        if capacity is not None:
            ssn.incoming_capacity = capacity
        ssn.open()
        return ssn

    def on_link_remote_open(self, event):
        link = event.link
        self.remote_open = True
        self.remote_source_address = link.remote_source.address
        self.remote_target_address = link.remote_target.address
        self.remote_source_dynamic = link.remote_source.dynamic
        self._remote_opened(event)

    def _remote_opened(self, event):
        pass

    def on_link_remote_close(self, event):
        self.remote_closed = True
        cond = event.link.remote_condition
        if cond is not None:
            self.remote_condition = (cond.name, cond.description)
        if event.link.state & Endpoint.LOCAL_ACTIVE:
            event.link.close()

    def wait_open(self, timeout=10.0):
        eventually(timeout, lambda: self.remote_open or self.remote_closed or self.conn.closed,
                   what=f"link {self.name} ({self.address}) attached")
        assert self.remote_open and not self.remote_closed, (
            f"link {self.name} ({self.address}) refused: link {self.remote_condition}, "
            f"connection {self.conn.remote_condition} {self.conn.transport_condition}")
        return self

    def detach(self, wait=True, timeout=10.0):
        def close():
            if self.link.state & Endpoint.LOCAL_ACTIVE:
                self.link.close()
        self.reactor.call(close)
        if wait:
                eventually(timeout, lambda: self.remote_closed or self.conn.closed,
                       what=f"link {self.name} detach acknowledged")

    @property
    def closed(self):
        return self.remote_closed or self.conn.closed


class SentRecord:
    """What happened to one outgoing delivery."""

    __slots__ = ("index", "tag", "message", "presettled", "sent", "state", "remote_settled",
                 "condition", "failed", "undeliverable", "updates", "sent_at", "settled_at")

    def __init__(self, index, message, presettled):
        self.index = index
        self.tag = None
        self.message = message
        self.presettled = presettled
        self.sent = False
        self.state = None
        self.remote_settled = False
        self.condition = None
        self.failed = None
        self.undeliverable = None
        self.updates = 0
        self.sent_at = None
        self.settled_at = None

    @property
    def outcome(self):
        return outcome_name(self.state)

    def __repr__(self):
        return (f"<Sent #{self.index} sent={self.sent} state={self.outcome} "
                f"settled={self.remote_settled} cond={self.condition} failed={self.failed} "
                f"undeliverable={self.undeliverable}>")


class SenderLink(_LinkBase):
    def __init__(self, conn, address, settled=False, name=None):
        super().__init__(conn, address, name or _unique_name("snd"))
        self.settled_mode = settled
        self.pending = deque()
        self.records = []
        self.max_credit = 0
        self.credit_seen = 0
        self._tag = 0
        self._stream = None

    def _open(self, new_session):
        ssn = self._session(new_session)
        link = ssn.sender(self.name)
        link.target.address = self.address      # None -> anonymous sender (null target address)
        link.source.address = self.name
        if self.settled_mode:
            link.snd_settle_mode = Link.SND_SETTLED
        link.handler = self
        link.open()
        self.link = link

    # -- events --------------------------------------------------------------
    def on_link_flow(self, event):
        self._note_credit()
        self._pump()

    def _remote_opened(self, event):
        self._note_credit()
        self._pump()

    def _note_credit(self):
        credit = self.link.credit
        self.credit_seen = credit
        if credit > self.max_credit:
            self.max_credit = credit

    def on_delivery(self, event):
        dlv = event.delivery
        rec = getattr(dlv, "vane_record", None)
        if rec is None:
            return
        if dlv.updated or dlv.settled:
            rec.updates += 1
            state = dlv.remote_state
            if state:
                rec.state = state
                cond = dlv.remote.condition
                if cond is not None:
                    rec.condition = (cond.name, cond.description)
                rec.failed = dlv.remote.failed
                rec.undeliverable = dlv.remote.undeliverable
            if dlv.settled:
                rec.remote_settled = True
                rec.settled_at = time.monotonic()
                dlv.settle()

    def _pump(self):
        link = self.link
        while (self.pending and self._stream is None and link.credit > 0
               and link.state & Endpoint.LOCAL_ACTIVE):
            rec, data = self.pending.popleft()
            if callable(data):
                data = data()
            if isinstance(data, Message):
                data = data.encode()
            self._tag += 1
            rec.tag = str(self._tag)
            dlv = link.delivery(rec.tag)
            dlv.vane_record = rec
            rec.sent = True
            rec.sent_at = time.monotonic()
            if len(data) > STREAM_CHUNK and not rec.presettled:
                # Hand big messages to proton a piece at a time: proton's output
                # path is very slow when one delivery holds tens of MiB. Not a
                # pre-settled one: its first transfer frame must already say
                # settled, so it is settled before proton frames any of it.
                self._stream = (dlv, rec, memoryview(data), 0)
                self._stream_more()
                break
            link.send(data)
            self._finish(dlv, rec)
        self._note_credit()

    def _finish(self, dlv, rec):
        self.link.advance()
        if rec.presettled:
            dlv.settle()

    def _stream_more(self):
        dlv, rec, view, offset = self._stream
        link = self.link
        if not (link.state & Endpoint.LOCAL_ACTIVE) or self.closed:
            self._stream = None
            return
        while offset < len(view) and link.session.outgoing_bytes < STREAM_BUFFER:
            chunk = bytes(view[offset:offset + STREAM_CHUNK])
            link.send(chunk)
            offset += len(chunk)
        if offset < len(view):
            self._stream = (dlv, rec, view, offset)
            self.reactor.schedule(0.002, self)
            return
        self._stream = None
        self._finish(dlv, rec)
        self._pump()

    def on_timer_task(self, event):
        if self._stream is not None:
            self._stream_more()

    def _enqueue(self, items):
        out = []
        for msg, presettled in items:
            rec = SentRecord(len(self.records), msg, presettled)
            self.records.append(rec)
            self.pending.append((rec, msg))
            out.append(rec)
        if self.link is not None and self.link.state & Endpoint.LOCAL_ACTIVE:
            self._pump()
        return out

    # -- API -----------------------------------------------------------------
    def send(self, message, settled=None):
        """Queue a message (Message, encoded bytes, or a callable producing one).

        It is transmitted as soon as the link has credit.  Returns its SentRecord.
        """
        presettled = self.settled_mode if settled is None else settled
        return self.reactor.call(self._enqueue, [(message, presettled)])[0]

    def send_many(self, messages, settled=None):
        presettled = self.settled_mode if settled is None else settled
        return self.reactor.call(self._enqueue, [(m, presettled) for m in messages])

    @property
    def credit(self):
        return self.reactor.call(lambda: self.link.credit)

    def sent_count(self):
        return sum(1 for r in self.records if r.sent)

    def settled_count(self):
        return sum(1 for r in self.records if r.remote_settled)

    def unsent_count(self):
        return len(self.pending)

    def wait_all_settled(self, timeout=10.0, records=None):
        recs = list(self.records if records is None else records)

        def check():
            missing = [r for r in recs if not r.remote_settled]
            assert not missing, (f"{len(missing)}/{len(recs)} deliveries on {self.name} "
                                 f"unsettled, e.g. {missing[:3]}")
            return True
        eventually(timeout, check, what=f"all deliveries on {self.name} settled")
        return recs


class Received:
    """One delivery that arrived on a receiver."""

    __slots__ = ("index", "message", "body", "size", "digest", "presettled", "delivery",
                 "settled", "local_outcome", "remote_settled_later", "received_at")

    def __init__(self, index, message, size, digest, presettled, delivery, keep_body):
        self.index = index
        self.message = message
        self.body = message.body if (message is not None and keep_body) else None
        self.size = size
        self.digest = digest
        self.presettled = presettled
        self.delivery = delivery
        self.settled = presettled
        self.local_outcome = None
        self.remote_settled_later = False
        self.received_at = time.monotonic()

    def __repr__(self):
        return (f"<Received #{self.index} size={self.size} presettled={self.presettled} "
                f"settled={self.settled} outcome={outcome_name(self.local_outcome)}>")


class ReceiverLink(_LinkBase):
    """A receiver with explicit credit and settlement policy.

    credit       initial credit granted on attach
    outcome      ACCEPTED/REJECTED/RELEASED/MODIFIED applied (and settled) on receipt,
                 or None to hold deliveries unsettled until settle() is called
    auto_credit  grant one more credit after each delivery is complete
    read_chunk   if set, read at most this many bytes every read_interval seconds
                 (a slow reader: the session window then throttles the router)
    settled      attach with snd-settle-mode `settled`: ask for pre-settled deliveries
    """

    def __init__(self, conn, address, credit=10, outcome=ACCEPTED, auto_credit=True,
                 dynamic=False, name=None, read_chunk=None, read_interval=0.05,
                 keep_bodies=True, settled=False):
        super().__init__(conn, address, name or _unique_name("rcv"))
        self.settled_mode = settled
        self.initial_credit = credit
        self.outcome = outcome
        self.auto_credit = auto_credit
        self.dynamic = dynamic
        self.read_chunk = read_chunk
        self.read_interval = read_interval
        self.keep_bodies = keep_bodies
        self.received = []
        self.aborted = 0
        self.bytes_read = 0
        self.outcome_condition = None          # (name, description) for REJECTED
        self.modified_failed = True
        self.modified_undeliverable = False
        self._buffers = {}
        self._ticking = False
        self.on_message = None                 # optional callback(link, Received) on proton thread

    def _open(self, new_session, capacity):
        ssn = self._session(new_session, capacity)
        link = ssn.receiver(self.name)
        if self.dynamic:
            link.source.dynamic = True
            link.source.address = None
        else:
            link.source.address = self.address
        link.target.address = self.name
        if self.settled_mode:
            link.snd_settle_mode = Link.SND_SETTLED
        link.handler = self
        link.open()
        if self.initial_credit:
            link.flow(self.initial_credit)
        self.link = link
        if self.read_chunk:
            self._start_ticker()

    def _start_ticker(self):
        if not self._ticking:
            self._ticking = True
            self.reactor.schedule(self.read_interval, self)

    def on_timer_task(self, event):
        self._ticking = False
        link = self.link
        if link is None or not (link.state & Endpoint.LOCAL_ACTIVE) or self.closed:
            return
        dlv = link.current
        budget = self.read_chunk
        while dlv is not None and budget > 0:
            if dlv.aborted:
                self._aborted(dlv)
            elif dlv.pending:
                data = link.recv(min(budget, dlv.pending))
                if data:
                    budget -= len(data)
                    self._append(dlv, data)
            if dlv.aborted or dlv.partial or dlv.pending:
                break
            if getattr(dlv, "vane_done", False):
                break
            self._complete(dlv)
            dlv = link.current
        self._start_ticker()

    def _append(self, dlv, data):
        buf = self._buffers.get(id_of(dlv))
        if buf is None:
            buf = bytearray()
            self._buffers[id_of(dlv)] = buf
        buf += data
        self.bytes_read += len(data)

    def _aborted(self, dlv):
        self._buffers.pop(id_of(dlv), None)
        dlv.vane_done = True
        self.aborted += 1
        dlv.settle()
        if self.auto_credit:
            self.link.flow(1)

    def on_delivery(self, event):
        dlv = event.delivery
        if getattr(dlv, "vane_done", False):
            rec = getattr(dlv, "vane_received", None)
            if rec is not None and dlv.settled and not rec.settled:
                rec.remote_settled_later = True
            return
        if dlv.aborted:
            self._aborted(dlv)
            return
        if self.read_chunk:
            self._start_ticker()
            return
        if not dlv.readable:
            return
        while True:
            pending = dlv.pending
            if not pending:
                break
            data = self.link.recv(pending)
            if not data:
                break
            self._append(dlv, data)
        if dlv.partial:
            return
        self._complete(dlv)

    def _complete(self, dlv):
        buf = self._buffers.pop(id_of(dlv), bytearray())
        dlv.vane_done = True
        msg = Message()
        try:
            msg.decode(bytes(buf))
        except Exception:  # keep the raw bytes; a test will notice
            msg = None
        body = msg.body if msg is not None else None
        if isinstance(body, (bytes, bytearray, memoryview)):
            digest = hashlib.sha256(body).hexdigest()
            size = len(body)
        else:
            digest = None
            size = len(buf)
        presettled = dlv.settled
        rec = Received(len(self.received), msg, size, digest, presettled, dlv,
                       self.keep_bodies or size < 4096)
        dlv.vane_received = rec
        self.link.advance()
        self.received.append(rec)
        if presettled:
            dlv.settle()
        elif self.outcome is not None:
            self._settle(rec, self.outcome)
        if self.auto_credit:
            self.link.flow(1)
        if self.on_message is not None:
            self.on_message(self, rec)

    def _settle(self, rec, outcome, condition=None, failed=None, undeliverable=None):
        if rec.settled:
            return
        dlv = rec.delivery
        if outcome == REJECTED:
            cond = condition or self.outcome_condition
            if cond is not None:
                dlv.local.condition = Condition(cond[0], cond[1])
        if outcome == MODIFIED:
            dlv.local.failed = self.modified_failed if failed is None else failed
            dlv.local.undeliverable = (self.modified_undeliverable if undeliverable is None
                                       else undeliverable)
        if outcome is not None:
            dlv.update(outcome)
        dlv.settle()
        rec.settled = True
        rec.local_outcome = outcome
        rec.delivery = None

    # -- API -----------------------------------------------------------------
    def settle(self, rec, outcome=ACCEPTED, condition=None, failed=None, undeliverable=None):
        if isinstance(rec, int):
            rec = self.received[rec]
        self.reactor.call(self._settle, rec, outcome, condition, failed, undeliverable)

    def settle_all(self, outcome=ACCEPTED):
        def go():
            for rec in self.received:
                self._settle(rec, outcome)
        self.reactor.call(go)

    def flow(self, n):
        self.reactor.call(lambda: self.link.flow(n))

    @property
    def credit(self):
        return self.reactor.call(lambda: self.link.credit)

    def count(self):
        return len(self.received)

    def bodies(self):
        return [r.body for r in self.received]

    def wait_count(self, n, timeout=10.0):
        eventually(timeout, lambda: len(self.received) >= n,
                   what=lambda: f"{n} messages on {self.name} ({self.address}); "
                                f"have {len(self.received)}")
        return self.received

    def unsettled(self):
        return [r for r in self.received if not r.settled]


def id_of(dlv):
    """A key for a delivery while it is being received (tags are unique per link)."""
    return dlv.tag


# --------------------------------------------------------------------------
# Traffic: a sender/receiver pair that keeps exchanging messages.

class Traffic(Handler):
    """A steady ping of messages over one connection pair.

    Sends one unsettled message at a time (every ``interval`` seconds, once the
    previous one is settled) to ``address``; a receiver on a separate connection
    accepts them.  ``errors`` collects anything unexpected.
    """

    def __init__(self, reactor, port, address="traffic", interval=0.01):
        super().__init__()
        self.reactor = reactor
        self.address = address
        self.interval = interval
        self.rconn = reactor.connect(port).wait_open()
        self.sconn = reactor.connect(port).wait_open()
        self.receiver = self.rconn.receiver(address, credit=20)
        self.sender = self.sconn.sender(address)
        self.accepted = 0
        self.errors = []
        self._current = None
        self._stopped = False
        reactor.call(lambda: reactor.schedule(0, self))

    def on_timer_task(self, event):
        if self._stopped:
            return
        rec = self._current
        if rec is not None and rec.remote_settled:
            if rec.state == ACCEPTED:
                self.accepted += 1
            else:
                self.errors.append(f"traffic delivery #{rec.index} got {rec!r}")
            self._current = None
        for name, obj in (("receiver connection", self.rconn), ("sender connection", self.sconn)):
            if obj.closed:
                msg = (f"{name} closed: {obj.remote_condition} {obj.transport_condition}")
                if msg not in self.errors:
                    self.errors.append(msg)
        for name, link in (("receiver", self.receiver), ("sender", self.sender)):
            if link.remote_closed:
                msg = f"{name} link detached: {link.remote_condition}"
                if msg not in self.errors:
                    self.errors.append(msg)
        if self._current is None and not self.sender.closed:
            n = len(self.sender.records)
            self._current = self.sender._enqueue([(Message(body=f"tick-{n}"), False)])[0]
        self.reactor.schedule(self.interval, self)

    def wait_flowing(self, n=5, timeout=10.0):
        start = self.accepted
        eventually(timeout, lambda: self.accepted >= start + n or self.errors,
                   what=f"{n} more traffic messages accepted (have {self.accepted - start})")
        self.check()

    def check(self):
        assert not self.errors, f"background traffic broke: {self.errors}"

    def stop(self):
        self._stopped = True


# --------------------------------------------------------------------------
# Raw AMQP: a proton Transport driven over a plain socket, for bad input.

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"


class RawAmqp:
    """A client whose bytes we control.

    Valid traffic is produced by a proton Transport (so the handshake is real);
    ``inject`` writes arbitrary bytes straight to the socket.  Everything the
    router sends is fed back into the Transport so its close frame (and error
    condition) can be inspected.
    """

    def __init__(self, port, host="127.0.0.1", sasl=None, max_frame_size=None):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.sock.settimeout(0.05)
        self.transport = Transport()
        self.sasl = SASL if sasl is None else sasl
        if self.sasl:
            s = self.transport.sasl()
            s.allowed_mechs("ANONYMOUS")
        if max_frame_size:
            self.transport.max_frame_size = max_frame_size
        self.connection = Connection()
        self.connection.container = "raw-client"
        self.connection.hostname = host
        self.transport.bind(self.connection)
        self.received = bytearray()
        self.eof = False
        self.reset = False
        self.write_output = True       # stop pumping transport output after injection

    def pump(self, max_out=None):
        """Exchange bytes once: write pending output, read what is available."""
        written = 0
        if self.write_output:
            while True:
                pending = self.transport.pending()
                if pending <= 0:
                    break
                n = pending if max_out is None else min(pending, max_out - written)
                if n <= 0:
                    break
                data = self.transport.peek(n)
                sent = self._send(data)
                if sent <= 0:
                    break
                self.transport.pop(sent)
                written += sent
                if sent < len(data):
                    break
        self._read()
        return written

    def _send(self, data):
        try:
            return self.sock.send(data)
        except socket.timeout:
            return 0
        except OSError:
            self.reset = True
            return -1

    def _read(self):
        while not self.eof:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return
            except OSError:
                self.eof = True
                self.reset = True
                self._close_tail()
                return
            if not data:
                self.eof = True
                self._close_tail()
                return
            self.received += data
            self._push(data)

    def _push(self, data):
        view = memoryview(data)
        while len(view):
            cap = self.transport.capacity()
            if cap <= 0:
                return
            n = min(cap, len(view))
            self.transport.push(bytes(view[:n]))
            view = view[n:]

    def _close_tail(self):
        try:
            self.transport.close_tail()
        except Exception:
            pass

    def run_until(self, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            if predicate():
                return True
        return predicate()

    def open(self, session=True, timeout=10.0, session_capacity=None):
        self.connection.open()
        if session:
            self.session = self.connection.session()
            if session_capacity is not None:
                self.session.incoming_capacity = session_capacity
            self.session.open()
        ok = self.run_until(lambda: (self.connection.state & Endpoint.REMOTE_ACTIVE and
                                     (not session or self.session.state & Endpoint.REMOTE_ACTIVE))
                            or self.eof, timeout)
        assert ok and not self.eof, (f"raw AMQP handshake failed: eof={self.eof} "
                                     f"received={bytes(self.received[:200])!r}")

    def inject(self, data):
        self.write_output = False
        self.sock.sendall(data)

    def wait_closed(self, timeout=10.0):
        """Read until the router closes the socket."""
        self.run_until(lambda: self.eof, timeout)
        return self.eof

    @property
    def remote_condition(self):
        cond = self.connection.remote_condition
        return None if cond is None else (cond.name, cond.description)

    @property
    def remote_closed(self):
        return bool(self.connection.state & Endpoint.REMOTE_CLOSED)

    def close(self, linger_reset=False):
        try:
            if linger_reset:
                import struct
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass


def amqp_frame(body, channel=0, frame_type=0):
    """Frame ``body`` (performative + payload bytes) with a standard 8-byte header."""
    size = 8 + len(body)
    return size.to_bytes(4, "big") + bytes([2, frame_type]) + channel.to_bytes(2, "big") + body


def encode_transfer(handle, delivery_id, tag, settled=True, payload=b""):
    """A transfer performative encoded by hand (list8 of 5 fields) plus payload."""
    fields = bytearray()
    fields += b"\x52" + bytes([handle])             # handle: smalluint
    fields += b"\x52" + bytes([delivery_id])        # delivery-id: smalluint
    fields += b"\xa0" + bytes([len(tag)]) + tag      # delivery-tag: vbin8
    fields += b"\x43"                                # message-format: uint0
    fields += b"\x41" if settled else b"\x42"        # settled: true/false
    lst = b"\xc0" + bytes([len(fields) + 1, 5]) + bytes(fields)
    return b"\x00\x53\x14" + lst + payload


def body_digest(data):
    return hashlib.sha256(data).hexdigest()
