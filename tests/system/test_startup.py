"""Startup, configuration errors and signal handling."""

import re
import signal
import socket
import time

import pytest
from proton import Message

from vane_harness import eventually, make_config, run_vaned


def test_minimal_config_starts(router_factory, reactor):
    # Only a listener: every router setting takes its default.
    r = router_factory({"listeners": [{"name": "amqp", "port": 0}]})
    assert re.search(r"listener amqp listening on 127\.0\.0\.1:\d+ \(role normal\)", r.log_text())
    assert r.port > 0
    conn = reactor.connect(r.port).wait_open()
    assert conn.remote_open


def test_full_config_two_listeners(router_factory, reactor):
    cfg = make_config(router_id="router-x", workers=2, link_capacity=100, listeners=[
        {"name": "front", "host": "127.0.0.1", "port": 0, "role": "normal"},
        {"name": "back", "host": "127.0.0.1", "port": 0, "role": "normal"},
    ])
    r = router_factory(cfg)
    assert r.router_id == "router-x"
    assert "router router-x ready" in r.log_text()
    assert set(r.ports) == {"front", "back"}
    assert r.ports["front"] != r.ports["back"]
    assert all(role == "normal" and host == "127.0.0.1" for host, _, role in r.listeners.values())
    # The ready line comes after every listener line.
    text = r.log_text()
    assert text.index("router router-x ready") > max(
        text.index(f"listener {n} listening") for n in ("front", "back"))
    # A message crosses from one listener to the other.
    c1 = reactor.connect(r.ports["front"]).wait_open()
    c2 = reactor.connect(r.ports["back"]).wait_open()
    rx = c2.receiver("q.across")
    tx = c1.sender("q.across")
    rec = tx.send(Message(body="hello"))
    rx.wait_count(1)
    assert rx.received[0].body == "hello"
    tx.wait_all_settled()
    assert rec.outcome == "ACCEPTED"


def _expect_config_error(vaned_bin, tmp_path, text, line, field, column=None, name="cfg.yaml"):
    (tmp_path / name).write_text(text)
    status, out, err = run_vaned(vaned_bin, ["--config", name], cwd=tmp_path, timeout=10)
    assert status == 2, f"expected exit status 2, got {status}; stderr:\n{err}\nstdout:\n{out}"
    col = r"\d+" if column is None else str(column)
    pattern = rf"{re.escape(name)}:{line}:{col}: field '{re.escape(field)}': \S"
    assert re.search(pattern, err), f"stderr lacks /{pattern}/:\n{err}"
    assert "ready" not in err
    return err


def test_config_error_port_out_of_range(vaned_bin, tmp_path):
    text = ("listeners:\n"
            "  - name: amqp\n"
            "    host: 127.0.0.1\n"
            "    port: 70000\n")
    _expect_config_error(vaned_bin, tmp_path, text, 4, "listeners[0].port", column=11)


CONFIG_ERRORS = [
    pytest.param(
        "router:\n  id: r\n  workers: 0\nlisteners:\n  - name: amqp\n    port: 0\n",
        3, "router.workers", 12, id="workers-zero"),
    pytest.param(
        "router:\n  id: r\n  workers: lots\nlisteners:\n  - name: amqp\n    port: 0\n",
        3, "router.workers", 12, id="workers-not-a-number"),
    pytest.param(
        "router:\n  id: r\n  mode: sideways\nlisteners:\n  - name: amqp\n    port: 0\n",
        3, "router.mode", 9, id="bad-mode"),
    pytest.param(
        "listeners:\n  - name: amqp\n    port: 0\n  - name: second\n    port: abc\n",
        5, "listeners[1].port", 11, id="port-not-a-number"),
    pytest.param(
        "listeners:\n  - name: amqp\n    port: 0\n    role: boss\n",
        4, "listeners[0].role", 11, id="bad-role"),
    pytest.param(
        "listeners:\n  - name: amqp\n    port: 0\naddresses:\n  - prefix: a/\n"
        "    distribution: sideways\n",
        6, "addresses[0].distribution", 19, id="bad-distribution"),
    pytest.param(
        "router:\n  id: r\n  colour: blue\nlisteners:\n  - name: amqp\n    port: 0\n",
        3, "router.colour", None, id="unknown-router-key"),
    pytest.param(
        "listeners:\n  - name: amqp\n    port: 0\n    tls: yes\n",
        4, "listeners[0].tls", None, id="unknown-listener-key"),
    pytest.param(
        "listeners:\n  - name: amqp\n    port: 0\nbogus: 1\n",
        4, "bogus", None, id="unknown-top-level-key"),
    pytest.param(
        "router:\n  link_capacity: -5\nlisteners:\n  - name: amqp\n    port: 0\n",
        2, "router.link_capacity", 18, id="negative-link-capacity"),
]


@pytest.mark.parametrize("text,line,field,column", CONFIG_ERRORS)
def test_config_errors(vaned_bin, tmp_path, text, line, field, column):
    _expect_config_error(vaned_bin, tmp_path, text, line, field, column=column)


