"""Update: entropy-coded int8 codes (``qz``) decode to the very same values; bad streams fail."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fednode.aggregator.build import build_global_model, check_update_payload
from fednode.codec import decode_params, digest_bytes, encode_params, flatten_params
from fednode.device.transforms import chain, pack_compressed, quantize_int8, top_k
from fednode.errors import UpdateRejectedError
from fednode.types import LedgerUpdate, TaskSpec
from fednode.update.entropy import (
    compress_codes,
    compress_indices,
    decompress_codes,
    decompress_indices,
    entropy_code,
)
from fednode.update.packing import decompress_delta, encode_int8, encode_top_k, pack_delta

TEMPLATE = {"hidden.bias": (64,), "hidden.kernel": (13, 64), "out.kernel": (64, 1)}


def _delta(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    nested: dict = {}
    for name, shape in TEMPLATE.items():
        layer, leaf = name.split(".")
        nested.setdefault(layer, {})[leaf] = (0.01 * rng.laplace(size=shape)).astype(np.float32)
    return nested


def _raw_stream(data: bytes) -> np.ndarray:
    return np.frombuffer(compress_codes(np.frombuffer(data, np.int8)), np.uint8).copy()


def _reason(qz: np.ndarray, count: int) -> str:
    with pytest.raises(UpdateRejectedError) as caught:
        decompress_codes(qz, count)
    return caught.value.reason


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-127, 127), min_size=0, max_size=3000))
def test_decompress_gives_back_exactly_the_compressed_codes(codes: list[int]) -> None:
    q = np.asarray(codes, np.int8)
    np.testing.assert_array_equal(decompress_codes(compress_codes(q), q.size), q)


@pytest.mark.parametrize("steps", [(quantize_int8(),), (top_k(0.25), quantize_int8())])
def test_coded_codes_decode_bit_for_bit_like_raw_codes(steps) -> None:
    # Arrange: the same delta through the device chain, codes raw and codes coded.
    delta = _delta()
    plain = chain(*steps)
    raw = pack_delta(plain.update(delta, plain.init(delta), key=None)[0], TEMPLATE)
    coded = {**{k: v for k, v in raw.items() if k != "q"}, "qz": compress_codes(raw["q"])}
    # Act
    decoded = decode_params(encode_params(coded))
    # Assert
    dense_coded = flatten_params(decompress_delta(decoded, TEMPLATE))
    dense_raw = flatten_params(decompress_delta(raw, TEMPLATE))
    assert all(np.array_equal(dense_coded[n], dense_raw[n]) for n in TEMPLATE)


def test_int8_chain_sends_the_smaller_coded_codes() -> None:
    delta = _delta(1)
    transform = chain(quantize_int8(), pack_compressed())
    packed, _ = transform.update(delta, transform.init(delta), key=None)
    assert sorted(packed) == ["qz", "scale"]
    assert packed["qz"].size < sum(int(np.prod(s)) for s in TEMPLATE.values())


def test_int8_payload_of_a_real_size_delta_is_over_four_times_smaller_than_float32() -> None:
    delta = _delta(3)
    transform = chain(quantize_int8(), pack_compressed())
    coded = encode_params(transform.update(delta, transform.init(delta), key=None)[0])
    assert len(encode_params(delta)) / len(coded) > 4.0


def test_tiny_models_keep_raw_codes_when_coding_would_grow_them() -> None:
    packed = pack_delta({"w": encode_int8(np.array([0.3, -1.0, 0.7], np.float32))}, {"w": (3,)})
    assert sorted(entropy_code(packed)) == ["q", "scale"]
    sparse = {"idx": np.array([5, 1000, 70000], np.int32), "val": np.ones(3, np.float32)}
    assert sorted(entropy_code(sparse)) == ["idx", "val"]


def test_global_model_is_the_same_whether_codes_travel_raw_or_coded() -> None:
    # Arrange: two updates, one coded, one raw, of the same int8 delta.
    template = {"w": (4, 256)}
    base = encode_params({"w": np.zeros((4, 256), np.float32)})
    delta = {"w": (0.02 * np.random.default_rng(5).normal(size=(4, 256))).astype(np.float32)}
    raw = pack_delta({"w": encode_int8(delta["w"])}, template)
    spec = TaskSpec(name="t", data_schema="s", num_features=4, compression=("int8",))

    def build(packed: dict) -> bytes:
        payload = encode_params(packed)
        update = LedgerUpdate(1, 1, 0, "0x0", digest_bytes(payload), 5, 0, payload, 1, b"")
        check_update_payload(update, base, spec)
        return build_global_model(spec, base, [update]).payload

    # Act / Assert
    assert build(entropy_code(raw)) == build(raw)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: compress_codes(np.ones(100, np.int8))[:-2], "bad_coding"),  # truncated
        (lambda: np.concatenate([compress_codes(np.ones(100, np.int8)),
                                 np.array([7, 7], np.uint8)]), "bad_coding"),  # stray bytes
        (lambda: compress_codes(np.ones(101, np.int8)), "bad_coding"),  # one code too many
        (lambda: compress_codes(np.ones(99, np.int8)), "bad_coding"),  # one code short
        (lambda: np.frombuffer(b"\xff" * 40, np.uint8).copy(), "bad_coding"),  # not LZMA2
        (lambda: _raw_stream(bytes(50_000_000)), "bad_coding"),  # a bomb: stops at 101 bytes
        (lambda: np.frombuffer(zlib.compress(bytes(100))[2:-4], np.uint8).copy(), "bad_coding"),
        (lambda: compress_codes(np.ones(100, np.int8)).view(np.int8), "wrong_layout"),
        (lambda: compress_codes(np.ones(100, np.int8)).reshape(1, -1), "wrong_layout"),
    ],
)
def test_bad_streams_are_rejected_with_a_reason(make, reason) -> None:
    assert _reason(make(), 100) == reason


def test_a_minus_128_code_hidden_in_the_stream_is_still_refused() -> None:
    codes = np.zeros(9, np.int8)
    codes[4] = -128
    packed = {"qz": compress_codes(codes), "scale": np.ones(3, np.float32)}
    with pytest.raises(UpdateRejectedError) as caught:
        decompress_delta(packed, {"a": (4,), "b": (3,), "c": (2,)})
    assert caught.value.reason == "bad_scale"


def test_top_k_coded_codes_must_match_the_index_count() -> None:
    sparse = encode_top_k(np.arange(1, 9, dtype=np.float32), 4)
    packed = {"idx": sparse["idx"], "qz": compress_codes(np.ones(5, np.int8)),
              "scale": np.ones(1, np.float32)}
    with pytest.raises(UpdateRejectedError) as caught:
        decompress_delta(packed, {"w": (8,)})
    assert caught.value.reason == "bad_coding"


@settings(max_examples=150, deadline=None)
@given(st.sets(st.integers(0, 50_000), max_size=2000))
def test_index_gaps_decode_to_exactly_the_same_indices(chosen: set[int]) -> None:
    idx = np.asarray(sorted(chosen), np.int32)
    np.testing.assert_array_equal(decompress_indices(compress_indices(idx), 50_001), idx)


def test_top_k_indices_travel_as_gaps_and_decode_bit_for_bit() -> None:
    # Arrange: top-k 25% + int8 of a real-size delta.
    delta = _delta(4)
    steps = chain(top_k(0.25), quantize_int8())
    raw = pack_delta(steps.update(delta, steps.init(delta), key=None)[0], TEMPLATE)
    transform = chain(top_k(0.25), quantize_int8(), pack_compressed())
    coded = transform.update(delta, transform.init(delta), key=None)[0]
    # Act
    decoded = decode_params(encode_params(coded))
    # Assert: the 4-byte indices shrank to under a byte each; same dense values.
    assert "idxz" in decoded and decoded["idxz"].size < raw["idx"].size
    dense_coded = flatten_params(decompress_delta(decoded, TEMPLATE))
    dense_raw = flatten_params(decompress_delta(raw, TEMPLATE))
    assert all(np.array_equal(dense_coded[n], dense_raw[n]) for n in TEMPLATE)


def _gaps(words: list[int]) -> np.ndarray:
    return compress_codes(np.asarray(words, "<u4").view(np.int8))


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        ({"idxz": _gaps([0, 8]), "val": np.ones(2, np.float32)}, "bad_index"),  # 0, 9 >= 9
        ({"idxz": compress_codes(np.ones(7, np.int8)), "val": np.ones(2, np.float32)},
         "bad_coding"),  # 7 bytes are not whole uint32 gaps
        ({"idxz": _gaps([0] * 10), "val": np.ones(10, np.float32)}, "bad_coding"),  # > 9 gaps
        ({"idxz": _gaps([0, 1]), "idx": np.array([0, 2], np.int32),
          "val": np.ones(2, np.float32)}, "wrong_layout"),  # plain and coded at once
        ({"idxz": _gaps([0, 1]), "qz": compress_codes(np.ones(3, np.int8)),
          "scale": np.ones(3, np.float32)}, "bad_coding"),  # 3 codes for 2 indices
        ({"idxz": _gaps([0, 1]), "val": np.ones(3, np.float32)}, "wrong_layout"),
    ],
)  # fmt: skip
def test_bad_coded_layouts_are_rejected_with_a_reason(packed, reason) -> None:
    with pytest.raises(UpdateRejectedError) as caught:
        decompress_delta(packed, {"a": (4,), "b": (3,), "c": (2,)})
    assert caught.value.reason == reason
