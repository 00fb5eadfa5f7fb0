"""Device: lossless entropy coding of packed int8 codes (``q`` -> ``qz``) and checked decoding.

Per-tensor int8 stores one byte per value, but the codes of a model delta are far from uniform:
most sit near zero (order-0 entropy about 6.1 bits per code for MLP[64,32] on the heart task)
and neighbouring codes of a convolution kernel are correlated. ``compress_codes`` writes them as
one raw LZMA2 stream (the standard library's ``lzma``, i.e. liblzma: an adaptive binary range
coder with 2 bits of previous-code context, no container header or checksum, since the payload
digest already guards the bytes) held in a ``qz`` uint8 tensor, so the one canonical codec and
digest carry it like any other tensor. ``entropy_code`` swaps ``q`` for ``qz`` only when that is
smaller (an 11-parameter model keeps ``q``). Measured on real deltas: raw DEFLATE saved 3-19%,
this coder 8-22% (15% on the wearable CNN, where DEFLATE saved 6%).

Decoding is exact: ``decompress_codes`` gives back the very int8 codes, so every decoder (edge,
aggregator, auditor) reconstructs the same float32 values bit for bit. It is also bounded: the
decoder's dictionary is fixed here (1 MiB), it never produces more than the count the model
layout implies, and it rejects a stream that is truncated, too long, followed by stray bytes, or
not LZMA2 at all (``bad_coding``). Any valid stream is accepted; the anchored payload bytes are
what the digest commits to.
"""

from __future__ import annotations

import lzma
from collections.abc import Mapping

import numpy as np

from fednode.errors import UpdateRejectedError

__all__ = ["CODES_FILTERS", "compress_codes", "entropy_code", "decompress_codes"]

CODES_FILTERS = (
    {"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": 1 << 20, "lc": 2, "lp": 0, "pb": 0},
)
"""The one raw LZMA2 filter chain of ``qz`` streams (coder and decoder must agree on it)."""


def compress_codes(q: np.ndarray) -> np.ndarray:
    """The int8 codes as a raw LZMA2 stream (uint8 vector).

    Example:
      >>> qz = compress_codes(np.zeros(1000, np.int8))
      >>> qz.dtype, qz.size < 40
      (dtype('uint8'), True)
    """
    codes = np.ascontiguousarray(np.asarray(q, np.int8))
    stream = lzma.compress(codes.tobytes(), format=lzma.FORMAT_RAW, filters=list(CODES_FILTERS))
    return np.frombuffer(stream, np.uint8).copy()


def decompress_codes(qz: np.ndarray, count: int) -> np.ndarray:
    """Exactly ``count`` int8 codes back from a ``qz`` stream.

    Raises:
      UpdateRejectedError: ``wrong_layout`` if ``qz`` is not a uint8 vector; ``bad_coding`` if
        the stream is not valid raw LZMA2, holds more or fewer than ``count`` codes, or is
        followed by stray bytes.

    Example:
      >>> decompress_codes(compress_codes(np.array([3, -7, 0], np.int8)), 3).tolist()
      [3, -7, 0]
    """
    if qz.dtype != np.uint8 or qz.ndim != 1:
        detail = f"qz is {qz.dtype}{qz.shape}, expected uint8 (n,)"
        raise UpdateRejectedError("wrong_layout", detail)
    unpacker = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=list(CODES_FILTERS))
    try:
        raw = unpacker.decompress(qz.tobytes(), count + 1)  # one past: catches over-long streams
    except lzma.LZMAError as exc:
        raise UpdateRejectedError("bad_coding", f"qz is not a raw LZMA2 stream: {exc}") from exc
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
    qz = compress_codes(out["q"])
    if qz.size < out["q"].size:
        out["qz"] = qz
        del out["q"]
    return out
