"""Chain: lays out a new network folder: keys, Clique genesis and initialised geth datadirs.

Nothing here starts a node; ``manager.network_up`` does that once the folder is complete.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from eth_utils.address import to_checksum_address

from fednode.errors import NetworkError
from fednode.network import keys as keyring
from fednode.network.genesis import DEFAULT_BALANCE_WEI, build_clique_genesis
from fednode.network.info import (
    NETWORK_FILE,
    AccountInfo,
    NetworkInfo,
    ValidatorInfo,
    password_file_of,
)
from fednode.network.node import geth_version, init_datadir

__all__ = ["checked_geth_version", "create_network", "discard_partial", "is_fresh_folder"]

Progress = Callable[[str], None]


def is_fresh_folder(directory: Path) -> bool:
    """True for a missing or empty folder (the lock file aside); False if it holds a network."""
    if (directory / NETWORK_FILE).exists():
        return False
    leftovers = [p.name for p in directory.iterdir() if p.name != ".lock"]
    if leftovers:
        raise NetworkError(f"{directory} is not empty and holds no {NETWORK_FILE}: {leftovers[:5]}")
    return True


def checked_geth_version(geth: Path) -> str:
    """Returns geth's version, refusing any geth but 1.13 (the last with Clique sealing)."""
    version = geth_version(geth)
    if not version.startswith("1.13."):
        raise NetworkError(
            f"{geth} is geth {version}; Clique validators need geth 1.13.x "
            "(run scripts/build_geth.sh)"
        )
    return version


def discard_partial(directory: Path) -> None:
    """Removes what a failed creation left, so the folder can be used again."""
    for name in ("nodes", "keys", "secrets"):
        shutil.rmtree(directory / name, ignore_errors=True)
    for name in ("genesis.json", NETWORK_FILE):
        with contextlib.suppress(FileNotFoundError):
            (directory / name).unlink()


def _create_validator(directory: Path, index: int) -> tuple[str, bytes, Path]:
    """Makes the keys of validator ``index``: returns (name, node key, datadir)."""
    name = f"validator-{index}"
    datadir = directory / "nodes" / name
    keyring.write_validator_keystore(
        datadir, keyring.generate_private_key(), secrets.token_hex(16),
        password_file=password_file_of(directory, name),
    )  # fmt: skip
    node_key = keyring.generate_private_key()
    keyring.write_node_key(datadir, node_key)
    return name, node_key, datadir


def _keystore_address(datadir: Path) -> str:
    """Reads the sealer address from the one keystore file of a datadir."""
    files = sorted((datadir / "keystore").glob("UTC--*"))
    if len(files) != 1:
        raise NetworkError(f"expected one keystore file in {datadir}/keystore, found {len(files)}")
    return to_checksum_address(json.loads(files[0].read_text())["address"])


def _unplaced(name: str, node_key: bytes, datadir: Path, signer: str) -> ValidatorInfo:
    """A validator without ports yet (``ports.assign_ports`` gives it some before start)."""
    return ValidatorInfo(
        name=name,
        signer=signer,
        enode=keyring.enode_url(node_key, host="127.0.0.1", port=0),
        http_url="",
        p2p_port=0,
        http_port=0,
        authrpc_port=0,
        datadir=str(datadir),
    )


def create_network(
    directory: Path,
    *,
    validators: int,
    accounts: Sequence[str] | None,
    period: int,
    chain_id: int,
    gas_limit: int,
    geth: Path,
    version: str,
    progress: Progress,
) -> NetworkInfo:
    """Writes keys, genesis and initialised datadirs for a new network (nothing started).

    Args:
        directory: An empty network folder.
        validators: Number of validators.
        accounts: Consortium account names (None: the four roles and edge-1..edge-<validators>).
        period: Clique block period, seconds.
        chain_id: Chain id, also the devp2p network id.
        gas_limit: Block gas limit.
        geth: The geth binary (used for ``geth init``).
        version: Its version string, recorded in network.json.
        progress: Called with short status lines.

    Returns:
        The new network; its validators have no ports and no PIDs yet.
    """
    progress(f"creating keys for {validators} validators")
    made = [_create_validator(directory, i) for i in range(1, validators + 1)]
    signers = [_keystore_address(datadir) for _, _, datadir in made]
    names = list(accounts) if accounts is not None else keyring.default_account_names(validators)
    members = keyring.ensure_account_keys(directory / "keys", names)
    alloc = dict.fromkeys([*signers, *members.values()], DEFAULT_BALANCE_WEI)
    genesis = build_clique_genesis(
        signers, chain_id=chain_id, period=period, gas_limit=gas_limit, alloc=alloc
    )
    genesis_path = directory / "genesis.json"
    genesis_path.write_text(json.dumps(genesis, indent=2) + "\n", encoding="utf-8")
    progress(f"initialising {validators} datadirs (geth init)")
    with ThreadPoolExecutor(max_workers=validators) as pool:
        list(pool.map(lambda m: init_datadir(geth, m[2], genesis_path), made))
    return NetworkInfo(
        dir=str(directory),
        chain_id=chain_id,
        period=period,
        epoch=genesis["config"]["clique"]["epoch"],
        gas_limit=gas_limit,
        genesis=str(genesis_path),
        geth=str(geth),
        geth_version=version,
        validators=tuple(
            _unplaced(name, nk, dd, signer)
            for (name, nk, dd), signer in zip(made, signers, strict=True)
        ),
        accounts={
            n: AccountInfo(a, str(directory / "keys" / f"{n}.key")) for n, a in members.items()
        },
    )
