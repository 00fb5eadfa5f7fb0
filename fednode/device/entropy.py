"""Device: lossless entropy coding of packed int8 codes (``q`` -> ``qz``), and its checked decoding.

Per-tensor int8 stores one byte per value, but the codes of a model delta are far from uniform:
most sit near zero, so their order-0 entropy is about 6 bits (MLP[64,32] on the heart task: 6.1).
``deflate_codes`` writes them as one raw DEFLATE stream (RFC 1951, the standard library's
``zlib``; no zlib header or checksum, the payload digest already guards the bytes) held in a
``qz`` uint8 tensor, so the one canonical codec and digest carry it like any other tensor.
``entropy_code`` swaps ``q`` for ``qz`` only when that is smaller (tiny models keep ``q``).

Decoding is exact: ``inflate_codes`` gives back the very int8 codes, so every decoder (edge,
aggregator, auditor) reconstructs the same float32 values bit for bit. It is also bounded: it
never inflates more than the count the model layout implies, and it rejects a stream that is
truncated, too long, followed by stray bytes, or not DEFLATE at all (``bad_coding``). Any valid
stream is accepted; the anchored payload bytes are what the digest commits to.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

from fednode.errors import UpdateRejectedError

__all__ = ["deflate_codes", "entropy_code", "inflate_codes"]

_RAW_DEFLATE = -15  # wbits: raw stream, 32 KiB window
_LEVEL = 9


def deflate_codes(q: np.ndarray) -> np.ndarray:
    """The int8 codes as a raw DEFLATE stream (uint8 vector).

    Example:
      >>> qz = deflate_codes(np.zeros(1000, np.int8))
      >>> qz.dtype, qz.size < 20
      (dtype('uint8'), True)
    """
    codes = np.ascontiguousarray(np.asarray(q, np.int8))
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, _RAW_DEFLATE)
    stream = packer.compress(codes.tobytes()) + packer.flush()
    return np.frombuffer(stream, np.uint8).copy()


def inflate_codes(qz: np.ndarray, count: int) -> np.ndarray:
    """Exactly ``count`` int8 codes back from a ``qz`` stream.

    Raises:
      UpdateRejectedError: ``wrong_layout`` if ``qz`` is not a uint8 vector; ``bad_coding`` if
        the stream is not valid raw DEFLATE, holds more or fewer than ``count`` bytes, or is
        followed by stray bytes.

    Example:
      >>> inflate_codes(deflate_codes(np.array([3, -7, 0], np.int8)), 3).tolist()
      [3, -7, 0]
    """
    if qz.dtype != np.uint8 or qz.ndim != 1:
        raise UpdateRejectedError("wrong_layout", f"qz is {qz.dtype}{qz.shape}, expected uint8 (n,)")
    unpacker = zlib.decompressobj(_RAW_DEFLATE)
    try:
        raw = unpacker.decompress(qz.tobytes(), count + 1)  # one past: catches over-long streams
    except zlib.error as exc:
        raise UpdateRejectedError("bad_coding", f"qz is not a raw DEFLATE stream: {exc}") from exc
    if len(raw) > count:
        raise UpdateRejectedError("bad_coding", f"qz holds more than {count} codes")
    if not unpacker.eof:
        detail = f"qz stream does not end after {len(raw)} of {count} codes"
        raise UpdateRejectedError("bad_coding", detail)
    if len(raw) != count:
        raise UpdateRejectedError("bad_coding", f"qz holds {len(raw)} codes, expected {count}")
    if unpacker.unused_data:
        detail = f"{len(unpacker.unused_data)} stray bytes after the qz stream"
        raise UpdateRejectedError("bad_coding", detail)
    return np.frombuffer(raw, np.int8).copy()


def entropy_code(packed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A packed layout with ``q`` replaced by its ``qz`` stream when that is smaller.

    Example:
      >>> packed = {"q": np.zeros(64, np.int8), "scale": np.ones(1, np.float32)}
      >>> sorted(entropy_code(packed))
      ['qz', 'scale']
      >>> sorted(entropy_code({"q": np.array([5], np.int8), "scale": np.ones(1, np.float32)}))
      ['q', 'scale']
    """
    out = dict(packed)
    if "q" not in out:
        return out
    qz = deflate_codes(out["q"])
    if qz.size < out["q"].size:
        out["qz"] = qz
        del out["q"]
    return out
