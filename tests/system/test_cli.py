"""The `vane` command-line tool against real routers: its read commands
(status, routers, addresses, flows) on a 2-router network carrying TCP
traffic, `--json` against the management API's own answers, and the
one-sentence failures (unreachable, token required, not HTTP, no answer) and
usage errors.

The binary is $VANE_CLI, else `vane` next to the vaned under test."""

import json
import os
import pty
import re
import select
import socket
import subprocess
import threading

import pytest

from tcp_tools import EchoServer, connect, echo_roundtrip, free_port
from cli_tools import ANSI, failure, find_vane_cli, ok, table
from vane_harness import eventually, make_config, self_signed_cert
from vane_network import Network

TOKEN = "cli-test-token-0123456789"


@pytest.fixture(scope="module")
def vane_cli():
    return find_vane_cli()


@pytest.fixture
def cli(vane_cli):
    """``cli(*args, url=None, token=None, env=None, timeout=20) -> CompletedProcess``
    (text). VANE_URL and VANE_TOKEN are not inherited from the test's
    environment; ``env`` adds variables."""
    def run(*args, url=None, token=None, env=None, timeout=20.0):
        environ = {k: v for k, v in os.environ.items() if k not in ("VANE_URL", "VANE_TOKEN")}
        environ.update(env or {})
        cmd = [str(vane_cli)]
        if url is not None:
            cmd += ["--url", url]
        if token is not None:
            cmd += ["--token", token]
        return subprocess.run(cmd + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout, env=environ)
    return run


def url_of(router):
    return f"http://127.0.0.1:{router.management_port}"








