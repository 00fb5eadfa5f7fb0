"""Publisher: a job file (TOML) becomes the TaskSpec it describes (pure; ``fednode task publish
--job``).

A job file names everything a task spec holds, grouped in tables::

    [task]         name, data_schema, schema_digest, rounds, seed, deadline, normalization_task
    [model]        kind ("logreg" | "mlp" | "cnn1d"), num_features, hidden_sizes,
                   num_classes, kernel_size, sequence_length
    [training]     local_epochs, batch_size, learning_rate, proximal_mu, local_optimizer
    [aggregation]  rule, params, mode, min_updates, max_staleness, aggregator_quorum,
                   server_optimizer, server_learning_rate, server_optimizer_params,
                   staleness_weighting
    [edge_cohort]  size, secure, threshold, min_size, timeout_s (absent: no cohorts)
    [privacy]      clip_norm, noise_multiplier, epsilon_budget, delta, accountant, dp_unit,
                   noise_calibration, site_sampling
    [compression]  steps
    [updates]      max_update_norm, max_examples
    [acceptance]   metric_floor, rule, quorum

``[task].name``, ``[task].data_schema`` and ``[model].num_features`` are required; every other
key takes the TaskSpec default. ``data_schema`` is kept as written (a schema file's path or a
schema id) and ``schema_digest`` as given. Unknown tables and keys are refused, and every error
names the TOML key (``[training].batch_size``), never only the spec field behind it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fednode.errors import TaskSpecError
from fednode.types import TaskSpec

__all__ = ["JOB_LAYOUT", "JobError", "job_from_toml", "load_job"]


class JobError(TaskSpecError):
    """A job file cannot become a task spec; the message names the file and the TOML key."""


JOB_LAYOUT: Mapping[str, Mapping[str, str]] = {
    "task": {"name": "name", "data_schema": "data_schema", "schema_digest": "schema_digest",
             "rounds": "rounds", "seed": "seed", "deadline": "deadline",
             "normalization_task": "normalization_task"},
    "model": {"kind": "model", "num_features": "num_features", "hidden_sizes": "hidden_sizes",
              "num_classes": "num_classes", "kernel_size": "kernel_size",
              "sequence_length": "sequence_length"},
    "training": {"local_epochs": "local_epochs", "batch_size": "batch_size",
                 "learning_rate": "learning_rate", "proximal_mu": "proximal_mu",
                 "local_optimizer": "local_optimizer"},
    "aggregation": {"rule": "aggregation", "params": "aggregation_params", "mode": "mode",
                    "min_updates": "min_updates", "max_staleness": "max_staleness",
                    "aggregator_quorum": "aggregator_quorum",
                    "server_optimizer": "server_optimizer",
                    "server_learning_rate": "server_learning_rate",
                    "server_optimizer_params": "server_optimizer_params",
                    "staleness_weighting": "staleness_weighting"},
    "privacy": {"clip_norm": "clip_norm", "noise_multiplier": "noise_multiplier",
                "epsilon_budget": "epsilon_budget", "delta": "delta",
                "accountant": "accountant", "dp_unit": "dp_unit",
                "noise_calibration": "noise_calibration", "site_sampling": "site_sampling"},
    "compression": {"steps": "compression"},
    "updates": {"max_update_norm": "max_update_norm", "max_examples": "max_examples"},
    "acceptance": {"metric_floor": "metric_floor", "rule": "acceptance_rule",
                   "quorum": "acceptance_quorum"},
}
"""TOML table -> key -> the TaskSpec field it sets. ``[edge_cohort]`` is its own table (the
``EdgeCohort`` keys)."""

_COHORT_TABLE = "edge_cohort"
_KEY_OF = {field: f"[{table}].{key}" for table, keys in JOB_LAYOUT.items()
           for key, field in keys.items()}
_REQUIRED = (("task", "name"), ("task", "data_schema"), ("model", "num_features"))
_CNN_ONLY = ("num_classes", "kernel_size", "sequence_length")


def load_job(path: Path) -> TaskSpec:
    """Reads a job file into its task spec.

    Raises:
      JobError: if the file is missing, not TOML, or any key is unknown, missing or invalid.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise JobError(f"{path}: cannot read the job file: {exc}") from exc
    return job_from_toml(text, source=str(path))


def job_from_toml(text: str, *, source: str = "job") -> TaskSpec:
    """Parses a job file's text into its task spec.

    Raises:
      JobError: naming ``source`` and the TOML key at fault.

    Example:
      >>> spec = job_from_toml('''
      ... [task]
      ... name = "t"
      ... data_schema = "schema.toml"
      ... [model]
      ... kind = "mlp"
      ... num_features = 4
      ... hidden_sizes = [8]
      ... [aggregation]
      ... params = { example_power = 0.5 }
      ... ''')
      >>> spec.model, spec.hidden_sizes, spec.aggregation_params
      ('mlp', (8,), (('example_power', 0.5),))
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise JobError(f"{source}: not valid TOML: {exc}") from exc
    fields = _spec_fields(document, source)
    try:
        return TaskSpec.from_mapping(fields)
    except JobError:
        raise
    except TaskSpecError as exc:
        raise JobError(f"{source}: {_name_keys(str(exc))}") from exc


def _spec_fields(document: Mapping[str, Any], source: str) -> dict[str, Any]:
    unknown = sorted(set(document) - set(JOB_LAYOUT) - {_COHORT_TABLE})
    if unknown:
        raise JobError(f"{source}: unknown tables {unknown}; known: "
                       f"{sorted([*JOB_LAYOUT, _COHORT_TABLE])}")
    fields: dict[str, Any] = {}
    for table, keys in JOB_LAYOUT.items():
        body = _table(document, table, source)
        bad = sorted(set(body) - set(keys))
        if bad:
            raise JobError(f"{source}: unknown keys in [{table}]: {bad}; known: {sorted(keys)}")
        fields.update({keys[key]: value for key, value in body.items()})
    for table, key in _REQUIRED:
        if key not in _table(document, table, source):
            raise JobError(f"{source}: [{table}].{key} is required")
    if fields.get("model", "logreg") != "cnn1d":
        for field in _CNN_ONLY:
            if field in fields:
                raise JobError(f"{source}: {_KEY_OF[field]} is for model kind 'cnn1d' only")
    if _COHORT_TABLE in document:
        fields["edge_cohort"] = _table(document, _COHORT_TABLE, source)
    return fields


def _table(document: Mapping[str, Any], table: str, source: str) -> Mapping[str, Any]:
    body = document.get(table, {})
    if not isinstance(body, Mapping):
        raise JobError(f"{source}: [{table}] must be a table, got {type(body).__name__}")
    return body


def _name_keys(message: str) -> str:
    """Rewrites the spec field names in a TaskSpecError message as the TOML keys that set them
    (``batch_size must be >= 1`` -> ``[training].batch_size must be >= 1``)."""
    names = sorted(_KEY_OF, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.\[])(" + "|".join(map(re.escape, names)) + r")(?![\w\]])")
    message = pattern.sub(lambda match: _KEY_OF[match.group(1)], message)
    return re.sub(r"(?<![\w.\[])edge_cohort\b", f"[{_COHORT_TABLE}]", message)
