"""Publisher: job files become the task specs they describe, with errors naming the TOML key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fednode.cli.chain_cmd import _spec_from_args
from fednode.cli.main import build_parser
from fednode.job import JOB_LAYOUT, JobError, job_from_toml, load_job
from fednode.tasks import heart_task_spec, wearable_task_spec
from fednode.types import TASK_SPEC_FIELDS, TaskSpec

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

MINIMAL = """
[task]
name = "t"
data_schema = "schemas/cohort.toml"
[model]
num_features = 4
"""


def _job(extra: str) -> TaskSpec:
    return job_from_toml(MINIMAL + extra, source="job.toml")


def test_the_heart_example_is_the_demos_heart_task() -> None:
    # Act
    spec = load_job(EXAMPLES / "heart" / "job.toml")
    # Assert: the same spec, byte for byte, so the same on-chain digest
    assert spec == heart_task_spec(normalization_task=1, min_updates=4)
    assert spec.digest == heart_task_spec(normalization_task=1, min_updates=4).digest


def test_the_wearable_example_is_the_demos_wearable_task() -> None:
    assert load_job(EXAMPLES / "wearable" / "job.toml") == wearable_task_spec()


def test_a_minimal_job_takes_the_spec_defaults_and_keeps_the_schema_as_given() -> None:
    spec = job_from_toml(MINIMAL)
    assert spec == TaskSpec(name="t", data_schema="schemas/cohort.toml", num_features=4)


def test_every_table_sets_its_fields() -> None:
    # Arrange
    digest = "ab" * 32
    text = MINIMAL.replace("[model]", f'schema_digest = "{digest}"\nseed = 3\n[model]') + """
kind = "mlp"
hidden_sizes = [16, 8]
[training]
local_epochs = 2
batch_size = 16
learning_rate = 1
proximal_mu = 0.1
local_optimizer = "adam"
[aggregation]
rule = "krum"
params = { num_byzantine = 1 }
mode = "async"
min_updates = 3
max_staleness = 2
server_optimizer = "sgd"
server_optimizer_params = { momentum = 0.9 }
staleness_weighting = "constant"
[edge_cohort]
size = 4
secure = true
[privacy]
clip_norm = 1.0
epsilon_budget = 2.0
dp_unit = "example"
noise_calibration = "per_site"
accountant = "pld"
[compression]
steps = ["int8"]
[updates]
max_update_norm = 5.0
max_examples = 1000
[acceptance]
metric_floor = 0.6
rule = "all"
"""
    # Act
    spec = job_from_toml(text)
    # Assert
    assert (spec.schema_digest, spec.seed) == ("0x" + digest, 3)
    assert (spec.model, spec.hidden_sizes, spec.local_optimizer) == ("mlp", (16, 8), "adam")
    assert spec.learning_rate == 1.0 and isinstance(spec.learning_rate, float)
    assert spec.aggregation_params == (("num_byzantine", 1),)
    assert spec.server_optimizer_params == (("momentum", 0.9),)
    assert spec.edge_cohort is not None and spec.edge_cohort.bounds() == (3, 3)
    assert (spec.dp_unit, spec.noise_calibration, spec.accountant) == ("example", "per_site",
                                                                        "pld")
    assert spec.compression == ("int8",) and spec.max_examples == 1000
    assert (spec.acceptance_rule, spec.metric_floor) == ("all", 0.6)


def test_the_layout_covers_every_spec_field() -> None:
    named = {field for keys in JOB_LAYOUT.values() for field in keys.values()}
    assert named | {"edge_cohort"} == TASK_SPEC_FIELDS


def test_a_cnn1d_job() -> None:
    spec = job_from_toml(MINIMAL + 'kind = "cnn1d"\nhidden_sizes = [8]\nkernel_size = 3\n'
                         "num_classes = 5\nsequence_length = 64\n")
    assert (spec.model, spec.kernel_size, spec.num_classes, spec.sequence_length) == (
        "cnn1d", 3, 5, 64)


@pytest.mark.parametrize(("extra", "match"), [
    ("[training]\nbatch_size = 0\n", r"\[training\]\.batch_size must be >= 1"),
    ('[training]\nbatch_size = "32"\n', r"\[training\]\.batch_size must be an int"),
    ('[training]\nlocal_optimizer = "lbfgs"\n', r"\[training\]\.local_optimizer must be one of"),
    ("[training]\nepochs = 3\n", r"unknown keys in \[training\]: \['epochs'\]"),
    ("[training]\nlearning_rate = nan\n", r"\[training\]\.learning_rate must be a finite"),
    ('[aggregation]\nrule = "magic"\n', r"\[aggregation\]\.rule must be one of"),
    ('[aggregation]\nparams = { example_power = "x" }\n',
     r"\[aggregation\]\.params\.example_power must be a finite number"),
    ("[acceptance]\nquorum = 1.0\n", r"\[acceptance\]\.quorum must be a number in"),
    ('[privacy]\nnoise_calibration = "per_device"\n', r"\[privacy\]\.noise_calibration"),
    ("[edge_cohort]\nsize = 3\nbogus = 1\n", r"\[edge_cohort\] has unknown keys \['bogus'\]"),
    ("[edge_cohort]\nsize = 2\nsecure = true\n", r"secure \[edge_cohort\] needs size >= 3"),
    ("[scheduler]\nx = 1\n", r"unknown tables \['scheduler'\]"),
    ("kernel_size = 3\n", r"\[model\]\.kernel_size is for model kind 'cnn1d' only"),
    ('kind = "resnet"\n', r"\[model\]\.kind must be one of"),
    ('[task.extra]\nx = 1\n', r"unknown keys in \[task\]: \['extra'\]"),
    ("compression = 1\n", r"job.toml: unknown keys in \[model\]"),
    ("[compression]\nsteps = \"int8\"\n", r"\[compression\]\.steps must be a list"),
])
def test_bad_jobs_are_refused_naming_the_toml_key(extra: str, match: str) -> None:
    with pytest.raises(JobError, match=match):
        _job(extra)


@pytest.mark.parametrize(("text", "match"), [
    ("[task]\nname = \"t\"\n[model]\nnum_features = 4\n", r"\[task\]\.data_schema is required"),
    ("[task]\nname = \"t\"\ndata_schema = \"s\"\n", r"\[model\]\.num_features is required"),
    ("[task\n", "not valid TOML"),
    ("task = 3\n", r"\[task\] must be a table"),
])
def test_incomplete_or_malformed_jobs_are_refused(text: str, match: str) -> None:
    with pytest.raises(JobError, match=match):
        job_from_toml(text)


def test_a_missing_job_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="nowhere.toml: cannot read"):
        load_job(tmp_path / "nowhere.toml")


def test_task_publish_reads_the_job_flag_and_applies_overrides() -> None:
    # Arrange
    args = build_parser().parse_args(["task", "publish", "--job",
                                      str(EXAMPLES / "heart" / "job.toml"), "--min-updates", "3"])
    # Act
    spec = _spec_from_args(args)
    # Assert
    expected = heart_task_spec(normalization_task=1, min_updates=4)
    assert spec == dataclasses.replace(expected, min_updates=3)


def test_task_publish_refuses_a_job_and_a_spec_json_together() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["task", "publish", "--job", "a.toml", "--spec-json", "b.json"])
