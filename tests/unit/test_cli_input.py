"""Parsing what users type: durations and payloads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from axme_cli.commands.common import parse_duration, read_payload
from axme_cli.errors import BadInput


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30), ("30s", 30), ("5m", 300), ("1.5h", 5400), ("250ms", 0.25), ("2d", 172800)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "-1s", "0", "1y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_duration(text)
    assert "--timeout" in info.value.message


def test_payload_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert read_payload(None) == {}
    assert read_payload('{"a": 1}') == {"a": 1}
    f = tmp_path / "p.json"
    f.write_text('{"from": "file"}')
    assert read_payload(f"@{f}") == {"from": "file"}
    monkeypatch.setattr("sys.stdin", io.StringIO('{"from": "stdin"}'))
    assert read_payload("-") == {"from": "stdin"}


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("{bad", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('"text"', "must be a JSON object"),
        ("@/nonexistent/payload.json", "file not found: /nonexistent/payload.json"),
    ],
)
def test_bad_payloads(spec: str, says: str) -> None:
    with pytest.raises(BadInput) as info:
        read_payload(spec)
    assert says in info.value.message


@pytest.mark.parametrize("text", ["367d", "99999999999h", 1e308, float("nan"), float("inf")])
def test_durations_past_366_days_or_not_finite_are_refused(text: str | float) -> None:
    with pytest.raises(BadInput) as info:
        parse_duration(text)
    assert "--timeout: must be" in info.value.message
