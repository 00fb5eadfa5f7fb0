"""Edge: wiring of store, submitter and HTTP server; the ``edge_server`` console entry point.

``EdgeServer`` runs uvicorn and the submitter in background threads (tests, demo), or in the
foreground with :meth:`EdgeServer.serve_forever` (``run_edge``, the console script).
"""

from __future__ import annotations

import argparse
import logging
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from edge_server.app import create_app
from edge_server.config import EdgeConfig
from edge_server.crash import CrashHook
from edge_server.logs import configure_logging
from edge_server.metrics import EdgeMetrics
from edge_server.store import EdgeStore, UpdateRow, UpdateStatus
from edge_server.submitter import Submitter
from fednode.chain.ledger import Ledger
from fednode.errors import EdgeError, FednodeError, FednodeValueError
from fednode.update.envelope import DEVICE_ID_PATTERN
from fednode.update.signing import public_key_from_hex, public_key_to_hex

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
      crash: test-only crash hook; by default read from ``FEDNODE_EDGE_CRASH_AT``.

    Example:
      >>> from fednode.chain.memory_ledger import InMemoryLedger
      >>> config = EdgeConfig(name="e", db_path=":memory:", port=0)
      >>> with EdgeServer(config, InMemoryLedger()) as server:
      ...     server.url.startswith("http://127.0.0.1:")
      True
    """

    def __init__(
        self,
        config: EdgeConfig,
        ledger: Ledger,
        *,
        store: EdgeStore | None = None,
        crash: CrashHook | None = None,
    ):
        self.config = config
        self._owns_store = store is None
        self.store = store if store is not None else EdgeStore(config.db_path)
        self.metrics = EdgeMetrics()
        crash = crash if crash is not None else CrashHook.from_env()
        if crash.point is not None:  # test-only: crash on rows this process accepts
            crash.watermark = max((r.local_id for r in self.store.list_updates()), default=0)
        self.submitter = Submitter(
            self.store,
            ledger,
            poll_interval_s=config.submit_poll_interval_s,
            backoff_initial_s=config.submit_backoff_initial_s,
            backoff_max_s=config.submit_backoff_max_s,
            confirmations=config.confirmations,
            max_in_flight=config.max_in_flight,
            crash=crash,
            on_event=self._count_transition,
        )
        self.app = create_app(
            config, ledger, self.store, submitter=self.submitter, metrics=self.metrics, crash=crash
        )
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
        """Base URL devices use (https with an operator certificate); valid once started."""
        if self._port is None:
            raise EdgeError(0, "edge server is not started")
        host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        scheme = "https" if self.config.tls_certfile else "http"
        return f"{scheme}://{host}:{self._port}"

    def _count_transition(self, status: UpdateStatus, row: UpdateRow) -> None:
        del row
        names = {
            UpdateStatus.SIGNED: "updates_signed_total",
            UpdateStatus.SENT: "updates_submitted_total",
            UpdateStatus.COMMITTED: "updates_committed_total",
            UpdateStatus.FAILED: "updates_failed_total",
        }
        if status in names:
            self.metrics.count(names[status])

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
        tls: dict[str, object] = {}
        if self.config.tls_certfile:
            tls = {"ssl_certfile": self.config.tls_certfile, "ssl_keyfile": self.config.tls_keyfile}
        if self.config.tls_client_ca:
            tls.update(ssl_ca_certs=self.config.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
        config = uvicorn.Config(
            self.app, lifespan="off", log_config=None, access_log=False,
            timeout_graceful_shutdown=5, **tls,  # type: ignore[arg-type]
        )  # fmt: skip
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
    parser.add_argument(
        "--confirmations", type=int, default=5, help="blocks on top before an update counts (5)"
    )
    parser.add_argument("--max-in-flight", type=int, default=16, help="pending tx cap (16)")
    parser.add_argument("--rate", type=float, default=2.0, help="per-device requests/s (2)")
    parser.add_argument("--burst", type=int, default=20, help="per-device burst (20)")
    parser.add_argument("--peer-rate", type=float, default=100.0,
                        help="per-peer-address requests/s, checked before signatures (100)")
    parser.add_argument("--peer-burst", type=int, default=500, help="per-peer burst (500)")
    parser.add_argument("--operator-token-file",
                        help="file holding a secret that lets the operator read device routes")
    parser.add_argument("--poll", type=float, default=0.5, help="submitter idle poll, s (0.5)")
    parser.add_argument("--tls-cert", help="operator certificate (PEM): serve HTTPS")
    parser.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    parser.add_argument("--tls-client-ca", help="require device client certs from this CA")
    parser.add_argument(
        "--log-format", choices=("json", "text"), default="json", help="log lines (json)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def _read_token(path: str | None) -> str | None:
    """The operator token from its file (first line), or None without a file."""
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise FednodeValueError(f"cannot read the operator token file {path}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    """Console entry point ``edge_server``; returns the process exit code."""
    args = _parse_args(argv)
    configure_logging(json_lines=args.log_format == "json", verbose=args.verbose)
    try:
        config = EdgeConfig(
            name=args.name, host=args.host, port=args.port, db_path=args.db,
            rpc_url=args.rpc, deployment_path=args.deployment, key_path=args.key,
            confirmations=args.confirmations, max_in_flight=args.max_in_flight,
            device_rate_per_s=args.rate, device_burst=args.burst,
            peer_rate_per_s=args.peer_rate, peer_burst=args.peer_burst,
            operator_token=_read_token(args.operator_token_file),
            submit_poll_interval_s=args.poll, tls_certfile=args.tls_cert,
            tls_keyfile=args.tls_key, tls_client_ca=args.tls_client_ca,
        )  # fmt: skip
        ledger = build_web3_ledger(args.rpc, args.deployment, args.key)
        run_edge(config, ledger)
    except FednodeError as exc:
        print(f"edge_server: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
