"""Consensus: brings a local CometBFT consortium up (geth 1.17 + fednode-bft per validator).

The folder keeps the layout of the Clique engine, so every other tool finds the chain through
``<dir>/network.json`` unchanged (JSON-RPC URLs, chain id, accounts); the CometBFT side is in
``<dir>/bft.json``::

    <dir>/network.json                     as for Clique (``geth`` is geth 1.17; pid = geth's)
    <dir>/bft.json                         engine, fednode-bft binary, per-validator CometBFT
                                           node id, ed25519 key, ports and PID
    <dir>/genesis.json                     post-merge execution genesis (genesis.py)
    <dir>/nodes/validator-<i>/             geth datadir (+ jwt.hex, the Engine API secret)
    <dir>/nodes/validator-<i>/cometbft/    CometBFT home: config/genesis.json, keys, data/

A block is final as soon as CometBFT committed it: the application moves geth's head, safe and
finalized block together, so ``eth_getBlockByNumber("finalized")`` is the head.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from fednode.errors import FednodeValueError, NetworkError
from fednode.network import keys as keyring
from fednode.network.bft.genesis import (
    CometValidator,
    build_comet_genesis,
    build_execution_genesis,
)
from fednode.network.bft.node import (
    BftSpec,
    bft_command,
    bft_init,
    bft_version,
    checked_bft_geth_version,
    find_bft_app,
    find_bft_geth,
    geth_bft_command,
    spawn,
    write_jwt_secret,
)
from fednode.network.genesis import DEFAULT_BALANCE_WEI, DEFAULT_GAS_LIMIT
from fednode.network.info import (
    AccountInfo,
    NetworkInfo,
    ValidatorInfo,
    load_network,
    password_file_of,
    save_network,
)
from fednode.network.layout import discard_partial, is_fresh_folder
from fednode.network.node import NodeSpec, init_datadir, log_tail, rpc_call, write_node_config
from fednode.network.ports import assign_ports, choose_free_ports, port_is_free
from fednode.network.process import StopResult, is_running, stop_nodes

__all__ = [
    "BFT_FILE",
    "BftInfo",
    "BftValidator",
    "bft_network_create",
    "bft_network_down",
    "bft_network_status",
    "bft_network_up",
    "bft_restart_validators",
    "is_bft_network",
    "load_bft",
]

BFT_FILE = "bft.json"
ENGINE = "cometbft"
_HOST = "127.0.0.1"
_log = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BftValidator:
    """The CometBFT side of one validator."""

    name: str
    home: str
    node_id: str
    pub_key: str
    address: str
    p2p_port: int = 0
    rpc_port: int = 0
    pid: int | None = None

    @property
    def rpc_url(self) -> str:
        """CometBFT's RPC (``/status``, ``/net_info``, ``/validators``)."""
        return f"http://{_HOST}:{self.rpc_port}"

    @property
    def log_path(self) -> Path:
        """The fednode-bft log."""
        return Path(self.home) / "bft.log"


