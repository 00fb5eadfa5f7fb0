"""Chain: a validator's public JSON-RPC door: serves eth, net and web3 over HTTP, relayed to IPC.

geth runs with no HTTP server at all: its IPC socket (``geth.ipc``, mode 0600, in the datadir)
serves every API (admin, debug, miner, clique, txpool) to the operator's own tools, and only
there. That is also what lets geth unlock the Clique sealer key without
``--allow-insecure-unlock``: geth refuses ``--unlock`` while any HTTP server of its own runs.
This gateway, one process beside each geth, listens on the validator's HTTP address and relays
a JSON-RPC request to the IPC socket only when :func:`allowed` says so:

- methods of the ``eth``, ``net`` and ``web3`` namespaces, except those that use the node's
  own keys (``eth_sign``, ``eth_sendTransaction``... see ``KEY_METHODS``): an unlocked sealer
  must never sign for a caller;
- on a loopback address only, also Clique's read-only methods (``LOOPBACK_READS``), which the
  auditor and the dashboards of a one-host network read.

Anything else is answered ``-32601 the method <name> does not exist/is not available``, as
geth answers a namespace it does not serve. The gateway follows its geth: it exits when that
process is gone. Only the standard library is used, so it starts fast as a plain script.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "KEY_METHODS",
    "LOOPBACK_READS",
    "MAX_BODY_BYTES",
    "PUBLIC_NAMESPACES",
    "IpcError",
    "allowed",
    "ipc_call",
    "ipc_exchange",
    "is_loopback",
    "main",
    "screen",
]

PUBLIC_NAMESPACES = frozenset({"eth", "net", "web3"})
KEY_METHODS = frozenset({
    "eth_accounts", "eth_sign", "eth_signTransaction", "eth_sendTransaction",
    "eth_signTypedData", "eth_signTypedData_v3", "eth_signTypedData_v4", "eth_fillTransaction",
    "eth_subscribe", "eth_unsubscribe",
})  # fmt: skip
"""eth methods that use the node's own accounts (or need a connection HTTP does not keep)."""
LOOPBACK_READS = frozenset({
    "clique_getSigner", "clique_getSigners", "clique_getSignersAtHash", "clique_getSnapshot",
    "clique_getSnapshotAtHash", "clique_status", "clique_proposals",
})  # fmt: skip
"""Clique methods that only read; served on a loopback address, never on a routable one."""
MAX_BODY_BYTES = 5 * 1024 * 1024  # geth's own HTTP limit
_NOT_AVAILABLE = -32601
_PARSE_ERROR = -32700
_INVALID_REQUEST = -32600
_NODE_DOWN = -32603


class IpcError(Exception):
    """The IPC socket could not be reached or answered with something that is not JSON."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``).

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("10.77.0.1"), is_loopback("localhost")
        (True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed(method: Any, *, loopback: bool) -> bool:
    """Whether the gateway relays a call of ``method`` (see the module docstring).

    Example:
        >>> [allowed(m, loopback=False) for m in ("eth_call", "eth_sign", "admin_addPeer")]
        [True, False, False]
        >>> allowed("clique_getSigners", loopback=True), allowed("clique_propose", loopback=True)
        (True, False)
    """
    if not isinstance(method, str) or "_" not in method or method in KEY_METHODS:
        return False
    if loopback and method in LOOPBACK_READS:
        return True
    return method.split("_", 1)[0] in PUBLIC_NAMESPACES


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _refusal(call: Any, *, loopback: bool) -> dict[str, Any] | None:
    """The answer to a call the gateway does not relay, or None when it relays it."""
    if not isinstance(call, dict):
        return _error(None, _INVALID_REQUEST, "invalid request")
    method = call.get("method")
    if allowed(method, loopback=loopback):
        return None
    return _error(call.get("id"), _NOT_AVAILABLE,
                  f"the method {method} does not exist/is not available")


def screen(payload: Any, *, loopback: bool) -> tuple[list[Any], dict[int, dict[str, Any]]]:
    """Splits a request (one call or a batch) into the calls to relay and the refusals.

    Returns:
        (calls to relay in order, refusal by position in the batch); a single call is a batch
        of one.

    Example:
        >>> relay, refused = screen([{"id": 1, "method": "eth_blockNumber"},
        ...                          {"id": 2, "method": "debug_setHead"}], loopback=False)
        >>> [c["id"] for c in relay], refused[1]["error"]["code"]
        ([1], -32601)
    """
    calls = payload if isinstance(payload, list) else [payload]
    relay, refused = [], {}
    for position, call in enumerate(calls):
        refusal = _refusal(call, loopback=loopback)
        if refusal is None:
            relay.append(call)
        else:
            refused[position] = refusal
    return relay, refused


def ipc_exchange(sock: socket.socket, body: bytes) -> Any:
    """Sends one JSON-RPC request (or batch) on a connected IPC socket, returns the parsed answer.

    geth ends every answer with a newline and never puts one inside it.

    Raises:
        IpcError: The socket closed before a whole answer came, or the answer is not JSON.
    """
    sock.sendall(body)
    buffer = bytearray()
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise IpcError("the IPC socket closed before a whole answer came")
        buffer += chunk
        if buffer.endswith(b"\n"):
            try:
                return json.loads(buffer)
            except ValueError:
                continue  # a newline that ended a chunk but not the answer


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        raise IpcError(f"cannot connect to {path}: {exc}") from exc
    return sock


def ipc_call(path: str | os.PathLike[str], method: str, params: Sequence[Any] | None = None,
             *, timeout: float = 5.0) -> dict[str, Any]:
    """Makes one JSON-RPC call on a geth IPC socket; returns the whole answer object.

    Raises:
        IpcError: The socket is unreachable, timed out, or answered something that is not a
            JSON-RPC answer.
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                       "params": list(params or [])}).encode()
    sock = _connect(os.fspath(path), timeout)
    try:
        answer = ipc_exchange(sock, body)
    except OSError as exc:
        raise IpcError(f"{method} on {os.fspath(path)} failed: {exc}") from exc
    finally:
        sock.close()
    if not isinstance(answer, dict):
        raise IpcError(f"{method} on {os.fspath(path)}: not a JSON-RPC answer: {answer!r:.200}")
    return answer


