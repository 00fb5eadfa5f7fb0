"""Update: the one check (layout, compression, finiteness, norm, example cap), one vocabulary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import fednode.update
from edge_server.protocol import STATUS_BY_REASON, status_for
from fednode.codec import digest_bytes, encode_params
from fednode.errors import TaskSpecError, UpdateRejectedError
from fednode.types import DEFAULT_MAX_EXAMPLES, TaskSpec
from fednode.update import (
    RejectReason,
    check_num_examples,
    check_privacy_spend,
    check_update,
    expected_layout,
    is_finite_model,
    template_of,
)
from fednode.update.entropy import entropy_code
from fednode.update.packing import encode_int8, encode_top_k, pack_delta

MODEL = {"b": np.zeros(2, np.float32), "w": np.zeros((3, 2), np.float32)}
SHAPES = {"b": (2,), "w": (3, 2)}
TEMPLATE = template_of(encode_params(MODEL))


def _spec(**overrides: Any) -> TaskSpec:
    fields: dict[str, Any] = {"max_update_norm": 10.0, **overrides}
    return TaskSpec(name="t", data_schema="s", num_features=3, **fields)


def _int8(dense: dict[str, np.ndarray]) -> bytes:
    return encode_params(pack_delta({n: encode_int8(a) for n, a in dense.items()}, SHAPES))


def _top_k(dense: dict[str, np.ndarray]) -> bytes:
    return encode_params(pack_delta({n: encode_top_k(a, a.size) for n, a in dense.items()}, SHAPES))


def _reason(payload: bytes, spec: TaskSpec, **kwargs: Any) -> str:
    with pytest.raises(UpdateRejectedError) as refused:
        check_update(payload, TEMPLATE, spec, **kwargs)
    return refused.value.reason


def test_a_dense_delta_within_the_bound_passes_with_its_norm() -> None:
    # Arrange
    dense = {"b": np.array([3.0, 0.0], np.float32), "w": np.zeros((3, 2), np.float32)}
    dense["w"][0, 0] = 4.0
    # Act
    checked = check_update(encode_params(dense), TEMPLATE, _spec())
    # Assert
    assert checked.norm == 5.0
    assert checked.delta["w"].tolist() == dense["w"].tolist()


@pytest.mark.parametrize(("compression", "encode"), [(("int8",), _int8),
                                                     (("topk:1.0",), _top_k)])
def test_compressed_deltas_are_bounded_after_decompression(compression, encode) -> None:
    # Arrange: norm 5 once decompressed; the bound is 4.9
    dense = {"b": np.array([3.0, 4.0], np.float32), "w": np.zeros((3, 2), np.float32)}
    payload = encode(dense)
    # Act
    checked = check_update(payload, TEMPLATE, _spec(compression=compression))
    refused = _reason(payload, _spec(compression=compression, max_update_norm=4.9))
    # Assert
    assert checked.norm == pytest.approx(5.0, rel=1e-3)
    assert refused == RejectReason.NORM_TOO_LARGE


def test_the_same_oversized_delta_is_refused_alike_dense_or_compressed() -> None:
    # Arrange: one delta of norm ~1e6, in every layout (int8 raw and entropy-coded)
    dense = {"b": np.array([1e6, 0.0], np.float32), "w": np.zeros((3, 2), np.float32)}
    coded = entropy_code(pack_delta({n: encode_int8(a) for n, a in dense.items()}, SHAPES))
    payloads = [((), encode_params(dense)), (("int8",), _int8(dense)),
                (("int8",), encode_params(coded)), (("topk:1.0",), _top_k(dense))]
    # Act
    reasons = {_reason(payload, _spec(compression=comp)) for comp, payload in payloads}
    # Assert
    assert reasons == {"norm_too_large"} and status_for("norm_too_large") == 422


def test_a_nan_is_refused_alike_dense_or_top_k() -> None:
    # Arrange
    dense = {"b": np.array([np.nan, 0.0], np.float32), "w": np.zeros((3, 2), np.float32)}
    sparse = encode_params({"idx": np.array([0], np.int32),
                            "val": np.array([np.nan], np.float32)})
    # Act
    dense_reason = _reason(encode_params(dense), _spec())
    sparse_reason = _reason(sparse, _spec(compression=("topk",)))
    # Assert
    assert dense_reason == sparse_reason == RejectReason.NOT_FINITE
    assert status_for(dense_reason) == status_for(sparse_reason) == 422


def test_a_packed_layout_must_be_the_one_the_spec_prescribes() -> None:
    # Arrange
    dense = {"b": np.array([1.0, 0.0], np.float32), "w": np.zeros((3, 2), np.float32)}
    int8 = _int8(dense)
    # Act / Assert
    assert _reason(int8, _spec()) == RejectReason.WRONG_COMPRESSION
    assert _reason(int8, _spec(compression=("topk:0.5",))) == RejectReason.WRONG_COMPRESSION
    assert _reason(_top_k(dense), _spec(compression=("int8",))) == "wrong_compression"
    assert check_update(encode_params(dense), TEMPLATE, _spec(compression=("int8",))).norm == 1.0


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({**MODEL, "extra": np.zeros(1, np.float32)}, "wrong_keys"),
        ({"b": np.zeros(2, np.float32)}, "wrong_keys"),
        ({"b": np.zeros(2, np.float64), "w": np.zeros((3, 2), np.float32)}, "wrong_dtype"),
        ({"b": np.zeros(3, np.float32), "w": np.zeros((3, 2), np.float32)}, "wrong_shape"),
        ({"b": np.array([np.inf, 0], np.float32), "w": np.zeros((3, 2), np.float32)},
         "not_finite"),
        ({"b": np.full(2, 3e38, np.float32), "w": np.full((3, 2), 3e38, np.float32)},
         "norm_too_large"),
        ({"q": np.zeros(7, np.int8), "scale": np.ones(2, np.float32)}, "wrong_layout"),
        ({"q": np.zeros(8, np.int8), "scale": np.array([1.0, np.nan], np.float32)}, "bad_scale"),
    ],
)  # fmt: skip
def test_malformed_deltas_are_refused_with_their_reason(params, reason) -> None:
    assert _reason(encode_params(params), _spec(compression=("int8",))) == reason


def test_bytes_digest_and_size_are_checked_first() -> None:
    payload = encode_params(MODEL)
    assert _reason(b"not safetensors", _spec()) == RejectReason.BAD_PAYLOAD
    assert _reason(payload, _spec(), digest=digest_bytes(b"x")) == RejectReason.DIGEST_MISMATCH
    assert _reason(payload, _spec(), max_payload_bytes=10) == RejectReason.PAYLOAD_TOO_LARGE
    assert check_update(payload, TEMPLATE, _spec(), digest=digest_bytes(payload)).norm == 0.0


@pytest.mark.parametrize(("count", "reason"), [(0, "bad_num_examples"), (True, "bad_num_examples"),
                                               (1.5, "bad_num_examples"),
                                               (501, "too_many_examples"),
                                               (2**63 - 1, "too_many_examples")])
def test_example_counts_are_capped_per_task(count, reason) -> None:
    spec = _spec(max_examples=500)
    with pytest.raises(UpdateRejectedError) as refused:
        check_num_examples(count, spec)
    assert refused.value.reason == reason
    assert check_num_examples(500, spec) == 500 and check_num_examples(np.int64(1), spec) == 1


@pytest.mark.parametrize("bad", [0, -1, 2**64, True, 1.0])
def test_task_specs_refuse_a_bad_example_cap(bad) -> None:
    with pytest.raises(TaskSpecError, match="max_examples"):
        _spec(max_examples=bad)


def test_the_default_cap_is_carried_by_older_spec_json() -> None:
    body = _spec().to_json().replace(b',"max_examples":100000', b"")
    assert TaskSpec.from_json(body).max_examples == DEFAULT_MAX_EXAMPLES


def test_every_reason_has_an_http_status_of_its_own() -> None:
    assert all(reason.value in STATUS_BY_REASON for reason in RejectReason)
    assert status_for(RejectReason.PAYLOAD_TOO_LARGE) == 413


def test_a_dp_task_needs_a_declared_spend() -> None:
    dp = _spec(clip_norm=1.0, noise_multiplier=1.0, epsilon_budget=2.0)
    with pytest.raises(UpdateRejectedError) as refused:
        check_privacy_spend(0, dp)
    assert refused.value.reason == RejectReason.ZERO_PRIVACY_SPEND
    assert check_privacy_spend(1, dp) == 1 and check_privacy_spend(0, _spec()) == 0


def test_expected_layouts_and_finite_models() -> None:
    assert expected_layout(("topk:0.2",)) == ("idx", "val")
    assert is_finite_model(encode_params(MODEL))
    assert not is_finite_model(encode_params({"w": np.array([np.inf], np.float32)}))


def test_update_all_is_sorted_and_importable() -> None:
    names = fednode.update.__all__
    # ruff RUF022 order: CONSTANTS, then Classes, then functions
    order = [(0 if n.isupper() else 1 if n[0].isupper() else 2, n) for n in names]
    assert order == sorted(order)
    assert all(hasattr(fednode.update, name) for name in names)
