"""Site: a device's identity, its id and Ed25519 signing key (the key never leaves it).

``fednode.site.device_client`` signs every request with it (and re-exports it). The identity
file may also pin the scope the device signs for (its edge's operator address, the chain id
and the deployment's UpdateLedger): then the device refuses an edge that reports another one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.update.envelope import SigningScope
from fednode.update.signing import (
    device_id_for,
    generate_private_key,
    private_key_from_hex,
    private_key_to_hex,
    public_key_to_hex,
)

__all__ = ["DeviceIdentity"]


@dataclass(frozen=True)
class DeviceIdentity:
    """A device's id and Ed25519 signing key (the key never leaves the device).

    Example:
      >>> identity = DeviceIdentity.generate(device_id="clinic-7")
      >>> identity.device_id, len(identity.public_key_hex)
      ('clinic-7', 64)
    """

    device_id: str
    private_key: Ed25519PrivateKey = field(repr=False)
    scope: SigningScope | None = None

    @classmethod
    def generate(cls, *, device_id: str | None = None) -> DeviceIdentity:
        """A new identity; the id defaults to a fingerprint of the public key."""
        key = generate_private_key()
        return cls(device_id or device_id_for(key), key)

    @classmethod
    def load(cls, path: str | Path) -> DeviceIdentity:
        """Loads ``{"device_id": ..., "private_key": <hex>}`` written by :meth:`save`.

        An optional ``"scope": {"edge", "chain_id", "deployment"}`` pins the device's edge.

        Raises:
          FednodeValueError: the file is missing or malformed.
        """
        try:
            body = json.loads(Path(path).read_text())
            scope = None if body.get("scope") is None else SigningScope.from_json(body["scope"])
            return cls(str(body["device_id"]), private_key_from_hex(body["private_key"]), scope)
        except (OSError, ValueError, KeyError, TypeError, AttributeError,
                UpdateRejectedError) as exc:
            raise FednodeValueError(f"cannot load device identity {path}: {exc}") from exc

    def save(self, path: str | Path) -> None:
        """Writes the identity to ``path``, readable by the owner only (mode 0600)."""
        body: dict[str, object] = {
            "device_id": self.device_id, "private_key": private_key_to_hex(self.private_key),
        }  # fmt: skip
        if self.scope is not None:
            body["scope"] = self.scope.to_json()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)  # 0600, O_EXCL
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(body, handle)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    @property
    def public_key_hex(self) -> str:
        """The public key to enroll at the edge (raw 32 bytes, hex)."""
        return public_key_to_hex(self.private_key)