def section(text, title):
    """The table lines under `title:` in `vane status`, up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    out = []
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        out.append(ln)
    return table("\n".join(out))


def human_bytes(n):
    if n < 1024:
        return f"{n} B"
    value, units = n / 1024, ["KiB", "MiB", "GiB", "TiB", "PiB"]
    i = 0
    while value >= 1024 and i + 1 < len(units):
        value /= 1024
        i += 1
    return f"{value:.1f} {units[i]}"


@pytest.fixture
def traffic_net(router_factory):
    """cli-a and cli-b linked; tcp listener `web-in` (address `web`) on
    cli-a, tcp connector `web-out` on cli-b to an echo server. One echo of
    3000 bytes has completed and one connection (100 bytes echoed) stays
    open and idle, so the counters hold still."""
    echo = EchoServer()
    net = Network(router_factory, management={"port": 0})
    net.interior("cli-a").interior("cli-b").link("cli-a", "cli-b")
    net.tcp_listener("cli-a", "web-in", "web")
    net.tcp_connector("cli-b", "web-out", "web", echo.port)
    net.start().wait_converged()
    port = net.tcp_port("cli-a", "web-in")
    a, b = net["cli-a"], net["cli-b"]

    def web_known():
        entries = a.api("GET", "/api/v1/addresses").json()
        return any(e["address"] == "web" and e["remote_routers"] == ["cli-b"] for e in entries)
    eventually(20, web_known, interval=0.05, what="address web (the connector) known at cli-a")

    def served():
        try:
            return echo_roundtrip(port, b"x" * 3000, timeout=5)[0] == 3000
        except OSError:  # reset: the connector is not reachable yet
            return False
    eventually(20, served, interval=0.1, what="an echo through web-in")

    held = connect(port)
    held.sendall(b"y" * 100)
    got = b""
    while len(got) < 100:
        got += held.recv(100 - len(got))

    def settled(router):
        flows = router.api("GET", "/api/v1/flows").json()
        held_flow = [f for f in flows if f["state"] == "open"]
        return (len(held_flow) == 1 and held_flow[0]["bytes_in"] == 100
                and held_flow[0]["bytes_out"] == 100
                and any(f["state"] == "closed" for f in flows))
    for router in (a, b):
        eventually(10, lambda: settled(router), what=f"flows settled on {router.name}")
    net.echo, net.held, net.web_port = echo, held, port
    yield net
    held.close()
    echo.close()


def test_read_commands(traffic_net, cli):
    net = traffic_net
    a, b = net["cli-a"], net["cli-b"]

    # status: identity, links, reachability, tcp listeners with counts
    out = ok(cli("status", url=url_of(a)))
    assert re.search(r"^Router:\s+cli-a$", out, re.M), out
    assert re.search(r"^Mode:\s+interior$", out, re.M), out
    assert re.search(r"^Version:\s+\S+$", out, re.M), out
    assert re.search(r"^Uptime:\s+\d+\S*( \d+\S+)?$", out, re.M), out
    assert re.search(r"^Reachable:\s+1 router$", out, re.M), out
    assert "Links (1 of 1 up):" in out
    assert section(out, "Links") == [["PEER", "ROLE", "COST", "UP"],
                                     ["cli-b", "interior", "1", "yes"]]
    listeners = section(out, "TCP listeners")
    assert listeners[0] == ["NAME", "ADDRESS", "HOST:PORT", "STATE", "ACTIVE", "OPENED",
                            "FAILED", "REFUSED"]
    api = a.api("GET", "/api/v1/tcp-listeners/web-in").json()["counters"]
    assert listeners[1] == ["web-in", "web", f"127.0.0.1:{net.web_port}", "listening",
                            str(api["flows_active"]), str(api["flows_opened"]),
                            str(api["flows_failed"]), str(api["refused"])]
    assert api["flows_active"] == 1 and api["flows_opened"] >= 2
    assert re.search(r"^TCP connectors: none$", out, re.M), out

    out = ok(cli("status", url=url_of(b)))
    assert re.search(r"^Router:\s+cli-b$", out, re.M), out
    assert re.search(r"^TCP listeners: none$", out, re.M), out
    connectors = section(out, "TCP connectors")
    assert connectors[0][-1] == "CONNECT FAILURES"
    assert connectors[1][:5] == ["web-out", "web", f"127.0.0.1:{net.echo.port}", "ok", "1"]

    # routers: self marked, cost and next hop
    assert table(ok(cli("routers", url=url_of(a)))) == [
        ["ROUTER", "COST", "NEXT HOP"], ["cli-a (self)", "0", "-"], ["cli-b", "1", "cli-b"]]

    # addresses: the tcp address, consumed (the connector) on cli-b only
    def address_row(router):
        rows = table(ok(cli("addresses", url=url_of(router))))
        assert rows[0] == ["ADDRESS", "KIND", "DISTRIBUTION", "LOCAL CONSUMERS",
                           "REMOTE ROUTERS"]
        web = [r for r in rows[1:] if r[0] == "web"]
        assert len(web) == 1, rows
        return web[0]
    distribution = next(e["distribution"] for e in a.api("GET", "/api/v1/addresses").json()
                        if e["address"] == "web")
    assert address_row(a) == ["web", "tcp", distribution, "0", "cli-b"]
    assert address_row(b) == ["web", "tcp", distribution, "1", "-"]

    # flows: every flow of the API, as a row; the held one open, the echo closed
    for router, side, name, peer in ((a, "listener", "web-in", "cli-b"),
                                     (b, "connector", "web-out", "cli-a")):
        flows = router.api("GET", "/api/v1/flows").json()
        rows = table(ok(cli("flows", url=url_of(router))))
        assert rows[0] == ["SIDE", "NAME", "ADDRESS", "PEER ROUTER", "ENDPOINT", "IN", "OUT",
                           "STATE", "DURATION", "STATUS", "REQUEST"]
        assert len(rows) == 1 + len(flows), rows
        for f, row in zip(flows, rows[1:]):
            assert row[:8] == [f["side"], f["name"], f["address"], f["peer_router"],
                               f["endpoint"], human_bytes(f["bytes_in"]),
                               human_bytes(f["bytes_out"]), f["state"]], (row, f)
            assert re.fullmatch(r"\d+(ms|s)|\d+m \d+s", row[8]), row
        assert {(r[0], r[1], r[2], r[3]) for r in rows[1:]} == {(side, name, "web", peer)}
        states = [r[7] for r in rows[1:]]
        assert "open" in states and "closed" in states, rows
        assert ["100 B", "100 B", "open"] in [r[5:8] for r in rows[1:]], rows
        assert ["2.9 KiB", "2.9 KiB", "closed"] in [r[5:8] for r in rows[1:]], rows
    server_side = [r[4] for r in table(ok(cli("flows", url=url_of(b))))[1:]]
    assert set(server_side) == {f"127.0.0.1:{net.echo.port}"}

    # VANE_URL is the default; --url wins over it
    assert ok(cli("routers", env={"VANE_URL": url_of(b)})).count("cli-b (self)") == 1
    assert "cli-a (self)" in ok(cli("routers", url=url_of(a), env={"VANE_URL": url_of(b)}))


def test_json_matches_api(traffic_net, cli):
    a = traffic_net["cli-a"]
    # One endpoint each: the API's answer exactly as received (pretty, same order).
    for command, path in (("routers", "/api/v1/routers"), ("addresses", "/api/v1/addresses"),
                          ("flows", "/api/v1/flows")):
        out = ok(cli(command, "--json", url=url_of(a)))
        body = a.api("GET", path).body.decode()
        assert out == body, command
        assert json.loads(out) == json.loads(body)

    # status: the six answers, keyed by endpoint; --json also before the command
    status = json.loads(ok(cli("--json", "status", url=url_of(a))))
    assert list(status) == ["router", "routers", "tcp_listeners", "tcp_connectors",
                            "http_listeners", "http_connectors"]
    router = a.api("GET", "/api/v1/router").json()
    assert status["router"]["uptime_seconds"] <= router["uptime_seconds"]
    for key in ("id", "mode", "version", "workers"):
        assert status["router"][key] == router[key]
    assert status["router"]["id"] == "cli-a"
    assert status["routers"] == a.api("GET", "/api/v1/routers").json()
    assert status["tcp_listeners"] == a.api("GET", "/api/v1/tcp-listeners").json()
    assert status["tcp_connectors"] == [] == a.api("GET", "/api/v1/tcp-connectors").json()
    assert status["http_listeners"] == [] == a.api("GET", "/api/v1/http-listeners").json()


def test_unreachable(cli):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    for command in ("status", "routers", "addresses", "flows"):
        msg = failure(cli(command, url=url))
        assert msg == (f"cannot reach the router's management API at {url}; is vaned running "
                       f"with a `management` section? (set --url or VANE_URL)")
    # the same through VANE_URL, and with --json
    assert failure(cli("flows", "--json", env={"VANE_URL": url})).startswith(
        f"cannot reach the router's management API at {url};")


def test_bad_urls(cli):
    msg = failure(cli("status", url="127.0.0.1:8672"))
    assert msg.startswith("invalid URL '127.0.0.1:8672'") and "http[s]://HOST[:PORT]" in msg
    assert failure(cli("status", url="http://127.0.0.1:99999")).startswith("invalid URL")


def test_token(router_factory, cli):
    cfg = make_config(router_id="cli-t")
    cfg["management"] = {"port": 0, "token": TOKEN}
    r = router_factory(cfg)
    url = url_of(r)
    assert failure(cli("status", url=url)) == (
        "the router requires a management token; pass --token or set VANE_TOKEN")
    assert failure(cli("routers", url=url, token="wrong-token-0123456789")) == (
        "the router rejected the management token; check --token or VANE_TOKEN")
    assert re.search(r"^Router:\s+cli-t$", ok(cli("status", url=url, token=TOKEN)), re.M)
    assert "cli-t (self)" in ok(cli("routers", url=url, env={"VANE_TOKEN": TOKEN}))


def test_https(router_factory, cli, tmp_path):
    """A router serving its API over TLS: vane verifies the certificate
    against --cacert / VANE_CACERT, and says what to do when it can't."""
    cert, key = self_signed_cert(tmp_path)
    cfg = make_config(router_id="cli-s")
    cfg["tls_profiles"] = [{"name": "m", "certificate": str(cert), "key": str(key)}]
    cfg["management"] = {"port": 0, "token": TOKEN, "tls_profile": "m"}
    r = router_factory(cfg)
    url = f"https://127.0.0.1:{r.management_port}"
    out = ok(cli("routers", "--cacert", str(cert), url=url, token=TOKEN))
    assert "cli-s (self)" in out
    out = ok(cli("status", url=url, token=TOKEN, env={"VANE_CACERT": str(cert)}))
    assert re.search(r"^Router:\s+cli-s$", out, re.M)
    msg = failure(cli("routers", url=url, token=TOKEN))
    assert "certificate verify failed" in msg and "--cacert" in msg, msg
    # Plain http to a TLS port gets no HTTP answer.
    failure(cli("routers", url=f"http://127.0.0.1:{r.management_port}", token=TOKEN))


