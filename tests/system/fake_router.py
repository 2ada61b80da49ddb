"""A peer that speaks the Vane router protocol (docs/design/router-protocol.md)
well enough to link to a real vaned and then misbehave: forge link-state and
address records, send deliveries with any route header.

It is a Proton Container on a thread of its own. It dials an inter-router
(or edge) listener as router `rid`, opens its control and data links, says
`hello` every `hello_ms`, takes whatever the router sends (control messages
are decoded and kept; data and stream deliveries are kept raw, route header
split off) and sends what the test asks for through `call()`.

Records and hellos are signed as docs/design/router-protocol.md says
(Signatures) with the fake's own Ed25519 key (`key`, a new one unless
given): `ls_record()` and `address_record()` build signed records, and the
module functions sign with any key, so a test can forge a record for a real
router's id under its own key, copy a real key with a bad signature, or
send records unsigned.
"""

import base64
import hashlib
import itertools
import json
import struct
import threading
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from proton import Data, Link, Message, symbol, ulong
from proton.handlers import IncomingMessageHandler, MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

ROUTE_DESCRIPTOR = "vane:route:v1"


# -- signatures (router-protocol.md, Signatures) ------------------------------

def _u32(n):
    return struct.pack(">I", n)


def _u64(n):
    return struct.pack(">Q", n)


def _str(s):
    b = s.encode() if isinstance(s, str) else s
    return _u32(len(b)) + b


def _b64(b):
    return base64.b64encode(b).decode()


def public_key(key):
    """The raw 32 bytes of an Ed25519 private key's public key."""
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def ls_input(rid, instance, seq, links):
    """What a link-state record's signature covers; `links`: {id: cost}."""
    items = sorted((k.encode(), c) for k, c in links.items() if k != rid)
    body = _u32(len(items)) + b"".join(_str(k) + _u32(c) for k, c in items)
    return (b"vane-ls-v1\0" + _str(rid) + _u64(instance) + _u64(seq) +
            hashlib.sha256(body).digest())


def address_input(rid, instance, seq, addresses):
    """What an address record's signature covers: the set it results in."""
    items = sorted({a.encode() for a in addresses})
    body = _u32(len(items)) + b"".join(_str(a) for a in items)
    return (b"vane-addr-v1\0" + _str(rid) + _u64(instance) + _u64(seq) +
            hashlib.sha256(body).digest())


def hello_input(rid, instance, to):
    return b"vane-hello-v1\0" + _str(rid) + _u64(instance) + _str(to)


def signed(record, key, message):
    """`record` (a dict) with "key" and "sig" by `key` over `message`."""
    return dict(record, key=_b64(public_key(key)), sig=_b64(key.sign(message)))


def sign_ls(record, key):
    return signed(record, key, ls_input(record["id"], record["instance"], record["seq"],
                                        record["links"]))


def sign_address(record, key, result=None):
    """A full record is signed over its `exist`; an incremental one over
    `result`, the set it results in."""
    addresses = record["exist"] if "exist" in record else result
    assert addresses is not None, "an incremental record is signed over its resulting set"
    return signed(record, key, address_input(record["id"], record["instance"], record["seq"],
                                             addresses))


def encode_route_header(address, dest=None, dests=None, hops=0, origin="", presettled=False):
    d = Data()
    d.put_described()
    d.enter()
    d.put_symbol(symbol(ROUTE_DESCRIPTOR))
    d.put_list()
    d.enter()
    d.put_string(address)
    if dest is None:
        d.put_null()
    else:
        d.put_string(dest)
    if dests is None:
        d.put_null()
    else:
        d.put_list()
        d.enter()
        for x in dests:
            d.put_string(x)
        d.exit()
    d.put_uint(hops)
    d.put_string(origin)
    d.put_bool(presettled)
    d.exit()
    d.exit()
    return d.encode()


def encode_control(text):
    """One amqp-value section holding `text` as a string: a control message."""
    d = Data()
    d.put_described()
    d.enter()
    d.put_ulong(0x77)
    d.put_string(text)
    d.exit()
    return d.encode()


def split_route_header(raw):
    """(header fields as a list, the message bytes after it)."""
    d = Data()
    used = d.decode(raw)
    d.rewind()
    d.next()
    return d.get_py_described().value, raw[used:]


