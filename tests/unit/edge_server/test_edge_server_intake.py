"""Edge: delta validation against the task and the global model it was trained from."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

import numpy as np
import pytest
from edge_server_harness import EDGE, NOW, make_consortium, make_params

from edge_server.intake import (
    TensorSpec,
    UpdateIntake,
    check_delta,
    check_task_accepts,
    template_of,
)
from fednode.codec import encode_params
from fednode.errors import UpdateRejectedError
from fednode.types import TaskRecord, TaskSpec, TaskState
from fednode.update.entropy import compress_codes
from fednode.update.envelope import UpdateEnvelope
from fednode.update.packing import encode_int8, pack_delta

TEMPLATE = template_of(encode_params(make_params()))


def _task(state: TaskState = TaskState.TRAINING, latest: int = 3, staleness: int = 0) -> TaskRecord:
    spec = TaskSpec(name="t", data_schema="s", num_features=4, max_staleness=staleness)
    return TaskRecord(1, spec, spec.digest, "0x0", state, latest, 1)


def _reason(call: Any) -> str:
    with pytest.raises(UpdateRejectedError) as refused:
        call()
    return refused.value.reason


def test_template_lists_dtype_and_shape() -> None:
    assert TEMPLATE == {
        "dense.bias": TensorSpec("float32", (1,)),
        "dense.kernel": TensorSpec("float32", (4, 1)),
    }


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (TaskState.FINISHED, "task_closed"),
        (TaskState.CANCELLED, "task_closed"),
        (TaskState.EXPIRED, "task_closed"),
    ],
)
def test_closed_tasks_take_no_updates(state: TaskState, reason: str) -> None:
    assert _reason(lambda: check_task_accepts(_task(state), 3)) == reason


@pytest.mark.parametrize(
    ("staleness", "base", "reason"),
    [(0, 2, "stale_base"), (0, 4, "unknown_base"), (2, 0, "stale_base"), (2, 4, "unknown_base")],
)
def test_base_version_outside_the_window_is_refused(staleness: int, base: int, reason: str) -> None:
    assert _reason(lambda: check_task_accepts(_task(staleness=staleness), base)) == reason


@pytest.mark.parametrize(("staleness", "base"), [(0, 3), (2, 1), (2, 2), (2, 3)])
def test_base_version_inside_the_window_is_accepted(staleness: int, base: int) -> None:
    check_task_accepts(_task(staleness=staleness), base)
    check_task_accepts(_task(TaskState.OPEN, latest=0), 0)


def test_norm_at_the_bound_is_accepted_and_just_over_is_refused() -> None:
    # Arrange: a 5-element delta of 1.0 has norm sqrt(5)
    payload = encode_params(make_params(1.0))
    bound = float(np.sqrt(5.0))

    # Act
    norm = check_delta(payload, TEMPLATE, max_norm=bound + 1e-9, max_payload_bytes=2**20)

    # Assert
    assert norm == pytest.approx(bound)
    refuse = partial(check_delta, payload, TEMPLATE, max_norm=bound - 1e-6, max_payload_bytes=99)
    assert _reason(refuse) == "payload_too_large"
    refuse = partial(check_delta, payload, TEMPLATE, max_norm=bound - 1e-6, max_payload_bytes=164)
    assert _reason(refuse) == "norm_too_large"


def _layout(bias: Any, kernel: Any) -> dict[str, Any]:
    return {"dense": {"bias": bias, "kernel": kernel}}


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (make_params(1e200, np.float64), "wrong_dtype"),
        (_layout(np.zeros(1, np.int8), np.zeros((4, 1), "f4")), "wrong_dtype"),
        ({**make_params(), "extra": np.zeros(1, "f4")}, "wrong_keys"),
        (_layout(np.zeros((1, 1), "f4"), np.zeros((4, 1), "f4")), "wrong_shape"),
        (_layout(np.full(1, 3e38, "f4"), np.full((4, 1), 3e38, "f4")), "norm_too_large"),
    ],
)
def test_layout_and_overflow_are_refused(params: Any, reason: str) -> None:
    payload = encode_params(params)
    check = partial(check_delta, payload, TEMPLATE, max_norm=100.0, max_payload_bytes=2**20)
    assert _reason(check) == reason


def test_intake_reads_each_global_model_once() -> None:
    # Arrange
    ledger = CountingLedger(make_consortium().as_sender(EDGE))
    intake = UpdateIntake(ledger, max_payload_bytes=2**20)
    payload = encode_params(make_params(0.1))
    envelope = UpdateEnvelope("clinic-1", 1, 0, 10, 0, payload, "0" * 16, NOW)

    # Act
    norms = [intake.validate(replace(envelope, nonce=f"{i:016x}")) for i in range(3)]

    # Assert
    assert norms[0] == pytest.approx(np.sqrt(5 * 0.01))
    assert ledger.global_reads == 1 and ledger.task_reads == 3


class CountingLedger:
    """Counts the reads an intake makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.global_reads = 0
        self.task_reads = 0

    def get_task(self, task_id: int) -> TaskRecord:
        self.task_reads += 1
        return self.inner.get_task(task_id)

    def read_global_models(self, task_id: int) -> Any:
        self.global_reads += 1
        return self.inner.read_global_models(task_id)


def test_entropy_coded_int8_deltas_are_checked_like_raw_ones():
    # Arrange: the same int8 delta with its codes raw and entropy-coded.
    model = encode_params({"w": np.zeros((16, 16), np.float32)})
    values = np.random.default_rng(2).normal(size=(16, 16)).astype(np.float32)
    raw = pack_delta({"w": encode_int8(values)}, {"w": (16, 16)})
    coded = {"qz": compress_codes(raw["q"]), "scale": raw["scale"]}
    truncated = {"qz": coded["qz"][:-3], "scale": raw["scale"]}
    check = partial(check_delta, template=template_of(model), max_norm=100.0,
                    max_payload_bytes=2**20, compression=("int8",))
    # Act / Assert
    assert check(encode_params(coded)) == check(encode_params(raw))
    with pytest.raises(UpdateRejectedError) as refused:
        check(encode_params(truncated))
    assert refused.value.reason == "bad_coding"


def test_compressed_deltas_are_accepted_only_for_tasks_that_prescribe_compression():
    # Arrange: an int8-encoded delta of a two-tensor model.
    model = encode_params({"b": np.zeros(2, np.float32), "w": np.zeros((3, 2), np.float32)})
    dense = {"b": np.array([0.5, -0.5], np.float32), "w": np.ones((3, 2), np.float32)}
    parts = {name: encode_int8(value) for name, value in dense.items()}
    payload = encode_params(pack_delta(parts, {"b": (2,), "w": (3, 2)}))
    # Act
    norm = check_delta(payload, template_of(model), max_norm=10.0, max_payload_bytes=2**20,
                       compression=("int8",))
    # Assert
    assert abs(norm - float(np.sqrt(6.5))) < 0.05
    with pytest.raises(UpdateRejectedError) as refused:
        check_delta(payload, template_of(model), max_norm=10.0, max_payload_bytes=2**20)
    assert refused.value.reason == "wrong_compression"
    with pytest.raises(UpdateRejectedError) as refused:
        check_delta(payload, template_of(model), max_norm=10.0, max_payload_bytes=2**20,
                    compression=("topk:0.5",))
    assert refused.value.reason == "wrong_compression"
    with pytest.raises(UpdateRejectedError) as refused:
        check_delta(payload, template_of(model), max_norm=1.0, max_payload_bytes=2**20,
                    compression=("int8",))
    assert refused.value.reason == "norm_too_large"
