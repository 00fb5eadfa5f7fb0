"""All stages: the canonical encoding and the one digest."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from fednode.codec import (
    decode_params,
    digest,
    digest_bytes,
    encode_params,
    flatten_params,
    unflatten_params,
)
from fednode.errors import CodecError


def test_roundtrip_keeps_names_dtypes_shapes_and_values():
    # Arrange
    params = {"layer": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
                        "bias": np.zeros(3, np.float32)},
              "q": np.array([-128, 0, 127], np.int8)}
    # Act
    decoded = decode_params(encode_params(params))
    # Assert
    assert decoded["layer"]["kernel"].dtype == np.float32
    assert decoded["layer"]["kernel"].shape == (2, 3)
    np.testing.assert_array_equal(decoded["layer"]["kernel"], params["layer"]["kernel"])
    np.testing.assert_array_equal(decoded["q"], params["q"])


def test_encoding_does_not_depend_on_insertion_order_or_byte_order():
    # Arrange
    a = {"b": np.ones(2, np.float32), "a": np.arange(3, dtype=np.float64)}
    b = {"a": np.arange(3, dtype=">f8"), "b": np.ones(2, np.float32)}
    # Act / Assert
    assert encode_params(a) == encode_params(b)
    assert digest(a) == digest(b)


def test_digest_is_solidity_keccak256_of_the_canonical_bytes():
    # Arrange
    params = {"w": np.zeros(2, np.float32)}
    # Act / Assert
    assert digest(params) == digest_bytes(encode_params(params))
    assert digest_bytes(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470")


def test_flatten_sorts_dotted_keys_and_unflatten_inverts_it():
    # Arrange
    nested = {"z": {"y": np.zeros(1, np.float32)}, "a": np.zeros(1, np.float32)}
    # Act
    flat = flatten_params(nested)
    # Assert
    assert list(flat) == ["a", "z.y"]
    assert set(unflatten_params(flat)) == {"a", "z"}


@pytest.mark.parametrize("bad", [
    {"w": np.zeros(2, np.complex64)},
    {"w.x": np.zeros(2, np.float32)},
    {"": np.zeros(2, np.float32)},
    {},
])
def test_encoding_rejects_unsupported_input(bad):
    with pytest.raises(CodecError):
        encode_params(bad)


@pytest.mark.parametrize("payload", [b"", b"not safetensors", b"\xff" * 64])
def test_decoding_rejects_garbage(payload):
    with pytest.raises(CodecError):
        decode_params(payload)


def test_decoding_rejects_non_canonical_bytes():
    # Arrange: same tensor, but the header padded with an extra space (valid safetensors,
    # different bytes, so a different digest for the same parameters).
    canonical = encode_params({"w": np.zeros(2, np.float32)})
    (size,) = struct.unpack("<Q", canonical[:8])
    header = canonical[8:8 + size] + b" "
    padded = struct.pack("<Q", len(header)) + header + canonical[8 + size:]
    # Act / Assert
    with pytest.raises(CodecError, match="canonical"):
        decode_params(padded)
