"""Sites set up with the `vane` command only, as a new user would (the
README section "Connect two sites in five minutes"): `vane site
init/start/stop/status`, tokens, links, `vane expose` / `vane listen`, and
`vane status`.

Three sites a, b and c on this machine: a and c link to b with tokens b
issued, c exposes an echo server as `echo`, a listens for `echo` on a local
port, and bytes sent there come back through b. Then the ways a token is
refused (expired, used up, altered, from another network), each with its
one-sentence message, while the network keeps working; and the list/delete
commands, changes to a stopped site, and stopping.

The binaries: $VANE_CLI (else `vane` next to vaned) and $VANED."""

import http.client
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from http_tools import Origin
from tcp_tools import EchoServer, echo_roundtrip, free_port
from cli_tools import failure, find_vane_cli, ok, table
from vane_harness import eventually, find_vaned



@pytest.fixture(scope="module")
def binaries():
    return find_vane_cli(), find_vaned()


class Sites:
    """Runs `vane` for sites in one base directory; stops them all at the end."""

    def __init__(self, binaries, base):
        self.vane, self.vaned = binaries
        self.base = Path(base)
        self.dirs = []

    def env(self, extra=None):
        env = {k: v for k, v in os.environ.items()
               if k not in ("VANE_URL", "VANE_TOKEN", "VANE_DIR", "NO_COLOR")}
        env["VANE_VANED"] = str(self.vaned)
        env["XDG_CONFIG_HOME"] = str(self.base / "xdg")  # never the user's own site
        env.update(extra or {})
        return env

    def run(self, site, *args, env=None, timeout=60):
        cmd = [str(self.vane)]
        if site is not None:
            cmd += ["--dir", str(self.dir(site))]
        return subprocess.run(cmd + [str(a) for a in args], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout,
                              env=self.env(env), cwd=str(self.base))

    def dir(self, site):
        return self.base / site

    def init(self, site, start=True):
        """`vane site init` with free ports, 127.0.0.1 as the host; then start."""
        ports = [free_port() for _ in range(3)]
        ok(self.run(site, "site", "init", site, "--host", "127.0.0.1", "--link-port", ports[0],
                    "--claim-port", ports[1], "--management-port", ports[2],
                    "--amqp-port", 0))
        self.dirs.append(self.dir(site))
        if start:
            out = ok(self.run(site, "site", "start"))
            assert f"site '{site}' is running" in out, out

    def token(self, site, *args):
        path = self.base / f"{site}-{time.monotonic_ns()}.token"
        out = ok(self.run(site, "token", "issue", "-o", path, *args))
        assert str(path) in out and "vane link create" in out, out
        return path

    def stop_all(self):
        problems = []
        for d in self.dirs:
            pid_file = d / "vaned.pid"
            if not pid_file.exists():
                continue
            proc = self.run(None, "--dir", d, "site", "stop")
            if proc.returncode != 0:
                problems.append(f"vane site stop in {d}: {proc.stderr}")
                try:
                    os.kill(int(pid_file.read_text()), 9)
                except (OSError, ValueError):
                    pass
        return problems








def echoes(port, size=3000):
    try:
        return echo_roundtrip(port, b"v" * size, timeout=5)[0] == size
    except OSError:  # reset: no connector reachable yet
        return False


@pytest.fixture(scope="module")
def net(binaries, tmp_path_factory):
    """Sites a, b, c (a - b - c), echo exposed on c, listened for on a."""
    sites = Sites(binaries, tmp_path_factory.mktemp("sites"))
    echo = EchoServer()
    try:
        for name in ("a", "b", "c"):
            sites.init(name)
        token_a, token_c = sites.token("b"), sites.token("b", "--expires", "1h", "--uses", "1")
        out = ok(sites.run("a", "link", "create", token_a))
        assert re.match(r"linked to site 'b' at 127\.0\.0\.1:\d+ \(cost 1\)$", out.strip()), out
        out = ok(sites.run("c", "link", "create", token_c, "--cost", "2"))
        assert "linked to site 'b'" in out and "(cost 2)" in out, out
        out = ok(sites.run("c", "expose", "tcp", "echo", "--to", f"127.0.0.1:{echo.port}"))
        assert out.startswith(f"exposed 127.0.0.1:{echo.port} as address 'echo'"), out
        sites.port = free_port()
        out = ok(sites.run("a", "listen", "tcp", "echo", "--port", sites.port))
        assert out.startswith(f"listening on 127.0.0.1:{sites.port} for address 'echo'"), out
        eventually(20, lambda: echoes(sites.port), interval=0.1, what="an echo from a through b to c")
        sites.echo = echo
        yield sites
    finally:
        problems = sites.stop_all()
        echo.close()
        assert not problems, problems


