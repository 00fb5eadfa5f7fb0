"""Consensus: runs one CometBFT validator's two processes: geth 1.17 and fednode-bft.

geth executes (post-merge, no sealing; its Engine API listens on loopback behind a JWT
secret); ``fednode-bft`` (built from ``bft/`` by ``scripts/build_bft.sh``) is the CometBFT node
with the ABCI++ application in-process, which drives that geth. Both are detached processes in
their own session whose output goes to ``<datadir>/node.log`` and ``<home>/bft.log``.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fednode.errors import NetworkError
from fednode.network.node import NodeSpec, geth_version

__all__ = [
    "BFT_GETH_VERSION",
    "COMETBFT_VERSION",
    "BftSpec",
    "bft_command",
    "bft_init",
    "bft_source_hash",
    "bft_version",
    "find_bft_app",
    "find_bft_geth",
    "geth_bft_command",
    "spawn",
    "write_jwt_secret",
]

BFT_GETH_VERSION = "1.17.10"
COMETBFT_VERSION = "0.38.26"
_HTTP_APIS = "eth,net,web3,admin,txpool,debug"
_CACHE_MB = 128
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class BftSpec:
    """How to run one fednode-bft (CometBFT + ABCI app) process."""

    name: str
    home: Path
    engine_url: str
    jwt_secret: Path
    p2p_port: int
    rpc_port: int
    peers: tuple[str, ...]
    host: str = "127.0.0.1"
    timeout_commit: str = "500ms"
    log_level: str = "*:error,fednode-app:info"
    extra_flags: tuple[str, ...] = ()
    """Appended to the command line; the fault tests pass ``--fault-propose-invalid`` here."""

    @property
    def log_path(self) -> Path:
        """Where the process's output goes."""
        return self.home / "bft.log"


def _cache() -> Path:
    return Path(os.environ.get("FEDNODE_CACHE", Path.home() / ".cache" / "fednode"))


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_bft_geth() -> Path:
    """Finds geth 1.17: $FEDNODE_BFT_GETH, then the build cache.

    Raises:
        NetworkError: None found; the message says how to build one.
    """
    given = os.environ.get("FEDNODE_BFT_GETH")
    candidates = [Path(given)] if given else []
    candidates.append(_cache() / f"geth-{BFT_GETH_VERSION}" / "bin" / "geth")
    for candidate in candidates:
        if _executable(candidate):
            return candidate
    raise NetworkError(
        f"geth {BFT_GETH_VERSION} not found: run scripts/build_bft.sh or set FEDNODE_BFT_GETH"
    )


_BFT_SOURCES = Path(__file__).resolve().parents[3] / "bft"


def bft_source_hash(src: Path = _BFT_SOURCES) -> str | None:
    """The tag ``scripts/build_bft.sh`` gives a build of ``src``: sha256 of go.mod, go.sum and
    the non-test ``*.go`` files (name order), first 12 hex digits; None without the sources."""
    names = sorted(p.name for p in src.glob("*.go") if not p.name.endswith("_test.go"))
    files = [src / "go.mod", src / "go.sum", *(src / n for n in names)]
    if not names or not all(f.is_file() for f in files):
        return None
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:12]


def find_bft_app() -> Path:
    """Finds fednode-bft: $FEDNODE_BFT_APP, then the build of this checkout's ``bft/`` sources
    in the cache, then (no sources, or not built) the newest build there.

    Raises:
        NetworkError: None found; the message says how to build one.
    """
    if os.environ.get("FEDNODE_BFT_APP"):
        candidate = Path(os.environ["FEDNODE_BFT_APP"])
        if _executable(candidate):
            return candidate
        raise NetworkError(f"FEDNODE_BFT_APP={candidate} is not an executable")
    tag = bft_source_hash()
    if tag is not None:
        exact = _cache() / f"fednode-bft-{COMETBFT_VERSION}-{tag}" / "bin" / "fednode-bft"
        if _executable(exact):
            return exact
    built = [
        p / "bin" / "fednode-bft"
        for p in _cache().glob(f"fednode-bft-{COMETBFT_VERSION}-*")
        if _executable(p / "bin" / "fednode-bft")
    ]
    if not built:
        raise NetworkError("fednode-bft not found: run scripts/build_bft.sh or set FEDNODE_BFT_APP")
    return max(built, key=lambda p: p.stat().st_mtime)


