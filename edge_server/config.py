"""Edge: the edge server's settings, a frozen dataclass loaded once at process start."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fednode.chain.constants import MAX_PAYLOAD_SIZE
from fednode.errors import FednodeValueError

__all__ = ["EdgeConfig"]

_KIB = 1024


@dataclass(frozen=True)
class EdgeConfig:
    """Everything one edge server process needs to know, fixed for its lifetime.

    Attributes:
      name: human name of this edge (logs, health endpoint).
      db_path: SQLite file holding enrolled devices, seen nonces and updates.
      host: interface the HTTP server binds to.
      port: TCP port of the HTTP server (0 picks a free one).
      max_body_bytes: largest accepted request body; larger ones get 413.
      max_payload_bytes: largest decoded delta; defaults to what ``UpdateLedger`` accepts
        in one transaction (geth refuses transactions over 128 KiB).
      max_clock_skew_s: how far a signed request's timestamp may be from the edge clock.
      submit_poll_interval_s: how often the submitter looks for pending rows when idle.
      submit_backoff_initial_s: first retry delay after the chain could not be reached.
      submit_backoff_max_s: cap of the exponential retry delay.
      confirmations: blocks on top of an update's block before it counts as committed
        (Clique is never final; 5 by default).
      max_in_flight: most signed transactions of the operator account pending at once
        (geth guarantees an account 16 pool slots).
      device_rate_per_s: per-device token bucket refill rate (0 disables rate limiting).
      device_burst: per-device token bucket size.
      peer_rate_per_s: per-peer-address token bucket refill rate, spent before a request is
        parsed or its signature checked (0 disables it).
      peer_burst: per-peer-address token bucket size.
      operator_token: a secret that lets the edge operator read device routes
        (``Authorization: Bearer <token>``); None: only devices read their own records.
      tls_certfile: operator certificate (PEM); with ``tls_keyfile`` the edge serves HTTPS.
      tls_keyfile: the certificate's private key (PEM).
      tls_client_ca: CA bundle of device client certificates; set, TLS is mutual.
      rpc_url: JSON-RPC endpoint of the operator's validator node (service entry point only).
      deployment_path: JSON file with the deployed contract addresses (service entry point only).
      key_path: file with the operator's private key (service entry point only).

    Example:
      >>> config = EdgeConfig(name="edge-a", db_path="edge.sqlite", port=8701)
      >>> config.max_body_bytes
      262144
    """

    name: str
    db_path: str
    host: str = "127.0.0.1"
    port: int = 8700
    max_body_bytes: int = 256 * _KIB
    max_payload_bytes: int = MAX_PAYLOAD_SIZE
    max_clock_skew_s: int = 300
    submit_poll_interval_s: float = 1.0
    submit_backoff_initial_s: float = 0.5
    submit_backoff_max_s: float = 30.0
    confirmations: int = 5
    max_in_flight: int = 16
    device_rate_per_s: float = 2.0
    device_burst: int = 20
    peer_rate_per_s: float = 100.0
    peer_burst: int = 500
    operator_token: str | None = field(default=None, repr=False)
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_client_ca: str | None = None
    rpc_url: str | None = None
    deployment_path: str | None = None
    key_path: str | None = None

    def __post_init__(self) -> None:
        problems = _check_config(self)
        if problems:
            raise FednodeValueError("invalid edge config: " + "; ".join(problems))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EdgeConfig:
        """Builds a config from a mapping, refusing unknown keys.

        Raises:
          FednodeValueError: on an unknown key, a missing required key or a bad value.

        Example:
          >>> EdgeConfig.from_mapping({"name": "e", "db_path": "e.db"}).port
          8700
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FednodeValueError(f"unknown edge config keys: {unknown}")
        try:
            return cls(**dict(values))
        except TypeError as exc:
            raise FednodeValueError(f"incomplete edge config: {exc}") from exc

    @classmethod
    def from_json_file(cls, path: str | Path) -> EdgeConfig:
        """Loads a config from a JSON object file.

        Example:
          >>> import json, tempfile, pathlib
          >>> p = pathlib.Path(tempfile.mkdtemp()) / "edge.json"
          >>> _ = p.write_text(json.dumps({"name": "e", "db_path": "e.db"}))
          >>> EdgeConfig.from_json_file(p).name
          'e'
        """
        try:
            values = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise FednodeValueError(f"cannot read edge config {path}: {exc}") from exc
        if not isinstance(values, dict):
            raise FednodeValueError(f"edge config {path} must hold a JSON object")
        return cls.from_mapping(values)


def _check_config(config: EdgeConfig) -> list[str]:
    problems = []
    if not config.name or not config.db_path:
        problems.append("name and db_path must be non-empty")
    if not 0 <= config.port <= 65535:
        problems.append(f"port must be in 0..65535, got {config.port}")
    if config.max_body_bytes < 1024 or config.max_payload_bytes < 1:
        problems.append("max_body_bytes must be >= 1024 and max_payload_bytes >= 1")
    if config.max_clock_skew_s < 1 or config.confirmations < 0:
        problems.append("max_clock_skew_s must be >= 1 and confirmations >= 0")
    if not config.submit_poll_interval_s > 0 or not config.submit_backoff_initial_s > 0:
        problems.append("submit_poll_interval_s and submit_backoff_initial_s must be > 0")
    if config.submit_backoff_max_s < config.submit_backoff_initial_s:
        problems.append("submit_backoff_max_s must be >= submit_backoff_initial_s")
    if not 1 <= config.max_in_flight <= 64 or config.device_rate_per_s < 0:
        problems.append("max_in_flight must be in 1..64 and device_rate_per_s >= 0")
    if config.device_burst < 1 or config.peer_burst < 1 or config.peer_rate_per_s < 0:
        problems.append("device_burst and peer_burst must be >= 1, peer_rate_per_s >= 0")
    if config.operator_token is not None and len(config.operator_token) < 16:
        problems.append("operator_token must be at least 16 characters")
    if (config.tls_certfile is None) != (config.tls_keyfile is None):
        problems.append("tls_certfile and tls_keyfile go together")
    if config.tls_client_ca is not None and config.tls_certfile is None:
        problems.append("tls_client_ca (mutual TLS) needs tls_certfile and tls_keyfile")
    return problems