@dataclass(frozen=True)
class BftInfo:
    """What ``bft.json`` holds: the engine, its binary and versions, the validators."""

    engine: str
    app: str
    versions: dict[str, str]
    validators: tuple[BftValidator, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to ``bft.json``."""
        data = asdict(self)
        data["validators"] = [asdict(v) for v in self.validators]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BftInfo:
        """Parses what :meth:`to_json` wrote."""
        fields = dict(data)
        fields["validators"] = tuple(BftValidator(**v) for v in data["validators"])
        return cls(**fields)


def is_bft_network(directory: str | os.PathLike[str]) -> bool:
    """Tells whether a network folder runs the CometBFT engine."""
    return (Path(directory) / BFT_FILE).is_file()


def load_bft(directory: str | os.PathLike[str]) -> BftInfo:
    """Reads ``<dir>/bft.json``.

    Raises:
        NetworkError: Missing or unreadable.
    """
    path = Path(directory) / BFT_FILE
    try:
        return BftInfo.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise NetworkError(f"no CometBFT network in {directory} (missing {BFT_FILE})") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NetworkError(f"cannot read {path}: {exc}") from exc


def _save_bft(directory: Path, bft: BftInfo) -> None:
    path = directory / BFT_FILE
    tmp = path.with_name(BFT_FILE + ".tmp")
    tmp.write_text(json.dumps(bft.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


@contextlib.contextmanager
def _folder_lock(directory: Path) -> Iterator[None]:
    """Holds ``<dir>/.lock`` exclusively (the same lock the Clique manager takes)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise NetworkError(f"another fednode command is working on {directory}") from exc
        yield


# --- creation -------------------------------------------------------------------------------


def _new_validator(directory: Path, index: int, app: Path) -> tuple[ValidatorInfo, BftValidator]:
    """Keys of validator ``index``: an execution account, a devp2p key, CometBFT keys."""
    name = f"validator-{index}"
    datadir = directory / "nodes" / name
    account = keyring.generate_private_key()
    keyring.write_validator_keystore(datadir, account, secrets.token_hex(16),
                                     password_file=password_file_of(directory, name))
    node_key = keyring.generate_private_key()
    keyring.write_node_key(datadir, node_key)
    write_jwt_secret(datadir / "jwt.hex")
    home = datadir / "cometbft"
    keys = bft_init(app, home)
    execution = ValidatorInfo(
        name=name,
        signer=to_checksum_address(keyring.address_of(account)),
        enode=keyring.enode_url(node_key, host=_HOST, port=0),
        http_url="", p2p_port=0, http_port=0, authrpc_port=0, datadir=str(datadir),
    )  # fmt: skip
    consensus = BftValidator(name=name, home=str(home), node_id=keys["node_id"],
                             pub_key=keys["validator_key"], address=keys["address"])
    return execution, consensus


def _create(
    root: Path, *, validators: int, accounts: Sequence[str] | None, chain_id: int,
    gas_limit: int, progress: Progress,
) -> tuple[NetworkInfo, BftInfo]:
    """Writes keys, both genesis files and initialised datadirs (nothing started)."""
    geth, app = find_bft_geth(), find_bft_app()
    version = checked_bft_geth_version(geth)
    progress(f"creating keys for {validators} validators")
    made = [_new_validator(root, i, app) for i in range(1, validators + 1)]
    names = list(accounts) if accounts is not None else keyring.default_account_names(validators)
    members = keyring.ensure_account_keys(root / "keys", names)
    alloc = dict.fromkeys([*(e.signer for e, _ in made), *members.values()], DEFAULT_BALANCE_WEI)
    genesis = build_execution_genesis(chain_id=chain_id, gas_limit=gas_limit, alloc=alloc)
    genesis_path = root / "genesis.json"
    genesis_path.write_text(json.dumps(genesis, indent=2) + "\n", encoding="utf-8")
    comet = build_comet_genesis(
        [CometValidator(c.name, c.pub_key, c.address) for _, c in made],
        chain_id=chain_id, genesis_time=datetime.now(UTC),
    )  # fmt: skip
    for _, c in made:
        (Path(c.home) / "config" / "genesis.json").write_text(json.dumps(comet, indent=2) + "\n")
    progress(f"initialising {validators} datadirs (geth init)")
    with ThreadPoolExecutor(max_workers=validators) as pool:
        list(pool.map(lambda m: init_datadir(geth, Path(m[0].datadir), genesis_path), made))
    info = NetworkInfo(
        dir=str(root), chain_id=chain_id, period=1, epoch=0, gas_limit=gas_limit,
        genesis=str(genesis_path), geth=str(geth), geth_version=version,
        validators=tuple(e for e, _ in made),
        accounts={n: AccountInfo(a, str(root / "keys" / f"{n}.key")) for n, a in members.items()},
    )  # fmt: skip
    bft = BftInfo(engine=ENGINE, app=str(app), versions=bft_version(app),
                  validators=tuple(c for _, c in made))
    return info, bft


# --- start and stop -------------------------------------------------------------------------


def _assign_bft_ports(bft: BftInfo, taken: set[int]) -> BftInfo:
    """Keeps each validator's CometBFT ports when all are still free, else picks new ones."""
    old = [p for v in bft.validators for p in (v.p2p_port, v.rpc_port)]
    if all(old) and len(set(old)) == len(old) and not taken & set(old) and all(
        port_is_free(p, _HOST) for p in old
    ):
        return bft
    fresh = [p for p in choose_free_ports(len(old) + len(taken), _HOST) if p not in taken]
    ports = iter(fresh)
    nodes = tuple(replace(v, p2p_port=next(ports), rpc_port=next(ports)) for v in bft.validators)
    return replace(bft, validators=nodes)


def _geth_specs(info: NetworkInfo) -> list[NodeSpec]:
    return [
        NodeSpec(
            name=v.name, datadir=Path(v.datadir), signer=v.signer, network_id=info.chain_id,
            host=_HOST, p2p_port=v.p2p_port, http_port=v.http_port,
            authrpc_port=v.authrpc_port, gas_limit=info.gas_limit,
            static_nodes=tuple(o.enode for o in info.validators if o.name != v.name),
            password_file=password_file_of(info.dir, v.name),
        )  # fmt: skip
        for v in info.validators
    ]


def _bft_specs(info: NetworkInfo, bft: BftInfo) -> list[BftSpec]:
    specs = []
    for geth, v in zip(info.validators, bft.validators, strict=True):
        peers = tuple(f"{o.node_id}@{_HOST}:{o.p2p_port}" for o in bft.validators if o is not v)
        specs.append(BftSpec(
            name=v.name, home=Path(v.home), engine_url=f"http://127.0.0.1:{geth.authrpc_port}",
            jwt_secret=Path(geth.datadir) / "jwt.hex", p2p_port=v.p2p_port,
            rpc_port=v.rpc_port, peers=peers,
        ))  # fmt: skip
    return specs


def finalized_number(url: str) -> int | None:
    """The number of geth's finalized block, or None when there is none or no answer."""
    try:
        block = rpc_call(url, "eth_getBlockByNumber", ["finalized", False], timeout=3.0)
    except NetworkError:
        return None
    return int(block["number"], 16) if block else None


def _wait_finalizing(info: NetworkInfo, bft: BftInfo, *, timeout: float,
                     progress: Progress) -> None:
    """Waits until every validator's geth has a finalized block above 1."""
    deadline = time.monotonic() + timeout
    while True:
        heights = [finalized_number(url) for url in info.http_urls]
        if all(h is not None and h >= 2 for h in heights):
            return
        progress(f"waiting for finalized blocks: {heights}")
        dead = [v.name for v in bft.validators if not is_running(v.pid, v.home)]
        dead += [v.name for v in info.validators if not is_running(v.pid, v.datadir)]
        if dead or time.monotonic() > deadline:
            headline = f"validators exited: {dead}" if dead else f"no finality after {timeout} s"
            raise NetworkError(f"{headline}; finalized heights {heights}\n" + _tails(info, bft))
        time.sleep(0.5)


def _tails(info: NetworkInfo, bft: BftInfo) -> str:
    parts = []
    for e, c in zip(info.validators, bft.validators, strict=True):
        parts.append(f"--- {e.name} geth:\n{log_tail(e.log_path, 8)}")
        parts.append(f"--- {c.name} fednode-bft:\n{log_tail(c.log_path, 12)}")
    return "\n".join(parts)


def _spawn_geth(geth: Path, spec: NodeSpec, *, tie_to_caller: bool) -> int:
    write_node_config(spec)
    return spawn(geth_bft_command(geth, spec, spec.datadir / "jwt.hex"), spec.log_path,
                 spec.datadir / "geth.pid", name=spec.name, tie_to_caller=tie_to_caller)


def _spawn_bft(app: Path, spec: BftSpec, *, tie_to_caller: bool) -> int:
    return spawn(bft_command(app, spec), spec.log_path, spec.home / "bft.pid", name=spec.name,
                 tie_to_caller=tie_to_caller)


def _start(info: NetworkInfo, bft: BftInfo, *, timeout: float, tie_to_caller: bool,
           progress: Progress) -> tuple[NetworkInfo, BftInfo]:
    info = assign_ports(info, host=_HOST)
    taken = {p for v in info.validators for p in (v.p2p_port, v.http_port, v.authrpc_port)}
    bft = _assign_bft_ports(bft, taken)
    geth, app = Path(info.geth), Path(bft.app)
    progress(f"starting {len(info.validators)} geth {info.geth_version} execution nodes")
    info = info.with_pids({s.name: _spawn_geth(geth, s, tie_to_caller=tie_to_caller)
                           for s in _geth_specs(info)})
    save_network(info)
    progress(f"starting {len(bft.validators)} CometBFT {bft.versions.get('cometbft')} nodes")
    nodes = tuple(
        replace(v, pid=_spawn_bft(app, s, tie_to_caller=tie_to_caller))
        for v, s in zip(bft.validators, _bft_specs(info, bft), strict=True)
    )
    bft = replace(bft, validators=nodes)
    _save_bft(Path(info.dir), bft)
    try:
        _wait_finalizing(info, bft, timeout=timeout, progress=progress)
    except BaseException:
        _stop_all(info, bft, timeout=30.0)
        raise
    return info, bft


def bft_restart_validators(
    directory: str | os.PathLike[str], names: Sequence[str], *, tie_to_caller: bool = False,
    extra_flags: Sequence[str] = (),
) -> NetworkInfo:
    """Starts again the stopped (or killed) validators ``names`` of a running network.

    They keep their ports, keys and data: geth resumes from its database and CometBFT catches
    up from its peers, the application importing every block it missed (FinalizeBlock).
    ``extra_flags`` go to their fednode-bft command lines only (the fault tests start a
    validator with the test-only ``--fault-propose-invalid`` this way).

    Raises:
        NetworkError: An unknown name, or a validator whose processes still run.
    """
    root = Path(directory).resolve()
    info, bft = load_network(root), load_bft(root)
    known = {v.name for v in info.validators}
    if unknown := set(names) - known:
        raise NetworkError(f"no validator {sorted(unknown)} in {root}; have {sorted(known)}")
    with _folder_lock(root):
        live = [v.name for v in info.validators if v.name in names and is_running(v.pid, v.datadir)]
        live += [v.name for v in bft.validators if v.name in names and is_running(v.pid, v.home)]
        if live:
            raise NetworkError(f"validators still running in {root}: {live}")
        geth, app = Path(info.geth), Path(bft.app)
        info = info.with_pids({s.name: _spawn_geth(geth, s, tie_to_caller=tie_to_caller)
                               for s in _geth_specs(info) if s.name in names})
        save_network(info)
        nodes = tuple(
            replace(v, pid=_spawn_bft(app, replace(s, extra_flags=tuple(extra_flags)),
                                      tie_to_caller=tie_to_caller))
            if v.name in names else v
            for v, s in zip(bft.validators, _bft_specs(info, bft), strict=True)
        )
        _save_bft(root, replace(bft, validators=nodes))
    return info


def _stop_all(info: NetworkInfo, bft: BftInfo, *, timeout: float) -> list[StopResult]:
    """Stops consensus first (no block is half-finalized), then the execution nodes."""
    comet = stop_nodes([(v.name, v.pid, Path(v.home)) for v in bft.validators], timeout=timeout)
    execution = stop_nodes([(v.name, v.pid, Path(v.datadir)) for v in info.validators],
                           timeout=timeout)
    save_network(info.with_pids(dict.fromkeys((v.name for v in info.validators), None)))
    _save_bft(Path(info.dir), replace(bft, validators=tuple(replace(v, pid=None)
                                                              for v in bft.validators)))
    return [replace(r, name=f"{r.name} cometbft") for r in comet] + [
        replace(r, name=f"{r.name} geth") for r in execution
    ]


def bft_network_create(
    directory: str | os.PathLike[str],
    *,
    validators: int = 4,
    accounts: Sequence[str] | None = None,
    chain_id: int = 1337,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    progress: Progress | None = None,
) -> tuple[NetworkInfo, BftInfo]:
    """Lays out a new CometBFT network (keys, both genesis files, datadirs) without starting it.

    ``bft_network_up`` does this for a fresh folder before starting; callers that run the
    processes themselves (the partition test puts each validator in a network namespace of
    its own) start from here.

    Raises:
        NetworkError: Binaries missing, or the folder not empty.
        FednodeValueError: Bad settings.
    """
    if not 1 <= validators <= 32:
        raise FednodeValueError(f"validators must be between 1 and 32, got {validators}")
    root = Path(directory).resolve()
    with _folder_lock(root):
        if not is_fresh_folder(root):
            raise NetworkError(f"{root} already holds a network")
        try:
            info, bft = _create(root, validators=validators, accounts=accounts,
                                chain_id=chain_id, gas_limit=gas_limit,
                                progress=progress or _log.info)
        except BaseException:
            discard_partial(root)
            raise
        save_network(info)
        _save_bft(root, bft)
    return info, bft


def bft_network_up(
    directory: str | os.PathLike[str],
    *,
    validators: int | None = None,
    accounts: Sequence[str] | None = None,
    chain_id: int | None = None,
    gas_limit: int = DEFAULT_GAS_LIMIT,
    timeout: float = 120.0,
    tie_to_caller: bool = False,
    progress: Progress | None = None,
) -> NetworkInfo:
    """Starts a local consortium on CometBFT + geth 1.17 and waits until blocks are final.

    A missing or empty folder gets a new network; a folder with a stopped CometBFT network
    gets it restarted (same keys, same genesis, the same ports when still free).

    Args:
        directory: Network folder.
        validators: Number of validators (default 4 for a new network).
        accounts: Consortium account names (default admin, publisher, aggregator, auditor,
            edge-1..edge-<validators>), each prefunded and given a key file.
        chain_id: Execution chain id (default 1337); CometBFT's is ``fednode-<chain_id>``.
        gas_limit: Block gas limit of a new network.
        timeout: Seconds to wait for every validator to see a finalized block.
        tie_to_caller: SIGTERM the processes when the calling thread's process dies.
        progress: Called with short status lines.

    Returns:
        The NetworkInfo written to ``<directory>/network.json`` (what every tool reads).

    Raises:
        NetworkError: Binaries missing, folder in use or holding a Clique network, or no
            finality in time (the message ends with the logs).
        FednodeValueError: Bad settings.
    """
    if validators is not None and not 1 <= validators <= 32:
        raise FednodeValueError(f"validators must be between 1 and 32, got {validators}")
    report = progress or _log.info
    root = Path(directory).resolve()
    with _folder_lock(root):
        if is_fresh_folder(root):
            try:
                info, bft = _create(
                    root, validators=validators or 4, accounts=accounts,
                    chain_id=chain_id or 1337, gas_limit=gas_limit, progress=report,
                )  # fmt: skip
            except BaseException:
                discard_partial(root)
                raise
            save_network(info)
            _save_bft(root, bft)
        else:
            info, bft = _stopped(root, validators=validators, chain_id=chain_id)
            report(f"restarting the stopped CometBFT network in {root}")
        info, _ = _start(info, bft, timeout=timeout, tie_to_caller=tie_to_caller,
                         progress=report)
    return info


def _stopped(root: Path, *, validators: int | None,
             chain_id: int | None) -> tuple[NetworkInfo, BftInfo]:
    if not is_bft_network(root):
        raise NetworkError(f"{root} holds a Clique network; use another folder for CometBFT")
    info, bft = load_network(root), load_bft(root)
    live = [v.name for v in info.validators if is_running(v.pid, v.datadir)]
    live += [v.name for v in bft.validators if is_running(v.pid, v.home)]
    if live:
        raise NetworkError(f"a network is already running in {root} ({live}); "
                           f"run `fednode network down --dir {root}` first")
    if validators is not None and validators != len(info.validators):
        raise NetworkError(f"{root} holds {len(info.validators)} validators, not {validators}")
    if chain_id is not None and chain_id != info.chain_id:
        raise NetworkError(f"{root} holds chain id {info.chain_id}, not {chain_id}")
    return info, bft


def bft_network_down(directory: str | os.PathLike[str], *,
                     timeout: float = 30.0) -> list[StopResult]:
    """Stops every CometBFT node, then every geth (SIGTERM; SIGKILL after ``timeout``)."""
    root = Path(directory).resolve()
    info, bft = load_network(root), load_bft(root)
    with _folder_lock(root):
        return _stop_all(info, bft, timeout=timeout)


def bft_network_status(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Engine, versions, height, validator set, every PID and, per validator, heights and peers.

    Returns:
        A JSON-ready dict (what ``fednode network status --json`` prints for this engine); its
        shape is :func:`fednode.network.bft.status.build_status`'s.
    """
    from fednode.network.bft.status import LiveProbe, build_status  # status imports this module

    return build_status(load_network(directory), load_bft(directory), LiveProbe())
