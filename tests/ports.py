"""Free loopback ports for the servers the tests start."""

from __future__ import annotations

import socket
from contextlib import ExitStack


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports of 127.0.0.1 that nothing listens on now.

    Every probe stays bound until all are chosen: probed one after another, two ports asked for together came out the
    same (a compose file's server and database then fought over one port).
    """
    with ExitStack() as probes:
        ports = []
        for _ in range(count):
            probe = probes.enter_context(socket.socket())
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
        return ports


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    return free_ports(1)[0]
