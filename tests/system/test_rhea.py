"""Large messages from rhea (JavaScript) clients, every byte checked.

js/big_message.js opens a receiver and, once it is attached, a sender on a
second connection that sends one data section of 4, 5 or 6 MiB whose byte i
is (i * 31 + 7) & 255; it compares every byte and reports the first one that
differs. These sizes once arrived with 32 bytes of the router's freed heap
in them, at the same offset on every run, through one router and through
two.

Needs node and rhea (tests/system/js/node_modules, installed by
scripts/install-deps.sh with `npm ci`); without them the test fails.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from vane_network import Network

pytestmark = pytest.mark.integrity

JS_DIR = Path(__file__).resolve().parent / "js"
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def node():
    exe = shutil.which("node") or shutil.which("nodejs")
    if exe is None:
        pytest.fail("node is not installed: install Debian's nodejs and npm "
                    "(bash scripts/install-deps.sh)", pytrace=False)
    if not (JS_DIR / "node_modules" / "rhea" / "package.json").is_file():
        pytest.fail(f"rhea is not installed in {JS_DIR}/node_modules: run "
                    f"`npm ci --no-audit --no-fund` there (bash scripts/install-deps.sh does)",
                    pytrace=False)
    return exe


def run_big_message(node, send_port, receive_port, size, address, timeout=30):
    proc = subprocess.run([node, str(JS_DIR / "big_message.js"), "--send-port", str(send_port),
                           "--receive-port", str(receive_port), "--size", str(size),
                           "--address", address, "--timeout", str(timeout)],
                          cwd=str(JS_DIR), capture_output=True, text=True, timeout=timeout + 15)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"big_message.js printed no result (status {proc.returncode}):\n" \
                  f"{proc.stdout}{proc.stderr}"
    return proc.returncode, json.loads(lines[-1]), proc.stderr


@pytest.mark.parametrize("size", [4 * MiB, 5 * MiB, 6 * MiB], ids=["4MiB", "5MiB", "6MiB"])
@pytest.mark.parametrize("hops", [1, 2])
def test_rhea_large_message_intact(router_factory, node, hops, size):
    """One unsettled rhea message of `size` bytes through `hops` routers
    arrives with every byte intact and is accepted; twice, on a fresh router
    and on one that has already carried a large message."""
    net = Network(router_factory)
    names = ["A", "B"][:hops]
    for rid in names:
        net.interior(rid)
    if hops == 2:
        net.link("A", "B")
    net.start().wait_converged()
    for attempt in range(2):
        status, result, stderr = run_big_message(node, net.port("A"), net.port(names[-1]), size,
                                                 f"big{attempt}")
        where = f"attempt {attempt + 1}, {size} B through {hops} router(s)"
        assert "error" not in result, f"{where}: {result['error']} ({result}) {stderr}"
        assert result["received_size"] == size, f"{where}: {result}"
        assert result["mismatched_bytes"] == 0, (
            f"{where}: {result['mismatched_bytes']} bytes corrupted, the first at offset "
            f"{result['first_bad_offset']}: got {result['bad_bytes']}, "
            f"expected {result['expected_bytes']}")
        assert result["outcome"] == "accepted" and result["ok"], f"{where}: {result}"
        assert status == 0, f"{where}: big_message.js exited {status}: {stderr}"
