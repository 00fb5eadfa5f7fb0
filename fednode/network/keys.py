"""Chain: creates and reads the keys of a local consortium (validators, nodes, member accounts).

Three kinds of key live in a network folder:

- the **sealer key** of each validator, as a geth keystore JSON in ``<datadir>/keystore/``
  (scrypt with geth's standard work factor, n = 2**18), unlocked by geth to seal Clique blocks
  with a password kept in a 0600 file of a separate 0700 folder (``<dir>/secrets/``), never
  beside the keystore it opens;
- the **node key** of each validator (its devp2p identity, hence its enode), in
  ``<datadir>/geth/nodekey`` where geth looks for it;
- the **account keys** of the consortium roles (admin, publisher, aggregator, auditor,
  edge-1..edge-N), as 0600 files ``<dir>/keys/<name>.key`` holding 64 hex characters and a
  newline (the format ``geth account import`` takes).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from eth_account import Account
from eth_keys.datatypes import PrivateKey

from fednode.errors import FednodeValueError, NetworkError

__all__ = [
    "KEYSTORE_SCRYPT_N",
    "ROLE_ACCOUNT_NAMES",
    "address_of",
    "default_account_names",
    "enode_url",
    "ensure_account_keys",
    "generate_private_key",
    "move_legacy_password",
    "node_public_key",
    "read_key_file",
    "write_key_file",
    "write_node_key",
    "write_validator_keystore",
]

ROLE_ACCOUNT_NAMES = ("admin", "publisher", "aggregator", "auditor")
"""Consortium roles that get one account each; edge operators add ``edge-<i>``."""

_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KEYSTORE_SCRYPT_N = 2**18
"""scrypt work factor of the keystores fednode writes (geth's StandardScryptN)."""


def generate_private_key() -> bytes:
    """Draws a fresh secp256k1 private key from the OS random source.

    Returns:
        32 bytes, a valid scalar in [1, n).

    Example:
        >>> len(generate_private_key())
        32
    """
    while True:
        candidate = secrets.token_bytes(32)
        if 0 < int.from_bytes(candidate, "big") < _SECP256K1_N:
            return candidate


def address_of(private_key: bytes) -> str:
    """Returns the checksummed Ethereum address of a private key.

    Example:
        >>> address_of(bytes(31) + b"\\x01")
        '0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf'
    """
    return PrivateKey(private_key).public_key.to_checksum_address()


def node_public_key(node_key: bytes) -> str:
    """Returns the 128-hex-character public key that names a node in its enode URL.

    Example:
        >>> len(node_public_key(bytes(31) + b"\\x01"))
        128
    """
    return PrivateKey(node_key).public_key.to_bytes().hex()


def enode_url(node_key: bytes, *, host: str, port: int) -> str:
    """Builds ``enode://<pubkey>@host:port`` (discovery port = TCP port).

    Example:
        >>> enode_url(bytes(31) + b"\\x01", host="127.0.0.1", port=30303)[-16:]
        '@127.0.0.1:30303'
    """
    return f"enode://{node_public_key(node_key)}@{host}:{port}"


def _write_private(path: Path, text: str) -> None:
    """Writes ``text`` to a file readable only by its owner (0600), atomically.

    The temporary file is created exclusively (``mkstemp``: O_EXCL, 0600, a random name), so a
    file or link planted at a guessable name is never written through.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _create_private(path: Path, text: str) -> None:
    """Creates a new 0600 file in a 0700 folder; refuses one that exists (O_CREAT | O_EXCL)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError as exc:
        raise NetworkError(f"{path} already exists: refusing to overwrite a secret") from exc
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)


def write_key_file(path: Path, private_key: bytes) -> None:
    """Writes a private key as 64 hex characters plus newline, mode 0600."""
    _write_private(path, private_key.hex() + "\n")


def read_key_file(path: Path) -> bytes:
    """Reads a key file written by :func:`write_key_file` (a ``0x`` prefix is tolerated).

    Raises:
        NetworkError: The file is missing or does not hold a 32-byte hex key.
    """
    try:
        text = Path(path).read_text(encoding="ascii").strip()
        raw = bytes.fromhex(text.removeprefix("0x"))
    except (OSError, ValueError) as exc:
        raise NetworkError(f"cannot read key file {path}: {exc}") from exc
    if len(raw) != 32:
        raise NetworkError(f"key file {path} holds {len(raw)} bytes, expected 32")
    return raw


