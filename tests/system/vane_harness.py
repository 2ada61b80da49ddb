"""Process harness for the vaned system tests.

Starts real ``vaned`` processes from a configuration dictionary, waits for the
readiness log line, parses listener ports, captures the log to a file and
stops/kills the process.  Also provides the ``eventually`` polling helper that
every test uses instead of fixed sleeps.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[2]

LISTENER_RE = re.compile(
    r"listener (?P<name>\S+) listening on (?P<host>\S+):(?P<port>\d+) \(role (?P<role>[\w-]+)[,)]")
READY_RE = re.compile(r"router (?P<id>\S+) ready")
TCP_LISTENER_RE = re.compile(
    r"(?<!http )tcp listener (?P<name>\S+) listening on (?P<host>\S+):(?P<port>\d+) "
    r"\(address (?P<address>.*)\)")
HTTP_LISTENER_RE = re.compile(
    r"http listener (?P<name>\S+) listening on (?P<host>\S+):(?P<port>\d+) "
    r"\(address (?P<address>.*)\)")
RELOAD_DONE_RE = re.compile(r"reload done|reload partly failed|reload refused")
MANAGEMENT_RE = re.compile(r"management listening on (?P<host>\S+):(?P<port>\d+)")
# The first line of a sanitizer report in vaned's output (its stderr goes to
# the log): ThreadSanitizer, AddressSanitizer, LeakSanitizer, UBSan.
SANITIZER_REPORT_RE = re.compile(
    r"^(?:WARNING|ERROR): (?:ThreadSanitizer|AddressSanitizer|LeakSanitizer)\b.*$"
    r"|^\S+:\d+:\d+: runtime error: .*$", re.M)


class VanedNotFound(Exception):
    pass


def find_vaned():
    """Locate the vaned binary: $VANED, build/src/vaned, then build*/src/vaned."""
    env = os.environ.get("VANED")
    if env:
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise VanedNotFound(f"$VANED={env} is not an executable file")
        return path
    default = REPO_ROOT / "build" / "src" / "vaned"
    if default.is_file() and os.access(default, os.X_OK):
        return default
    candidates = [p for p in REPO_ROOT.glob("build*/src/vaned")
                  if p.is_file() and os.access(p, os.X_OK)]
    if candidates:
        # The most recently built one is the most likely to be wanted.
        return max(candidates, key=lambda p: p.stat().st_mtime)
    raise VanedNotFound(
        "vaned binary not found: set $VANED or build it, e.g.\n"
        "  cmake -S . -B build -G Ninja -DVANE_BENCH=OFF && cmake --build build --target vaned\n"
        f"(searched {default} and {REPO_ROOT}/build*/src/vaned)")


_SANITIZER = {}


def build_sanitizer(binary):
    """"tsan", "asan" or None: the sanitizer runtime `binary` is linked with
    (read from its dynamic section's library names)."""
    binary = str(binary)
    if binary not in _SANITIZER:
        import mmap
        with open(binary, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            _SANITIZER[binary] = ("tsan" if m.find(b"libtsan.so") >= 0 else
                                  "asan" if m.find(b"libasan.so") >= 0 else None)
    return _SANITIZER[binary]


def sanitizer_reports(text):
    """Each sanitizer report in a vaned log, from its first line to TSan's
    closing line of '=' (at most the next 6000 characters otherwise)."""
    reports = []
    for m in SANITIZER_REPORT_RE.finditer(text):
        end = text.find("\n==================", m.end())
        if end < 0 or end - m.start() > 20000:
            end = min(len(text), m.start() + 6000)
        reports.append(text[m.start():end])
    return reports


def eventually(timeout, predicate, interval=0.02, what=None):
    """Poll ``predicate`` until it returns a truthy value; return that value.

    Raises AssertionError naming ``what`` (or the predicate) after ``timeout``
    seconds.  The predicate is always evaluated at least once and once more
    after the deadline, so a slow machine cannot cause a spurious failure at
    the very edge of the timeout.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except AssertionError as exc:  # predicates may assert for a better message
            last_exc = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    try:
        value = predicate()
        if value:
            return value
    except AssertionError as exc:
        last_exc = exc
    if callable(what):
        what = what()
    desc = what or getattr(predicate, "__name__", repr(predicate))
    msg = f"condition not met within {timeout}s: {desc}"
    if last_exc is not None:
        msg += f" (last: {last_exc})"
    raise AssertionError(msg)


def never(duration, predicate, interval=0.05, what=None):
    """Assert that ``predicate`` stays falsy for ``duration`` seconds."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        value = predicate()
        assert not value, f"unexpected: {what or predicate} became {value!r}"
        time.sleep(interval)


# --------------------------------------------------------------------------
# Configuration

def default_workers():
    """Workers of a router whose test does not choose: $VANE_TEST_WORKERS
    (e.g. 3, to run the single-worker tests multi-worker), else 1."""
    return int(os.environ.get("VANE_TEST_WORKERS") or 1)


def make_config(router_id="router-a", workers=None, link_capacity=250, listeners=None,
                addresses=None, **router_extra):
    """A configuration dictionary with one normal listener on a free port.
    `workers` None: default_workers()."""
    if workers is None:
        workers = default_workers()
    router = {"id": router_id, "mode": "interior", "workers": workers,
              "link_capacity": link_capacity}
    router.update(router_extra)
    if listeners is None:
        listeners = [{"name": "amqp", "host": "127.0.0.1", "port": 0, "role": "normal"}]
    if addresses is None:
        addresses = [{"prefix": "mc/", "distribution": "multicast"},
                     {"pattern": "orders.*.eu", "distribution": "closest"}]
    cfg = {"router": router, "listeners": listeners}
    if addresses:
        cfg["addresses"] = addresses
    return cfg


def loopback_router_listeners(cfg):
    """`cfg` with `insecure: true` on every inter-router and edge listener
    that has no tls_profile and does not say `insecure` itself: vaned refuses
    such a listener otherwise. Tests run on loopback; the TLS tests give
    their router listeners a tls_profile, and the tests of the rule itself
    set `insecure` (or write config_text)."""
    if not isinstance(cfg, dict) or not cfg.get("listeners"):
        return cfg
    out = dict(cfg)
    out["listeners"] = []
    for listener in cfg["listeners"]:
        listener = dict(listener)
        if (listener.get("role", "normal") != "normal" and not listener.get("tls_profile")
                and "insecure" not in listener):
            listener["insecure"] = True
        out["listeners"].append(listener)
    return out


def _yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if value is None:
        return "null"
    text = str(value)
    # Double-quoted YAML scalars accept JSON-style escapes.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_yaml(obj, indent=0):
    """A tiny YAML emitter for dicts/lists/scalars (block style)."""
    pad = " " * indent
    lines = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{key}:")
                lines.append(to_yaml(value, indent + 2))
            elif isinstance(value, dict):
                lines.append(f"{pad}{key}: {{}}")
            elif isinstance(value, list):
                lines.append(f"{pad}{key}: []")
            else:
                lines.append(f"{pad}{key}: {_yaml_scalar(value)}")
    elif isinstance(obj, list):
        for item in obj:
            if isinstance(item, dict) and item:
                body = to_yaml(item, indent + 2).splitlines()
                first = body[0].lstrip()
                lines.append(f"{pad}- {first}")
                lines.extend(body[1:])
            else:
                lines.append(f"{pad}- {_yaml_scalar(item)}")
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Router process

class Router:
    """One vaned process."""

    def __init__(self, binary, workdir, config=None, name="router", log_level="debug",
                 config_text=None, extra_args=(), command_prefix=()):
        self.binary = Path(binary)
        # Run vaned through this, e.g. ("ip", "netns", "exec", NS): it must
        # exec vaned (same pid), as `ip netns exec` does.
        self.command_prefix = list(command_prefix)
        self.workdir = Path(workdir)
        self.name = name
        self.config = config
        self.config_text = config_text
        self.log_level = log_level
        self.extra_args = list(extra_args)
        self.log_path = self.workdir / f"{name}.log"
        self.config_path = None
        self.proc = None
        self.ports = {}       # listener name -> port
        self.listeners = {}   # listener name -> (host, port, role)
        self.tcp_ports = {}   # tcp listener name -> port (at startup; see tcp_port())
        self.http_ports = {}  # http listener name -> port (at startup)
        self.management_port = None   # the management API's port, if configured
        self.router_id = None
        self.expected_exit = False
        self._log_file = None
        self._ps = None

    # -- lifecycle ---------------------------------------------------------
    def command(self):
        cmd = self.command_prefix + [str(self.binary)]
        if self.config is not None or self.config_text is not None:
            text = (self.config_text if self.config_text is not None
                    else to_yaml(self._prepared(self.config)) + "\n")
            self.config_path = self.workdir / f"{self.name}.yaml"
            self.config_path.write_text(text)
            cmd += ["--config", str(self.config_path)]
        if self.log_level:
            cmd += ["--log-level", self.log_level]
        return cmd + self.extra_args

    def _prepared(self, config):
        """`config` as written: loopback router listeners (see
        loopback_router_listeners) and, unless it names one, a router.key_file
        named after the router id in the work directory, so a router
        restarted (under any harness name) keeps its identity key, as the
        `vane` sites do."""
        config = loopback_router_listeners(config)
        if isinstance(config, dict) and isinstance(config.get("router"), dict) \
                and "key_file" not in config["router"]:
            config = dict(config)
            rid = config["router"].get("id", "vane")
            config["router"] = dict(config["router"], key_file=f"{rid}-identity.pem")
        return config

    def start(self, wait=True, timeout=20.0):
        cmd = self.command()
        self._log_file = open(self.log_path, "wb")
        self._log_file.write(("# " + " ".join(cmd) + "\n").encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log_file,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir))
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=20.0):
        def ready():
            text = self.log_text()
            if READY_RE.search(text):
                return True
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"vaned {self.name} exited with status {self.proc.returncode} before "
                    f"becoming ready; log:\n{self.log_tail()}")
            return False
        try:
            eventually(timeout, ready, interval=0.02, what=f"vaned {self.name} ready line")
        except AssertionError:
            raise AssertionError(f"vaned {self.name} not ready within {timeout}s; log:\n"
                                 f"{self.log_tail()}")
        text = self.log_text()
        self.router_id = READY_RE.search(text).group("id")
        for m in LISTENER_RE.finditer(text):
            port = int(m.group("port"))
            self.ports[m.group("name")] = port
            self.listeners[m.group("name")] = (m.group("host"), port, m.group("role"))
        for m in TCP_LISTENER_RE.finditer(text):
            self.tcp_ports[m.group("name")] = int(m.group("port"))
        for m in HTTP_LISTENER_RE.finditer(text):
            self.http_ports[m.group("name")] = int(m.group("port"))
        m = MANAGEMENT_RE.search(text)
        self.management_port = int(m.group("port")) if m else None
        assert self.ports, f"no listener line in vaned log:\n{self.log_tail()}"
        self._ps = psutil.Process(self.proc.pid)

    @property
    def pid(self):
        return self.proc.pid

    @property
    def port(self):
        """Port of the first (or only) listener."""
        assert self.ports, "router has no listeners"
        if "amqp" in self.ports:
            return self.ports["amqp"]
        return next(iter(self.ports.values()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss(self):
        """Resident set size of the vaned process in bytes."""
        if self._ps is None:
            self._ps = psutil.Process(self.proc.pid)
        return self._ps.memory_info().rss

    def tcp_port(self, name, timeout=10.0):
        """The port tcp listener `name` was last opened on (startup or reload)."""
        def latest():
            ports = [int(m.group("port")) for m in TCP_LISTENER_RE.finditer(self.log_text())
                     if m.group("name") == name]
            return ports[-1] if ports else None
        return eventually(timeout, latest, what=f"tcp listener {name} line in vaned {self.name}")

    def api(self, method, path, body=None, token=None, headers=None, timeout=10.0):
        """One request to this router's management API (see http_request)."""
        assert self.management_port, f"vaned {self.name} has no management API"
        return http_request(self.management_port, method, path, body=body, token=token,
                            headers=headers, timeout=timeout)

    def reload(self, config, timeout=10.0):
        """Rewrites the configuration file from `config` and sends SIGHUP;
        waits for the reload's outcome line and returns it."""
        assert self.config_path is not None, "router was started without a config file"
        self.config = config
        before = len(RELOAD_DONE_RE.findall(self.log_text()))
        self.config_path.write_text(to_yaml(self._prepared(config)) + "\n")
        self.proc.send_signal(signal.SIGHUP)   # not self.signal(): no exit is expected

        def outcome():
            lines = [ln for ln in self.log_text().splitlines() if RELOAD_DONE_RE.search(ln)]
            return lines[before] if len(lines) > before else None
        return eventually(timeout, outcome, what=f"vaned {self.name} reload outcome line")

    def signal(self, signum):
        self.expected_exit = True
        self.proc.send_signal(signum)

    def wait(self, timeout=10.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"vaned {self.name} did not exit within {timeout}s; log:\n{self.log_tail()}")
        finally:
            if self.proc.poll() is not None:
                self._close_log()

    def stop(self, timeout=10.0, signum=None):
        """Orderly shutdown; asserts exit status 0."""
        if signum is None:
            signum = signal.SIGTERM
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            self._close_log()
            status = self.proc.returncode
            assert self.expected_exit and status == 0, (
                f"vaned {self.name} had already exited with status {status}; log:\n"
                f"{self.log_tail()}")
            return status
        self.signal(signum)
        try:
            status = self.wait(timeout)
        except AssertionError:
            self.kill()
            raise
        assert status == 0, (f"vaned {self.name} exited with status {status} after "
                             f"{signal.Signals(signum).name}; log:\n{self.log_tail()}")
        return status

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.expected_exit = True
            self.proc.kill()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._close_log()

    def _close_log(self):
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    # -- logs --------------------------------------------------------------
    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def sanitizer_reports(self):
        """Sanitizer reports in this router's log (see sanitizer_reports())."""
        return sanitizer_reports(self.log_text())

    def log_tail(self, lines=60):
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:])

    def wait_for_log(self, pattern, timeout=10.0):
        rx = re.compile(pattern)
        return eventually(timeout, lambda: rx.search(self.log_text()),
                          what=f"log line matching {pattern!r} in vaned {self.name}")


