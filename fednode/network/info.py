"""Chain: the description of a local consortium network, as kept in ``<dir>/network.json``.

``network.json`` is what every other tool reads to find the chain: the chain id, the genesis,
each validator's signer address, enode, JSON-RPC URL, PID and datadir, and the consortium
accounts with their key files. All paths in it are absolute.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fednode.errors import NetworkError

__all__ = [
    "NETWORK_FILE",
    "AccountInfo",
    "NetworkInfo",
    "ValidatorInfo",
    "ipc_path_of",
    "load_network",
    "password_file_of",
    "save_network",
]

NETWORK_FILE = "network.json"
_FORMAT_VERSION = 1
_MAX_SOCKET_PATH = 100  # Linux caps a Unix socket path at 107 bytes


def ipc_path_of(datadir: str | os.PathLike[str]) -> Path:
    """Where a validator's geth listens for IPC: ``<datadir>/geth.ipc``.

    A datadir too deep for a Unix socket path gets a short one instead, in a 0700 folder of
    this user under /tmp named by a hash of the datadir.

    Example:
        >>> str(ipc_path_of("/srv/fednode/node"))
        '/srv/fednode/node/geth.ipc'
        >>> len(str(ipc_path_of("/deep" * 40))) < 100
        True
    """
    path = Path(datadir) / "geth.ipc"
    if len(os.fsencode(str(path))) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(str(Path(datadir)))).hexdigest()[:20]
    return Path("/tmp") / f"fednode-ipc-{os.getuid()}" / f"{digest}.ipc"


def password_file_of(directory: str | os.PathLike[str], name: str) -> Path:
    """Where the password that unlocks validator ``name``'s keystore lives: a 0600 file in
    ``<directory>/secrets/`` (0700), never in the datadir beside the keystore it opens.

    Example:
        >>> str(password_file_of("/srv/net", "validator-1"))
        '/srv/net/secrets/validator-1.password'
    """
    return Path(directory) / "secrets" / f"{name}.password"


@dataclass(frozen=True)
class ValidatorInfo:
    """One geth validator of the consortium.

    Attributes:
        name: ``validator-<i>``, also the geth ``--identity``.
        signer: Checksummed Clique sealer address (unlocked in geth).
        enode: ``enode://<pubkey>@<host>:<p2p_port>``.
        http_url: Public JSON-RPC endpoint (the gateway: eth, net, web3 only), e.g.
            ``http://127.0.0.1:8545``.
        p2p_port: devp2p TCP port.
        http_port: JSON-RPC HTTP port.
        authrpc_port: Engine API port (unused by Clique, but geth binds it).
        datadir: geth ``--datadir`` (also holds config.toml, node.log, geth.ipc).
        pid: Process id while running, ``None`` once stopped.
    """

    name: str
    signer: str
    enode: str
    http_url: str
    p2p_port: int
    http_port: int
    authrpc_port: int
    datadir: str
    pid: int | None = None

    @property
    def log_path(self) -> Path:
        """The file geth's stdout and stderr go to."""
        return Path(self.datadir) / "node.log"

    @property
    def ipc_path(self) -> str:
        """geth's IPC socket: every API (admin, debug, miner, clique), for this host only."""
        return str(ipc_path_of(self.datadir))


@dataclass(frozen=True)
class AccountInfo:
    """One consortium member account: its address and its 0600 hex key file."""

    address: str
    key_file: str


@dataclass(frozen=True)
class NetworkInfo:
    """Everything needed to reach and operate a local consortium chain.

    Attributes:
        dir: The network folder (absolute).
        chain_id: EIP-155 chain id, equal to the devp2p network id.
        period: Clique block period in seconds.
        epoch: Clique epoch in blocks.
        gas_limit: Block gas limit.
        genesis: Path of genesis.json.
        geth: Path of the geth binary that runs the nodes.
        geth_version: Version string reported by that binary.
        validators: The validators, in order.
        accounts: Account name (admin, publisher, ..., edge-1) -> account.
    """

    dir: str
    chain_id: int
    period: int
    epoch: int
    gas_limit: int
    genesis: str
    geth: str
    geth_version: str
    validators: tuple[ValidatorInfo, ...]
    accounts: dict[str, AccountInfo] = field(default_factory=dict)

    @property
    def http_urls(self) -> list[str]:
        """JSON-RPC URLs of all validators."""
        return [v.http_url for v in self.validators]

    @property
    def ipc_paths(self) -> list[str]:
        """IPC sockets of all validators (the control endpoints of heal, sealing, signers)."""
        return [v.ipc_path for v in self.validators]

    @property
    def signers(self) -> list[str]:
        """Sealer addresses of all validators."""
        return [v.signer for v in self.validators]

    def key_file(self, name: str) -> Path:
        """Path of the key file of account ``name``; raises NetworkError if there is none."""
        if name not in self.accounts:
            raise NetworkError(f"no account {name!r} in {self.dir}; have {sorted(self.accounts)}")
        return Path(self.accounts[name].key_file)

    def with_pids(self, pids: dict[str, int | None]) -> NetworkInfo:
        """Returns a copy whose validators carry the given PIDs (by validator name)."""
        nodes = tuple(replace(v, pid=pids.get(v.name, v.pid)) for v in self.validators)
        return replace(self, validators=nodes)

    def to_json(self) -> dict[str, Any]:
        """Returns the JSON object written to ``network.json``."""
        data = asdict(self)
        data["validators"] = [asdict(v) for v in self.validators]
        return {"format": _FORMAT_VERSION, **data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NetworkInfo:
        """Parses the object written by :meth:`to_json`."""
        fields = {k: v for k, v in data.items() if k != "format"}
        fields["validators"] = tuple(ValidatorInfo(**v) for v in data["validators"])
        fields["accounts"] = {k: AccountInfo(**v) for k, v in data.get("accounts", {}).items()}
        return cls(**fields)


def save_network(info: NetworkInfo) -> Path:
    """Writes ``<info.dir>/network.json`` atomically (through a temporary file created
    exclusively) and returns its path."""
    path = Path(info.dir) / NETWORK_FILE
    fd, tmp = tempfile.mkstemp(prefix=f".{NETWORK_FILE}.", dir=path.parent)  # O_EXCL, 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(info.to_json(), indent=2) + "\n")
        os.chmod(tmp, 0o644)  # no secret in it: other tools of the operator read it
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def load_network(directory: str | os.PathLike[str]) -> NetworkInfo:
    """Reads ``<directory>/network.json``.

    Raises:
        NetworkError: The folder holds no network, or the file cannot be parsed.
    """
    path = Path(directory) / NETWORK_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return NetworkInfo.from_json(data)
    except FileNotFoundError as exc:
        raise NetworkError(f"no network in {directory} (missing {NETWORK_FILE})") from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise NetworkError(f"cannot read {path}: {exc}") from exc
