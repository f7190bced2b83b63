"""Each screen as pixels, at 80x24 and at 160x48, from recorded data and a fixed clock.

Update after a deliberate change with `pytest tests/tui --snapshot-update`, and look at the
report before committing the new SVGs.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from axme_cli.tui.app import AxmeApp
from tests.tui.recorded import NOW, RecordedSource

SIZES = [(80, 24), (160, 48)]


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Timeline clocks print in local time: pin it."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _app(mode: str) -> AxmeApp:
    return AxmeApp(
        RecordedSource(), start_mode=mode, clock=lambda: NOW, where="/home/ops/.axme/run/axme.sock"
    )


async def _settle(pilot: Pilot[Any]) -> None:
    await pilot.pause(0.3)
    await pilot.wait_for_scheduled_animations()
    # A blinking cursor is drawn or not by the time the picture is taken: on a busy machine
    # a form's snapshot came out either way. Held still, it is always drawn.
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()  # and drawn so


def _keys(*keys: str) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def run(pilot: Pilot[Any]) -> None:
        await _settle(pilot)
        for key in keys:
            await pilot.press(key)
            await _settle(pilot)

    return run


SCREENS = {
    "inbox": ("inbox", ()),
    "task": ("inbox", ("enter",)),
    "decision_form": ("inbox", ("down", "a")),
    "intents": ("intents", ()),
    "intent": ("intents", ("enter",)),
    # The intent the inbox's first task belongs to (found by its id): `a`/`r` decide here too.
    "intent_waiting": ("intents", ("slash", *"6a1f1d11", "enter", "enter")),
    "intent_failed": ("intents", ("slash", *"6a1f3f33", "enter", "enter")),
    "agents": ("agents", ()),
    "help": ("intents", ("question_mark",)),
}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare: Any, screen: str, size: tuple[int, int]) -> None:
    mode, keys = SCREENS[screen]
    assert snap_compare(_app(mode), terminal_size=size, run_before=_keys(*keys))
