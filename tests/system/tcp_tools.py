"""Plain TCP servers and clients for the TCP adaptor tests.

Servers run on background threads and bind 127.0.0.1:0 unless told
otherwise; each has ``port``, ``close()`` and counters the tests check.

- ``EchoServer``: one selector thread, many connections. Echoes every byte;
  when the client half-closes it finishes echoing, then half-closes too
  (optionally it first sends a greeting line, e.g. its identity).
- ``DigestServer``: a thread per connection that reads until EOF and then
  replies ``"<length> <sha256>\\n"``; it can hold off reading (``gate``) or
  reset the connection after some bytes (``reset_after``), and records how
  each connection ended.

Clients: ``echo_roundtrip`` (send everything, half-close, read the echo,
both at once), ``EchoSwarm`` (many concurrent echo connections on one
selector) and small helpers. Every blocking call has a timeout.

Also a command line, for processes inside network namespaces:

    python3 tcp_tools.py identity HOST PORT NAME   # EchoServer greeting NAME
    python3 tcp_tools.py fetch HOST PORT            # prints the server's reply
"""

import errno
import hashlib
import selectors
import socket
import struct
import sys
import threading
import time

CHUNK = 64 * 1024


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago (nothing listens on it now)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def set_reset_on_close(sock):
    """SO_LINGER 0: close() sends a reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _listen(host, port, backlog):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(backlog)
    return lsock


# --------------------------------------------------------------------------
# Servers

class EchoServer:
    """Echoes bytes back; half-close aware; one selector thread."""

    def __init__(self, host="127.0.0.1", port=0, greeting=b"", backlog=4096):
        self.greeting = greeting
        self._lsock = _listen(host, port, backlog)
        self._lsock.setblocking(False)
        self.host, self.port = self._lsock.getsockname()[:2]
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._lsock, selectors.EVENT_READ, None)
        self._lock = threading.Lock()
        self.accepted = 0
        self.active = 0
        self.peak_active = 0
        self.resets = 0          # connections that ended with ECONNRESET
        self.bytes_echoed = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"echo-{self.port}", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop:
            for key, mask in self._sel.select(timeout=0.1):
                if key.data is None:
                    self._accept()
                else:
                    self._service(key.fileobj, key.data, mask)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()
        self._sel.close()

    def _accept(self):
        for _ in range(256):
            try:
                sock, _ = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setblocking(False)
            state = {"out": bytearray(self.greeting), "eof": False}
            with self._lock:
                self.accepted += 1
                self.active += 1
                self.peak_active = max(self.peak_active, self.active)
            self._sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, state)

    def _finish(self, sock, reset=False):
        self._sel.unregister(sock)
        sock.close()
        with self._lock:
            self.active -= 1
            if reset:
                self.resets += 1

    def _service(self, sock, st, mask):
        try:
            if mask & selectors.EVENT_READ and not st["eof"] and len(st["out"]) < 4 * CHUNK:
                data = sock.recv(CHUNK)
                if data:
                    st["out"] += data
                else:
                    st["eof"] = True
            if st["out"]:
                n = sock.send(st["out"])
                with self._lock:
                    self.bytes_echoed += n
                del st["out"][:n]
        except (BlockingIOError, InterruptedError):
            pass
        except ConnectionResetError:
            self._finish(sock, reset=True)
            return
        except OSError:
            self._finish(sock)
            return
        if st["eof"] and not st["out"]:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self._finish(sock)
            return
        want = selectors.EVENT_WRITE if st["out"] else 0
        if not st["eof"] and len(st["out"]) < 4 * CHUNK:
            want |= selectors.EVENT_READ
        self._sel.modify(sock, want or selectors.EVENT_READ, st)

    def close(self):
        self._stop = True
        self._thread.join(5)
        self._lsock.close()


class DigestServer:
    """Reads each connection to EOF, then replies ``"<length> <sha256>\\n"``.

    ``gate``: a threading.Event; nothing is read before it is set (a server
    that does not read). ``reset_after``: reset the connection (SO_LINGER 0)
    once that many bytes have arrived. ``greeting``: bytes sent on accept;
    with ``shut_first`` the server then half-closes before it reads (and
    sends no digest). ``conns`` records, per connection, ``received`` bytes
    and ``end``: "eof", "reset", "reset-by-server", "error: ..." or None
    while open.
    """

    def __init__(self, host="127.0.0.1", port=0, gate=None, reset_after=None, rcvbuf=None,
                 greeting=b"", shut_first=False):
        self.gate = gate
        self.reset_after = reset_after
        self.greeting = greeting
        self.shut_first = shut_first
        self._lsock = _listen(host, port, 128)
        if rcvbuf:
            self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._lsock.settimeout(0.1)
        self.host, self.port = self._lsock.getsockname()[:2]
        self.conns = []
        self._socks = []
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"digest-{self.port}")
        self._thread.start()

    def _accept_loop(self):
        while not self._stop:
            try:
                sock, _ = self._lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            rec = {"received": 0, "end": None, "t_accept": time.monotonic(), "t_end": None}
            with self._lock:
                self.conns.append(rec)
                self._socks.append(sock)
            threading.Thread(target=self._serve, args=(sock, rec), daemon=True).start()

    def _serve(self, sock, rec):
        h = hashlib.sha256()
        try:
            sock.settimeout(10)
            if self.greeting:
                sock.sendall(self.greeting)
            if self.shut_first:
                sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.2)
            while not self._stop:
                if self.gate is not None and not self.gate.is_set():
                    self.gate.wait(0.1)
                    continue
                try:
                    data = sock.recv(4 * CHUNK)
                except socket.timeout:
                    continue
                if not data:
                    rec["end"] = "eof"
                    rec["digest"] = h.hexdigest()
                    if not self.shut_first:
                        sock.settimeout(10)
                        sock.sendall(f"{rec['received']} {h.hexdigest()}\n".encode())
                        sock.shutdown(socket.SHUT_WR)
                    break
                h.update(data)
                rec["received"] += len(data)
                if self.reset_after is not None and rec["received"] >= self.reset_after:
                    set_reset_on_close(sock)
                    rec["end"] = "reset-by-server"
                    break
        except ConnectionResetError:
            rec["end"] = "reset"
        except OSError as exc:
            rec["end"] = f"error: {exc}"
        finally:
            rec["t_end"] = time.monotonic()
            sock.close()

    def wait_conns(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while len(self.conns) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.conns) >= n

    def close(self):
        self._stop = True
        self._thread.join(5)
        self._lsock.close()


# --------------------------------------------------------------------------
# Clients

def connect(port, host="127.0.0.1", timeout=5.0):
    return socket.create_connection((host, port), timeout=timeout)


def recv_all(sock, timeout=10.0, limit=1 << 30):
    """Reads to EOF; raises on a reset or when `timeout` passes."""
    deadline = time.monotonic() + timeout
    out = bytearray()
    while len(out) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no EOF within {timeout}s ({len(out)} bytes read)")
        sock.settimeout(left)
        data = sock.recv(CHUNK)
        if not data:
            return bytes(out)
        out += data
    return bytes(out)


def wait_echo(port, timeout=20.0):
    """Polls until a connection through tcp listener `port` is echoed (a tcp
    connector for its address has become reachable)."""
    from vane_harness import eventually

    def served():
        try:
            with connect(port) as s:
                s.sendall(b"probe")
                s.shutdown(socket.SHUT_WR)
                return recv_all(s, timeout=5) == b"probe"
        except OSError:   # reset: no connector reachable yet
            return False
    eventually(timeout, served, interval=0.1, what=f"an echo through tcp listener port {port}")


def recv_line(sock, timeout=10.0):
    deadline = time.monotonic() + timeout
    out = bytearray()
    while not out.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no full line within {timeout}s (got {bytes(out)!r})")
        sock.settimeout(left)
        data = sock.recv(1)
        if not data:
            raise EOFError(f"EOF before a full line (got {bytes(out)!r})")
        out += data
    return bytes(out[:-1])


def how_it_ends(sock, timeout=5.0):
    """Reads until the connection ends: returns ("eof"|"reset", bytes read,
    seconds taken); raises TimeoutError if it is still open after `timeout`."""
    start = time.monotonic()
    got = 0
    while True:
        left = start + timeout - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"connection still open after {timeout}s ({got} bytes read)")
        sock.settimeout(left)
        try:
            data = sock.recv(CHUNK)
        except ConnectionResetError:
            return "reset", got, time.monotonic() - start
        except socket.timeout:
            continue
        if not data:
            return "eof", got, time.monotonic() - start
        got += len(data)


def echo_roundtrip(port, data, timeout=60.0, host="127.0.0.1"):
    """Sends `data`, half-closes, reads the echo until EOF, all at once on
    one nonblocking socket. Returns (bytes received, their sha256)."""
    deadline = time.monotonic() + timeout
    sock = socket.create_connection((host, port), timeout=min(timeout, 10))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    view = memoryview(data)
    sent = 0
    h = hashlib.sha256()
    got = 0
    shut = False
    try:
        while True:
            if not shut and sent == len(data):
                sock.shutdown(socket.SHUT_WR)
                shut = True
                sel.modify(sock, selectors.EVENT_READ)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"echo of {len(data)} bytes: sent {sent}, got {got} "
                                   f"after {timeout}s")
            for _, mask in sel.select(timeout=min(left, 0.5)):
                if mask & selectors.EVENT_WRITE and not shut:
                    try:
                        sent += sock.send(view[sent:sent + 4 * CHUNK])
                    except BlockingIOError:
                        pass
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(4 * CHUNK)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        return got, h.hexdigest()
                    h.update(chunk)
                    got += len(chunk)
    finally:
        sel.close()
        sock.close()


class EchoSwarm:
    """`n` echo connections at once on one selector: connect all, send each
    the first half of its payload, and keep them all open until ``ready()``
    (polled; e.g. the server has them all open at once); then send the
    rest, half-close, and read each echo to EOF. A connection that fails
    before ``ready()`` stops the run early (see ``errors``)."""

    def __init__(self, port, payloads, host="127.0.0.1"):
        self.port = port
        self.host = host
        self.payloads = payloads
        self.results = [None] * len(payloads)   # bytes received, when EOF came
        self.errors = {}                        # index -> exception text
        self.first_error_at = None

    def run(self, timeout=60.0, ready=None):
        deadline = time.monotonic() + timeout
        sel = selectors.DefaultSelector()
        conns = []
        for i, p in enumerate(self.payloads):
            s = socket.socket()
            s.setblocking(False)
            err = s.connect_ex((self.host, self.port))
            if err not in (0, errno.EINPROGRESS):
                raise OSError(err, f"connect {i}: {errno.errorcode.get(err, err)}")
            st = {"i": i, "sent": 0, "limit": len(p) // 2, "got": bytearray(), "shut": False,
                  "done": False}
            conns.append((s, st))
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
        try:
            # After the first failure, give the others a second to show
            # how widespread it is, then stop.
            self._pump(sel, deadline, lambda: self._failed_for(1.0) or (
                all(st["sent"] >= st["limit"] for _, st in conns) and (ready is None or ready())))
            if self.errors:
                return self.results
            for s, st in conns:
                st["limit"] = len(self.payloads[st["i"]])
                if not st["done"]:
                    sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
            self._pump(sel, deadline, lambda: all(st["done"] for _, st in conns))
        finally:
            sel.close()
            for s, _ in conns:
                s.close()
        return self.results

    def _failed(self, i, why):
        self.errors[i] = why
        if self.first_error_at is None:
            self.first_error_at = time.monotonic()

    def _failed_for(self, seconds):
        return self.first_error_at is not None and \
            time.monotonic() - self.first_error_at >= seconds

    def _pump(self, sel, deadline, finished):
        while not finished():
            left = deadline - time.monotonic()
            if left <= 0:
                done = sum(1 for r in self.results if r is not None)
                raise TimeoutError(f"{done}/{len(self.results)} echo connections done "
                                   f"after the deadline; errors: "
                                   f"{dict(list(self.errors.items())[:5])}")
            for key, mask in sel.select(timeout=min(left, 0.05)):
                s, st = key.fileobj, key.data
                i = st["i"]
                payload = self.payloads[i]
                try:
                    if mask & selectors.EVENT_WRITE:
                        if st["sent"] < st["limit"]:
                            st["sent"] += s.send(payload[st["sent"]:st["limit"]])
                        if st["sent"] == len(payload) and not st["shut"]:
                            s.shutdown(socket.SHUT_WR)
                            st["shut"] = True
                    if mask & selectors.EVENT_READ:
                        data = s.recv(CHUNK)
                        if data:
                            st["got"] += data
                        else:
                            st["done"] = True
                            self.results[i] = bytes(st["got"])
                            if len(st["got"]) < len(payload):
                                self._failed(i, f"EOF after {len(st['got'])} bytes")
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as exc:
                    st["done"] = True
                    self.results[i] = bytes(st["got"])
                    self._failed(i, repr(exc))
                if st["done"]:
                    sel.unregister(s)
                elif st["sent"] >= st["limit"]:
                    sel.modify(s, selectors.EVENT_READ, st)


# --------------------------------------------------------------------------
# Command line (for network namespaces)

def _main(argv):
    if len(argv) == 4 and argv[0] == "identity":
        server = EchoServer(argv[1], int(argv[2]), greeting=argv[3].encode() + b"\n")
        print(f"listening on {server.host}:{server.port}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            server.close()
        return 0
    if len(argv) == 3 and argv[0] == "fetch":
        try:
            with connect(int(argv[2]), host=argv[1], timeout=5) as s:
                s.sendall(b"ping\n")
                s.shutdown(socket.SHUT_WR)
                sys.stdout.write(recv_all(s, timeout=5).decode(errors="replace"))
        except OSError as exc:
            print(f"error: {exc!r}")
            return 1
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
