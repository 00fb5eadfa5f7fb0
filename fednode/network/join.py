"""Chain: an operator brings one geth Clique validator onto an existing consortium network.

``join_network`` takes the consortium's genesis and some peers' enodes, lays out one datadir
(sealer keystore, node key, ``geth init``), starts geth with static peering on the operator's
own address and waits until it talks to a peer. The node seals once the current signers vote
its address in (``clique.propose``); until then it syncs and serves JSON-RPC to the operator's
edge server. That address is reachable from other hosts, so it serves only ``eth``, ``net`` and
``web3`` calls that use no key of the node (``fednode.network.gateway``); every other API
(admin, debug, miner, clique) is on geth's IPC socket ``<dir>/node/geth.ipc`` for this host's
operator. The keystore's password is in ``<dir>/secrets/sealer.password`` (0600, 0700 folder),
not in the datadir. ``<dir>/node.json`` records what other tools need (enode, RPC URL, IPC
socket, signer, PID).
geth's stdout and stderr go to ``<dir>/node/node.log`` (info level); when a join fails, the
geth it started is stopped (freeing the datadir lock and ports) and the error quotes that log.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from eth_utils.address import to_checksum_address

from fednode.errors import FednodeValueError, NetworkError
from fednode.network import keys as keyring
from fednode.network.info import ipc_path_of
from fednode.network.layout import checked_geth_version
from fednode.network.node import (
    NodeSpec,
    find_geth,
    init_datadir,
    is_running,
    log_tail,
    rpc_call,
    spawn_node,
    write_node_config,
)

__all__ = ["JOIN_FILE", "JoinedNode", "join_network", "load_joined_node"]

JOIN_FILE = "node.json"
_JOINED_VERBOSITY = 3  # info: an operator's node logs its start-up and why it stopped


@dataclass(frozen=True)
class JoinedNode:
    """One validator an operator joined to a network."""

    name: str
    signer: str
    enode: str
    http_url: str
    chain_id: int
    datadir: str
    pid: int | None
    height: int
    peers: int
    ipc_path: str = ""


def _genesis_settings(genesis_path: Path) -> tuple[int, int]:
    try:
        genesis = json.loads(genesis_path.read_text())
        return int(genesis["config"]["chainId"]), int(str(genesis["gasLimit"]), 0)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NetworkError(f"cannot read the genesis {genesis_path}: {exc}") from exc


def _check_peers(peers: Sequence[str]) -> tuple[str, ...]:
    bad = [p for p in peers if not p.startswith("enode://") or "@" not in p]
    if bad:
        raise FednodeValueError(f"peers must be enode://<pubkey>@<host>:<port> URLs: {bad[:3]}")
    return tuple(peers)


def _password_file(root: Path) -> Path:
    return root / "secrets" / "sealer.password"


def _prepare_datadir(
    datadir: Path, geth: Path, genesis: Path, *, signer_key: bytes | None, node_key: bytes | None
) -> None:
    if (datadir / "geth" / "chaindata").is_dir():
        keyring.move_legacy_password(datadir, _password_file(datadir.parent))
        return  # joined before: keep keys and chain
    keyring.write_validator_keystore(
        datadir, signer_key or keyring.generate_private_key(), secrets.token_hex(16),
        password_file=_password_file(datadir.parent),
    )  # fmt: skip
    keyring.write_node_key(datadir, node_key or keyring.generate_private_key())
    init_datadir(geth, datadir, genesis)


def _signer_of(datadir: Path) -> str:
    files = sorted((datadir / "keystore").glob("UTC--*"))
    if len(files) != 1:
        raise NetworkError(f"expected one keystore file in {datadir}/keystore")
    return to_checksum_address("0x" + json.loads(files[0].read_text())["address"])


def _check_not_running(datadir: Path) -> None:
    """A second geth on a datadir dies at once on its lock: refuse while the first still runs."""
    try:
        pid = int((datadir / "geth.pid").read_text().strip())
    except (OSError, ValueError):
        return
    if is_running(pid, datadir):
        raise NetworkError(f"geth (pid {pid}) still runs on {datadir}: stop it before joining")


def _check_ports_free(spec: NodeSpec) -> None:
    """Refuses ports that are taken, before geth would die on them (SO_REUSEADDR, as geth)."""
    wanted = [(spec.host, spec.p2p_port), (spec.host, spec.http_port)]
    for host, port in [*wanted, ("127.0.0.1", spec.authrpc_port)]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise NetworkError(f"cannot listen on {host}:{port}: {exc}") from exc


def _describe_exit(code: int) -> str:
    if code >= 0:
        return f"exited with code {code}"
    try:
        return f"was killed by {signal.Signals(-code).name}"
    except ValueError:  # a signal without a name (real-time signals)
        return f"was killed by signal {-code}"


def _failed(proc: subprocess.Popen[bytes], spec: NodeSpec, reason: str) -> NetworkError:
    """Stops the geth this join started, notes how it ended in its log, builds the error.

    Stopping it frees the datadir lock and the ports, so the operator can simply join again.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    ended = _describe_exit(int(proc.returncode))
    with open(spec.log_path, "ab") as log:
        log.write(f"--- fednode: geth (pid {proc.pid}) {ended} ({reason})\n".encode())
    tail = log_tail(spec.log_path)
    return NetworkError(f"{reason}; geth {ended}. The end of {spec.log_path}:\n{tail}")


