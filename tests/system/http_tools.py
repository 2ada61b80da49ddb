"""HTTP test peers for the HTTP adaptor's system tests: an HTTP/1.1 origin
server (threads, keep-alive, chunked both ways) and small raw-socket
helpers for what ordinary clients will not send (pipelining, smuggling).

Origin paths (every answer carries `X-Origin: <name>`):
  GET  /hello            -> "hello from <name>\n"
  GET  /headers          -> the request's headers as JSON (a list of pairs)
  GET  /bytes?n=N&seed=S[&chunked=1]
                         -> N pseudo-random bytes (Content-Length, or chunked)
  POST|PUT /sha256       -> the sha256 and length of the body (Content-Length
                            or chunked; trailers ignored) as "HEX LEN\n"
  POST /echo             -> the body back (chunked answer when it came chunked)
  POST /refuse           -> 400 at once, the body unread, and the connection closed
  GET  /status?code=C    -> status C (204 and 304 without a body)
  GET  /slow?ms=M        -> "slow\n" after M milliseconds
  GET  /trailers         -> a chunked body followed by trailer fields
  anything else          -> 404
HEAD is answered like GET without the body (an Upgrade is ignored).

Also: ConnectProxy (a forward proxy for CONNECT), WebSocketEcho (the
`websockets` library), and servers that misbehave on purpose.
"""

import hashlib
import json
import random
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