def test_config_yaml_syntax_error(vaned_bin, tmp_path):
    (tmp_path / "cfg.yaml").write_text("listeners:\n  - name: [amqp\n    port: 0\n")
    status, out, err = run_vaned(vaned_bin, ["--config", "cfg.yaml"], cwd=tmp_path, timeout=10)
    assert status == 2, f"status {status}; stderr:\n{err}"
    assert re.search(r"cfg\.yaml:\d+:\d+", err), err


def test_config_missing_file(vaned_bin, tmp_path):
    status, out, err = run_vaned(vaned_bin, ["--config", "no-such-file.yaml"], cwd=tmp_path,
                                 timeout=10)
    assert status == 2, f"status {status}; stderr:\n{err}"
    assert "no-such-file.yaml" in err


def test_config_error_names_given_path(vaned_bin, tmp_path):
    # The file name in the message is the path as given on the command line.
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "bad.yaml").write_text("router:\n  workers: 0\nlisteners:\n  - name: amqp\n    port: 0\n")
    status, out, err = run_vaned(vaned_bin, ["--config", "conf/bad.yaml"], cwd=tmp_path,
                                 timeout=10)
    assert status == 2, f"status {status}; stderr:\n{err}"
    assert re.search(r"conf/bad\.yaml:2:\d+: field 'router\.workers': \S", err), err


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_closes_clients_and_exits_zero(router_factory, reactor, workers, signum):
    r = router_factory(make_config(workers=workers))
    conns = [reactor.connect(r.port).wait_open() for _ in range(4)]
    rx = conns[0].receiver("q.sig")
    tx = conns[1].sender("q.sig")
    tx.send(Message(body="before"))
    rx.wait_count(1)
    idle = conns[2:]   # connections without links must be closed too
    started = time.monotonic()
    r.signal(signum)
    status = r.wait(timeout=10)
    elapsed = time.monotonic() - started
    assert status == 0, f"exit status {status} after {signum!r}; log:\n{r.log_tail()}"
    assert elapsed < 5, f"shutdown took {elapsed:.1f}s"
    for c in conns:
        eventually(5, lambda: c.remote_closed or c.transport_closed, what="client closed")
        assert c.remote_closed, (f"client saw no AMQP close (transport condition "
                                 f"{c.transport_condition})")
        assert c.remote_condition is not None, "close carried no error condition"
        assert c.remote_condition[0] == "amqp:connection:forced", c.remote_condition
    assert idle[0].remote_closed


def test_signal_with_no_clients(router_factory):
    r = router_factory()
    r.stop(timeout=5, signum=signal.SIGINT)


def test_listener_port_is_really_bound(router_factory):
    r = router_factory()
    with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
        s.sendall(b"AMQP\x00\x01\x00\x00")
        s.settimeout(5)
        data = s.recv(8)
    assert data.startswith(b"AMQP"), data


@pytest.mark.parametrize("sasl", [True, False], ids=["sasl-anonymous", "plain-amqp"])
def test_clients_with_and_without_sasl(router_factory, reactor, sasl):
    r = router_factory()
    rconn = reactor.connect(r.port, sasl=sasl).wait_open()
    sconn = reactor.connect(r.port, sasl=sasl).wait_open()
    rx = rconn.receiver("q.sasl")
    tx = sconn.sender("q.sasl")
    rec = tx.send(Message(body="hi"))
    rx.wait_count(1)
    tx.wait_all_settled()
    assert rec.outcome == "ACCEPTED"


@pytest.mark.parametrize("role", ["inter-router", "edge"])
def test_router_listener_needs_tls_or_insecure(vaned_bin, tmp_path, router_factory, reactor, role):
    """A router listener without TLS is refused at start (it would take
    anyone for a router) unless it says insecure: true; then vaned warns,
    and the API shows it."""
    text = ("router:\n  id: r\nlisteners:\n  - name: amqp\n    port: 0\n"
            f"  - name: links\n    port: 0\n    role: {role}\n")
    err = _expect_config_error(vaned_bin, tmp_path, text, 6, "listeners[1].tls_profile")
    assert "insecure: true" in err and "tls_profile" in err, err
    cfg = make_config(router_id="r", listeners=[
        {"name": "amqp", "host": "127.0.0.1", "port": 0},
        {"name": "links", "host": "127.0.0.1", "port": 0, "role": role, "insecure": True}])
    cfg["management"] = {"port": 0}
    r = router_factory(cfg)
    r.wait_for_log(rf"listener links \(127\.0\.0\.1:0, role {role}\) is insecure")
    links = [entry for entry in r.api("GET", "/api/v1/listeners").json()
             if entry["name"] == "links"][0]
    assert links["insecure"] is True and links["tls_profile"] is None, links
    assert [entry for entry in r.api("GET", "/api/v1/listeners").json()
            if entry["name"] == "amqp"][0]["insecure"] is False