def _wait_for_peer(
    url: str, proc: subprocess.Popen[bytes], spec: NodeSpec, *, want_peer: bool, timeout: float
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:  # our own child: its exit status is never lost
            raise _failed(proc, spec, "geth exited while joining")
        try:
            peers = int(rpc_call(url, "net_peerCount"), 16)
            if peers > 0 or not want_peer:
                return peers
        except NetworkError:
            pass  # not listening yet
        time.sleep(0.25)
    raise _failed(proc, spec, f"no peer reached {spec.name} in {timeout:.0f} s")


def _start_until_peered(
    geth: Path, spec: NodeSpec, url: str, *, timeout: float
) -> tuple[int, int, int]:
    """Starts geth and waits for a peer; returns (pid, peers, height) or stops geth and raises.

    Peers are counted on the IPC socket; the height is read through the public gateway, so a
    join also proves that door answers.
    """
    proc = spawn_node(geth, spec)
    ipc = str(spec.ipc_path)
    peers = _wait_for_peer(ipc, proc, spec, want_peer=bool(spec.static_nodes), timeout=timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return proc.pid, peers, int(rpc_call(url, "eth_blockNumber"), 16)
        except NetworkError as exc:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise _failed(proc, spec, f"eth_blockNumber on {url} failed: {exc}") from exc
        time.sleep(0.25)


def join_network(
    directory: str | Path,
    genesis: str | Path,
    peers: Sequence[str],
    *,
    host: str = "127.0.0.1",
    p2p_port: int = 30303,
    http_port: int = 8545,
    authrpc_port: int = 8551,
    name: str = "validator",
    signer_key: bytes | None = None,
    node_key: bytes | None = None,
    timeout: float = 60.0,
) -> JoinedNode:
    """Starts one validator of an existing network and waits until it has a peer.

    Args:
        directory: This operator's node folder (created; reused on a second call).
        genesis: The consortium's genesis.json (identical on every node).
        peers: enode URLs of running validators (static peers, no discovery).
        host: The operator's own address: P2P and JSON-RPC listen here.
        p2p_port: devp2p port.
        http_port: Public JSON-RPC port (the edge server's ``--rpc``): eth, net, web3 only.
        authrpc_port: Engine API port geth binds on 127.0.0.1.
        name: geth ``--identity``.
        signer_key: Sealer key (a fresh one when None); its address must be voted in to seal.
        node_key: devp2p key (a fresh one when None); fixes this node's enode.
        timeout: Seconds to wait for the first peer.

    Returns:
        The node, also written to ``<directory>/node.json``.

    Raises:
        NetworkError: geth is missing, the genesis is unreadable, a geth still runs on the
            datadir, a port is taken, or geth exited or reached no peer in time (then it is
            stopped, and the message names its exit status and ends with its log).

    Example:
        >>> node = join_network("/srv/fednode", "genesis.json",
        ...                     ["enode://ab..@10.77.0.1:30303"])  # doctest: +SKIP
    """
    root = Path(directory).resolve()
    chain_id, gas_limit = _genesis_settings(Path(genesis))
    static = _check_peers(peers)
    geth = find_geth()
    checked_geth_version(geth)
    datadir = root / "node"
    _check_not_running(datadir)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(genesis, root / "genesis.json")
    _prepare_datadir(datadir, geth, root / "genesis.json", signer_key=signer_key, node_key=node_key)
    spec = NodeSpec(
        name, datadir, _signer_of(datadir), chain_id, host, p2p_port, http_port, authrpc_port,
        gas_limit, static, _password_file(root), verbosity=_JOINED_VERBOSITY,
    )  # fmt: skip
    _check_ports_free(spec)
    write_node_config(spec)
    url = f"http://{host}:{http_port}"
    pid, peer_count, height = _start_until_peered(geth, spec, url, timeout=timeout)
    own_key = bytes.fromhex((datadir / "geth" / "nodekey").read_text().strip())
    node = JoinedNode(
        name=name, signer=spec.signer, enode=keyring.enode_url(own_key, host=host, port=p2p_port),
        http_url=url, chain_id=chain_id, datadir=str(datadir), pid=pid, height=height,
        peers=peer_count, ipc_path=str(ipc_path_of(datadir)),
    )  # fmt: skip
    (root / JOIN_FILE).write_text(json.dumps(asdict(node), indent=2) + "\n")
    return node


def load_joined_node(directory: str | Path) -> JoinedNode:
    """Reads ``<directory>/node.json`` written by :func:`join_network`."""
    try:
        return JoinedNode(**json.loads((Path(directory) / JOIN_FILE).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise NetworkError(f"no joined node in {directory}: {exc}") from exc
