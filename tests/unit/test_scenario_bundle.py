"""What a ScenarioBundle compiles to, and the warnings that let it run anyway."""

from __future__ import annotations

import copy

from axme_daemon.scenarios import check_bundle
from tests.integration.test_scenarios_api import GOOD_BUNDLE


def test_a_good_bundle_compiles_to_steps_by_index() -> None:
    bundle = copy.deepcopy(GOOD_BUNDLE)
    bundle["workflow"]["steps"][0].update(
        retry={"max_retries": 2}, on_failure="sign", step_deadline_seconds=30
    )
    checked = check_bundle(bundle)
    assert checked.errors == [] and checked.warnings == []
    check, sign = checked.plan["steps"]
    assert check == {
        "step_id": "check",
        "tool_id": "tool.agent.task.v1",
        "role": "checker",
        "kind": "agent",
        "address": "agent://checker",
        "retry": {"max_retries": 2, "retry_delay_seconds": 30.0},
        "on_failure": 1,
        "deadline_seconds": 30.0,
    }
    assert sign["kind"] == "human" and sign["task"]["assignees"] == ["ops"]
    assert checked.plan["entry"] == 0
    assert checked.plan["compile_id"] == check_bundle(bundle).plan["compile_id"]


def test_what_runs_but_looks_wrong_is_a_warning() -> None:
    bundle = copy.deepcopy(GOOD_BUNDLE)
    bundle["extra"] = 1
    bundle["humans"].append({"role": "idle"})
    bundle["workflow"]["steps"][1]["requires_approval"] = False
    bundle["intent"]["human_task"] = {"title": "ignored"}
    checked = check_bundle(bundle)
    assert checked.errors == []
    said = "\n".join(checked.warnings)
    for word in ("extra", "'idle'", "requires_approval", "intent.human_task"):
        assert word in said, said


def test_a_sign_off_deadline_ends_timed_out_unless_the_task_says_otherwise() -> None:
    bundle = copy.deepcopy(GOOD_BUNDLE)
    bundle["workflow"]["steps"][1].update(step_deadline_seconds=60, remind_after_seconds=10)
    sign = check_bundle(bundle).plan["steps"][1]
    assert sign["task"]["deadline_seconds"] == 60 and sign["task"]["on_timeout"] == "fail"
    assert sign["task"]["remind_after_seconds"] == 10
