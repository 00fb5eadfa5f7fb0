"""Chain: reads pinned to a block that a reorg or a rewind took away are re-pinned."""

from __future__ import annotations

import pytest

from fednode.chain.pinned_read import block_vanished, read_pinned


def _flaky_read(failures: list[Exception]):
    pinned: list[int] = []

    def read(block: int) -> int:
        pinned.append(block)
        if failures:
            raise failures.pop(0)
        return block

    return read, pinned


def test_a_vanished_block_is_re_pinned_to_the_new_head():
    # Arrange: the head goes 12 -> 10 (a rewind) while the first read is pinned to 12
    heads = iter([12, 10])
    read, pinned = _flaky_read([ValueError({"code": -32000, "message": "header not found"})])
    pauses: list[float] = []
    # Act
    result = read_pinned(lambda: next(heads), read, sleep=pauses.append)
    # Assert
    assert (result, pinned, pauses) == (10, [12, 10], [0.5])


def test_other_errors_are_raised_at_once():
    # Arrange
    read, pinned = _flaky_read([ValueError("execution reverted: TaskRegistryUnknownTask")])
    # Act / Assert
    with pytest.raises(ValueError, match="UnknownTask"):
        read_pinned(lambda: 5, read, sleep=lambda s: None)
    assert pinned == [5]


def test_gives_up_after_the_attempts_with_the_last_error():
    # Arrange
    read, pinned = _flaky_read([ValueError("missing trie node abc")] * 3)
    # Act / Assert
    with pytest.raises(ValueError, match="missing trie node"):
        read_pinned(lambda: 5, read, attempts=3, sleep=lambda s: None)
    assert pinned == [5, 5, 5]


@pytest.mark.parametrize("message, vanished", [
    ("header not found", True), ("Missing trie node 0x12", True), ("unknown block", True),
    ("nonce too low", False), ("execution reverted", False)])
def test_block_vanished_recognizes_node_answers(message, vanished):
    assert block_vanished(RuntimeError(message)) is vanished
