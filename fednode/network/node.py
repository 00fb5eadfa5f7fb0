"""Chain: runs one geth 1.13 Clique validator process (init, start, probe, graceful stop).

Each validator is a detached geth process (own session, so it outlives the CLI that started it)
whose output goes to ``<datadir>/node.log``. Peering is static: ``config.toml`` lists the other
validators under ``[Node.P2P] StaticNodes`` and discovery is off. geth stops gracefully on
SIGTERM (it flushes its state; after a SIGKILL it rewinds its head on the next start).
Liveness checks and stops by PID are in ``fednode.network.process`` (re-exported here).

geth serves JSON-RPC on its IPC socket only (every API, for this host's operator); the
validator's HTTP address is served by ``fednode.network.gateway``, a process started beside
geth that relays the ``eth``, ``net`` and ``web3`` calls that use no key of the node. So geth
unlocks its sealer key without ``--allow-insecure-unlock``, with the password from a 0600 file
kept outside the datadir (``info.password_file_of``).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fednode.errors import NetworkError
from fednode.network import gateway
from fednode.network.info import ipc_path_of
from fednode.network.process import StopResult, is_running, stop_nodes

__all__ = [
    "GETH_VERSION",
    "NodeSpec",
    "StopResult",
    "find_geth",
    "gateway_command",
    "geth_command",
    "geth_version",
    "init_datadir",
    "is_running",
    "log_tail",
    "rpc_call",
    "spawn_node",
    "start_node",
    "stop_nodes",
    "write_node_config",
]

GETH_VERSION = "1.13.15"
_CACHE_MB = 128  # per node; 4 validators share a small machine
_PR_SET_PDEATHSIG = 1  # prctl option from <linux/prctl.h>


@dataclass(frozen=True)
class NodeSpec:
    """How to run one validator (everything geth needs on its command line)."""

    name: str
    datadir: Path
    signer: str
    network_id: int
    host: str
    p2p_port: int
    http_port: int
    authrpc_port: int
    gas_limit: int
    static_nodes: tuple[str, ...]
    password_file: Path
    verbosity: int = 2  # geth's: 2 warnings, 3 also info (start-up, "Got interrupt", blocks)

    @property
    def log_path(self) -> Path:
        """Where geth's stdout and stderr go."""
        return self.datadir / "node.log"

    @property
    def ipc_path(self) -> Path:
        """geth's IPC socket (0600): every API, for this host only."""
        return ipc_path_of(self.datadir)

    @property
    def gateway_log_path(self) -> Path:
        """Where the HTTP gateway's output goes."""
        return self.datadir / "gateway.log"