def still_works(net):
    """The network is as it was: a's link to b is up and the echo works."""
    rows = table(ok(net.run("a", "link", "list")))
    assert rows[1][0] == "b" and rows[1][3] == "connected", rows
    assert echoes(net.port)


def test_three_sites(net):
    status = json.loads(ok(net.run("a", "status", "--json")))
    assert status["site"]["name"] == "a" and status["site"]["running"] is True
    assert status["router"]["id"] == "a"
    assert sorted(r["id"] for r in status["routers"]["routers"]) == ["a", "b", "c"]
    assert [c["name"] for c in status["connectors"]] == ["b"]
    assert status["connectors"][0]["state"] == "connected"
    assert any(a["address"] == "echo" and a["remote_routers"] == ["c"]
               for a in status["addresses"])
    assert [t["name"] for t in status["tcp_listeners"]] == ["echo"]

    text = ok(net.run("a", "status"))
    assert re.search(r"^Site:\s+a \(running, pid \d+; ", text, re.M), text
    assert re.search(r"^Reachable:\s+2 routers$", text, re.M), text
    assert "Links made by this site:" in text and "Routers:" in text, text
    assert re.search(r"^\s+c\s+3\s+b$", text, re.M), text  # c is 1 + 2 away, through b
    # b sees both links as incoming ones
    text = ok(net.run("b", "status"))
    assert re.search(r"^Links \(2 of 2 up\):$", text, re.M), text
    assert "Links made by this site: none" in text
    # the other read commands default to the site too
    assert "a (self)" in ok(net.run("a", "routers"))
    assert "echo" in ok(net.run("c", "addresses"))

    rows = table(ok(net.run("a", "link", "list")))
    assert rows[0] == ["NAME", "ENDPOINT", "COST", "STATE", "CERT EXPIRES"]
    assert rows[1][:4] == ["b", rows[1][1], "1", "connected"]
    rows = table(ok(net.run("c", "expose", "list")))
    assert rows[1][:4] == ["echo", "echo", f"127.0.0.1:{net.echo.port}", "ok"], rows
    rows = table(ok(net.run("a", "listen", "list")))
    assert rows[1][:4] == ["echo", "echo", f"127.0.0.1:{net.port}", "listening"], rows
    tokens = table(ok(net.run("b", "token", "list")))
    assert sorted(r[2:] for r in tokens[1:]) == [["1 of 1", "used up", "a"],
                                                 ["1 of 1", "used up", "c"]], tokens

    out = ok(net.run("a", "site", "status"))
    assert out.startswith("site 'a' is running (pid "), out
    # the link is in a's configuration, with its own credentials
    assert (net.dir("a") / "links" / "b" / "key.pem").stat().st_mode & 0o077 == 0
    assert "tls_profile: link-b" in (net.dir("a") / "vaned.yaml").read_text()
    # each site's identity key (docs/design/trust-model.md): in the site
    # directory, created by vaned at its first start, private
    for site in ("a", "b", "c"):
        assert "key_file: identity-key.pem" in (net.dir(site) / "vaned.yaml").read_text()
        key = net.dir(site) / "identity-key.pem"
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert key.stat().st_mode & 0o077 == 0


def test_expired_token(net):
    token = net.token("b", "--expires", "1s")
    expires = json.loads(token.read_text())["expires"]
    eventually(5, lambda: time.time() > expires + 0.1, interval=0.1)
    msg = failure(net.run("a", "link", "create", token, "--name", "b-again"))
    assert re.fullmatch(rf"token {re.escape(str(token))} expired at .+; ask site 'b' for a new "
                        r"one \(`vane token issue`\)", msg), msg
    assert not (net.dir("a") / "links" / "b-again").exists()
    still_works(net)


def test_used_up_token(net):
    token = net.token("b", "--uses", "1")
    net.init("u", start=False)  # redeems it first (a stopped site: only its file changes)
    out = ok(net.run("u", "link", "create", token))
    assert "takes effect at `vane site start`" in out, out
    assert (net.dir("u") / "links" / "b" / "cert.pem").exists()
    msg = failure(net.run("c", "link", "create", token, "--name", "b2"))
    assert msg == ("site 'b' refused the token: the token has already been used (1 of 1 use); "
                   "ask site 'b' for a new token"), msg
    assert not (net.dir("c") / "links" / "b2").exists()
    still_works(net)


