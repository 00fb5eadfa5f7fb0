"""Chain: the Clique fork-deadlock healer, on simulated validators."""

from __future__ import annotations

import time

import pytest

from fednode.errors import FednodeError
from fednode.network import heal as heal_module
from fednode.network import sealing
from fednode.network.heal import StallWatchdog, heal_forks
from tests.unit.network.rpc_faults import failing_rpc


class FakeValidators:
    """Four validators: two on fork X, two on fork Y, diverging after block 5, stuck at 7."""

    def __init__(self, split: bool = True) -> None:
        self.calls: list[tuple[str, str, list]] = []
        self.split = split
        self.isolated: set[str] = set()
        self.dead: set[str] = set()

    def chain_of(self, url: str) -> str:
        return "X" if not self.split or url in ("a", "b") else "Y"

    def rpc(self, url, method, params=None, *, timeout=5.0):
        self.calls.append((url, method, params))
        if method == "debug_setHead" or method.startswith("miner_"):
            return None
        if url in self.dead:
            raise FednodeError(f"{url} is down")
        if method == "net_peerCount":
            return "0x0" if url in self.isolated else "0x3"
        tag = params[0]
        number = 7 if tag == "latest" else int(tag, 16)
        fork = self.chain_of(url) if number > 5 else "common"
        return {"number": hex(number), "hash": f"0x{fork}{number}"}


@pytest.fixture
def validators(monkeypatch):
    fake = FakeValidators()
    monkeypatch.setattr(heal_module, "rpc_call", fake.rpc)
    monkeypatch.setattr(sealing, "rpc_call", fake.rpc)
    monkeypatch.setattr(heal_module, "SEAL_SETTLE_S", 0.0)
    monkeypatch.setattr(heal_module, "stop_miners",
                        lambda urls: fake.calls.extend((u, "miner_stop", []) for u in urls))
    monkeypatch.setattr(heal_module, "start_miners_in_turn",
                        lambda urls: fake.calls.append((tuple(urls), "miners_started_in_turn", [])))
    return fake


def test_diverged_validators_are_rewound_to_their_common_ancestor(validators):
    # Act
    ancestor = heal_forks(["a", "b", "c", "d"])
    # Assert
    assert ancestor == 5
    rewound = [(url, p) for url, method, p in validators.calls if method == "debug_setHead"]
    assert rewound == [(u, ["0x5"]) for u in "abcd"]
    # every miner stopped before the first rewind, all started again (in turn) after the last
    steps = [m for _, m, _ in validators.calls if m in _MINER_STEPS]
    assert steps == ["miner_stop"] * 4 + ["debug_setHead"] * 4 + ["miners_started_in_turn"]
    assert _miner_calls(validators)[-1] == (tuple("abcd"), "miners_started_in_turn")


_MINER_STEPS = ("miner_stop", "debug_setHead", "miners_started_in_turn")


def _miner_calls(validators) -> list[tuple]:
    return [(url, method) for url, method, _ in validators.calls if method.startswith("miner")]


def test_a_stall_with_equal_heads_and_every_validator_up_restarts_the_miners(validators):
    # Arrange: all four agree on block 7 and are peered, yet nothing is sealed (stale work)
    validators.split = False
    # Act
    result = heal_forks(["a", "b", "c", "d"])
    # Assert: nothing rewound, every sealer rebuilds its work on the current head
    assert result is None
    assert not [c for c in validators.calls if c[1] == "debug_setHead"]
    assert _miner_calls(validators) == [*((u, "miner_stop") for u in "abcd"),
                                        (tuple("abcd"), "miners_started_in_turn")]


def test_a_chain_halted_by_dead_validators_is_left_alone_entirely(validators):
    # Arrange: two of four are down, the live two agree (a fault, not a stall to fix)
    validators.split = False
    validators.dead = {"c", "d"}
    # Act / Assert
    assert heal_forks(["a", "b", "c", "d"]) is None
    assert not [c for c in validators.calls if c[1] == "debug_setHead"]
    assert _miner_calls(validators) == []


def test_a_chain_that_agrees_is_left_alone(validators):
    # Arrange: only two validators alive and on the same head (a halted, not forked, chain).
    validators.split = False
    # Act / Assert
    assert heal_forks(["a", "b"]) is None
    assert not [c for c in validators.calls if c[1] == "debug_setHead"]


def test_watchdog_heals_only_after_the_chain_stalls(validators):
    # Arrange
    healed_at = []
    watchdog = StallWatchdog(["a", "b", "c", "d"], stall_s=0.2, poll_s=0.05,
                             heal=lambda urls: healed_at.append(time.monotonic()) or 5)
    started = time.monotonic()
    # Act
    watchdog.start()
    time.sleep(0.6)
    watchdog.stop()
    # Assert
    assert healed_at and healed_at[0] - started >= 0.2
    assert watchdog.healed[0] == 5


def test_a_validator_that_is_merely_behind_is_not_a_fork(validators, monkeypatch):
    # Arrange: "c" is at block 4 of the same chain the others are at 7 on (it is syncing).
    def rpc(url, method, params=None, *, timeout=5.0):
        validators.calls.append((url, method, params))
        if method == "net_peerCount":
            return "0x3"
        number = (4 if url == "c" else 7) if params[0] == "latest" else int(params[0], 16)
        return {"number": hex(number), "hash": f"0xX{number}"}

    monkeypatch.setattr(heal_module, "rpc_call", rpc)
    # Act / Assert
    assert heal_forks(["a", "b", "c"]) is None
    assert not [c for c in validators.calls if c[1] == "debug_setHead"]


def test_an_isolated_validator_is_a_partition_not_a_fork(validators):
    # Arrange: "d" is on fork Y but has no peers (cut off); a, b, c agree on fork X.
    validators.chain_of = lambda url: "Y" if url == "d" else "X"
    validators.isolated = {"d"}
    # Act / Assert: the connected majority is not rewound to the isolated node's view
    assert heal_forks(["a", "b", "c", "d"]) is None
    assert not [c for c in validators.calls if c[1] == "debug_setHead"]


def test_the_miners_run_again_when_a_rewind_fails(validators, monkeypatch):
    # Arrange: "c" dies after the fork was seen, so its rewind fails
    monkeypatch.setattr(heal_module, "rpc_call",
                        failing_rpc(validators.rpc, "debug_setHead", "c is down", url="c"))
    # Act / Assert
    with pytest.raises(FednodeError, match="c is down"):
        heal_forks(["a", "b", "c", "d"])
    assert _miner_calls(validators)[-1] == (tuple("abcd"), "miners_started_in_turn")
