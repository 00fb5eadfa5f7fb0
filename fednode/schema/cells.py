"""Schema: what one cell means: its text, whether it is missing, the number it writes (pure)."""

from __future__ import annotations

import re
from functools import lru_cache

from fednode.schema.reader import Cell, ReadOptions

__all__ = ["cell_text", "is_missing", "parse_number"]


def cell_text(cell: Cell) -> str:
    """A cell as the text a schema level or marker is written in.

    Example:
      >>> cell_text(" yes "), cell_text(True), cell_text(1.0), cell_text(2.5)
      ('yes', 'true', '1', '2.5')
    """
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip()


def is_missing(cell: Cell, markers: tuple[str, ...]) -> bool:
    """Whether a cell is null or, stripped, one of ``markers``.

    Example:
      >>> is_missing(None, ()), is_missing(" NA", ("NA",)), is_missing("0", ("NA",))
      (True, True, False)
    """
    return cell is None or cell_text(cell) in markers


def parse_number(cell: Cell, options: ReadOptions) -> float | None:
    """The number a cell writes, or ``None`` if it is not a number in the site's format.

    Digits may be grouped by three with ``options.thousands`` (``"1,234.5"``); nothing else
    is accepted (no ``nan``, no ``inf``, no units, no booleans).

    Example:
      >>> o = ReadOptions()
      >>> parse_number("1,234.5", o), parse_number("12,34", o), parse_number("7 kg", o)
      (1234.5, None, None)
    """
    if isinstance(cell, bool) or cell is None:
        return None
    if isinstance(cell, int | float):
        return float(cell)
    text = cell.strip()
    if not _number_pattern(options.thousands, options.decimal).fullmatch(text):
        return None
    if options.thousands:
        text = text.replace(options.thousands, "")
    return float(text.replace(options.decimal, "."))


@lru_cache(maxsize=16)
def _number_pattern(thousands: str, decimal: str) -> re.Pattern[str]:
    """Plain digits, or digits grouped by three with ``thousands``; optional fraction, exponent."""
    whole = r"\d+"
    if thousands:
        whole = rf"(?:\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+|\d+)"
    fraction = rf"(?:{re.escape(decimal)}\d*)?"
    return re.compile(rf"[+-]?(?:{whole}{fraction}|{re.escape(decimal)}\d+)(?:[eE][+-]?\d+)?")