def test_altered_token(net):
    original = json.loads(net.token("b").read_text())
    for field, value in (("links", ["127.0.0.1:1"]), ("secret", "forged-secret-" + "x" * 30),
                         ("expires", original["expires"] + 86400)):
        altered = dict(original, **{field: value})
        path = net.base / f"altered-{field}.token"
        path.write_text(json.dumps(altered))
        msg = failure(net.run("a", "link", "create", path, "--name", "b3"))
        assert msg == (f"token {path} has been altered since it was issued (its signature does "
                       f"not match); ask site 'b' for a new token"), msg
    path = net.base / "not-a-token.json"
    path.write_text('{"hello": 1}')
    msg = failure(net.run("a", "link", "create", path))
    assert msg.startswith(f"{path} is not a Vane token") and "vane token issue" in msg, msg
    still_works(net)


def test_token_from_another_network(net, tmp_path):
    """Site d's token, re-signed with site e's CA: the signature checks
    out, but the site at the claim port proves to be d, not e."""
    import base64
    for name in ("d", "e"):
        net.init(name, start=(name == "d"))
    token = json.loads(net.token("d").read_text())
    token["ca"] = (net.dir("e") / "ca.pem").read_text()
    del token["signature"]
    canonical = json.dumps(token, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign",
                                str(net.dir("e") / "ca-key.pem")], input=canonical.encode(),
                               capture_output=True, check=True).stdout
    token["signature"] = base64.b64encode(signature).decode()
    path = tmp_path / "forged.token"
    path.write_text(json.dumps(token))
    msg = failure(net.run("a", "link", "create", path))
    host_port = token["claim"]
    assert msg == (f"the site at {host_port} did not prove it issued this token (its certificate "
                   f"is not signed by the token's CA); the token may come from another network")
    ok(net.run("d", "site", "stop"))
    still_works(net)


def test_stopped_site(net):
    """Changes to a stopped site go into its file and work once it starts;
    what needs the running router says how to start it."""
    net.init("s", start=False)
    msg = failure(net.run("s", "token", "issue"))
    assert msg == "site 's' is not running; start it with `vane site start`"
    assert failure(net.run("s", "status")) == msg
    out = ok(net.run("s", "expose", "tcp", "echo", "--to", f"127.0.0.1:{net.echo.port}",
                     "--name", "echo-s"))
    assert out.strip().endswith("site 's' is not running, so this takes effect at "
                                "`vane site start`"), out
    proc = net.run("s", "site", "status")
    assert proc.returncode == 3 and "not running" in proc.stdout
    ok(net.run("s", "site", "start"))
    rows = table(ok(net.run("s", "expose", "list")))
    assert rows[1][0] == "echo-s" and rows[1][3] == "ok", rows
    assert "already running" in ok(net.run("s", "site", "start"))
    ok(net.run("s", "site", "stop"))
    assert "is not running" in ok(net.run("s", "site", "stop"))


def test_messages_and_usage(net, binaries, tmp_path):
    assert failure(net.run("a", "link", "delete", "nope")) == (
        "there is no link named 'nope'; see the links with `vane link list`")
    # Names are never paths: nothing outside links/ can be deleted.
    victim = tmp_path / "victim"
    victim.mkdir()
    for name in ("..", ".", str(victim), "../links"):
        assert failure(net.run("a", "link", "delete", name)).startswith("there is no link named")
    assert victim.is_dir() and any(net.dir("a").iterdir())
    assert failure(net.run("a", "listen", "delete", "nope")).startswith(
        "there is no listener named 'nope'")
    msg = failure(net.run("a", "listen", "tcp", "echo", "--port", net.port))
    assert msg.startswith("a listener named 'echo' already exists"), msg
    msg = failure(net.run("a", "listen", "tcp", "other", "--port", net.port))
    assert "cannot add listener 'other'" in msg and "Address already in use" in msg, msg
    msg = failure(net.run("a", "site", "init", "x"))
    assert msg.startswith("site 'a' already exists in "), msg
    msg = failure(net.run(None, "--dir", tmp_path / "none", "link", "list"))
    assert msg.startswith("there is no site in ") and "vane site init NAME" in msg, msg
    msg = failure(net.run(None, "--dir", tmp_path / "bad", "site", "init", "no/slash"))
    assert "is not valid" in msg, msg
    for args in (["link", "create"], ["token", "issue", "--uses", "0"], ["site"],
                 ["expose", "tcp", "x", "--to", "nohostport"], ["listen", "tcp", "x"]):
        proc = net.run("a", *args)
        assert proc.returncode == 2, (args, proc.stderr)
    # the default directory: $XDG_CONFIG_HOME/vane
    home = tmp_path / "config"
    proc = net.run(None, "site", "init", "home", "--host", "127.0.0.1", "--link-port",
                   free_port(), env={"XDG_CONFIG_HOME": str(home)})
    assert ok(proc).startswith(f"created site 'home' in {home / 'vane'}")
    assert json.loads((home / "vane" / "site.json").read_text())["name"] == "home"
    assert (home / "vane" / "ca-key.pem").stat().st_mode & 0o077 == 0
    proc = net.run(None, "site", "start", "--systemd", env={"XDG_CONFIG_HOME": str(home)})
    unit = home / "systemd" / "user" / "vane-home.service"
    assert str(unit) in ok(proc) and f"--config {home / 'vane' / 'vaned.yaml'}" in unit.read_text()