class HttpReply:
    """A management API answer: ``status``, ``headers`` (lower-case names),
    ``body`` (bytes) and ``json()``."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"HttpReply({self.status}, {self.body[:300]!r})"


def http_request(port, method, path, body=None, token=None, headers=None, host="127.0.0.1",
                 timeout=10.0):
    """One HTTP/1.1 request on a new connection; returns an HttpReply.

    ``body``: bytes or str sent as is, anything else as JSON. ``token``: sent
    as ``Authorization: Bearer <token>``."""
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
        hdrs.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=hdrs)
        res = conn.getresponse()
        data = res.read()
        return HttpReply(res.status, {k.lower(): v for k, v in res.getheaders()}, data)
    finally:
        conn.close()


def run_vaned(binary, args, cwd, timeout=15.0):
    """Run vaned to completion (for configurations expected to fail)."""
    proc = subprocess.run([str(binary)] + list(args), cwd=str(cwd), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def self_signed_cert(directory, common_name="127.0.0.1"):
    """A self-signed certificate for 127.0.0.1 (PEM files `cert.pem`,
    `key.pem` in `directory`), made with the openssl command; skips the test
    when there is none."""
    import shutil
    import pytest
    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={common_name}",
                    "-addext", f"subjectAltName=IP:{common_name}"],
                   check=True, capture_output=True, timeout=60)
    return cert, key
