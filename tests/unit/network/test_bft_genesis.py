"""Consensus: the CometBFT engine's two genesis files (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fednode.errors import FednodeValueError
from fednode.network.bft.genesis import (
    CometValidator,
    build_comet_genesis,
    build_execution_genesis,
)

_WHEN = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


def _validator(i: int) -> CometValidator:
    return CometValidator(f"validator-{i}", f"{i:02d}" * 22, f"{i:02X}" * 20)


def test_execution_genesis_is_post_merge_through_cancun_only():
    # Act
    genesis = build_execution_genesis(chain_id=1337, alloc={"0x" + "ab" * 20: 10**18})
    # Assert
    config = genesis["config"]
    assert config["terminalTotalDifficulty"] == 0 and genesis["difficulty"] == "0x0"
    assert config["londonBlock"] == 0 and config["mergeNetsplitBlock"] == 0
    assert config["shanghaiTime"] == 0 and config["cancunTime"] == 0
    assert "pragueTime" not in config and "clique" not in config
    assert config["blobSchedule"]["cancun"]["max"] == 6
    assert genesis["alloc"] == {"ab" * 20: {"balance": hex(10**18)}}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"chain_id": 0}, "chain_id"),
        ({"chain_id": 1, "gas_limit": 4999}, "gas_limit"),
        ({"chain_id": 1, "alloc": {"0x1234": 1}}, "20 bytes"),
        ({"chain_id": 1, "alloc": {"0xzz" + "00" * 19: 1}}, "not a hex address"),
    ],
)
def test_execution_genesis_refuses_bad_settings(settings, message):
    with pytest.raises(FednodeValueError, match=message):
        build_execution_genesis(**settings)


def test_comet_genesis_gives_every_validator_equal_power():
    # Act
    genesis = build_comet_genesis([_validator(1), _validator(2)], chain_id=1337,
                                  genesis_time=_WHEN)
    # Assert
    assert genesis["chain_id"] == "fednode-1337"
    assert genesis["genesis_time"] == "2026-12-02T07:00:00Z"
    assert [v["power"] for v in genesis["validators"]] == ["10", "10"]
    assert {v["pub_key"]["type"] for v in genesis["validators"]} == {"tendermint/PubKeyEd25519"}


def test_comet_genesis_refuses_no_validator_or_a_duplicate_key():
    with pytest.raises(FednodeValueError, match="at least one"):
        build_comet_genesis([], chain_id=1, genesis_time=_WHEN)
    with pytest.raises(FednodeValueError, match="duplicate"):
        build_comet_genesis([_validator(1), _validator(1)], chain_id=1, genesis_time=_WHEN)
