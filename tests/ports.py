"""Free TCP ports on 127.0.0.1, for the servers and Ray nodes the tests start themselves."""

import socket


def free_ports(n: int) -> list[int]:
    """`n` distinct ports free at the time of the call (bound together, then released)."""
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