def test_api_error_text(router_factory, cli):
    """Other HTTP errors: the API's `error` text. A base path the API does
    not serve gets its 404."""
    cfg = make_config(router_id="cli-e")
    cfg["management"] = {"port": 0}
    r = router_factory(cfg)
    msg = failure(cli("routers", url=url_of(r) + "/elsewhere/"))
    assert msg.startswith("no such resource: /elsewhere/api/v1/routers"), msg
    assert "(HTTP 404)" in msg


def test_not_http_and_no_answer(router_factory, cli):
    # An AMQP listener answers with the AMQP protocol header, not HTTP.
    r = router_factory(make_config(router_id="cli-n"))
    msg = failure(cli("status", url=f"http://127.0.0.1:{r.port}"))
    assert "does not speak HTTP" in msg and "management port" in msg, msg

    # A port that accepts (in the kernel's backlog) and never answers: the
    # read timeout (5 s) bounds the wait.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        msg = failure(cli("flows", url=url, timeout=30))
        assert msg.startswith(f"the management API at {url} did not answer within 5 s"), msg
    finally:
        silent.close()


def test_usage_errors(cli):
    for args in (["frobnicate"], [], ["status", "--bogus"], ["--url"]):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.returncode, proc.stderr)
        assert proc.stdout == "" and proc.stderr.strip(), args
    assert "frobnicate" in cli("frobnicate").stderr
    help_ = cli("--help")
    assert help_.returncode == 0
    for word in ("status", "routers", "addresses", "flows", "--url", "--token", "--json",
                 "VANE_URL", "VANE_TOKEN"):
        assert word in help_.stdout, word


