"""Edge: the ``fednode device`` commands an edge operator uses to admit devices and set up TLS.

``keygen`` makes a device identity (Ed25519, kept on the device), ``enroll`` records a device's
public key in the edge store (``--public-key HEX`` or ``--key-file`` with an identity or a hex
public key), ``revoke`` removes it, ``list`` shows the enrolled devices, and ``tls-cert``
writes the operator's self-signed certificate that devices pin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from edge_server.service import enroll_device
from edge_server.store import EdgeStore
from edge_server.tls import generate_self_signed_cert
from fednode.errors import FednodeValueError
from fednode.site.device_client import DeviceIdentity
from fednode.update.signing import public_key_to_hex

__all__ = [
    "add_device_parser",
    "read_public_key",
    "run_device_enroll",
    "run_device_keygen",
    "run_device_revoke",
    "run_device_tls_cert",
]


def read_public_key(path: str | Path) -> tuple[str | None, str]:
    """Reads ``(device_id or None, public key hex)`` from an identity JSON or a hex key file.

    Raises:
      FednodeValueError: the file is unreadable or holds neither.
    """
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise FednodeValueError(f"cannot read key file {path}: {exc}") from exc
    if text.startswith("{"):
        identity = DeviceIdentity.load(path)
        return identity.device_id, public_key_to_hex(identity.private_key)
    return None, text


def run_device_enroll(args: argparse.Namespace) -> int:
    """``fednode device enroll``: admits one device to an edge store."""
    if args.public_key:
        file_id, key_hex = None, args.public_key
    else:
        file_id, key_hex = read_public_key(args.key_file)
    device_id = args.device_id or file_id
    if device_id is None:
        raise FednodeValueError("give --device-id (the key file names no device)")
    with EdgeStore(args.db) as store:
        normalized = enroll_device(store, device_id, key_hex, replace=args.replace)
    print(json.dumps({"device_id": device_id, "public_key": normalized, "db": args.db}))
    return 0


def run_device_revoke(args: argparse.Namespace) -> int:
    """``fednode device revoke``: removes a device; exit 1 if it was not enrolled."""
    with EdgeStore(args.db) as store:
        removed = store.revoke_device(args.device_id)
    print(json.dumps({"device_id": args.device_id, "revoked": removed}))
    return 0 if removed else 1


def run_device_keygen(args: argparse.Namespace) -> int:
    """``fednode device keygen``: writes a new device identity (0600) and prints its public key."""
    identity = DeviceIdentity.generate(device_id=args.device_id)
    identity.save(args.out)
    print(json.dumps({"device_id": identity.device_id, "public_key": identity.public_key_hex}))
    return 0


def run_device_tls_cert(args: argparse.Namespace) -> int:
    """``fednode device tls-cert``: writes the operator's self-signed certificate and key."""
    generate_self_signed_cert(args.cert, args.key, hosts=args.host or ["127.0.0.1", "localhost"])
    Console(stderr=True).print(f"wrote {args.cert} (give it to devices) and {args.key} (0600)")
    return 0


def add_device_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    """Registers ``device keygen|enroll|revoke|tls-cert``.

    Example:
        >>> root = argparse.ArgumentParser(prog="fednode")
        >>> _ = add_device_parser(root.add_subparsers(dest="command"))
        >>> args = root.parse_args(["device", "enroll", "--db", "e.db", "--device-id", "d",
        ...                         "--public-key", "ab" * 32])
        >>> args.handler.__name__
        'run_device_enroll'
    """
    device = subparsers.add_parser("device", help="admit devices to an edge server, TLS setup")
    commands = device.add_subparsers(dest="device_command", required=True)

    enroll = commands.add_parser("enroll", help="record a device's Ed25519 public key")
    enroll.add_argument("--db", required=True, help="the edge server's SQLite file")
    enroll.add_argument("--device-id", help="device id (default: the one in --key-file)")
    source = enroll.add_mutually_exclusive_group(required=True)
    source.add_argument("--public-key", help="raw Ed25519 public key, 64 hex characters")
    source.add_argument("--key-file", help="device identity JSON or a file holding the hex key")
    enroll.add_argument("--replace", action="store_true", help="replace the id's current key")
    enroll.set_defaults(handler=run_device_enroll)

    revoke = commands.add_parser("revoke", help="remove an enrolled device")
    revoke.add_argument("--db", required=True, help="the edge server's SQLite file")
    revoke.add_argument("--device-id", required=True, help="device id")
    revoke.set_defaults(handler=run_device_revoke)

    keygen = commands.add_parser("keygen", help="make a device identity file")
    keygen.add_argument("--out", required=True, help="identity file to write (0600)")
    keygen.add_argument("--device-id", help="device id (default: key fingerprint)")
    keygen.set_defaults(handler=run_device_keygen)

    cert = commands.add_parser("tls-cert", help="write the operator's self-signed certificate")
    cert.add_argument("--cert", required=True, help="certificate file to write (PEM)")
    cert.add_argument("--key", required=True, help="private key file to write (PEM, 0600)")
    cert.add_argument("--host", action="append", help="IP or DNS name it is valid for (repeat)")
    cert.set_defaults(handler=run_device_tls_cert)
    return device
