"""Chain: starting Clique sealers one at a time in turn order, on simulated validators."""

from __future__ import annotations

import pytest

from fednode.errors import FednodeError
from fednode.network import sealing
from fednode.network.sealing import start_miners_in_turn, stop_miners, turn_order
from tests.unit.network.rpc_faults import failing_rpc

SIGNERS = {"a": "0x0a", "b": "0x0b", "c": "0x0c", "d": "0x0d"}


class FakeChain:
    """Four validators on one chain at block 9; a started sealer that may seal does so at once."""

    def __init__(self) -> None:
        self.head = 9
        self.recents = {8: "0x0c", 9: "0x0d"}  # block 10 is in turn for c, which signed 8
        self.started: list[str] = []
        self.heads_seen_at_start: list[int] = []
        self.broken: set[str] = set()
        self.idle: set[str] = set()

    def rpc(self, url, method, params=None, *, timeout=5.0):
        if url in self.broken:
            raise FednodeError(f"{url} does not answer {method}")
        if method == "eth_getBlockByNumber":
            return {"number": hex(self.head), "hash": f"0x{self.head}"}
        if method == "eth_coinbase":
            return SIGNERS[url].upper().replace("0X", "0x")
        if method == "clique_getSnapshot":
            return {"signers": {s: {} for s in SIGNERS.values()},
                    "recents": {str(n): s for n, s in self.recents.items()}}
        if method == "miner_start":
            self.started.append(url)
            self.heads_seen_at_start.append(self.head)
            if url not in self.idle and SIGNERS[url] not in self._blocked():
                self.head += 1
                self.recents[self.head] = SIGNERS[url]
            return None
        if method == "miner_stop":
            return None
        raise AssertionError(f"unexpected call {method}")

    def _blocked(self) -> set[str]:
        return {s for n, s in self.recents.items() if n > self.head + 1 - 3}


@pytest.fixture
def chain(monkeypatch):
    fake = FakeChain()
    monkeypatch.setattr(sealing, "rpc_call", fake.rpc)
    return fake


def test_turn_order_rotates_from_the_next_block_and_puts_recent_signers_last():
    # Arrange
    signers = ["0x0d", "0x0B", "0x0a", "0x0c"]
    # Act / Assert
    assert turn_order(signers, 4) == ["0x0a", "0x0b", "0x0c", "0x0d"]
    assert turn_order(signers, 7) == ["0x0d", "0x0a", "0x0b", "0x0c"]
    # a signer of one of the last two blocks (4 signers: limit 3) cannot seal block 7
    assert turn_order(signers, 7, {6: "0x0d", 5: "0x0a", 4: "0x0b"}) == [
        "0x0b", "0x0c", "0x0d", "0x0a"]


def test_miners_start_in_turn_each_after_the_previous_block_reached_everyone(chain):
    # Act
    order = start_miners_in_turn(list("abcd"), step_s=2.0, poll_s=0.01)
    # Assert: block 10 is c's turn but c and d signed recently, so a then b go first
    assert order == ["a", "b", "c", "d"]
    assert chain.started == order
    assert chain.heads_seen_at_start == [9, 10, 11, 12]  # one new block per start
    assert chain.head == 13


def test_a_sealer_that_seals_nothing_delays_the_others_but_does_not_stop_them(chain):
    # Arrange
    chain.idle = {"a"}
    # Act
    order = start_miners_in_turn(list("abcd"), step_s=0.2, poll_s=0.01)
    # Assert: a sealed nothing within its step, b was started anyway and the chain moved
    assert order == ["a", "b", "c", "d"]
    assert chain.heads_seen_at_start == [9, 9, 10, 11]


def test_a_validator_that_cannot_start_its_miner_is_skipped(chain, monkeypatch):
    # Arrange: b answers everything but miner_start
    monkeypatch.setattr(sealing, "rpc_call", failing_rpc(
        chain.rpc, "miner_start", "the method miner_start does not exist", url="b"))
    # Act
    start_miners_in_turn(list("abcd"), step_s=0.2, poll_s=0.01)
    # Assert
    assert chain.started == ["a", "c", "d"]


def test_without_a_snapshot_the_miners_start_in_the_given_order(chain, monkeypatch):
    # Arrange
    monkeypatch.setattr(sealing, "rpc_call", failing_rpc(
        chain.rpc, "clique_getSnapshot", "the method clique_getSnapshot does not exist"))
    # Act / Assert
    assert start_miners_in_turn(list("dcba"), step_s=0.2, poll_s=0.01) == list("dcba")


def test_stop_miners_goes_on_past_a_validator_that_does_not_answer(chain, monkeypatch):
    # Arrange
    calls = []
    chain.broken = {"b"}
    rpc = chain.rpc
    monkeypatch.setattr(sealing, "rpc_call",
                        lambda url, method, params=None, **kw: calls.append(url) or rpc(
                            url, method, params))
    # Act
    stop_miners(list("abc"))
    # Assert
    assert calls == list("abc")