def test_colour_only_on_a_terminal(router_factory, vane_cli):
    cfg = make_config(router_id="cli-c")
    cfg["management"] = {"port": 0}
    r = router_factory(cfg)

    def on_tty(env_extra):
        env = {k: v for k, v in os.environ.items() if k not in ("VANE_URL", "VANE_TOKEN",
                                                                 "NO_COLOR")}
        env.update(env_extra, TERM="xterm")
        master, slave = pty.openpty()
        proc = subprocess.Popen([str(vane_cli), "status", "--url", url_of(r)], stdin=slave,
                                stdout=slave, stderr=slave, env=env)
        os.close(slave)
        out = b""
        done = threading.Event()

        def read():
            nonlocal out
            while True:
                try:
                    ready, _, _ = select.select([master], [], [], 20)
                    chunk = os.read(master, 4096) if ready else b""
                except OSError:  # EIO: the child closed the terminal
                    chunk = b""
                if not chunk:
                    break
                out += chunk
            done.set()
        t = threading.Thread(target=read, daemon=True)
        t.start()
        assert proc.wait(20) == 0
        done.wait(20)
        os.close(master)
        return out.decode(errors="replace")

    assert ANSI in on_tty({}) and "cli-c" in on_tty({})
    plain = on_tty({"NO_COLOR": "1"})
    assert ANSI not in plain and "cli-c" in plain
