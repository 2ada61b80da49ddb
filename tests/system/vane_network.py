"""Declarative router networks for the system tests.

``Network(router_factory)`` starts real vaned processes wired by connectors:

    net = Network(router_factory)
    net.interior("A"); net.interior("B"); net.interior("C")
    net.link("A", "B"); net.link("B", "C", cost=5)
    net.edge("E1", uplinks=["A", "B"])
    net.start()                     # in declaration order
    net.wait_converged()

``Network(factory, management={"port": 0})`` gives every router the
management API (``net["A"].api("GET", "/api/v1/router")``).

Every interior router has three listeners on free loopback ports: ``amqp``
(clients), ``inter`` (inter-router) and ``edge``. A link is made by a
connector on the router declared later, to the earlier one's listener, so
one start in declaration order wires everything. A killed router is
restarted on the same ports, so the connectors pointing at it reconnect.
"""

import re

from vane_harness import eventually, make_config

REACHABLE_RE = re.compile(r"router (?P<id>\S+): (?P<n>\d+) router\(s\) reachable")


class Network:
    def __init__(self, router_factory, hello_ms=None, dead_ms=None, workers=None, addresses=None,
                 log_level="debug", router_extra=None, management=None):
        self.factory = router_factory
        self.hello_ms = hello_ms
        self.dead_ms = dead_ms
        self.workers = workers
        self.addresses = addresses
        self.log_level = log_level
        self.router_extra = dict(router_extra or {})  # more `router:` settings for every router
        # A `management:` section for every router (e.g. {"port": 0}); see
        # Router.management_port and Router.api().
        self.management = dict(management) if management is not None else None
        self.tcp_listeners = {}  # id -> [tcp_listeners entries]
        self.tcp_connectors = {}  # id -> [tcp_connectors entries]
        self.sections = {}       # id -> {top-level section: value} (e.g. tls_profiles)
        self.http_listeners = {}  # id -> [http_listeners entries]
        self.http_connectors = {}  # id -> [http_connectors entries]
        self.order = []          # router ids in declaration order
        self.modes = {}          # id -> "interior" | "edge"
        self.links = []          # (a, b, cost): b connects to a
        self.uplinks = {}        # edge id -> [interior ids]
        self.routers = {}        # id -> vane_harness.Router
        self.fixed_ports = {}    # id -> {listener name: port} once started

    # -- declaration -------------------------------------------------------
    def interior(self, rid):
        self.order.append(rid)
        self.modes[rid] = "interior"
        return self

    def edge(self, rid, uplinks):
        self.order.append(rid)
        self.modes[rid] = "edge"
        self.uplinks[rid] = list(uplinks)
        return self

    def link(self, a, b, cost=1):
        self.links.append((a, b, cost))
        return self

    def tcp_listener(self, rid, name, address, port=0, host="127.0.0.1"):
        """A tcp listener on `rid` (port 0: a free port, kept on restart)."""
        self.tcp_listeners.setdefault(rid, []).append(
            {"name": name, "host": host, "port": port, "address": address})
        return self

    def tcp_connector(self, rid, name, address, port, host="127.0.0.1"):
        self.tcp_connectors.setdefault(rid, []).append(
            {"name": name, "host": host, "port": port, "address": address})
        return self

    def section(self, rid, key, value):
        """A top-level configuration section of `rid` as given (tls_profiles, ...)."""
        self.sections.setdefault(rid, {})[key] = value
        return self

    def http_listener(self, rid, name, address, port=0, host="127.0.0.1", **fields):
        """An http listener on `rid` (port 0: a free port, kept on restart);
        `fields`: more of its settings (routes, max_header_bytes, ...)."""
        self.http_listeners.setdefault(rid, []).append(
            dict({"name": name, "host": host, "port": port, "address": address}, **fields))
        return self

    def http_connector(self, rid, name, address, port, host="127.0.0.1", **fields):
        self.http_connectors.setdefault(rid, []).append(
            dict({"name": name, "host": host, "port": port, "address": address}, **fields))
        return self

    # -- configuration -----------------------------------------------------
    def _config(self, rid):
        extra = dict(self.router_extra)
        if self.hello_ms is not None:
            extra["hello_interval_ms"] = self.hello_ms
        if self.dead_ms is not None:
            extra["dead_interval_ms"] = self.dead_ms
        ports = self.fixed_ports.get(rid, {})
        listeners = [{"name": "amqp", "host": "127.0.0.1", "port": ports.get("amqp", 0),
                      "role": "normal"}]
        connectors = []
        if self.modes[rid] == "interior":
            listeners.append({"name": "inter", "host": "127.0.0.1",
                              "port": ports.get("inter", 0), "role": "inter-router"})
            listeners.append({"name": "edge", "host": "127.0.0.1",
                              "port": ports.get("edge", 0), "role": "edge"})
            pos = self.order.index(rid)
            for a, b, cost in self.links:
                first, second = (a, b) if self.order.index(a) < self.order.index(b) else (b, a)
                if second != rid:
                    continue
                assert self.order.index(first) < pos
                connectors.append({"name": f"to-{first}", "host": "127.0.0.1",
                                   "port": self.port(first, "inter"), "role": "inter-router",
                                   "cost": cost})
        else:
            for up in self.uplinks[rid]:
                connectors.append({"name": f"up-{up}", "host": "127.0.0.1",
                                   "port": self.port(up, "edge"), "role": "edge"})
        cfg = make_config(router_id=rid, workers=self.workers, listeners=listeners,
                          addresses=self.addresses, mode=self.modes[rid], **extra)
        if connectors:
            cfg["connectors"] = connectors
        if self.tcp_listeners.get(rid):
            cfg["tcp_listeners"] = [dict(t, port=ports.get("tcp:" + t["name"], t["port"]))
                                    for t in self.tcp_listeners[rid]]
        if self.tcp_connectors.get(rid):
            cfg["tcp_connectors"] = [dict(t) for t in self.tcp_connectors[rid]]
        if self.http_listeners.get(rid):
            cfg["http_listeners"] = [dict(t, port=ports.get("http:" + t["name"], t["port"]))
                                     for t in self.http_listeners[rid]]
        if self.http_connectors.get(rid):
            cfg["http_connectors"] = [dict(t) for t in self.http_connectors[rid]]
        if self.management is not None:
            cfg["management"] = dict(self.management)
        cfg.update(self.sections.get(rid, {}))
        return cfg

    def port(self, rid, listener="amqp"):
        return self.fixed_ports[rid][listener]

    def tcp_port(self, rid, name):
        """The port of tcp listener `name` on `rid`."""
        return self.fixed_ports[rid]["tcp:" + name]

    def http_port(self, rid, name):
        """The port of http listener `name` on `rid`."""
        return self.fixed_ports[rid]["http:" + name]

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        for rid in self.order:
            self.start_router(rid)
        return self

    def start_router(self, rid):
        r = self.factory(self._config(rid), name=rid, log_level=self.log_level)
        self.routers[rid] = r
        self.fixed_ports[rid] = dict(r.ports)
        self.fixed_ports[rid].update({"tcp:" + n: p for n, p in r.tcp_ports.items()})
        self.fixed_ports[rid].update({"http:" + n: p for n, p in r.http_ports.items()})
        return r

    def kill(self, rid):
        self.routers[rid].kill()

    def restart(self, rid):
        """Start a killed router again, on the same ports."""
        assert not self.routers[rid].alive()
        return self.start_router(rid)

    def __getitem__(self, rid):
        return self.routers[rid]

    def interiors(self):
        return [r for r in self.order if self.modes[r] == "interior"]

    # -- observation -------------------------------------------------------
    def reachable(self, rid):
        """The last 'N router(s) reachable' count the router logged (0 if none)."""
        n = 0
        for m in REACHABLE_RE.finditer(self.routers[rid].log_text()):
            n = int(m.group("n"))
        return n

    def expected_reachable(self, rid, alive=None):
        """How many routers `rid` should reach in the live network."""
        alive = set(alive if alive is not None else
                    [r for r in self.order if self.routers[r].alive()])
        if self.modes[rid] == "edge":
            return 1
        # interior: all live interiors connected to it, plus its own edges
        adj = {r: set() for r in alive if self.modes[r] == "interior"}
        for a, b, _ in self.links:
            if a in adj and b in adj:
                adj[a].add(b)
                adj[b].add(a)
        seen, todo = {rid}, [rid]
        while todo:
            x = todo.pop()
            for y in adj.get(x, ()):
                if y not in seen:
                    seen.add(y)
                    todo.append(y)
        return len(seen) - 1 + len(self._edges_attached_to(rid, alive))

    def _edges_attached_to(self, rid, alive):
        out = []
        for e, ups in self.uplinks.items():
            if e not in alive:
                continue
            live_ups = [u for u in ups if u in alive]
            if live_ups and self._current_uplink(e) == rid:
                out.append(e)
        return out

    def _current_uplink(self, edge):
        text = self.routers[edge].log_text()
        last = None
        for m in re.finditer(r"link to router (\S+) (up|down)", text):
            last = m.group(1) if m.group(2) == "up" else None
        return last

    def wait_converged(self, timeout=30.0):
        alive = [r for r in self.order if self.routers[r].alive()]

        def ok():
            bad = {r: (self.reachable(r), self.expected_reachable(r, alive)) for r in alive
                   if self.reachable(r) != self.expected_reachable(r, alive)}
            assert not bad, f"routers not converged (reachable, expected): {bad}"
            return True
        eventually(timeout, ok, interval=0.05, what="network converged")
        return self
