"""Chain: the deployment JSON round-trips and malformed ones are refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fednode.chain.deploy import Deployment, read_deployment, write_deployment
from fednode.errors import ChainError, FednodeValueError

ADDRESSES = {
    "Consortium": "0x" + "11" * 20,
    "EvaluationLedger": "0x" + "44" * 20,
    "TaskRegistry": "0x" + "22" * 20,
    "UpdateLedger": "0x" + "33" * 20,
}


def test_chain_deploy_json_round_trips(tmp_path: Path):
    # Arrange
    deployment = Deployment.from_json({"chain_id": 1337, "contracts": ADDRESSES, "deploy_block": 5})
    path = tmp_path / "net" / "deployment.json"
    # Act
    write_deployment(deployment, path)
    # Assert
    assert read_deployment(path) == deployment
    body = json.loads(path.read_text())
    assert set(body) == {"chain_id", "contracts", "deploy_block"}
    assert deployment.address("UpdateLedger") == "0x" + "33" * 20


@pytest.mark.parametrize(
    "body",
    [
        {"chain_id": 1, "contracts": {"Consortium": "0x" + "11" * 20}, "deploy_block": 0},
        {"chain_id": 1, "contracts": {**ADDRESSES, "Consortium": "nope"}, "deploy_block": 0},
        {"contracts": ADDRESSES, "deploy_block": 0},
    ],
    ids=["missing-contract", "bad-address", "no-chain-id"],
)
def test_chain_deploy_refuses_malformed_json(body):
    with pytest.raises(FednodeValueError):
        Deployment.from_json(body)


def test_chain_deploy_unreadable_file_is_a_value_error(tmp_path: Path):
    (tmp_path / "d.json").write_text("{not json")
    with pytest.raises(FednodeValueError, match="d.json"):
        read_deployment(tmp_path / "d.json")


def test_chain_deploy_unknown_contract_name_is_a_chain_error():
    with pytest.raises(ChainError, match="Nope"):
        Deployment(1, dict(ADDRESSES)).address("Nope")
