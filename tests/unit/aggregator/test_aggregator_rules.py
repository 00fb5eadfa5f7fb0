"""Aggregator: FedAvg is exact, validated and bit-for-bit reproducible in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy._core._multiarray_umath import __cpu_dispatch__

from fednode.aggregator.rules import (
    Aggregator,
    FedAvgState,
    apply_global_delta,
    check_weight,
    fedavg,
    fedavg_delta,
    make_aggregator,
    param_template,
    rule_for_spec,
)
from fednode.codec import decode_params, digest, encode_params
from fednode.errors import FednodeValueError, UpdateRejectedError
from fednode.types import TaskSpec

REPO_ROOT = Path(__file__).resolve().parents[3]
WEIGHTS = [199, 172, 30, 85]
REPLAY = """
import json, sys
from pathlib import Path
from fednode.aggregator.rules import apply_global_delta, fedavg_delta
from fednode.codec import decode_params, digest, encode_params
folder = Path(sys.argv[1])
weights = json.loads((folder / "weights.json").read_text())
deltas = [decode_params((folder / f"delta_{i}.bin").read_bytes()) for i in range(len(weights))]
base = decode_params((folder / "global.bin").read_bytes())
new = apply_global_delta(base, fedavg_delta(deltas, weights))
print(digest(new).hex())
"""


def _layer(rng: np.random.Generator, scale: float) -> dict[str, np.ndarray]:
    return {
        "kernel": (rng.normal(size=(10, 16)) * scale).astype(np.float32),
        "bias": (rng.normal(size=16) * scale).astype(np.float32),
    }


def _model(seed: int, scale: float = 1.0) -> dict[str, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return {"dense_0": _layer(rng, scale), "output": _layer(rng, scale)}


def _deltas() -> list[dict]:
    return [_model(seed, scale=10.0**-seed) for seed in range(1, len(WEIGHTS) + 1)]


def test_fedavg_is_the_weighted_mean() -> None:
    # Arrange
    deltas = [{"w": np.array([1.0, -2.0], np.float32)}, {"w": np.array([4.0, 2.0], np.float32)}]
    # Act
    mean = fedavg_delta(deltas, [1, 3])
    # Assert
    assert mean["w"].dtype == np.float32
    assert mean["w"].tolist() == [3.25, 1.0]


def test_fedavg_matches_a_float64_reference() -> None:
    # Arrange
    deltas = _deltas()
    total = sum(WEIGHTS)
    # Act
    mean = fedavg_delta(deltas, WEIGHTS)
    # Assert
    reference = sum(
        d["output"]["kernel"].astype(np.float64) * n / total
        for d, n in zip(deltas, WEIGHTS, strict=True)
    )
    assert np.allclose(mean["output"]["kernel"], reference, rtol=1e-6, atol=0.0)


def test_single_update_passes_through_exactly() -> None:
    # Arrange
    delta = _model(7)
    # Act
    mean = fedavg_delta([delta], [42])
    # Assert
    assert digest(mean) == digest(delta)


def test_fedavg_is_reproducible_in_process() -> None:
    # Act
    first = digest(fedavg_delta(_deltas(), WEIGHTS))
    again = digest(fedavg_delta(_deltas(), WEIGHTS))
    # Assert
    assert first == again


def test_reordering_changes_at_most_rounding() -> None:
    # Arrange: the weights are fractions n_i / N, so order only changes rounding, if anything
    deltas, weights = _deltas(), WEIGHTS
    # Act
    forward = fedavg_delta(deltas, weights)
    backward = fedavg_delta(deltas[::-1], weights[::-1])
    # Assert: same values to float32 precision; the ledger order fixes the exact bytes
    assert np.allclose(forward["dense_0"]["kernel"], backward["dense_0"]["kernel"], rtol=1e-6)


def test_fresh_process_gets_the_same_digest(tmp_path: Path) -> None:
    # Arrange: payloads as the ledger holds them
    base, deltas = _model(0), _deltas()
    (tmp_path / "global.bin").write_bytes(encode_params(base))
    for index, delta in enumerate(deltas):
        (tmp_path / f"delta_{index}.bin").write_bytes(encode_params(delta))
    (tmp_path / "weights.json").write_text(json.dumps(WEIGHTS))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    if "X86_V3" in __cpu_dispatch__:  # force numpy's baseline SIMD kernels in the replay
        env["NPY_DISABLE_CPU_FEATURES"] = "X86_V3 X86_V4"
    # Act
    expected = digest(apply_global_delta(base, fedavg_delta(deltas, WEIGHTS))).hex()
    replay = subprocess.run(
        [sys.executable, "-c", REPLAY, str(tmp_path)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    # Assert
    assert replay.stdout.strip() == expected


def test_subnormal_values_are_flushed_to_zero() -> None:
    # Arrange
    tiny = np.finfo(np.float32).smallest_subnormal
    delta = {"w": np.array([tiny, 1.0], np.float32)}
    # Act
    mean = fedavg_delta([delta], [1])
    stepped = apply_global_delta(
        {"w": np.array([tiny, 0.0], np.float32)}, {"w": np.zeros(2, np.float32)}
    )
    # Assert
    assert mean["w"].tolist() == [0.0, 1.0]
    assert stepped["w"].tolist() == [0.0, 0.0]


def test_apply_global_delta_adds_in_float32() -> None:
    # Arrange
    base, delta = _model(0), _model(1, scale=0.01)
    # Act
    new = apply_global_delta(base, delta)
    # Assert
    assert new["output"]["bias"].dtype == np.float32
    expected = base["output"]["bias"] + delta["output"]["bias"]  # float32 + float32
    assert np.array_equal(new["output"]["bias"], expected)


def test_result_survives_the_codec() -> None:
    # Act
    new = apply_global_delta(_model(0), fedavg_delta(_deltas(), WEIGHTS))
    # Assert
    assert digest(decode_params(encode_params(new))) == digest(new)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"dense_0": _layer(np.random.default_rng(0), 1.0)}, "wrong_keys"),
        ({**_model(0), "extra": np.zeros(1, np.float32)}, "wrong_keys"),
        ({**_model(0), "output": {"kernel": np.zeros((10, 15), np.float32),
                                  "bias": np.zeros(16, np.float32)}}, "wrong_shape"),
        ({**_model(0), "output": {"kernel": np.zeros((10, 16), np.float64),
                                  "bias": np.zeros(16, np.float32)}}, "wrong_dtype"),
        ({**_model(0), "output": {"kernel": np.full((10, 16), np.nan, np.float32),
                                  "bias": np.zeros(16, np.float32)}}, "not_finite"),
        ({**_model(0), "output": {"kernel": np.zeros((10, 16), np.float16),
                                  "bias": np.zeros(16, np.float32)}}, "bad_payload"),
    ],
)  # fmt: skip
def test_mismatching_deltas_are_rejected(bad: dict, reason: str) -> None:
    # Act / Assert
    with pytest.raises(UpdateRejectedError) as caught:
        fedavg_delta([_model(1), bad], [1, 1])
    assert caught.value.reason == reason
    with pytest.raises(UpdateRejectedError):
        apply_global_delta(_model(1), bad)


@pytest.mark.parametrize("weight", [0, -3, True, 1.5, "7", None])
def test_bad_weights_are_rejected(weight: object) -> None:
    with pytest.raises(UpdateRejectedError) as caught:
        fedavg_delta([_model(1)], [weight])  # type: ignore[list-item]
    assert caught.value.reason == "bad_num_examples"


def test_numpy_integer_weights_are_accepted() -> None:
    assert check_weight(np.int64(5)) == 5


def test_empty_or_unpaired_updates_are_refused() -> None:
    with pytest.raises(FednodeValueError):
        fedavg_delta([], [])
    with pytest.raises(FednodeValueError):
        fedavg_delta([_model(1)], [1, 2])


def test_global_model_must_be_float32() -> None:
    with pytest.raises(UpdateRejectedError, match="float32"):
        param_template({"w": np.zeros(2, np.float64)})


def test_fedavg_rule_counts_rounds() -> None:
    # Arrange
    rule = fedavg()
    state = rule.init()
    # Act
    delta, state = rule.apply(_deltas(), WEIGHTS, state)
    _, state = rule.apply(_deltas(), WEIGHTS, state)
    # Assert
    assert isinstance(rule, Aggregator)
    assert state == FedAvgState(num_rounds=2)
    assert digest(delta) == digest(fedavg_delta(_deltas(), WEIGHTS))


def test_rules_are_chosen_by_name() -> None:
    # Arrange
    spec = TaskSpec(name="t", data_schema="s", num_features=2)
    # Act / Assert
    assert rule_for_spec(spec).init().rule == FedAvgState(num_rounds=0)
    with pytest.raises(FednodeValueError, match="unknown aggregation rule"):
        make_aggregator("krum-but-misspelled")
