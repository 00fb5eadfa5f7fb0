"""Chain: the ``fednode network`` argument parsing and status table (no geth)."""

from __future__ import annotations

import argparse

import pytest
from rich.console import Console

from fednode.cli.network_cmd import (
    add_network_parser,
    render_status_table,
    run_network_down,
    run_network_status,
    run_network_up,
)
from fednode.network import NodeStatus


def _parse(argv: list[str]) -> argparse.Namespace:
    root = argparse.ArgumentParser(prog="fednode")
    add_network_parser(root.add_subparsers(dest="command", required=True))
    return root.parse_args(argv)


def test_up_parses_its_options_and_points_at_its_handler():
    # Act
    args = _parse(
        [
            "network",
            "up",
            "--validators",
            "5",
            "--dir",
            "/tmp/n",
            "--period",
            "2",
            "--chain-id",
            "99",
        ]
    )

    # Assert
    assert args.handler is run_network_up
    assert (args.validators, args.dir, args.period, args.chain_id) == (5, "/tmp/n", 2, 99)


def test_unset_up_options_defer_to_the_network_folder():
    # Act
    args = _parse(["network", "up", "--dir", "/tmp/n"])

    # Assert
    assert (args.validators, args.period, args.chain_id) == (None, None, None)


@pytest.mark.parametrize(
    ("command", "handler"), [("status", run_network_status), ("down", run_network_down)]
)
def test_status_and_down_point_at_their_handlers(command, handler):
    # Act
    args = _parse(["network", command, "--dir", "/tmp/n"])

    # Assert
    assert args.handler is handler


def test_network_requires_a_subcommand():
    # Act / Assert
    with pytest.raises(SystemExit):
        _parse(["network"])


def test_status_table_has_one_row_per_validator_and_flags_dead_ones():
    # Arrange
    signer = "0x" + "Ab" * 20
    statuses = [
        NodeStatus("validator-1", 11, True, "http://127.0.0.1:1", signer, 7, 3, (signer.lower(),)),
        NodeStatus("validator-2", None, False, "http://127.0.0.1:2", signer),
    ]
    console = Console(record=True, width=160)

    # Act
    console.print(render_status_table(statuses))

    # Assert
    text = console.export_text()
    assert "validator-1" in text and "validator-2" in text
    assert "yes" in text and "no" in text


def test_a_join_error_with_brackets_is_printed_as_it_is(monkeypatch, capsys, tmp_path):
    # Arrange: geth log lines carry brackets that rich would read as markup
    from fednode.cli import network_cmd
    from fednode.errors import NetworkError

    message = "validator exited: INFO [11-23|15:27:07.000] [/] [bold]Fatal[/bold]"

    def failing_join(*args, **kwargs):
        raise NetworkError(message)

    monkeypatch.setattr(network_cmd, "join_network", failing_join)
    args = _parse(["network", "join", "--dir", str(tmp_path), "--genesis", "g.json"])

    # Act
    code = args.handler(args)

    # Assert
    assert code == 1
    assert message in " ".join(capsys.readouterr().err.split())


def test_join_with_an_unreadable_key_file_fails_cleanly(capsys, tmp_path):
    # Arrange
    args = _parse(["network", "join", "--dir", str(tmp_path), "--genesis", "g.json",
                   "--signer-key", str(tmp_path / "missing.key")])

    # Act
    code = args.handler(args)

    # Assert
    assert code == 1
    assert "network join failed" in capsys.readouterr().err
