"""pytest fixtures for the vaned system tests.

Run with Debian's interpreter (it has python3-qpid-proton):

    /usr/bin/python3 -m pytest tests/system

The vaned binary is taken from $VANED, else build/src/vaned, else the newest
build*/src/vaned under the repository root.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from vane_harness import Router, VanedNotFound, find_vaned, make_config  # noqa: E402
from vane_client import Reactor  # noqa: E402


@pytest.fixture(scope="session")
def vaned_bin():
    try:
        return find_vaned()
    except VanedNotFound as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def router_factory(vaned_bin, tmp_path, request):
    """``make(config=None, name=None, start=True, **kw) -> Router``.

    ``config`` is a dict (see vane_harness.make_config); None means a default
    test configuration (one listener on a free port).  Every router still
    running at teardown is stopped with SIGTERM and must exit with status 0;
    a router that died on its own fails the test.
    """
    routers = []
    request.node._vane_routers = routers

    def make(config=None, name=None, start=True, log_level="debug", config_text=None,
             extra_args=(), timeout=20.0, command_prefix=()):
        if config is None and config_text is None:
            config = make_config()
        name = name or f"router{len(routers)}"
        for earlier in routers:
            # A restart under the same name: keep the earlier run's log (and
            # any sanitizer report in it) under another name.
            if earlier.name == name and not earlier.alive() and earlier.log_path.exists():
                runs = sum(1 for o in routers if o.name == name)
                kept = earlier.log_path.with_name(f"{name}.run{runs}.log")
                earlier.log_path.rename(kept)
                earlier.log_path = kept
        r = Router(vaned_bin, tmp_path, config=config, name=name, log_level=log_level,
                   config_text=config_text, extra_args=extra_args,
                   command_prefix=command_prefix)
        routers.append(r)
        if start:
            r.start(timeout=timeout)
        return r

    yield make

    problems = []
    for r in routers:
        if r.proc is None:
            continue
        if r.proc.poll() is not None:
            if not r.expected_exit:
                problems.append(f"vaned {r.name} died during the test with status "
                                f"{r.proc.returncode}; log tail:\n{r.log_tail()}")
            r._close_log()
            continue
        try:
            r.stop(timeout=10)
        except AssertionError as exc:
            problems.append(str(exc))
    for r in routers:
        for report in r.sanitizer_reports():
            problems.append(f"sanitizer report in vaned {r.name} ({r.log_path}):\n{report}")
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def router(router_factory):
    return router_factory()


@pytest.fixture
def reactor(request):
    """A proton Container thread, closed at teardown."""
    reactors = []

    def make(name=None):
        r = Reactor(name or f"client-{len(reactors)}")
        reactors.append(r)
        return r

    main = make("client")
    main.new = make
    yield main
    for r in reactors:
        r.close()
    errors = [e for r in reactors for e in r.errors]
    if errors:
        pytest.fail("proton client thread failed:\n" + "\n".join(errors), pytrace=False)


def pytest_collection_modifyitems(config, items):
    """Marks `multiworker` every test run with `workers` of 2 or more (a
    parameter of that name); others carry the mark themselves."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        workers = params.get("workers")
        if isinstance(workers, int) and workers >= 2:
            item.add_marker(pytest.mark.multiworker)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for r in getattr(item, "_vane_routers", []):
            try:
                rep.sections.append((f"vaned {r.name} log ({r.log_path})", r.log_tail(80)))
            except Exception:  # diagnostics must never mask the failure
                pass


@pytest.fixture
def servers():
    """Test servers (tcp_tools), closed at teardown: servers(EchoServer())."""
    made = []

    def add(server):
        made.append(server)
        return server
    yield add
    for s in made:
        s.close()