def geth_version(geth: Path) -> str:
    """Returns the version that ``geth version`` reports, e.g. ``1.13.15-stable``."""
    try:
        out = subprocess.run([str(geth), "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"cannot run {geth} version: {exc}") from exc
    for line in out.stdout.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    raise NetworkError(f"{geth} version printed no version: {out.stdout[-300:]}{out.stderr[-300:]}")


def _geth_candidates() -> list[Path]:
    """Places a geth binary may be, most explicit first."""
    cache = Path(os.environ.get("FEDNODE_CACHE", Path.home() / ".cache" / "fednode"))
    repo = Path(__file__).resolve().parents[2]
    found = [Path(os.environ["FEDNODE_GETH"])] if os.environ.get("FEDNODE_GETH") else []
    found += [cache / f"geth-{GETH_VERSION}" / "bin" / "geth", repo / ".cache/geth/bin/geth"]
    on_path = shutil.which("geth")
    return found + ([Path(on_path)] if on_path else [])


def find_geth() -> Path:
    """Finds a geth 1.13 binary: $FEDNODE_GETH, the build cache, then $PATH.

    Raises:
        NetworkError: None found; the message says how to build one.
    """
    for candidate in _geth_candidates():
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise NetworkError("geth 1.13.15 not found: run scripts/build_geth.sh or set FEDNODE_GETH")


def init_datadir(geth: Path, datadir: Path, genesis: Path) -> None:
    """Runs ``geth init`` on a datadir, writing the genesis block into a fresh database.

    Raises:
        NetworkError: geth init failed; the message holds its output.
    """
    cmd = [str(geth), "--datadir", str(datadir), "--state.scheme", "hash", "init", str(genesis)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetworkError(f"geth init of {datadir} failed: {exc}") from exc
    if out.returncode != 0:
        raise NetworkError(f"geth init of {datadir} failed:\n{(out.stdout + out.stderr)[-2000:]}")


def write_node_config(spec: NodeSpec) -> Path:
    """Writes ``<datadir>/config.toml`` with the listen address and the static peers."""
    peers = ", ".join(json.dumps(enode) for enode in spec.static_nodes)
    text = (
        "[Node.P2P]\n"
        f'ListenAddr = "{spec.host}:{spec.p2p_port}"\n'
        "NoDiscovery = true\n"
        "DiscoveryV5 = false\n"
        f"StaticNodes = [{peers}]\n"
        f"TrustedNodes = [{peers}]\n"
    )
    path = spec.datadir / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def geth_command(geth: Path, spec: NodeSpec) -> list[str]:
    """Builds the geth 1.13 command line of a sealing, archive, full-sync validator.

    No HTTP or WebSocket server: JSON-RPC is on the IPC socket only (the gateway serves the
    public part), so ``--unlock`` needs no ``--allow-insecure-unlock``.
    """
    d = spec.datadir
    return [
        str(geth), "--config", str(d / "config.toml"), "--datadir", str(d),
        "--identity", spec.name, "--networkid", str(spec.network_id),
        "--nodiscover", "--nat", "none", "--maxpeers", str(len(spec.static_nodes) + 8),
        "--syncmode", "full", "--gcmode", "archive", "--state.scheme", "hash",
        "--cache", str(_CACHE_MB), "--ipcpath", str(spec.ipc_path),
        "--authrpc.addr", "127.0.0.1", "--authrpc.port", str(spec.authrpc_port),
        "--mine", "--miner.etherbase", spec.signer, "--miner.gaslimit", str(spec.gas_limit),
        "--unlock", spec.signer, "--password", str(spec.password_file),
        "--verbosity", str(spec.verbosity),
    ]  # fmt: skip


def gateway_command(spec: NodeSpec, geth_pid: int) -> list[str]:
    """Command line of the HTTP gateway of a validator (a stdlib-only script, quick to start)."""
    return [
        sys.executable, "-s", str(Path(gateway.__file__)), "--datadir", str(spec.datadir),
        "--ipc", str(spec.ipc_path), "--host", spec.host, "--port", str(spec.http_port),
        "--geth-pid", str(geth_pid),
    ]  # fmt: skip


def _terminate_with_parent() -> None:
    """Runs in the child before exec: asks Linux to SIGTERM it when its parent thread exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _detached(
    label: str, command: list[str], log_path: Path, tie_to_caller: bool
) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        log.write(f"--- fednode: starting {label} at {time.ctime()}\n".encode())
        log.flush()
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_terminate_with_parent if tie_to_caller else None,
        )


def _private_dir(path: Path) -> None:
    """Creates a folder only its owner can enter (0700), refusing one that someone else owns."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise NetworkError(f"{path} belongs to uid {info.st_uid}, not to this user")
    os.chmod(path, 0o700)


def spawn_node(
    geth: Path, spec: NodeSpec, *, tie_to_caller: bool = False
) -> subprocess.Popen[bytes]:
    """Starts geth in its own session, its output appended to ``spec.log_path`` after a header.

    The HTTP gateway (``gateway_command``) starts beside it, its PID in ``gateway.pid``; it
    exits by itself once geth has.

    Args:
        geth: The geth binary.
        spec: What to run.
        tie_to_caller: Also stop the node (SIGTERM) when the thread that starts it ends, or
            its process dies, e.g. a test run that is killed; by default the node outlives
            its caller, as the ``fednode network up`` command needs.

    Returns:
        The process (its PID is also in ``geth.pid``); ``poll()`` gives its exit status.
    """
    _private_dir(spec.datadir)
    _private_dir(spec.ipc_path.parent)
    proc = _detached(spec.name, geth_command(geth, spec), spec.log_path, tie_to_caller)
    (spec.datadir / "geth.pid").write_text(f"{proc.pid}\n", encoding="ascii")
    relay = _detached(f"the gateway of {spec.name}", gateway_command(spec, proc.pid),
                      spec.gateway_log_path, tie_to_caller)
    (spec.datadir / "gateway.pid").write_text(f"{relay.pid}\n", encoding="ascii")
    return proc


def start_node(geth: Path, spec: NodeSpec, *, tie_to_caller: bool = False) -> int:
    """Starts geth as :func:`spawn_node` does and returns its PID."""
    return spawn_node(geth, spec, tie_to_caller=tie_to_caller).pid


def log_tail(log_path: Path, lines: int = 25) -> str:
    """Returns the last ``lines`` lines of a node log (empty if there is none)."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def rpc_call(
    url: str, method: str, params: list[Any] | None = None, *, timeout: float = 5.0
) -> Any:
    """Makes one JSON-RPC call and returns its ``result``.

    Args:
        url: An ``http(s)://`` URL (a validator's public gateway), or the path of a geth IPC
            socket (every API: the control calls of heal, sealing and signers go there).
        method: The JSON-RPC method.
        params: Its parameters.
        timeout: Seconds to wait for the answer.

    Raises:
        NetworkError: The node is unreachable or answered with an error.
    """
    if url.startswith(("http://", "https://")):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
        try:
            reply = httpx.post(url, json=body, timeout=timeout).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise NetworkError(f"{method} on {url} failed: {exc}") from exc
    else:
        try:
            reply = gateway.ipc_call(url, method, params, timeout=timeout)
        except (gateway.IpcError, OSError, ValueError) as exc:
            raise NetworkError(f"{method} on {url} failed: {exc}") from exc
    if not isinstance(reply, dict):
        raise NetworkError(f"{method} on {url}: not a JSON-RPC answer")
    if "error" in reply:
        raise NetworkError(f"{method} on {url} returned {reply['error']}")
    return reply.get("result")
