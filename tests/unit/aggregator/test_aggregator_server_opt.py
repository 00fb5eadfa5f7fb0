"""Aggregator: server optimizers follow optax's update rules and replay exactly from the ledger."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fednode.aggregator.build import build_global_model, replay_rule_state
from fednode.aggregator.server_opt import (
    server_adagrad,
    server_adam,
    server_optimizer_for_spec,
    server_sgd,
    server_yogi,
)
from fednode.codec import digest_bytes, encode_params
from fednode.errors import FednodeValueError
from fednode.types import GlobalModelRecord, LedgerUpdate, TaskSpec

PAIRS = [
    (server_sgd(0.5, momentum=0.9), optax.sgd(0.5, momentum=0.9)),
    (server_adam(0.1, b1=0.9, b2=0.99, eps=1e-3), optax.adam(0.1, b1=0.9, b2=0.99, eps=1e-3)),
    (server_yogi(0.1, b1=0.9, b2=0.99, eps=1e-3), optax.yogi(0.1, b1=0.9, b2=0.99, eps=1e-3)),
    (server_adagrad(0.1), optax.adagrad(0.1)),
]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS, ids=["sgdm", "adam", "yogi", "adagrad"])
def test_server_optimizers_match_optax(ours, theirs) -> None:
    # Arrange
    rng = np.random.default_rng(0)
    grads = [{"w": rng.normal(size=5)} for _ in range(6)]
    our_state = ours.init(grads[0])
    their_state = theirs.init({"w": jnp.zeros(5, jnp.float32)})
    # Act / Assert
    with jax.numpy_dtype_promotion("standard"):
        for g in grads:
            our_update, our_state = ours.update(g, our_state)
            their_update, their_state = theirs.update(
                {"w": jnp.asarray(g["w"], jnp.float32)}, their_state
            )
            np.testing.assert_allclose(our_update["w"], their_update["w"], rtol=2e-4, atol=1e-6)


def _update(update_id: int, delta: dict, base: int = 0) -> LedgerUpdate:
    payload = encode_params(delta)
    return LedgerUpdate(update_id, 1, base, "0x0", digest_bytes(payload), 10, 0, payload, 1, b"")


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "yogi", "adagrad"])
def test_server_state_replays_from_the_ledger(optimizer: str) -> None:
    # Arrange: three versions built one after the other, the state carried along
    spec = TaskSpec(name="t", data_schema="s", num_features=3, min_updates=2,
                    server_optimizer=optimizer, server_learning_rate=0.3)
    rng = np.random.default_rng(1)
    payload = encode_params({"w": np.zeros(3, np.float32)})
    records = [GlobalModelRecord(1, 0, digest_bytes(payload), (), "0x0", payload, 0, b"")]
    updates: list[LedgerUpdate] = []
    state = None
    for version in range(1, 4):
        batch = [_update(len(updates) + i + 1, {"w": rng.normal(size=3).astype(np.float32)},
                         base=version - 1) for i in range(2)]
        updates += batch
        built = build_global_model(spec, records[-1].payload, batch, rule_state=state)
        state = built.rule_state
        records.append(GlobalModelRecord(1, version, built.digest, built.update_ids, "0x0",
                                         built.payload, version, b""))
    # Act
    replayed = replay_rule_state(spec, records, updates)
    next_batch = [_update(99, {"w": np.ones(3, np.float32)}, base=3)]
    spec1 = dataclasses.replace(spec, min_updates=1)
    live = build_global_model(spec1, records[-1].payload, next_batch, rule_state=state)
    again = build_global_model(spec1, records[-1].payload, next_batch, rule_state=replayed)
    # Assert
    assert replayed.version == 3 and state.version == 3
    assert live.digest == again.digest


def test_first_adam_step_moves_each_coordinate_by_the_learning_rate() -> None:
    # Arrange
    spec = TaskSpec(name="t", data_schema="s", num_features=2, min_updates=1,
                    server_optimizer="adam", server_learning_rate=0.01)
    payload = encode_params({"w": np.zeros(2, np.float32)})
    # Act
    built = build_global_model(spec, payload, [_update(1, {"w": np.array([5.0, -0.5], np.float32)})])
    # Assert: bias-corrected Adam's first step is lr * sign(delta) (up to eps)
    from fednode.codec import decode_params

    np.testing.assert_allclose(decode_params(built.payload)["w"], [0.01, -0.01], rtol=1e-2)


def test_unknown_server_optimizer_is_refused() -> None:
    spec = TaskSpec(name="t", data_schema="s", num_features=2, server_optimizer="lamb")
    with pytest.raises(FednodeValueError, match="server_optimizer"):
        server_optimizer_for_spec(spec)
