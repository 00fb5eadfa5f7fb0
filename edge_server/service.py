"""Edge: wiring of store, submitter and HTTP server; the ``edge_server`` console entry point.

``EdgeServer`` runs uvicorn and the submitter in background threads (tests, demo), or in the
foreground with :meth:`EdgeServer.serve_forever` (``run_edge``, the console script).
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from edge_server.app import create_app
from edge_server.auth import public_key_from_hex, public_key_to_hex
from edge_server.config import EdgeConfig
from edge_server.protocol import DEVICE_ID_PATTERN
from edge_server.store import EdgeStore
from edge_server.submitter import Submitter
from fednode.chain.ledger import Ledger
from fednode.errors import EdgeError, FednodeError, FednodeValueError

__all__ = ["EdgeServer", "build_web3_ledger", "enroll_device", "main", "run_edge"]

logger = logging.getLogger(__name__)


def enroll_device(
    store: EdgeStore, device_id: str, public_key_hex: str, *, replace: bool = False
) -> str:
    """Admits a device to this edge: records its Ed25519 public key under ``device_id``.

    Returns:
      The normalized (lowercase, unprefixed) public key hex.

    Raises:
      FednodeValueError: a malformed id or key, or the id is taken by another key and not
        ``replace``.

    Example:
      >>> store = EdgeStore(":memory:")
      >>> enroll_device(store, "clinic-7", "AB" * 32) == "ab" * 32
      True
    """
    if not isinstance(device_id, str) or not DEVICE_ID_PATTERN.fullmatch(device_id):
        raise FednodeValueError(f"device id must match {DEVICE_ID_PATTERN.pattern}")
    normalized = public_key_to_hex(public_key_from_hex(public_key_hex))
    store.enroll_device(device_id, normalized, replace=replace)
    logger.info("enrolled device %s", device_id)
    return normalized


class EdgeServer:
    """One edge server: durable store, submitter thread and uvicorn HTTP server.

    Args:
      config: the edge's settings; ``config.port == 0`` picks a free port (see ``url``).
      ledger: a Ledger acting as the edge operator's account.
      store: an open store to use; by default one is opened at ``config.db_path`` and closed
        by :meth:`stop`.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> config = EdgeConfig(name="e", db_path=":memory:", port=0)
      >>> with EdgeServer(config, InMemoryLedger()) as server:
      ...     server.url.startswith("http://127.0.0.1:")
      True
    """

    def __init__(self, config: EdgeConfig, ledger: Ledger, *, store: EdgeStore | None = None):
        self.config = config
        self._owns_store = store is None
        self.store = store if store is not None else EdgeStore(config.db_path)
        self.submitter = Submitter(
            self.store,
            ledger,
            poll_interval_s=config.submit_poll_interval_s,
            backoff_initial_s=config.submit_backoff_initial_s,
            backoff_max_s=config.submit_backoff_max_s,
        )
        self.app = create_app(config, ledger, self.store, submitter=self.submitter)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def __enter__(self) -> EdgeServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL devices use; valid once started."""
        if self._port is None:
            raise EdgeError(0, "edge server is not started")
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        return f"http://{host}:{self._port}"

    def start(self, *, timeout_s: float = 10.0) -> None:
        """Starts the submitter and serves HTTP in a background thread; returns when listening.

        Raises:
          EdgeError: the server did not come up within ``timeout_s``.
        """
        sock = self._bind()
        self._server = self._make_server()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="edge-http", daemon=True
        )
        self._thread.start()
        self.submitter.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise EdgeError(0, f"edge server {self.config.name} did not start")
            time.sleep(0.01)
        logger.info("edge %s listening on %s", self.config.name, self.url)

    def serve_forever(self) -> None:
        """Starts the submitter and serves HTTP in this thread until SIGINT/SIGTERM."""
        sock = self._bind()
        self._server = self._make_server()
        self.submitter.start()
        logger.info("edge %s listening on %s", self.config.name, self.url)
        try:
            self._server.run(sockets=[sock])
        finally:
            self._server = None
            self.stop()

    def stop(self, *, timeout_s: float = 10.0) -> None:
        """Stops HTTP, then the submitter (rows stay pending for the next start), then the store."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        self._server = None
        self.submitter.stop(timeout_s=timeout_s)
        if self._owns_store:
            self.store.close()
            self._owns_store = False

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError as exc:
            sock.close()
            raise EdgeError(0, f"cannot bind {self.config.host}:{self.config.port}: {exc}") from exc
        self._port = int(sock.getsockname()[1])
        return sock

    def _make_server(self) -> uvicorn.Server:
        config = uvicorn.Config(
            self.app, lifespan="off", log_config=None, access_log=False, timeout_graceful_shutdown=5
        )
        return uvicorn.Server(config)


def run_edge(config: EdgeConfig, ledger: Ledger) -> None:
    """Runs one edge server in the foreground until interrupted."""
    EdgeServer(config, ledger).serve_forever()


def build_web3_ledger(
    rpc_url: str, deployment_path: str, key_path: str, *, confirmations: int = 0
) -> Ledger:
    """A Web3Ledger acting as the operator account whose key file is ``key_path``.

    Raises:
      FednodeError: unreadable deployment or key file, or a node on another chain.
    """
    from eth_account import Account

    from fednode.chain.deploy import read_deployment
    from fednode.chain.web3_ledger import Web3Ledger
    from fednode.network.keys import read_key_file

    account = Account.from_key(read_key_file(Path(key_path)))
    deployment = read_deployment(Path(deployment_path))
    return Web3Ledger.connect(rpc_url, deployment, account, confirmations=confirmations)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="edge_server", description="fednode edge server: collects device deltas for the chain."
    )
    parser.add_argument("--name", required=True, help="name of this edge")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8700, help="HTTP port (0 = any free one)")
    parser.add_argument("--db", required=True, help="SQLite file of this edge")
    parser.add_argument("--deployment", required=True, help="deployment JSON (contract addresses)")
    parser.add_argument("--key", required=True, help="operator private key file (hex)")
    parser.add_argument("--rpc", required=True, help="JSON-RPC URL of the operator's node")
    parser.add_argument("--confirmations", type=int, default=0, help="blocks before a write counts")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``edge_server``; returns the process exit code."""
    args = _parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = EdgeConfig(
            name=args.name, host=args.host, port=args.port, db_path=args.db,
            rpc_url=args.rpc, deployment_path=args.deployment, key_path=args.key,
            confirmations=args.confirmations,
        )  # fmt: skip
        ledger = build_web3_ledger(
            args.rpc, args.deployment, args.key, confirmations=config.confirmations
        )
        run_edge(config, ledger)
    except FednodeError as exc:
        print(f"edge_server: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
