"""Ports on the loopback interface for multi-process tests.

Imported by the MultiWorkerMirroredStrategy tests; nothing here leaves
127.0.0.1.
"""

import socket


def free_ports(count):
    """`count` TCP ports free on 127.0.0.1 at the time of the call.

    Args:
        count: int. How many ports.

    Returns:
        A list of int.
    """
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports
