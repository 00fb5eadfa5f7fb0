"""Chain: the Clique genesis of a local consortium (pure checks, no geth)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fednode.errors import FednodeValueError
from fednode.network.genesis import (
    CLIQUE_EXTRA_SEAL,
    CLIQUE_EXTRA_VANITY,
    DEFAULT_GAS_LIMIT,
    build_clique_genesis,
    clique_extra_data,
    parse_clique_signers,
)

SIGNERS = ["0x" + "cc" * 20, "0x" + "AA" * 20, "0x" + "bb" * 20]
PRE_MERGE_FORKS = [
    "homesteadBlock",
    "eip150Block",
    "eip155Block",
    "eip158Block",
    "byzantiumBlock",
    "constantinopleBlock",
    "petersburgBlock",
    "istanbulBlock",
    "muirGlacierBlock",
    "berlinBlock",
    "londonBlock",
    "arrowGlacierBlock",
    "grayGlacierBlock",
]


def test_extra_data_is_vanity_then_sorted_signers_then_seal():
    # Arrange
    raw_signers = [bytes.fromhex(s[2:]) for s in SIGNERS]

    # Act
    extra = bytes.fromhex(clique_extra_data(SIGNERS)[2:])

    # Assert
    assert len(extra) == CLIQUE_EXTRA_VANITY + 20 * len(SIGNERS) + CLIQUE_EXTRA_SEAL
    assert extra[:CLIQUE_EXTRA_VANITY] == bytes(32)
    assert extra[-CLIQUE_EXTRA_SEAL:] == bytes(65)
    assert extra[CLIQUE_EXTRA_VANITY:-CLIQUE_EXTRA_SEAL] == b"".join(sorted(raw_signers))


def test_extra_data_accepts_addresses_without_prefix():
    # Arrange
    bare = [s[2:] for s in SIGNERS]

    # Act / Assert
    assert clique_extra_data(bare) == clique_extra_data(SIGNERS)


@pytest.mark.parametrize(
    "signers",
    [[], ["0x" + "11" * 20, "0x" + "11" * 20], ["0x1234"], ["0x" + "zz" * 20]],
    ids=["empty", "duplicate", "short", "not-hex"],
)
def test_extra_data_rejects_bad_signer_lists(signers):
    # Act / Assert
    with pytest.raises(FednodeValueError):
        clique_extra_data(signers)


@given(st.sets(st.binary(min_size=20, max_size=20), min_size=1, max_size=12))
def test_parse_clique_signers_inverts_extra_data(raw_signers):
    # Arrange
    signers = ["0x" + r.hex() for r in raw_signers]

    # Act
    parsed = parse_clique_signers(clique_extra_data(signers))

    # Assert
    assert parsed == sorted(signers)


def test_parse_clique_signers_rejects_a_ragged_body():
    # Arrange
    extra = "0x" + "00" * (32 + 19 + 65)

    # Act / Assert
    with pytest.raises(FednodeValueError):
        parse_clique_signers(extra)


def test_genesis_activates_every_fork_through_london_and_nothing_after():
    # Act
    config = build_clique_genesis(SIGNERS, chain_id=4242)["config"]

    # Assert
    assert config["chainId"] == 4242
    assert all(config[fork] == 0 for fork in PRE_MERGE_FORKS)
    assert not {"shanghaiTime", "cancunTime", "pragueTime", "terminalTotalDifficulty"} & set(config)


def test_genesis_carries_the_clique_settings_and_signers():
    # Act
    genesis = build_clique_genesis(SIGNERS, chain_id=7, period=3, epoch=100)

    # Assert
    assert genesis["config"]["clique"] == {"period": 3, "epoch": 100}
    assert genesis["difficulty"] == "0x1"
    assert parse_clique_signers(genesis["extraData"]) == sorted(s.lower() for s in SIGNERS)


def test_default_gas_limit_fits_several_max_size_calldata_transactions():
    # Arrange: geth's 128 KiB transaction size limit, all bytes non-zero (16 gas each)
    max_payload_gas = 21_000 + 16 * 128 * 1024

    # Act
    gas_limit = int(build_clique_genesis(SIGNERS, chain_id=7)["gasLimit"], 16)

    # Assert
    assert gas_limit == DEFAULT_GAS_LIMIT
    assert gas_limit // max_payload_gas >= 8


def test_genesis_alloc_prefunds_accounts_by_bare_lowercase_address():
    # Arrange
    alloc = {"0x" + "Ab" * 20: 10**24, "0x" + "01" * 20: 1}

    # Act
    genesis = build_clique_genesis(SIGNERS, chain_id=7, alloc=alloc)

    # Assert
    assert genesis["alloc"] == {
        "ab" * 20: {"balance": hex(10**24)},
        "01" * 20: {"balance": "0x1"},
    }


def test_genesis_is_plain_json():
    # Arrange
    genesis = build_clique_genesis(SIGNERS, chain_id=7, alloc={SIGNERS[0]: 5})

    # Act
    round_trip = json.loads(json.dumps(genesis))

    # Assert
    assert round_trip == genesis


@pytest.mark.parametrize(
    "settings",
    [
        {"chain_id": 0},
        {"chain_id": 7, "period": -1},
        {"chain_id": 7, "epoch": 0},
        {"chain_id": 7, "gas_limit": 4999},
    ],
    ids=["chain-id", "period", "epoch", "gas-limit"],
)
def test_genesis_rejects_settings_geth_would_refuse(settings):
    # Act / Assert
    with pytest.raises(FednodeValueError):
        build_clique_genesis(SIGNERS, **settings)


def test_genesis_rejects_a_malformed_alloc_address():
    # Act / Assert
    with pytest.raises(FednodeValueError):
        build_clique_genesis(SIGNERS, chain_id=7, alloc={"0xdead": 1})
