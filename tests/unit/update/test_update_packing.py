"""Update: the packed int8 / top-k layout over the flat model, its exact decoding and rejections."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fednode.aggregator.build import build_global_model, check_update_payload
from fednode.codec import decode_params, digest_bytes, encode_params, flatten_params
from fednode.device.transforms import chain, pack_compressed, quantize_int8, top_k
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.types import LedgerUpdate, TaskSpec
from fednode.update.packing import (
    decompress_delta,
    encode_int8,
    encode_top_k,
    is_compressed,
    pack_delta,
)

TEMPLATE = {"a.bias": (2,), "a.kernel": (3, 2), "b.bias": (1,)}


def _dense(seed: int = 0, template=TEMPLATE) -> dict:
    rng = np.random.default_rng(seed)
    flat = {n: rng.normal(size=s).astype(np.float32) for n, s in template.items()}
    return {k: v for k, v in _nest(flat).items()}


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        parent, leaf = key.split(".")
        out.setdefault(parent, {})[leaf] = value
    return out


def _update(payload: bytes) -> LedgerUpdate:
    return LedgerUpdate(1, 1, 0, "0x0", digest_bytes(payload), 5, 0, payload, 1, b"")


def _reject(packed: dict, template=TEMPLATE) -> str:
    with pytest.raises(UpdateRejectedError) as caught:
        decompress_delta(packed, template)
    return caught.value.reason


def test_int8_packs_values_in_sorted_key_order_with_one_scale_per_tensor() -> None:
    # Arrange
    delta = _dense()
    parts = {"a": {k: encode_int8(v) for k, v in delta["a"].items()},
             "b": {"bias": encode_int8(delta["b"]["bias"])}}
    # Act
    packed = pack_delta(parts, TEMPLATE)
    # Assert: a.bias (2) then a.kernel (6) then b.bias (1)
    assert sorted(packed) == ["q", "scale"]
    assert packed["q"].tolist() == (parts["a"]["bias"]["q"].tolist()
                                    + parts["a"]["kernel"]["q"].ravel().tolist()
                                    + parts["b"]["bias"]["q"].tolist())
    assert packed["scale"].shape == (3,)


def test_top_k_indices_are_offset_into_the_flat_model() -> None:
    # Arrange
    parts = {"a": {"bias": {"idx": np.array([1], np.int32), "val": np.ones(1, np.float32)},
                   "kernel": {"idx": np.array([0, 5], np.int32), "val": np.ones(2, np.float32)}},
             "b": {"bias": {"idx": np.array([0], np.int32), "val": np.ones(1, np.float32)}}}
    # Act
    packed = pack_delta(parts, TEMPLATE)
    dense = flatten_params(decompress_delta(packed, TEMPLATE))
    # Assert
    assert packed["idx"].tolist() == [1, 2, 7, 8]
    assert dense["a.kernel"].ravel().tolist() == [1, 0, 0, 0, 0, 1]
    assert dense["a.bias"].tolist() == [0, 1] and dense["b.bias"].tolist() == [1]


def test_pack_refuses_mixed_part_sets_and_foreign_names() -> None:
    int8 = encode_int8(np.ones(2, np.float32))
    sparse = encode_top_k(np.ones(2, np.float32), 1)
    with pytest.raises(FednodeValueError, match="part set"):
        pack_delta({"a": int8, "b": sparse}, {"a": (2,), "b": (2,)})
    with pytest.raises(FednodeValueError, match="model tensors"):
        pack_delta({"a": int8}, {"a": (2,), "b": (2,)})
    with pytest.raises(FednodeValueError, match="not compressed"):
        pack_delta({"a": int8, "b": np.ones(2, np.float32)}, {"a": (2,), "b": (2,)})


def test_dense_payloads_still_decode_unchanged() -> None:
    delta = _dense(1)
    decoded = decompress_delta(delta, TEMPLATE)
    assert all(np.array_equal(flatten_params(decoded)[n], a)
               for n, a in flatten_params(delta).items())
    assert not is_compressed(delta)


@pytest.mark.parametrize(
    ("packed", "reason"),
    [
        ({"q": np.zeros(8, np.int8), "scale": np.ones(3, np.float32)}, "wrong_layout"),  # short
        ({"q": np.zeros(10, np.int8), "scale": np.ones(3, np.float32)}, "wrong_layout"),  # long
        ({"q": np.zeros(9, np.int32), "scale": np.ones(3, np.float32)}, "wrong_layout"),
        ({"q": np.zeros(9, np.int8), "scale": np.ones(2, np.float32)}, "wrong_layout"),
        ({"q": np.zeros(9, np.int8), "scale": np.ones((3, 1), np.float32)}, "wrong_layout"),
        ({"q": np.zeros(9, np.int8), "scale": np.array([1, np.nan, 1], np.float32)}, "bad_scale"),
        ({"q": np.zeros(9, np.int8), "scale": np.array([1, np.inf, 1], np.float32)}, "bad_scale"),
        ({"q": np.zeros(9, np.int8), "scale": np.array([1, 0, 1], np.float32)}, "bad_scale"),
        ({"q": np.full(9, -128, np.int8), "scale": np.ones(3, np.float32)}, "bad_scale"),
        ({"idx": np.array([0, 9], np.int32), "val": np.ones(2, np.float32)}, "bad_index"),
        ({"idx": np.array([-1, 2], np.int32), "val": np.ones(2, np.float32)}, "bad_index"),
        ({"idx": np.array([3, 3], np.int32), "val": np.ones(2, np.float32)}, "bad_index"),
        ({"idx": np.array([4, 2], np.int32), "val": np.ones(2, np.float32)}, "bad_index"),
        ({"idx": np.array([0, 2], np.int64), "val": np.ones(2, np.float32)}, "wrong_layout"),
        ({"idx": np.arange(10, dtype=np.int32), "val": np.ones(10, np.float32)}, "wrong_layout"),
        ({"idx": np.array([0, 2], np.int32), "val": np.ones(3, np.float32)}, "wrong_layout"),
        ({"idx": np.array([0, 2], np.int32), "val": np.array([1, np.nan], np.float32)},
         "not_finite"),
        ({"idx": np.array([0, 2], np.int32), "q": np.ones(3, np.int8),
          "scale": np.ones(3, np.float32)}, "wrong_layout"),
        ({"idx": np.array([0, 2], np.int32), "q": np.ones(2, np.int8),
          "scale": np.array([1, 1, -1], np.float32)}, "bad_scale"),
        ({"idx": np.array([0, 2], np.int32), "val": np.ones(2, np.float32),
          "q": np.ones(2, np.int8)}, "wrong_layout"),
        ({"q": np.zeros(9, np.int8)}, "wrong_layout"),
        ({"a": {"bias": np.zeros(2, np.float32)}}, "wrong_layout"),
    ],
)  # fmt: skip
def test_malformed_packed_payloads_are_rejected_with_a_reason(packed, reason) -> None:
    assert _reject(packed) == reason


def test_rejections_reach_the_aggregator_with_the_update_id() -> None:
    global_payload = encode_params(_nest({n: np.zeros(s, np.float32) for n, s in TEMPLATE.items()}))
    bad = encode_params({"q": np.zeros(8, np.int8), "scale": np.ones(3, np.float32)})
    spec = TaskSpec(name="t", data_schema="s", num_features=3, compression=("int8",))
    with pytest.raises(UpdateRejectedError, match="update 1") as caught:
        check_update_payload(_update(bad), global_payload, spec)
    assert caught.value.reason == "wrong_layout"


shapes = st.lists(st.lists(st.integers(1, 6), min_size=1, max_size=3).map(tuple),
                  min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(shapes=shapes, seed=st.integers(0, 2**16), fraction=st.floats(0.05, 1.0),
       quantize=st.booleans(), sparse=st.booleans())
def test_packed_roundtrip_is_exact_and_deterministic(shapes, seed, fraction, quantize, sparse):
    # Arrange: a random model layout and delta, compressed by the device transforms.
    template = {f"l{i}.w": shape for i, shape in enumerate(shapes)}
    delta = _dense(seed, template)
    steps = ([top_k(fraction)] if sparse else []) + ([quantize_int8()] if quantize else [])
    if not steps:
        steps = [quantize_int8()]
    t = chain(*steps, pack_compressed())
    # Act
    packed, _ = t.update(delta, t.init(delta), key=None)
    payload = encode_params(packed)
    once = decompress_delta(decode_params(payload), template)
    twice = decompress_delta(decode_params(bytes(payload)), dict(reversed(template.items())))
    # Assert: identical bits whatever the template's dict order; error bounded per tensor
    for name, original in flatten_params(delta).items():
        a, b = flatten_params(once)[name], flatten_params(twice)[name]
        assert a.dtype == np.float32 and a.shape == original.shape
        assert a.tobytes() == b.tobytes()
        kept = a != 0
        step = float(np.max(np.abs(original))) / 127.0 if quantize or not sparse else 0.0
        assert np.all(np.abs(a[kept] - original[kept]) <= step / 2 + 1e-6)
        if not sparse:
            assert np.all(np.abs(a - original) <= step / 2 + 1e-6)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=0, max_size=64), total=st.integers(1, 40))
def test_arbitrary_index_bytes_never_decode_to_out_of_range_writes(data, total):
    # Arrange: any int32 index vector (from arbitrary bytes), one value per index.
    idx = np.frombuffer(data[: len(data) // 4 * 4], np.int32).copy()
    packed = {"idx": idx, "val": np.ones(idx.size, np.float32)}
    valid = idx.size <= total and bool(
        idx.size == 0 or (idx[0] >= 0 and idx[-1] < total
                          and np.all(np.diff(idx.astype(np.int64)) > 0)))
    # Act / Assert: either a clean rejection or exactly the given entries set
    if not valid:
        assert _reject(packed, {"w": (total,)}) in {"bad_index", "wrong_layout"}
        return
    dense = decompress_delta(packed, {"w": (total,)})["w"]
    assert np.flatnonzero(dense).tolist() == idx.tolist()


def test_aggregator_and_auditor_builds_agree_bit_for_bit_on_packed_updates() -> None:
    # Arrange: two sites' top-k + int8 updates (different fractions) on a 3-tensor model.
    spec = TaskSpec(name="t", data_schema="s", num_features=3, min_updates=2,
                    compression=("topk:0.5", "int8"))
    zeros = _nest({n: np.zeros(s, np.float32) for n, s in TEMPLATE.items()})
    global_payload = encode_params(zeros)
    updates = []
    for i, steps in enumerate(([top_k(0.3), quantize_int8()], [top_k(0.5), quantize_int8()])):
        delta = _dense(10 + i)
        t = chain(*steps, pack_compressed())
        payload = encode_params(t.update(delta, t.init(delta), key=None)[0])
        updates.append(LedgerUpdate(i + 1, 1, 0, "0x0", digest_bytes(payload), 5, 0, payload, 1,
                                    b""))
    # Act: the aggregator's build and an auditor's rebuild from the same ledger bytes
    published = build_global_model(spec, global_payload, updates)
    audited = build_global_model(spec, bytes(global_payload), list(reversed(updates)))
    # Assert
    assert published.digest == audited.digest and published.payload == audited.payload