class Arrival:
    def __init__(self, link, header, body):
        self.link = link
        self.header = header      # [address, dest, dests, hops, origin, ...]
        self.body = body          # the message bytes (may be a partial stream)

    @property
    def address(self):
        return self.header[0]

    def message(self):
        m = Message()
        m.decode(self.body)
        return m


class FakeRouter(MessagingHandler):
    def __init__(self, url, rid, instance=None, mode="interior", cost=1, hello_ms=200,
                 send_hello=True, key=None, sign_hello=True):
        super().__init__(prefetch=100, auto_accept=False, auto_settle=True)
        # Deliveries are read raw here (route headers, partial streams).
        self.handlers = [h for h in self.handlers if not isinstance(h, IncomingMessageHandler)]
        self.url = url
        self.rid = rid
        self.instance = instance if instance is not None else int(time.time() * 1e6)
        self.mode = mode
        self.cost = cost
        self.hello_ms = hello_ms
        self.send_hello = send_hello
        self.key = key if key is not None else Ed25519PrivateKey.generate()
        self.sign_hello = sign_hello
        self.peer_id = None         # the router's id (its container id)
        self.lock = threading.Lock()
        self.control_in = []        # decoded JSON messages from the router
        self.arrivals = []          # Arrival, for data and stream deliveries
        self.partial = {}           # delivery -> bytes so far
        self.conn = None
        self.control = None
        self.data = None
        self.closed = threading.Event()
        self.opened = threading.Event()
        self.remote_condition = None
        self._tags = itertools.count(1)
        self._calls = []
        self._injector = EventInjector()
        self.container = Container(self)
        self.container.container_id = rid
        self.container.selectable(self._injector)
        self.thread = threading.Thread(target=self.container.run, daemon=True)

    # -- public ----------------------------------------------------------
    def start(self, timeout=10.0):
        self.thread.start()
        if not self.opened.wait(timeout):
            raise AssertionError(f"fake router {self.rid}: links not up in {timeout} s "
                                 f"(remote condition {self.remote_condition})")
        if self.send_hello:
            # The router says hello once the neighbour is up; a hello of ours
            # that arrived before that was ignored, so answer its first one:
            # then the adjacency is established at both ends.
            deadline = time.monotonic() + timeout
            while not self.controls("hello") or self.peer_id is None:
                if time.monotonic() > deadline:
                    raise AssertionError(f"fake router {self.rid}: no hello in {timeout} s")
                time.sleep(0.01)
            self.send_control(self.hello())
        return self

    def call(self, fn):
        """Runs fn() on the container's thread; returns its result."""
        done = threading.Event()
        box = {}

        def run():
            try:
                box["value"] = fn()
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                box["error"] = exc
            done.set()

        with self.lock:
            self._calls.append(run)
        self._injector.trigger(ApplicationEvent("fake_call"))
        if not done.wait(10):
            raise AssertionError("fake router: call not run in 10 s")
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def send_control(self, obj):
        """Sends one protocol message (a dict, or raw JSON text)."""
        text = obj if isinstance(obj, str) else json.dumps(obj)
        self.call(lambda: self._send(self.control, encode_control(text), settled=True))

    def send_data(self, header, message_bytes, settled=False):
        """Sends one delivery on the data link: header bytes + message bytes."""
        return self.call(lambda: self._send(self.data, header + message_bytes, settled=settled))

    def hello(self):
        h = {"v": 1, "type": "hello", "id": self.rid, "instance": self.instance,
             "cost": self.cost, "mode": self.mode}
        if self.sign_hello and self.peer_id is not None:
            h = signed(h, self.key, hello_input(self.rid, self.instance, self.peer_id))
        return h

    def ls_record(self, links, seq=1, rid=None, instance=None, key=None):
        """A signed link-state record (by default the fake's own)."""
        rec = {"id": rid or self.rid, "instance": self.instance if instance is None else instance,
               "seq": seq, "links": links}
        return sign_ls(rec, key or self.key)

    def address_record(self, exist, seq=1, rid=None, instance=None, key=None):
        """A signed full address record (by default the fake's own)."""
        rec = {"id": rid or self.rid, "instance": self.instance if instance is None else instance,
               "seq": seq, "exist": sorted(set(exist))}
        return sign_address(rec, key or self.key)

    def lsu(self, records):
        return {"v": 1, "type": "lsu", "records": records}

    def mau(self, updates):
        return {"v": 1, "type": "mau", "updates": updates}

    def controls(self, type_=None):
        with self.lock:
            return [m for m in self.control_in if type_ is None or m.get("type") == type_]

    def got(self):
        with self.lock:
            return list(self.arrivals)

    def close(self):
        def shut():
            if self.conn is not None and not self.closed.is_set():
                self.conn.close()
        try:
            self.call(shut)
        except AssertionError:
            pass
        self.closed.wait(5)
        self.container.stop()
        self.thread.join(5)

    # -- internals -------------------------------------------------------
    def _send(self, link, payload, settled):
        dlv = link.delivery(str(next(self._tags)))
        link.send(payload)
        link.advance()
        if settled:
            dlv.settle()
        return dlv

    def on_fake_call(self, event):
        with self.lock:
            calls, self._calls = self._calls, []
        for c in calls:
            c()

    def on_start(self, event):
        self.conn = event.container.connect(
            self.url, properties={symbol("vane-instance"): ulong(self.instance)},
            sasl_enabled=False, reconnect=False)
        ctl_ssn = self.conn.session()
        ctl_ssn.open()
        self.control = ctl_ssn.sender("vane-control")
        self.control.target.address = "_vane/control"
        self.control.source.address = "_vane/control"
        self.control.snd_settle_mode = Link.SND_SETTLED
        self.control.open()
        data_ssn = self.conn.session()
        data_ssn.open()
        self.data = data_ssn.sender("vane-data")
        self.data.target.address = "_vane/data"
        self.data.source.address = "_vane/data"
        self.data.open()
        if self.send_hello:
            event.container.schedule(0, self)

    def on_timer_task(self, event):
        if self.closed.is_set() or self.conn is None:
            return
        if (self.control is not None and self.control.state & Link.LOCAL_ACTIVE and
                (self.peer_id is not None or not self.sign_hello)):
            self._send(self.control, encode_control(json.dumps(self.hello())), True)
        event.container.schedule(self.hello_ms / 1000.0, self)

    def on_connection_opened(self, event):
        self.peer_id = event.connection.remote_container

    def on_link_opened(self, event):
        with self.lock:
            up = (self.control is not None and self.data is not None and
                  self.control.state & Link.REMOTE_ACTIVE and self.data.state & Link.REMOTE_ACTIVE)
        if up:
            self.opened.set()

    def on_delivery(self, event):
        dlv = event.delivery
        link = event.link
        if link.is_sender:
            return      # outcomes: OutgoingMessageHandler settles
        if not dlv.readable or link.current != dlv:
            return      # a state update of a delivery read already
        got = link.recv(dlv.pending) or b""
        buf = self.partial.get(dlv, b"") + got
        name = link.name
        if name == "vane-control" or (link.remote_target and
                                      link.remote_target.address == "_vane/control"):
            if dlv.partial:
                self.partial[dlv] = buf
                return
            self.partial.pop(dlv, None)
            m = Message()
            m.decode(buf)
            body = m.body
            if isinstance(body, (bytes, memoryview)):
                body = bytes(body).decode()
            with self.lock:
                self.control_in.append(json.loads(body))
            dlv.settle()
            link.advance()
            return
        self.partial[dlv] = buf
        try:
            header, rest = split_route_header(buf)
        except Exception:  # noqa: BLE001 - the header has not arrived whole yet
            header, rest = None, None
        if header is not None:
            with self.lock:
                for a in self.arrivals:
                    if getattr(a, "_dlv", None) is dlv:
                        a.body = rest
                        break
                else:
                    a = Arrival(name, header, rest)
                    a._dlv = dlv
                    a.complete = False
                    self.arrivals.append(a)
                a.complete = not dlv.partial
        if not dlv.partial:
            self.partial.pop(dlv, None)
            link.advance()

    def on_connection_remote_close(self, event):
        self.remote_condition = event.connection.remote_condition
        event.connection.close()
        # Closed at both ends now (the base handler does not report it as
        # closed when this handler closed first).
        self.closed.set()

    def on_transport_error(self, event):
        self.remote_condition = event.transport.condition

    def on_connection_closed(self, event):
        self.closed.set()

    def on_disconnected(self, event):
        self.closed.set()