def bft_version(app: Path) -> dict[str, str]:
    """Returns what ``fednode-bft version`` reports (cometbft, go_ethereum, fednode_bft)."""
    out = _run([str(app), "version"], "fednode-bft version")
    try:
        return dict(json.loads(out))
    except ValueError as exc:
        raise NetworkError(f"fednode-bft version printed {out[-200:]!r}") from exc


def checked_bft_geth_version(geth: Path) -> str:
    """Returns geth's version, refusing any but 1.17 (the Engine API V3 this engine speaks)."""
    version = geth_version(geth)
    if not version.startswith("1.17."):
        raise NetworkError(f"{geth} is geth {version}; the CometBFT engine needs geth 1.17.x")
    return version


def _run(cmd: list[str], what: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"{what} failed: {exc}") from exc
    if out.returncode != 0:
        raise NetworkError(f"{what} failed:\n{(out.stdout + out.stderr)[-2000:]}")
    return out.stdout


def bft_init(app: Path, home: Path) -> dict[str, str]:
    """Creates the validator and node keys in a CometBFT home; returns their public parts.

    Returns:
        ``node_id``, ``validator_key`` (base64 ed25519), ``address`` (hex), ``validator_type``.
    """
    out = _run([str(app), "init", "--home", str(home)], f"fednode-bft init {home}")
    keys = dict(json.loads(out))
    if keys.get("validator_type") != "ed25519":
        raise NetworkError(f"{home}: validator key is {keys.get('validator_type')}, want ed25519")
    return keys


def write_jwt_secret(path: Path) -> Path:
    """Writes a fresh 32-byte hex JWT secret (0600) shared by one geth and its fednode-bft."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return path


def geth_bft_command(geth: Path, spec: NodeSpec, jwt_secret: Path) -> list[str]:
    """Builds the geth 1.17 command line of an execution node driven over the Engine API.

    No sealing flags: blocks come from the Engine API only. Peers (static, no discovery) only
    gossip transactions, so a transaction sent to any validator reaches the next proposer.
    """
    d = spec.datadir
    return [
        str(geth), "--config", str(d / "config.toml"), "--datadir", str(d),
        "--identity", spec.name, "--networkid", str(spec.network_id),
        "--nodiscover", "--nat", "none", "--maxpeers", str(len(spec.static_nodes) + 8),
        "--syncmode", "full", "--gcmode", "archive", "--state.scheme", "hash",
        "--cache", str(_CACHE_MB), "--ipcdisable",
        "--http", "--http.addr", spec.host, "--http.port", str(spec.http_port),
        "--http.api", _HTTP_APIS, "--http.vhosts", "localhost,127.0.0.1",
        "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(spec.authrpc_port),
        "--authrpc.jwtsecret", str(jwt_secret),
        "--miner.gaslimit", str(spec.gas_limit),
        "--verbosity", str(spec.verbosity),
    ]  # fmt: skip


def bft_command(app: Path, spec: BftSpec) -> list[str]:
    """Builds the fednode-bft command line (CometBFT settings are flags, not config.toml)."""
    return [
        str(app), "run", "--home", str(spec.home), "--moniker", spec.name,
        "--engine", spec.engine_url, "--jwt-secret", str(spec.jwt_secret),
        "--p2p", f"tcp://{spec.host}:{spec.p2p_port}",
        "--rpc", f"tcp://{spec.host}:{spec.rpc_port}",
        "--peers", ",".join(spec.peers), "--timeout-commit", spec.timeout_commit,
        "--log-level", spec.log_level, *spec.extra_flags,
    ]  # fmt: skip


def _terminate_with_parent() -> None:
    """Runs in the child before exec: asks Linux to SIGTERM it when its parent thread exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(cmd: list[str], log_path: Path, pid_path: Path, *, name: str,
          tie_to_caller: bool = False) -> int:
    """Starts ``cmd`` detached, output appended to ``log_path``; writes and returns its PID."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"--- fednode: starting {name} at {time.ctime()}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with_parent if tie_to_caller else None,
        )  # fmt: skip
    pid_path.write_text(f"{proc.pid}\n", encoding="ascii")
    return proc.pid
