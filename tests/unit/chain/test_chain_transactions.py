"""Chain: TransactionSender picks fees like geth expects and refuses bad settings."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from eth_account import Account

from fednode.chain.transactions import TransactionSender
from fednode.errors import FednodeValueError


def _stub_w3(block: dict, *, gas_price: int = 7, priority: int = 2) -> SimpleNamespace:
    eth = SimpleNamespace(get_block=lambda _: block, gas_price=gas_price, max_priority_fee=priority)
    return SimpleNamespace(eth=eth)


def test_chain_transactions_use_eip1559_fees_when_the_chain_has_a_base_fee():
    sender = TransactionSender(_stub_w3({"baseFeePerGas": 100}), Account.create())
    assert sender.fee_fields() == {"maxPriorityFeePerGas": 2, "maxFeePerGas": 202}


def test_chain_transactions_fall_back_to_legacy_gas_price():
    sender = TransactionSender(_stub_w3({"gasLimit": 1}), Account.create())
    assert sender.fee_fields() == {"gasPrice": 7}


@pytest.mark.parametrize(
    "options", [{"confirmations": -1}, {"max_pending": 0}, {"gas_margin": 0.5}]
)
def test_chain_transactions_refuse_bad_settings(options):
    with pytest.raises(FednodeValueError):
        TransactionSender(_stub_w3({}), Account.create(), **options)