def payload(n, seed=0):
    return random.Random(seed).randbytes(n)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vane-test-origin"

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- body helpers ------------------------------------------------------
    def _read_body(self):
        """Yields the request body in pieces (Content-Length or chunked)."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass   # trailers
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 20))
                    if not piece:
                        raise ConnectionError("chunk cut short")
                    left -= len(piece)
                    yield piece
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length", "0") or "0")
            while left:
                piece = self.rfile.read(min(left, 1 << 20))
                if not piece:
                    raise ConnectionError("body cut short")
                left -= len(piece)
                yield piece

    def _send(self, status, body=b"", ctype="text/plain", headers=(), chunked=False):
        self.send_response(status)
        self.send_header("X-Origin", self.server.name)
        self.send_header("Content-Type", ctype)
        for k, v in headers:
            self.send_header(k, v)
        no_body = status in (204, 304) or 100 <= status < 200
        if chunked and not no_body:
            self.send_header("Transfer-Encoding", "chunked")
        elif not no_body:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD" or no_body:
            return
        if chunked:
            step = 7919
            for i in range(0, len(body), step):
                piece = body[i:i + step]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)

    # -- methods -----------------------------------------------------------
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        self.server.count(self)
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/hello":
            self._send(200, f"hello from {self.server.name}\n".encode())
        elif url.path == "/headers":
            self._send(200, json.dumps(list(self.headers.items())).encode(), "application/json")
        elif url.path == "/bytes":
            n, seed = int(q.get("n", "0")), int(q.get("seed", "0"))
            chunked = q.get("chunked") == "1"
            to_close = chunked and self.request_version == "HTTP/1.0"  # 1.0 has no chunked
            if to_close:
                chunked = False
                self.close_connection = True
            self.send_response(200)
            self.send_header("X-Origin", self.server.name)
            self.send_header("X-Request-Version", self.request_version)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif to_close:
                self.send_header("Connection", "close")
            else:
                self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return
            rng = random.Random(seed)
            left = n
            while left:
                piece = rng.randbytes(min(left, 1 << 20))
                left -= len(piece)
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.wfile.write(piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        elif url.path == "/status":
            code = int(q.get("code", "200"))
            self._send(code, f"status {code}\n".encode())
        elif url.path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            self._send(200, b"slow\n")
        elif url.path == "/trailers":
            self.send_response(200)
            self.send_header("X-Origin", self.server.name)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Checksum")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n0\r\nX-Checksum: abc123\r\n\r\n")
        else:
            self._send(404, b"not found\n")

    def do_POST(self):
        self.server.count(self)
        url = urlsplit(self.path)
        if url.path == "/sha256":
            h, n = hashlib.sha256(), 0
            for piece in self._read_body():
                h.update(piece)
                n += len(piece)
            self._send(200, f"{h.hexdigest()} {n}\n".encode())
        elif url.path == "/echo":
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            body = b"".join(self._read_body())
            self._send(200, body, "application/octet-stream", chunked=chunked)
        elif url.path == "/refuse":
            # refused before its body is read; the connection then closes
            self.close_connection = True
            self._send(400, b"refused\n", headers=[("Connection", "close")])
        else:
            for _ in self._read_body():
                pass
            self._send(404, b"not found\n")

    do_PUT = do_POST


class Origin(ThreadingHTTPServer):
    """An HTTP/1.1 origin on 127.0.0.1 (a free port unless given), serving
    in a background thread. `requests` counts requests; `conns` counts the
    connections it accepted; `seen` keeps the last request headers."""
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, name="origin", host="127.0.0.1", port=0, tls=None):
        """`tls`: (certificate, key) files: HTTPS."""
        self.name = name
        self.requests = 0
        self.conns = 0
        self.seen = []
        self.paths = []
        self._lock = threading.Lock()
        super().__init__((host, port), _Handler)
        if tls:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.socket = ctx.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def get_request(self):
        conn, addr = super().get_request()
        with self._lock:
            self.conns += 1
        return conn, addr

    def count(self, handler):
        with self._lock:
            self.requests += 1
            self.seen.append(list(handler.headers.items()))
            del self.seen[:-50]
            self.paths.append(handler.path)

    def close(self):
        self.shutdown()
        self.server_close()


class StubbornServer(socketserver.ThreadingTCPServer):
    """A TCP server that accepts and then does one thing to every connection:
    "reset" (RST after reading the request), "close" (FIN without a reply),
    "silent" (reads and never answers), "garbage" (answers with bytes that
    are not HTTP), "switch" (answers 101 Switching Protocols, asked or not),
    "interim" (answers 100 Continue, then nothing), "stall" (answers a head
    and half of the body, then nothing)."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode, host="127.0.0.1", port=0):
        self.mode = mode
        self.conns = 0
        self._held = []

        class H(socketserver.BaseRequestHandler):
            def handle(h):
                self.conns += 1
                s = h.request
                s.settimeout(5)
                try:
                    s.recv(65536)
                except OSError:
                    return
                if self.mode == "reset":
                    import struct
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif self.mode == "garbage":
                    s.sendall(b"\x00\x01 not http at all\r\n\r\n")
                elif self.mode == "switch":
                    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                              b"Connection: upgrade\r\n\r\nbytes of another protocol")
                    time.sleep(1)
                elif self.mode in ("interim", "stall"):
                    s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" if self.mode == "interim" else
                              b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
                    self._held.append(s)
                    time.sleep(30)
                elif self.mode == "silent":
                    self._held.append(s)
                    time.sleep(120)
        super().__init__((host, port), H)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()
        for s in self._held:
            try:
                s.close()
            except OSError:
                pass