class _Relay:
    """One IPC connection per serving thread, opened again after any failure."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path, self.timeout = path, timeout
        self._local = threading.local()

    def send(self, calls: list[Any], batch: bool) -> Any:
        body = json.dumps(calls if batch else calls[0]).encode()
        for attempt in (1, 2):  # a connection geth closed (it restarted) is opened once more
            sock = getattr(self._local, "sock", None) or _connect(self.path, self.timeout)
            self._local.sock = sock
            try:
                return ipc_exchange(sock, body)
            except (OSError, IpcError):
                sock.close()
                self._local.sock = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def _answer_batch(relay: _Relay, payload: list[Any], loopback: bool) -> list[Any]:
    calls, refused = screen(payload, loopback=loopback)
    answers = relay.send(calls, batch=True) if calls else []
    by_id = {json.dumps(a.get("id")): a for a in answers if isinstance(a, dict)}
    merged, relayed = [], iter(calls)
    for position in range(len(payload)):
        if position in refused:
            merged.append(refused[position])
        else:
            call = next(relayed)
            merged.append(by_id.get(json.dumps(call.get("id")),
                                    _error(call.get("id"), _NODE_DOWN, "no answer from the node")))
    return merged


def _answer(relay: _Relay, body: bytes, *, loopback: bool) -> tuple[int, Any]:
    """The HTTP status and JSON answer to one request body."""
    try:
        payload = json.loads(body)
    except ValueError:
        return 400, _error(None, _PARSE_ERROR, "parse error")
    try:
        if isinstance(payload, list):
            if not payload:
                return 400, _error(None, _INVALID_REQUEST, "empty batch")
            return 200, _answer_batch(relay, payload, loopback)
        calls, refused = screen(payload, loopback=loopback)
        return 200, (refused[0] if refused else relay.send(calls, batch=False))
    except (OSError, IpcError) as exc:
        return 503, _error(None, _NODE_DOWN, f"the node is not reachable: {exc}")


def _host_allowed(header: str | None) -> bool:
    """geth's ``--http.vhosts localhost``: IP literals and localhost pass, other names do not.

    Example:
        >>> [_host_allowed(h) for h in ("10.77.0.1:8545", "localhost", "evil.example:80")]
        [True, True, False]
    """
    if not header:
        return False
    if header.startswith("["):
        host = header[1:].split("]", 1)[0]
    else:
        host = header.split(":", 1)[0] if header.count(":") == 1 else header
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        return  # one line per request would drown the log

    def _send(self, status: int, payload: Any) -> None:
        data = b"" if payload is None else json.dumps(payload).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self._send(200 if self.path == "/" else 404, None)  # geth's health answer: 200, empty

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        if not _host_allowed(self.headers.get("Host")):
            self._send(403, _error(None, _INVALID_REQUEST, "invalid host specified"))
            return
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self._send(415, _error(None, _INVALID_REQUEST, "content type must be JSON"))
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            self._send(413, _error(None, _INVALID_REQUEST, f"body over {MAX_BODY_BYTES} bytes"))
            return
        status, payload = _answer(self.server.relay, self.rfile.read(int(length)),
                                 loopback=self.server.loopback)
        self._send(status, payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], relay: _Relay, loopback: bool) -> None:
        self.relay, self.loopback = relay, loopback
        super().__init__(address, _Handler)


def _bind(host: str, port: int, relay: _Relay, *, patience_s: float) -> _Server:
    """Binds the port, waiting a little for a gateway of a node that just stopped to let go."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            return _Server((host, port), relay, is_loopback(host))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _geth_alive(pid: int, datadir: str) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X") and os.fsencode(datadir) in cmdline


def _follow(server: _Server, pid: int, datadir: str) -> None:
    while _geth_alive(pid, datadir):
        time.sleep(0.3)
    server.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """Serves the gateway until its geth exits or it gets SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datadir", required=True, help="the validator's datadir")
    parser.add_argument("--ipc", required=True, help="geth's IPC socket")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--geth-pid", type=int, required=True, help="exit when it exits")
    args = parser.parse_args(argv)
    server = _bind(args.host, args.port, _Relay(args.ipc, timeout=60.0), patience_s=20.0)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    threading.Thread(target=_follow, args=(server, args.geth_pid, args.datadir),
                     daemon=True).start()
    print(f"fednode gateway: {args.host}:{args.port} -> {args.ipc}", flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
