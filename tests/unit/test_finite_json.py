"""Numbers JSON cannot carry are refused with their path; everything else reads as before."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from axme_cli.errors import ValidationFailed
from axme_daemon.finite_json import _may_hold_one, parse_json, refuse_not_finite


@pytest.mark.parametrize(
    ("body", "where", "shown"),
    [
        ('{"a": NaN}', "a", "NaN"),
        ('{"a": [1, {"b": -Infinity}]}', "a.1.b", "-Infinity"),
        ('{"a":\n\t1E+400}', "a", "1E+400"),
        ('{"a": -12345e306}', "a", "-12345e306"),
        ('{"a": 1e0400}', "a", "1e0400"),
        ("[0, " + "9" * 400 + ".5]", "1", "99999999999999999999..."),
        ('{"a": ' + "7" * 5000 + "}", "a", "(5000 characters)"),
        ("1e999", "request body", "1e999"),
    ],
)
def test_numbers_json_cannot_carry_are_refused_naming_the_path(
    body: str, where: str, shown: str
) -> None:
    for check in (refuse_not_finite, parse_json):
        with pytest.raises(ValidationFailed) as info:
            check(body.encode())
        assert info.value.message.startswith(f"{where}: ")
        assert shown in info.value.message
        assert "not a finite JSON number" in info.value.message


@pytest.mark.parametrize(
    "value",
    [
        {"big": 1.7976931348623157e308, "small": -1e-400, "int": 10**4299},
        {"words": "NaN, Infinity, 1e400: " + "1" * 200, "e": "3e456"},
        [1e300, 123e-456, 0.5],
    ],
)
def test_finite_numbers_and_look_alikes_in_strings_read_as_before(value: Any) -> None:
    raw = json.dumps(value).encode()
    refuse_not_finite(raw)
    assert parse_json(raw) == json.loads(raw)


def test_bodies_full_of_uuids_skip_the_second_parse() -> None:
    """A uuid may hold `3e456`: not a number, so no check (a worker's report names many)."""
    ids = ["12345678-1234-4321-8000-3e4567890123", "0e123456-ab3e-4567-9e12-3456789abcde"]
    ids += [str(uuid.uuid4()) for _ in range(100)]
    raw = json.dumps({"reports": [{"intent_id": i, "result": {"n": 1.5}} for i in ids]})
    assert not _may_hold_one(raw.encode())


def test_what_is_not_json_is_left_to_the_parser_that_follows() -> None:
    refuse_not_finite(b'{"a": NaN')  # not JSON: no opinion
    with pytest.raises(json.JSONDecodeError):
        parse_json(b'{"a": NaN')
    with pytest.raises(json.JSONDecodeError, match="UTF-8"):
        parse_json(b'{"a": "\xff"}')
