"""All stages: the one canonical parameter encoding (safetensors) and the one digest (keccak-256).

Parameters and deltas are nested dicts of arrays. They are flattened to sorted dotted keys
(``"dense_0.kernel"``), each array keeps its explicit dtype and shape, and the whole is written as
safetensors bytes (little-endian, header without metadata). ``digest`` is keccak-256 of those bytes;
the contracts compute ``keccak256(payload)`` over exactly the same bytes. Never pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from eth_utils import keccak
from safetensors.numpy import load as _st_load
from safetensors.numpy import save as _st_save

from fednode.errors import CodecError

__all__ = [
    "ALLOWED_DTYPES",
    "Params",
    "decode_params",
    "digest",
    "digest_bytes",
    "encode_params",
    "flatten_params",
    "unflatten_params",
]

Params = Mapping[str, Any]
"""A nested mapping of names to arrays (numpy or jax)."""

ALLOWED_DTYPES = frozenset({"float32", "float64", "int8", "int32", "int64", "uint8"})
_SEPARATOR = "."


def flatten_params(params: Params, *, prefix: str = "") -> dict[str, np.ndarray]:
    """Flattens a nested mapping into sorted dotted keys holding numpy arrays.

    Args:
      params: nested mapping of str to arrays or to further mappings.
      prefix: key prefix used while recursing.

    Returns:
      A dict whose keys are sorted dotted names and values are C-contiguous numpy arrays.

    Raises:
      CodecError: on a non-string key, a key containing ``.``, or an unsupported dtype.

    Example:
      >>> flat = flatten_params({"b": {"x": np.zeros(2, np.float32)}, "a": np.ones(1, np.float32)})
      >>> list(flat)
      ['a', 'b.x']
    """
    flat: dict[str, np.ndarray] = {}
    for name, value in params.items():
        if not isinstance(name, str) or not name or _SEPARATOR in name:
            raise CodecError(f"parameter names must be non-empty strings without '.', got {name!r}")
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=key + _SEPARATOR))
        else:
            flat[key] = _as_canonical_array(key, value)
    return dict(sorted(flat.items()))


def unflatten_params(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Rebuilds the nested mapping from dotted keys.

    Example:
      >>> unflatten_params({"a.b": np.zeros(1)})["a"]["b"].shape
      (1,)
    """
    nested: dict[str, Any] = {}
    for key in sorted(flat):
        *parents, leaf = key.split(_SEPARATOR)
        node = nested
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = flat[key]
    return nested


def encode_params(params: Params) -> bytes:
    """Encodes parameters to canonical safetensors bytes.

    Example:
      >>> payload = encode_params({"w": np.arange(3, dtype=np.float32)})
      >>> decode_params(payload)["w"].tolist()
      [0.0, 1.0, 2.0]
    """
    flat = flatten_params(params)
    if not flat:
        raise CodecError("cannot encode an empty parameter set")
    return _st_save(flat)


def decode_params(payload: bytes) -> dict[str, Any]:
    """Decodes canonical bytes back to a nested dict of numpy arrays.

    Raises:
      CodecError: if the bytes are not a valid, canonical encoding.

    Example:
      >>> decode_params(encode_params({"l": {"w": np.ones(2, np.float32)}}))["l"]["w"].dtype
      dtype('float32')
    """
    try:
        flat = _st_load(bytes(payload))
    except Exception as exc:  # safetensors raises several unrelated types
        raise CodecError(f"payload is not valid safetensors bytes: {exc}") from exc
    if not flat:
        raise CodecError("payload holds no tensors")
    params = unflatten_params(flat)
    if encode_params(params) != bytes(payload):
        raise CodecError("payload is not in canonical form (re-encoding differs)")
    return params


def digest_bytes(payload: bytes) -> bytes:
    """keccak-256 of raw bytes, exactly as Solidity's ``keccak256(payload)``.

    Example:
      >>> digest_bytes(b"").hex()[:8]
      'c5d24601'
    """
    return keccak(bytes(payload))


def digest(params: Params) -> bytes:
    """The one digest of a parameter set: keccak-256 of its canonical encoding.

    Example:
      >>> len(digest({"w": np.zeros(2, np.float32)}))
      32
    """
    return digest_bytes(encode_params(params))


def _as_canonical_array(key: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.name not in ALLOWED_DTYPES:
        raise CodecError(f"{key}: dtype {array.dtype.name} is not one of {sorted(ALLOWED_DTYPES)}")
    return np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
