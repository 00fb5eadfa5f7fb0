"""Task publisher: ``fednode demo`` flags become the published task spec; bad values are refused
by the parser, before any validator starts."""

from __future__ import annotations

import argparse

import pytest

from fednode.cli.demo_cmd import _task_spec, add_demo_parser


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fednode")
    add_demo_parser(parser.add_subparsers())
    return parser.parse_args(["demo", *argv])


def test_learning_flags_land_in_the_published_spec() -> None:
    # Arrange
    args = _parse("--dp-epsilon", "1", "--accountant", "pld", "--proximal-mu", "0.1",
                  "--example-power", "0", "--compression", "int8")
    # Act
    spec = _task_spec(args, stats_task=1, sites=4)
    # Assert
    assert (spec.epsilon_budget, spec.accountant, spec.proximal_mu) == (1.0, "pld", 0.1)
    assert spec.per_site_noise and spec.noise_multiplier == 0 and spec.clip_norm == 1.0
    assert spec.aggregation_params == (("example_power", 0.0),)
    assert spec.compression == ("int8",) and spec.normalization_task == 1


def test_without_flags_the_task_has_no_privacy_budget() -> None:
    spec = _task_spec(_parse(), stats_task=1, sites=4)
    assert spec.epsilon_budget == 0 and not spec.per_site_noise and spec.proximal_mu == 0


def test_wearable_dp_keeps_its_own_local_optimizer() -> None:
    spec = _task_spec(_parse("--task", "wearable", "--dp-epsilon", "2"), stats_task=0, sites=4)
    assert spec.local_optimizer == "adam" and spec.batch_size == 8
    assert spec.dp_unit == "example" and spec.epsilon_budget == 2.0


@pytest.mark.parametrize("flag, value", [("--dp-epsilon", "-1"), ("--proximal-mu", "-0.5"),
                                         ("--dp-epsilon", "inf"), ("--dp-epsilon", "lots")])
def test_negative_or_non_numeric_values_are_refused_by_the_parser(flag, value, capsys) -> None:
    with pytest.raises(SystemExit) as refused:
        _parse(flag, value)
    assert refused.value.code == 2
    assert flag in capsys.readouterr().err