class OneShotServer(socketserver.ThreadingTCPServer):
    """Answers the first request of every connection (200, keep-alive,
    body "one-shot N" for the Nth connection) and closes the connection
    when the second request arrives, without answering it: a kept-alive
    connection that the server gave up on just as it was reused."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host="127.0.0.1", port=0):
        self.conns = 0
        self.answered = 0

        class H(socketserver.BaseRequestHandler):
            def handle(h):
                self.conns += 1
                n = self.conns
                s = h.request
                s.settimeout(10)
                buf = b""
                try:
                    while b"\r\n\r\n" not in buf:
                        piece = s.recv(65536)
                        if not piece:
                            return
                        buf += piece
                    body = b"one-shot %d\n" % n
                    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                    self.answered += 1
                    s.recv(65536)   # the next request: dropped, and the connection closed
                except OSError:
                    pass
        super().__init__((host, port), H)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


def _splice(src, dst):
    """Copies src to dst until src ends, then half-closes dst."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class ConnectProxy(socketserver.ThreadingTCPServer):
    """A forward proxy for CONNECT: `CONNECT 127.0.0.1:P` is answered 200 and
    the connection spliced to that port (half-closes passed on); any other
    target gets 403 with a body, and the connection stays HTTP (a second
    request on it is answered too). `targets` lists what was asked for;
    `seen` the request heads."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host="127.0.0.1", port=0):
        self.targets = []
        self.seen = []

        class H(socketserver.BaseRequestHandler):
            def handle(h):
                s = h.request
                s.settimeout(30)
                buf = b""
                try:
                    while True:
                        while b"\r\n\r\n" not in buf:
                            piece = s.recv(65536)
                            if not piece:
                                return
                            buf += piece
                        head, _, buf = buf.partition(b"\r\n\r\n")
                        self.seen.append(head.decode("latin-1"))
                        method, target, _ = head.split(b"\r\n")[0].split(b" ", 2)
                        self.targets.append(target.decode())
                        host, _, port = target.rpartition(b":")
                        if method == b"CONNECT" and host == b"127.0.0.1":
                            up = socket.create_connection(("127.0.0.1", int(port)), timeout=30)
                            s.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                            if buf:
                                up.sendall(buf)
                            t = threading.Thread(target=_splice, args=(up, s), daemon=True)
                            t.start()
                            _splice(s, up)
                            t.join(30)
                            up.close()
                            return
                        body = b"not allowed: " + target + b"\n"
                        s.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n%s"
                                  % (len(body), body))
                except OSError:
                    pass
        super().__init__((host, port), H)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self):
        self.shutdown()
        self.server_close()


class WebSocketEcho:
    """A WebSocket server (the `websockets` library) on 127.0.0.1 that
    echoes every message, in its own thread and event loop. `headers` keeps
    the handshake request headers of each connection; `tls`: (certificate,
    key) files."""

    def __init__(self, tls=None):
        import asyncio
        import ssl

        import websockets
        self.headers = []
        self._loop = asyncio.new_event_loop()
        ctx = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))

        async def echo(ws, path=None):
            self.headers.append(dict(ws.request_headers))
            async for message in ws:
                await ws.send(message)

        async def start():
            return await websockets.serve(echo, "127.0.0.1", 0, ssl=ctx, max_size=None)
        self._server = self._loop.run_until_complete(start())
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def close(self):
        import asyncio

        async def stop():
            self._server.close()
            await self._server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def read_response(sock, buf=b"", timeout=10.0, head_only=False):
    """Reads one HTTP/1.1 response from `sock` (Content-Length, chunked or
    to the end), `buf` being what was read before: (status, headers dict with
    lower-case names, body, what was read after it)."""
    sock.settimeout(timeout)
    while b"\r\n\r\n" not in buf:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError(f"closed before a response head: {buf!r}")
        buf += piece
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if head_only or status in (204, 304) or 100 <= status < 200:
        pass
    elif "chunked" in headers.get("transfer-encoding", ""):
        while True:
            while b"\r\n" not in buf:
                buf += _recv_more(sock)
            line, _, buf = buf.partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in buf:
                    buf += _recv_more(sock)
                while not buf.startswith(b"\r\n"):
                    _, _, buf = buf.partition(b"\r\n")
                    while b"\r\n" not in buf:
                        buf += _recv_more(sock)
                buf = buf[2:]
                break
            while len(buf) < size + 2:
                buf += _recv_more(sock)
            body += buf[:size]
            buf = buf[size + 2:]
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            buf += _recv_more(sock)
        body, buf = buf[:n], buf[n:]
    else:
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            buf += piece
        body, buf = buf, b""
    return status, headers, body, buf


def _recv_more(sock):
    piece = sock.recv(65536)
    if not piece:
        raise ConnectionError("closed in the middle of a response")
    return piece


class RawClient:
    """A plain socket to an HTTP listener, for requests written by hand."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)
        return self

    def response(self, timeout=10.0, head_only=False):
        status, headers, body, self.buf = read_response(self.sock, self.buf, timeout=timeout,
                                                        head_only=head_only)
        return status, headers, body

    def closed(self, timeout=5.0):
        """True if the router closes the connection (FIN or reset) within
        `timeout` with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            rest = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return rest == b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
