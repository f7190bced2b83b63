"""JSON bodies without the numbers JSON cannot carry.

Python's `json` reads `NaN`, `Infinity` and `-Infinity`, and a number too large for a float
(`1e400`) as infinity; pydantic's parser does the same. An integer past 4300 digits Python
cannot turn back into text. None of them can be stored, streamed or read back as JSON, so a
body holding one is refused, with the path of the field, before anything uses it.

Looking for them costs a second parse, so only a body that may hold one pays it: one with
`NaN` or `Infinity` in it, a run of 100 digits, or a number (not, say, a uuid) with an
exponent of three digits or more. Every number too large for a float has one of the last two.
"""

from __future__ import annotations

import json
import math
from typing import Any

from axme_cli.errors import ValidationFailed

_MAX_INT_DIGITS = 4300
_MANTISSA = frozenset(b"0123456789.-")
_BEFORE_A_NUMBER = frozenset(b":[, \t\r\n")


def _shape(byte: int) -> int:
    if 0x30 <= byte <= 0x39:
        return 0x30  # a digit: "0"
    if byte in b"eE+":
        return byte | 0x20  # "e", "+"
    return 0x20  # anything else: a space


#: A body's shape: where digits and exponents are, found by substring search (fast) instead
#: of a regular expression (several times slower over a body of a few kilobytes).
_SHAPES = bytes(_shape(b) for b in range(256))
_LONG_RUN = b"0" * 100
_EXPONENTS = (b"e000", b"e+000")


class _NotFinite:
    """Where the checking parse found a number JSON cannot carry, as it was written."""

    def __init__(self, text: str) -> None:
        self.text = text


def _float(text: str) -> float | _NotFinite:
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _int(text: str) -> int | _NotFinite:
    return int(text) if len(text.lstrip("-")) <= _MAX_INT_DIGITS else _NotFinite(text)


_checking = json.JSONDecoder(parse_float=_float, parse_int=_int, parse_constant=_NotFinite)


def _may_hold_one(raw: bytes) -> bool:
    if b"NaN" in raw or b"Infinity" in raw:
        return True
    shape = raw.translate(_SHAPES)
    if _LONG_RUN in shape:
        return True
    for exponent in _EXPONENTS:
        at = shape.find(exponent)
        while at != -1:
            if _in_a_number(raw, at):
                return True
            at = shape.find(exponent, at + 1)
    return False


def _in_a_number(raw: bytes, at: int) -> bool:
    """Whether what is at `at` follows a number's mantissa (`1.5e400`), not a word's
    letters or a uuid's (`...-3e456...`)."""
    while at > 0 and raw[at - 1] in _MANTISSA:
        at -= 1
    return at == 0 or raw[at - 1] in _BEFORE_A_NUMBER


def _first(value: Any, path: tuple[str, ...] = ()) -> tuple[str, str] | None:
    if isinstance(value, _NotFinite):
        return ".".join(path), value.text
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = _first(item, (*path, str(key)))
        if found is not None:
            return found
    return None


def _refuse(value: Any) -> None:
    found = _first(value)
    if found is not None:
        where, text = found
        shown = text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"
        raise ValidationFailed(
            f"{where or 'request body'}: {shown} is not a finite JSON number",
            details={"field": where},
        )


def refuse_not_finite(raw: bytes) -> None:
    """`ValidationFailed` naming the field when `raw` holds a number JSON cannot carry;
    nothing when it holds none or is not JSON at all (the parser after this says so)."""
    if not _may_hold_one(raw):
        return
    try:
        value = _checking.decode(raw.decode())
    except ValueError:
        return
    _refuse(value)


def parse_json(raw: bytes) -> Any:
    """The body's JSON; `json.JSONDecodeError` when it is not JSON (or not UTF-8), and
    `ValidationFailed` naming the field when it holds a number JSON cannot carry."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise json.JSONDecodeError(f"not UTF-8 ({exc.reason})", "", exc.start) from None
    if not _may_hold_one(raw):
        return json.loads(text)
    value = _checking.decode(text)
    _refuse(value)
    return value
