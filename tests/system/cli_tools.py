"""Helpers for tests that run the `vane` command: finding the binary, and
reading what a run printed."""

import os
import re
from pathlib import Path

import pytest

from vane_harness import find_vaned

ANSI = "\x1b["


def find_vane_cli():
    """$VANE_CLI, else `vane` next to vaned; fails the test if missing."""
    env = os.environ.get("VANE_CLI")
    path = Path(env) if env else find_vaned().parent / "vane"
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"vane binary not found at {path}: set $VANE_CLI or build the `vane` target "
                    f"next to vaned (cmake --build BUILD --target vaned vane)", pytrace=False)
    return path


def ok(proc):
    """stdout of a run that must succeed, clean."""
    assert proc.returncode == 0, f"vane exited {proc.returncode}: {proc.stderr}{proc.stdout}"
    assert proc.stderr == "", proc.stderr
    assert ANSI not in proc.stdout, "colour codes on a pipe"
    return proc.stdout


def failure(proc, code=1):
    """The one line a failed run prints on stderr, without the `vane: ` prefix."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vane: ")
    return lines[0][len("vane: "):]


def table(text):
    """Rows of an aligned table (cells are two or more spaces apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in text.splitlines() if line.strip()]
