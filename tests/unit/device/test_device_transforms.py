"""Device: update transforms (clip, noise, top-k, int8) and the exact decoding of their output."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from fednode.aggregator.build import build_global_model, check_update_payload
from fednode.codec import decode_params, digest_bytes, encode_params, flatten_params
from fednode.device.transforms import (
    add_gaussian_noise,
    apply_transforms,
    chain,
    clip_update_norm,
    pack_compressed,
    quantize_int8,
    top_k,
    transforms_for_spec,
    update_norm,
)
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.types import LedgerUpdate, TaskSpec
from fednode.update.entropy import plain_parts
from fednode.update.packing import decompress_delta, encode_int8, pack_delta


def _delta(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"dense_0": {"kernel": rng.normal(size=(10, 16)).astype(np.float32),
                        "bias": rng.normal(size=16).astype(np.float32)},
            "output": {"kernel": rng.normal(size=(16, 1)).astype(np.float32),
                       "bias": np.zeros(1, np.float32)}}


def _template(delta: dict) -> dict:
    return {k: v.shape for k, v in flatten_params(delta).items()}


def _spec(**kw) -> TaskSpec:
    return TaskSpec(name="t", data_schema="s", num_features=10, min_updates=1, **kw)


def test_clip_bounds_the_norm_and_keeps_short_updates(key) -> None:
    t = clip_update_norm(2.0)
    long, short = _delta(), {"w": np.array([0.3, 0.4], np.float32)}
    assert update_norm(t.update(long, t.init(long), key=None)[0]) == pytest.approx(2.0, rel=1e-6)
    assert t.update(short, t.init(short), key=None)[0] is short


def test_gaussian_noise_has_the_requested_stddev(key) -> None:
    t = add_gaussian_noise(0.5)
    zeros = {"w": np.zeros(20_000, np.float32)}
    noisy, _ = t.update(zeros, t.init(zeros), key=key)
    assert float(np.std(noisy["w"])) == pytest.approx(0.5, rel=0.03)
    again, _ = t.update(zeros, t.init(zeros), key=key)
    assert np.array_equal(noisy["w"], again["w"])  # explicit key: reproducible


def test_noise_without_a_key_is_refused() -> None:
    t = add_gaussian_noise(1.0)
    with pytest.raises(FednodeValueError, match="key"):
        t.update({"w": np.zeros(2, np.float32)}, t.init(None), key=None)


def test_int8_roundtrip_error_is_within_half_a_step_and_bytes_shrink() -> None:
    # Arrange
    delta = _delta()
    t = chain(quantize_int8(), pack_compressed())
    # Act
    encoded, _ = t.update(delta, t.init(delta), key=None)
    decoded = decompress_delta(decode_params(encode_params(encoded)), _template(delta))
    # Assert
    for name, original in flatten_params(delta).items():
        step = float(np.max(np.abs(original))) / 127.0
        assert np.max(np.abs(flatten_params(decoded)[name] - original)) <= step / 2 + 1e-7


def test_int8_cuts_payload_bytes_about_four_times_for_a_real_layer() -> None:
    kernel = np.random.default_rng(0).normal(size=(64, 32, 5)).astype(np.float32)
    delta = {"conv": {"kernel": kernel}}
    t = chain(quantize_int8(), pack_compressed())
    encoded, _ = t.update(delta, t.init(delta), key=None)
    assert len(encode_params(delta)) / len(encode_params(encoded)) > 3.9


def test_packed_int8_pays_one_header_entry_per_part_not_per_tensor() -> None:
    # Arrange: the 4-tensor MLP[32] delta of the heart task (385 parameters).
    rng = np.random.default_rng(0)
    delta = {"dense_0": {"kernel": rng.normal(size=(10, 32)).astype(np.float32),
                         "bias": rng.normal(size=32).astype(np.float32)},
             "output": {"kernel": rng.normal(size=(32, 1)).astype(np.float32),
                        "bias": rng.normal(size=1).astype(np.float32)}}
    t = chain(quantize_int8(), pack_compressed())
    # Act
    packed, _ = t.update(delta, t.init(delta), key=None)
    # Assert: at most 385 int8 codes (entropy-coded when smaller) + 4 scales, and a header of
    # two entries (codes, scale)
    assert sorted(packed) in (["q", "scale"], ["qz", "scale"]) and packed["scale"].shape == (4,)
    assert len(encode_params(packed)) <= 385 + 16 + 8 + 120


def test_top_k_keeps_the_largest_entries_and_feeds_back_the_rest() -> None:
    # Arrange
    delta = {"w": np.array([0.1, -2.0, 0.3, 1.0], np.float32)}
    t = top_k(0.5)
    # Act
    first, state = t.update(delta, t.init(delta), key=None)
    second, _ = t.update(delta, state, key=None)
    # Assert
    assert first["w"]["idx"].tolist() == [1, 3]
    assert second["w"]["idx"].tolist() == [1, 3]  # 0.1+0.1, 0.3+0.3 still below 1.0, 2.0
    dense = decompress_delta(pack_delta(first, {"w": (4,)}), {"w": (4,)})["w"]
    assert dense.tolist() == [0.0, -2.0, 0.0, 1.0]


def test_spec_chain_clips_noises_sparsifies_and_quantizes(key) -> None:
    # Arrange
    spec = _spec(clip_norm=1.0, noise_multiplier=0.1, compression=("topk:0.25", "int8"))
    delta = _delta()
    # Act
    encoded, state = apply_transforms(delta, spec, key=key)
    decoded = decompress_delta(decode_params(encode_params(encoded)), _template(delta))
    # Assert
    plain = plain_parts(encoded, 193)  # indices / codes travel coded when that is smaller
    assert sorted(plain) == ["idx", "q", "scale"] and "idxz" in encoded
    assert plain["q"].shape == (40 + 4 + 4 + 1,)  # ceil(25%) of each tensor, packed
    assert plain["scale"].shape == (4,)
    assert update_norm(decoded) < 1.0 + 0.1 * 5 * np.sqrt(0.25 * 193)
    assert len(state.inner) == 5  # clip, noise, top-k, int8, pack


def test_unknown_compression_is_refused() -> None:
    with pytest.raises(FednodeValueError, match="compression"):
        transforms_for_spec(_spec(compression=("zstd",)))


def test_chain_splits_the_key_between_transforms(key) -> None:
    t = chain(add_gaussian_noise(1.0), add_gaussian_noise(1.0))
    d = {"w": np.zeros(4, np.float32)}
    out, _ = t.update(d, t.init(d), key=key)
    assert out["w"].shape == (4,)


def _ledger_update(payload: bytes) -> LedgerUpdate:
    return LedgerUpdate(1, 1, 0, "0x0", digest_bytes(payload), 5, 0, payload, 1, b"")


def test_build_global_model_decompresses_int8_updates() -> None:
    # Arrange
    global_payload = encode_params({"w": np.zeros(3, np.float32)})
    encoded = pack_delta({"w": encode_int8(np.array([1.0, -0.5, 0.25], np.float32))}, {"w": (3,)})
    # Act
    spec = _spec(compression=("int8",))
    built = build_global_model(spec, global_payload, [_ledger_update(encode_params(encoded))])
    # Assert
    expected = decompress_delta(encoded, {"w": (3,)})["w"]
    assert decode_params(built.payload)["w"].tobytes() == expected.tobytes()


@pytest.mark.parametrize(
    ("encoded", "compression", "reason"),
    [
        ({"q": np.zeros(3, np.int8), "scale": np.zeros(1, np.float32)}, ("int8",), "bad_scale"),
        ({"q": np.zeros(2, np.int8), "scale": np.ones(1, np.float32)}, ("int8",), "wrong_layout"),
        ({"q": np.zeros(3, np.int8), "scale": np.ones(1, np.float32)}, (), "wrong_compression"),
        ({"idx": np.array([2, 1], np.int32), "val": np.ones(2, np.float32)}, ("topk",),
         "bad_index"),
        ({"idx": np.array([0, 3], np.int32), "val": np.ones(2, np.float32)}, ("topk",),
         "bad_index"),
        ({"idx": np.array([0, 1], np.int32), "val": np.ones(2, np.float32)}, ("int8",),
         "wrong_compression"),
        ({"idx": np.array([0], np.int32)}, ("topk",), "wrong_layout"),
        ({"w": {"q": np.zeros(3, np.int8), "scale": np.ones(1, np.float32)}}, ("int8",),
         "wrong_keys"),
        ({"v": np.zeros(3, np.float32)}, (), "wrong_keys"),
        ({"w": np.full(3, np.inf, np.float32)}, (), "not_finite"),
        ({"w": np.full(3, np.inf, np.float32)}, ("int8",), "not_finite"),
    ],
)  # fmt: skip
def test_malformed_compressed_updates_are_rejected(encoded, compression, reason) -> None:
    global_payload = encode_params({"w": np.zeros(3, np.float32)})
    spec = _spec(compression=compression)
    with pytest.raises(UpdateRejectedError) as caught:
        check_update_payload(_ledger_update(encode_params(encoded)), global_payload, spec)
    assert caught.value.reason == reason


def test_update_dp_is_off_when_the_spec_asks_for_example_level_dp(key) -> None:
    spec = dataclasses.replace(_spec(clip_norm=0.01), dp_unit="example")
    delta = {"w": np.array([3.0, 4.0], np.float32)}
    assert apply_transforms(delta, spec, key=key)[0]["w"].tolist() == [3.0, 4.0]
    assert jax.random.key_data(key).shape == (2,)
