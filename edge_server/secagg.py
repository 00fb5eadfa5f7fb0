"""Edge: secure aggregation math for an edge cohort (double masking, Shamir dropout recovery).

Bonawitz et al. 2017, "Practical Secure Aggregation". Each device quantizes its delta to
integers mod 2**32 and adds two kinds of masks:

- a pairwise mask for every other cohort member, derived from an X25519 key agreement:
  ``+mask`` towards higher indices, ``-mask`` towards lower ones, so they cancel in the sum;
- a self mask expanded from a fresh 32-byte seed ``b`` (:func:`self_mask`).

Every device Shamir-shares (threshold ``t``) both its X25519 mask key and its seed among the
cohort; the two shares for one peer travel in one box encrypted to that peer
(:func:`encrypt_shares`). In the unmasking round each survivor reveals, per peer, the share of
the seed when the peer's masked input was received and the share of the mask key when it was
not, never both: the edge removes the survivors' self masks and the dropped devices' pairwise
masks (:func:`unmask_sum`) and learns the sum only. A masked input whose pairwise masks the edge
could remove still hides behind its self mask, and the other way round.
Pure functions, no I/O.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = [
    "PRIME",
    "choose_scale",
    "combine_shares",
    "decrypt_shares",
    "dequantize",
    "encrypt_shares",
    "generate_keypair",
    "generate_seed",
    "mask_update",
    "pair_mask",
    "public_of",
    "quantize",
    "self_mask",
    "split_secret",
    "unmask_sum",
]

PRIME = 2**521 - 1
"""Mersenne prime of the Shamir field (larger than any 32-byte secret)."""
_MOD = 2**32
_RAW = serialization.Encoding.Raw
_SHARE_BYTES = 66  # a field element of GF(2**521 - 1)
_NONCE_BYTES = 12


def generate_keypair() -> tuple[bytes, bytes]:
    """A fresh X25519 ``(secret, public)`` pair, 32 raw bytes each.

    Example:
      >>> secret, public = generate_keypair()
      >>> len(secret), len(public)
      (32, 32)
    """
    key = X25519PrivateKey.generate()
    secret = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return secret, key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def public_of(secret: bytes) -> bytes:
    """The X25519 public key of a secret key (checks a rebuilt secret against its public).

    Example:
      >>> secret, public = generate_keypair()
      >>> public_of(secret) == public
      True
    """
    key = X25519PrivateKey.from_private_bytes(secret)
    return key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def choose_scale(bound: float) -> float:
    """The fixed-point scale (a power of two) for sums whose coordinates stay within ``bound``.

    Sums of up to ``bound`` in magnitude then use at most 2**30 of the 2**31 signed range,
    so a cohort sum never wraps when every weighted input respects the bound.

    Example:
      >>> choose_scale(5.0) == 2.0**27
      True
    """
    if not bound > 0 or not math.isfinite(bound):
        raise ValueError("the bound must be finite and > 0")
    return 2.0 ** math.floor(math.log2(2**30 / bound))


def _pair_key(secret: bytes, peer_public: bytes, info: bytes) -> bytes:
    shared = X25519PrivateKey.from_private_bytes(secret).exchange(
        X25519PublicKey.from_public_bytes(peer_public)
    )
    return HKDF(hashes.SHA256(), 32, salt=None, info=info).derive(shared)


def encrypt_shares(
    key_share: int, seed_share: int, secret: bytes, peer_public: bytes, *, context: bytes
) -> bytes:
    """Encrypts one peer's two Shamir shares (mask key, self-mask seed) in one box.

    X25519 + HKDF + ChaCha20-Poly1305; ``context`` (task, base version, sender, recipient) is
    authenticated, so a box cannot be replayed into another cohort or attributed to another
    sender. Only the recipient opens it: the edge that relays it learns neither share.

    Example:
      >>> (a, pa), (b, pb) = generate_keypair(), generate_keypair()
      >>> box = encrypt_shares(12345, 678, a, pb, context=b"t1")
      >>> decrypt_shares(box, b, pa, context=b"t1")
      (12345, 678)
    """
    key = _pair_key(secret, peer_public, b"fednode-secagg-share-v2")
    nonce = os.urandom(_NONCE_BYTES)
    plain = key_share.to_bytes(_SHARE_BYTES, "big") + seed_share.to_bytes(_SHARE_BYTES, "big")
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plain, context)


def decrypt_shares(
    box: bytes, secret: bytes, peer_public: bytes, *, context: bytes
) -> tuple[int, int]:
    """Opens a box from :func:`encrypt_shares`: ``(key_share, seed_share)``.

    Raises:
      ValueError: the box was not made for this key pair and context (or was altered).
    """
    key = _pair_key(secret, peer_public, b"fednode-secagg-share-v2")
    try:
        plain = ChaCha20Poly1305(key).decrypt(box[:_NONCE_BYTES], box[_NONCE_BYTES:], context)
    except InvalidTag as exc:
        raise ValueError("share box does not decrypt: wrong key, context or altered box") from exc
    if len(plain) != 2 * _SHARE_BYTES:
        raise ValueError("share box holds the wrong number of bytes")
    return int.from_bytes(plain[:_SHARE_BYTES], "big"), int.from_bytes(plain[_SHARE_BYTES:], "big")


def generate_seed() -> bytes:
    """A fresh 32-byte self-mask seed ``b`` (one per device and cohort).

    Example:
      >>> len(generate_seed())
      32
    """
    return secrets.token_bytes(32)


def self_mask(seed: bytes, size: int) -> np.ndarray:
    """A device's self mask: HKDF(seed) expanded to ``size`` uint32 values.

    Example:
      >>> seed = generate_seed()
      >>> bool(np.array_equal(self_mask(seed, 3), self_mask(seed, 3)))
      True
    """
    key = HKDF(hashes.SHA256(), 32, salt=None, info=b"fednode-secagg-self-v1").derive(seed)
    return _expand(key, size)


def pair_mask(secret: bytes, peer_public: bytes, size: int) -> np.ndarray:
    """The mask two devices share: HKDF(X25519(secret, peer)) expanded to ``size`` uint32.

    Example:
      >>> (a, pa), (b, pb) = generate_keypair(), generate_keypair()
      >>> bool(np.array_equal(pair_mask(a, pb, 4), pair_mask(b, pa, 4)))
      True
    """
    return _expand(_pair_key(secret, peer_public, b"fednode-secagg-mask-v1"), size)


def _expand(key: bytes, size: int) -> np.ndarray:
    rng = np.random.Generator(np.random.PCG64(int.from_bytes(key, "little")))
    return rng.integers(0, _MOD, size=size, dtype=np.uint64).astype(np.uint32)


def quantize(values: np.ndarray, *, scale: float) -> np.ndarray:
    """Fixed-point encoding mod 2**32 (two's complement for negatives).

    Example:
      >>> quantize(np.array([0.5, -0.25]), scale=4.0).tolist()
      [2, 4294967295]
    """
    fixed = np.rint(np.asarray(values, np.float64) * scale).astype(np.int64)
    return (fixed % _MOD).astype(np.uint32)


def dequantize(total: np.ndarray, *, scale: float) -> np.ndarray:
    """Decodes a (summed) fixed-point vector back to float64.

    Example:
      >>> dequantize(quantize(np.array([0.5, -0.25]), scale=4.0), scale=4.0).tolist()
      [0.5, -0.25]
    """
    signed = total.astype(np.int64)
    signed = np.where(signed >= _MOD // 2, signed - _MOD, signed)
    return signed.astype(np.float64) / scale


def mask_update(
    index: int, quantized: np.ndarray, secret: bytes, peers: Mapping[int, bytes], *, seed: bytes
) -> np.ndarray:
    """Adds the self mask and the pairwise masks of device ``index`` to its quantized delta.

    Args:
      index: this device's position in the cohort.
      quantized: its delta from :func:`quantize`.
      secret: its X25519 mask secret key.
      peers: cohort index -> X25519 mask public key of every *other* device.
      seed: its self-mask seed from :func:`generate_seed`.
    """
    total: np.ndarray = quantized.astype(np.uint64) + self_mask(seed, quantized.size)
    for peer, public in peers.items():
        mask = pair_mask(secret, public, quantized.size).astype(np.uint64)
        total = total + mask if index < peer else total + (_MOD - mask)
    return (total % _MOD).astype(np.uint32)


def unmask_sum(
    masked: Mapping[int, np.ndarray],
    public_keys: Mapping[int, bytes],
    dropped_secrets: Mapping[int, bytes],
    *,
    seeds: Mapping[int, bytes],
) -> np.ndarray:
    """The cohort sum of the survivors' quantized deltas; only this sum is learned.

    Args:
      masked: survivor index -> masked vector.
      public_keys: every cohort member's mask public key (survivors and dropped).
      dropped_secrets: dropped index -> X25519 mask secret rebuilt with :func:`combine_shares`.
      seeds: survivor index -> self-mask seed rebuilt with :func:`combine_shares`.

    Raises:
      ValueError: a survivor's seed is missing.

    Example:
      >>> keys = {i: generate_keypair() for i in range(3)}
      >>> seeds = {i: generate_seed() for i in range(3)}
      >>> pubs = {i: p for i, (_, p) in keys.items()}
      >>> xs = {i: quantize(np.full(2, 0.5 * i), scale=8.0) for i in range(3)}
      >>> masked = {i: mask_update(i, xs[i], keys[i][0],
      ...                          {j: p for j, p in pubs.items() if j != i}, seed=seeds[i])
      ...           for i in (0, 2)}
      >>> total = unmask_sum(masked, pubs, {1: keys[1][0]}, seeds={0: seeds[0], 2: seeds[2]})
      >>> dequantize(total, scale=8.0).tolist()
      [1.0, 1.0]
    """
    if set(seeds) != set(masked):
        raise ValueError("unmasking needs the self-mask seed of every survivor, and only theirs")
    size = next(iter(masked.values())).size
    total = sum((v.astype(np.uint64) for v in masked.values()), np.zeros(size, np.uint64))
    for seed in seeds.values():
        total = total + (_MOD - self_mask(seed, size).astype(np.uint64))
    for gone, secret in dropped_secrets.items():
        for survivor in masked:
            mask = pair_mask(secret, public_keys[survivor], size).astype(np.uint64)
            # the survivor added +mask if survivor < gone, else -mask: undo it
            total = total + (_MOD - mask) if survivor < gone else total + mask
    return (total % _MOD).astype(np.uint32)


def split_secret(secret: bytes, *, shares: int, threshold: int) -> dict[int, int]:
    """Shamir-shares a secret over GF(PRIME): any ``threshold`` of ``shares`` rebuild it.

    Example:
      >>> parts = split_secret(b"k" * 32, shares=5, threshold=3)
      >>> combine_shares({x: parts[x] for x in (1, 3, 5)})
      b'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk'
    """
    if not 1 <= threshold <= shares:
        raise ValueError("need 1 <= threshold <= shares")
    coefficients = [int.from_bytes(secret, "big")] + [
        secrets.randbelow(PRIME) for _ in range(threshold - 1)
    ]
    return {x: _poly(coefficients, x) for x in range(1, shares + 1)}


def combine_shares(points: Mapping[int, int], *, length: int = 32) -> bytes:
    """Rebuilds a secret from ``threshold`` Shamir shares (Lagrange at 0).

    Raises:
      ValueError: the result does not fit ``length`` bytes (too few or wrong shares).
    """
    total = 0
    for x_i, y_i in points.items():
        num, den = 1, 1
        for x_j in points:
            if x_j != x_i:
                num = num * (-x_j) % PRIME
                den = den * (x_i - x_j) % PRIME
        total = (total + y_i * num * pow(den, PRIME - 2, PRIME)) % PRIME
    if total >= 256**length:
        raise ValueError("shares do not rebuild a secret: too few or inconsistent shares")
    return total.to_bytes(length, "big")


def _poly(coefficients: list[int], x: int) -> int:
    value = 0
    for coefficient in reversed(coefficients):
        value = (value * x + coefficient) % PRIME
    return value
