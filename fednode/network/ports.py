"""Chain: picks the loopback TCP ports of local validators (p2p, JSON-RPC, engine API).

A restarted network keeps its previous ports when all of them are still free, so clients
holding its JSON-RPC URLs keep working; otherwise every validator gets new ones.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import replace

from fednode.network.info import NetworkInfo, ValidatorInfo

__all__ = ["assign_ports", "choose_free_ports", "port_is_free"]


def choose_free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """Asks the OS for ``count`` distinct free TCP ports on ``host``.

    All sockets stay bound until every port is chosen, so no port is handed out twice.

    Example:
        >>> ports = choose_free_ports(3)
        >>> len(set(ports)), all(1024 <= p < 65536 for p in ports)
        (3, True)
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """Tells whether a TCP port can be bound on ``host`` right now.

    Example:
        >>> port_is_free(0)
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _with_ports(v: ValidatorInfo, host: str, p2p: int, http: int, authrpc: int) -> ValidatorInfo:
    """Returns ``v`` moved to new ports (its enode keeps the node's public key)."""
    pubkey = v.enode.removeprefix("enode://").split("@", 1)[0]
    return replace(
        v,
        enode=f"enode://{pubkey}@{host}:{p2p}",
        http_url=f"http://{host}:{http}",
        p2p_port=p2p,
        http_port=http,
        authrpc_port=authrpc,
    )


def assign_ports(info: NetworkInfo, *, host: str = "127.0.0.1") -> NetworkInfo:
    """Gives every validator its p2p, JSON-RPC and engine API ports.

    Args:
        info: The network; validators with port 0 have none yet.
        host: Loopback address the nodes listen on.

    Returns:
        ``info`` unchanged if all its ports are set and free, otherwise a copy with new ports.
    """
    old = [p for v in info.validators for p in (v.p2p_port, v.http_port, v.authrpc_port)]
    if all(old) and len(set(old)) == len(old) and all(port_is_free(p, host) for p in old):
        return info
    fresh = iter(choose_free_ports(len(old), host))
    nodes = tuple(
        _with_ports(v, host, next(fresh), next(fresh), next(fresh)) for v in info.validators
    )
    return replace(info, validators=nodes)
