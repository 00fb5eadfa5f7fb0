"""Edge: secure aggregation: masks cancel, dropouts are recovered, single inputs stay hidden."""

from __future__ import annotations

import numpy as np

from edge_server.secagg import (
    combine_shares,
    dequantize,
    generate_keypair,
    mask_update,
    quantize,
    split_secret,
    unmask_sum,
)

SCALE = 2.0**16


def _cohort(n: int, size: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    keys = {i: generate_keypair() for i in range(n)}
    publics = {i: public for i, (_, public) in keys.items()}
    deltas = {i: rng.normal(size=size) for i in range(n)}
    masked = {
        i: mask_update(
            i, quantize(deltas[i], scale=SCALE), keys[i][0],
            {j: p for j, p in publics.items() if j != i},
        )
        for i in range(n)
    }  # fmt: skip
    return keys, publics, deltas, masked


def test_masks_cancel_in_the_cohort_sum() -> None:
    # Arrange
    _, publics, deltas, masked = _cohort(5, 64)

    # Act
    total = dequantize(unmask_sum(masked, publics, {}), scale=SCALE)

    # Assert
    np.testing.assert_allclose(total, sum(deltas.values()), atol=5 * 1 / SCALE)


def test_a_dropped_device_is_recovered_from_threshold_shares() -> None:
    # Arrange: device 2 shares its secret among 5, then drops before sending
    keys, publics, deltas, masked = _cohort(5, 32, seed=1)
    shares = split_secret(keys[2][0], shares=5, threshold=3)
    survivors = {i: v for i, v in masked.items() if i != 2}

    # Act
    rebuilt = combine_shares({x: shares[x] for x in (1, 4, 5)})
    total = dequantize(unmask_sum(survivors, publics, {2: rebuilt}), scale=SCALE)

    # Assert
    assert rebuilt == keys[2][0]
    expected = sum(d for i, d in deltas.items() if i != 2)
    np.testing.assert_allclose(total, expected, atol=4 / SCALE)


def test_one_masked_input_reveals_nothing_like_the_delta() -> None:
    _, _, deltas, masked = _cohort(3, 2000, seed=2)
    seen = dequantize(masked[0], scale=SCALE)
    assert abs(np.corrcoef(seen, deltas[0])[0, 1]) < 0.1


def test_fewer_shares_than_the_threshold_rebuild_garbage() -> None:
    secret = generate_keypair()[0]
    shares = split_secret(secret, shares=5, threshold=3)
    try:
        rebuilt = combine_shares({x: shares[x] for x in (1, 2)})
    except ValueError:
        rebuilt = None
    assert rebuilt != secret