def default_account_names(edges: int) -> list[str]:
    """Names the consortium accounts: the four roles, then ``edge-1`` .. ``edge-<edges>``.

    Example:
        >>> default_account_names(2)
        ['admin', 'publisher', 'aggregator', 'auditor', 'edge-1', 'edge-2']
    """
    if edges < 0:
        raise FednodeValueError(f"edges must be >= 0, got {edges}")
    return [*ROLE_ACCOUNT_NAMES, *(f"edge-{i}" for i in range(1, edges + 1))]


def ensure_account_keys(keys_dir: Path, names: Iterable[str]) -> dict[str, str]:
    """Creates ``<keys_dir>/<name>.key`` for each name that has none yet.

    Existing key files are kept, so a restarted network keeps its member addresses.

    Args:
        keys_dir: Folder of the account key files (created 0700 if missing).
        names: Account names: lowercase letters, digits, ``-`` and ``_``.

    Returns:
        Name -> checksummed address, in the order given.

    Raises:
        FednodeValueError: A malformed or duplicate name.
    """
    ordered = list(names)
    bad = [n for n in ordered if not _NAME_RE.match(n)]
    if bad or len(set(ordered)) != len(ordered):
        raise FednodeValueError(f"account names must be unique slugs, got {ordered}")
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    addresses = {}
    for name in ordered:
        path = keys_dir / f"{name}.key"
        if not path.exists():
            write_key_file(path, generate_private_key())
        addresses[name] = address_of(read_key_file(path))
    return addresses


def write_validator_keystore(
    datadir: Path,
    private_key: bytes,
    password: str,
    *,
    password_file: Path,
    insecure_test_scrypt_n: int | None = None,
) -> Path:
    """Stores a sealer key as a geth keystore file, and its password in ``password_file``.

    Args:
        datadir: The validator's geth data directory (the keystore goes to ``keystore/``).
        private_key: The sealer's secp256k1 key.
        password: Password that encrypts the keystore.
        password_file: Where the password goes: a new 0600 file (created exclusively) in a
            0700 folder that must not be the datadir or inside it.
        insecure_test_scrypt_n: Tests only: a weaker scrypt work factor than
            ``KEYSTORE_SCRYPT_N``, so that unit tests stay fast. Never set it elsewhere.

    Returns:
        The path of the keystore JSON (``UTC--<time>--<address>`` as geth names them).

    Raises:
        NetworkError: ``password_file`` would sit in the datadir, or exists already.
    """
    if Path(password_file).resolve().is_relative_to(Path(datadir).resolve()):
        raise NetworkError(f"the password file {password_file} must not sit in the datadir "
                           f"{datadir} beside the keystore it opens")
    n = KEYSTORE_SCRYPT_N if insecure_test_scrypt_n is None else insecure_test_scrypt_n
    keystore = Account.encrypt(private_key, password, kdf="scrypt", iterations=n)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S.000000000Z", time.gmtime())
    path = datadir / "keystore" / f"UTC--{stamp}--{keystore['address'].lower()}"
    _create_private(Path(password_file), password + "\n")
    _write_private(path, json.dumps(keystore))
    return path


def move_legacy_password(datadir: Path, password_file: Path) -> None:
    """Moves a password an older fednode kept in ``<datadir>/password.txt`` to ``password_file``.

    Nothing happens when there is no such file; the new place is 0600 in a 0700 folder.
    """
    legacy = Path(datadir) / "password.txt"
    if not legacy.is_file() or Path(password_file).exists():
        return
    _create_private(Path(password_file), legacy.read_text(encoding="ascii"))
    legacy.unlink()


def write_node_key(datadir: Path, node_key: bytes) -> Path:
    """Stores a devp2p node key where geth reads it (``<datadir>/geth/nodekey``, no newline)."""
    path = datadir / "geth" / "nodekey"
    _write_private(path, node_key.hex())
    return path