def test_http_services(net):
    """`vane expose http` and `vane listen http`: each request of one
    keep-alive connection from a reaches the origin behind c, through b."""
    origin = Origin("origin-c")
    try:
        out = ok(net.run("c", "expose", "http", "web", "--to", f"127.0.0.1:{origin.port}"))
        assert out.startswith(f"exposed HTTP server 127.0.0.1:{origin.port} as address 'web'"), out
        port = free_port()
        out = ok(net.run("a", "listen", "http", "web", "--port", port))
        assert out.startswith(f"listening on 127.0.0.1:{port} for HTTP requests to address "
                              "'web'"), out
        assert "http_listeners:" in (net.dir("a") / "vaned.yaml").read_text()

        def served():
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/hello")
                r = c.getresponse()
                return r.status == 200 and r.read() == b"hello from origin-c\n"
            except OSError:
                return False
        eventually(20, served, interval=0.2, what="an HTTP answer from c through b")
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(5):
            c.request("GET", "/headers")
            r = c.getresponse()
            assert r.status == 200
            seen = dict((k.lower(), v) for k, v in json.loads(r.read()))
            assert seen["x-forwarded-for"] == "127.0.0.1"
        c.close()

        rows = table(ok(net.run("c", "expose", "list")))
        assert ["web", "web", f"127.0.0.1:{origin.port}", "ok", "0", "http"] in rows, rows
        rows = table(ok(net.run("a", "listen", "list")))
        assert ["web", "web", f"127.0.0.1:{port}", "listening", "0", "http"] in rows, rows
        text = ok(net.run("a", "status"))
        assert "HTTP listening here (vane listen http):" in text, text
        assert re.search(rf"^\s+web\s+web\s+127\.0\.0\.1:{port}\s+listening\s+0\s+\d+\s+\d+",
                         text, re.M), text
        text = ok(net.run("c", "status"))
        assert "HTTP exposed here (vane expose http):" in text, text

        # a tcp listener with the same name: delete must be told which
        tcp_port = free_port()
        ok(net.run("a", "listen", "tcp", "web", "--port", tcp_port))
        msg = failure(net.run("a", "listen", "delete", "web"))
        assert "--protocol" in msg, msg
        assert ok(net.run("a", "listen", "delete", "web", "--protocol", "http")).startswith(
            "deleted http listener 'web'")
        assert ok(net.run("a", "listen", "delete", "web")).startswith("deleted listener 'web'")
        eventually(10, lambda: not served(), interval=0.1, what="a's http port closed")
        assert ok(net.run("c", "expose", "delete", "web")).startswith(
            "deleted http exposed service 'web'")
    finally:
        origin.close()


def test_delete_and_stop(net):
    ok(net.run("a", "listen", "delete", "echo"))
    assert "No listeners" in ok(net.run("a", "listen", "list"))
    eventually(10, lambda: not echoes(net.port), interval=0.1, what="a's echo port closed")
    ok(net.run("c", "expose", "delete", "echo"))
    assert "No exposed services" in ok(net.run("c", "expose", "list"))
    ok(net.run("c", "link", "delete", "b"))
    assert not (net.dir("c") / "links" / "b").exists()
    assert "link-b" not in (net.dir("c") / "vaned.yaml").read_text()

    def routers_of_a():
        status = json.loads(ok(net.run("a", "status", "--json")))
        return sorted(r["id"] for r in status["routers"]["routers"])
    eventually(15, lambda: routers_of_a() == ["a", "b"], interval=0.2, what="c gone from a's view")
    for name in ("a", "b", "c"):
        assert ok(net.run(name, "site", "stop")) == f"site '{name}' stopped\n"
        proc = net.run(name, "site", "status")
        assert proc.returncode == 3 and proc.stdout.startswith(f"site '{name}' is not running")
        assert not (net.dir(name) / "vaned.pid").exists()
