"""AXME's inbox with the official SDK against a real daemon: an intent sent with `reply_to`
has its completion delivered to a thread in that inbox (`completion_delivery` on resolve),
and the inbox's owner lists, reads, replies, delegates, deletes replies and follows the
changes feed, as `AxmeClient` calls them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from axme_sdk import AxmeClient
from axme_sdk.exceptions import AxmeAuthError, AxmeHttpError, AxmeValidationError

from tests.daemon import Daemon, wait_for
from tests.integration.test_sdk_platform import (
    Listener,
    client,
    daemon,
    local_key,
    make_key,
    url,
)

__all__ = ["daemon", "local_key", "url"]  # module fixtures shared with test_sdk_platform


@pytest.fixture
def sdk(url: str, local_key: str) -> Iterator[AxmeClient]:
    with client(url, local_key) as c:
        yield c


def inbox_of(name: str) -> str:
    return f"agent://{name}-{uuid.uuid4().hex[:8]}/inbox"


def send(sdk: AxmeClient, reply_to: str | None, **extra: Any) -> str:
    body: dict[str, Any] = {
        "intent_type": "intent.inbox.v1",
        "to_agent": f"agent://inbox/dev/{uuid.uuid4().hex[:8]}",
        "from_agent": "agent://me/dev/initiator",
        "payload": {"ask": "report"},
        **extra,
    }
    if reply_to is not None:
        body["reply_to"] = reply_to
    return sdk.send_intent(body)


def threads(sdk: AxmeClient, owner: str) -> dict[str, dict[str, Any]]:
    return {t["thread_id"]: t for t in sdk.list_inbox(owner_agent=owner)["threads"]}


def test_a_resolved_intent_is_delivered_to_its_reply_to_inbox(sdk: AxmeClient) -> None:
    mine = inbox_of("me")
    intent_id = send(sdk, mine)
    pending = threads(sdk, mine)[intent_id]
    assert (pending["status"], pending["owner_agent"]) == ("pending", mine)
    assert pending["from_agent"] == "agent://me/dev/initiator"
    assert [e["event_type"] for e in pending["timeline"]] == ["message.sent"]

    answer = sdk.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"rows": 7}})
    delivery = answer["completion_delivery"]
    assert delivery["delivered"] is True and delivery["thread_id"] == intent_id
    assert delivery["reply_to"] == mine and delivery["message_id"]
    assert delivery["completion"] == {"status": "COMPLETED", "result": {"rows": 7}}

    done = sdk.get_inbox_thread(intent_id, owner_agent=mine)["thread"]
    assert done["status"] == "done" and done["completion"]["result"] == {"rows": 7}
    assert [e["event_type"] for e in done["timeline"]] == [
        "message.sent",
        "intent_completion_delivered",
    ]
    assert [m["role"] for m in done["messages"]] == ["initiator", "agent"]
    assert intent_id not in threads(sdk, inbox_of("someone-else"))  # the owner is honoured
    bare = mine.removeprefix("agent://")  # a bare owner is the same inbox
    assert intent_id in threads(sdk, bare)

    plain = send(sdk, None)
    assert sdk.resolve_intent(plain, {"status": "CANCELED", "reason": "x"})[
        "completion_delivery"
    ] == {"delivered": False, "reason": "no_reply_to"}


def test_an_agents_outcome_reaches_the_inbox_too(sdk: AxmeClient, url: str, local_key: str) -> None:
    mine = inbox_of("me")
    agent = f"inbox/dev/{uuid.uuid4().hex[:8]}"
    listener = Listener(url, local_key, agent)
    try:
        intent_id = sdk.send_intent(
            {"intent_type": "intent.inbox.v1", "to_agent": agent, "reply_to": mine}
        )
        listener.first()
        sdk.resume_intent(intent_id, {"action": "fail", "reason": "no data"})
    finally:
        listener.close()
    thread = wait_for(lambda: threads(sdk, mine).get(intent_id, {}).get("completion"))
    assert thread["status"] == "FAILED" and thread["error"]["message"] == "no data"


def test_reply_delegate_delete_and_the_changes_feed(sdk: AxmeClient) -> None:
    mine, boss = inbox_of("me"), inbox_of("boss")
    intent_id = send(sdk, mine)
    sdk.resolve_intent(intent_id, {"status": "COMPLETED", "result": {"ok": True}})
    first = sdk.list_inbox_changes(owner_agent=mine)
    assert [c["thread"]["thread_id"] for c in first["changes"]] == [intent_id, intent_id]
    assert first["has_more"] is False

    replied = sdk.reply_inbox_thread(intent_id, message="thanks", owner_agent=mine)["thread"]
    reply = replied["messages"][-1]
    assert (reply["role"], reply["content"]) == ("owner", "thanks")
    moved = sdk.delegate_inbox_thread(
        intent_id, {"delegate_to": boss, "note": "fyi"}, owner_agent=mine
    )["thread"]
    assert moved["owner_agent"] == boss
    assert intent_id not in threads(sdk, mine) and intent_id in threads(sdk, boss)
    with pytest.raises(AxmeHttpError) as gone:  # no longer in my inbox
        sdk.reply_inbox_thread(intent_id, message="again", owner_agent=mine)
    assert gone.value.status_code == 404

    deleted = sdk.delete_inbox_messages(intent_id, {"mode": "both", "limit": 1}, owner_agent=boss)
    assert deleted["deleted_count"] == 1 and deleted["message_ids"] == [reply["message_id"]]
    assert "thanks" not in [m["content"] for m in deleted["thread"]["messages"]]
    assert deleted["thread"]["timeline"][-1]["event_type"] == "messages.deleted"

    feed = sdk.list_inbox_changes(owner_agent=boss, cursor=first["next_cursor"], limit=1)
    assert feed["has_more"] is True and len(feed["changes"]) == 1
    rest = sdk.list_inbox_changes(owner_agent=boss, cursor=feed["next_cursor"])
    assert rest["has_more"] is False and len(rest["changes"]) == 1
    assert sdk.list_inbox_changes(owner_agent=boss, cursor=rest["next_cursor"])["changes"] == []


def test_bad_inbox_requests_change_nothing(daemon: Daemon, sdk: AxmeClient) -> None:
    mine = inbox_of("me")
    intent_id = send(sdk, mine)
    sdk.reply_inbox_thread(intent_id, message="kept")
    before = sdk.get_inbox_thread(intent_id)["thread"]
    gate = sdk.send_intent(
        {"intent_type": "intent.gate.v1", "to_agent": "human", "human_task": {"title": "Go?"}}
    )
    task_thread = next(
        t for t in sdk.list_inbox()["threads"] if t.get("kind") == "task" and t["intent_id"] == gate
    )
    bad: list[tuple[Any, int, str]] = [
        (lambda: sdk.reply_inbox_thread(intent_id, message=""), 422, "message"),
        (lambda: sdk.reply_inbox_thread(str(uuid.uuid4()), message="x"), 404, "no inbox thread"),
        (lambda: sdk.reply_inbox_thread(task_thread["thread_id"], message="x"), 409, "task"),
        (lambda: sdk.delegate_inbox_thread(intent_id, {"delegate_to": "a b"}), 400, "delegate_to"),
        (lambda: sdk.delegate_inbox_thread(intent_id, {"delegate_to": mine}), 400, "already"),
        (
            lambda: sdk.delete_inbox_messages(intent_id, {"limit": 1, "message_ids": ["x"]}),
            422,
            "either",
        ),
        (lambda: sdk.delete_inbox_messages(intent_id, {"message_ids": ["nope"]}), 400, "nope"),
        (lambda: sdk.list_inbox(owner_agent="not an address"), 400, "owner_agent"),
        (lambda: sdk.list_inbox_changes(cursor="abc"), 422, "cursor"),
        (
            lambda: sdk.send_intent({"intent_type": "t.v1", "to_agent": "a", "reply_to": "a b"}),
            422,
            "reply_to",
        ),
    ]
    for call, status, says in bad:
        with pytest.raises((AxmeHttpError, AxmeValidationError)) as info:
            call()
        assert info.value.status_code == status and says in str(info.value), (status, says)
    assert sdk.get_inbox_thread(intent_id)["thread"] == before


def test_an_agents_key_uses_its_own_inbox_only(daemon: Daemon, sdk: AxmeClient, url: str) -> None:
    mine = inbox_of("agent")
    intent_id = send(sdk, mine)
    with client(url, make_key(daemon, f"agent:{mine}")) as me:
        assert intent_id in {t["thread_id"] for t in me.list_inbox(owner_agent=mine)["threads"]}
        me.reply_inbox_thread(intent_id, message="seen", owner_agent=mine)
        assert (
            me.get_inbox_thread(intent_id, owner_agent=mine)["thread"]["messages"][-1]["content"]
            == "seen"
        )
        for call in (
            lambda: me.list_inbox(),
            lambda: me.list_inbox(owner_agent=inbox_of("other")),
            lambda: me.reply_inbox_thread(intent_id, message="x"),
        ):
            with pytest.raises(AxmeAuthError):
                call()
    other = send(sdk, inbox_of("other"))
    with client(url, make_key(daemon, f"agent:{mine}")) as me, pytest.raises(AxmeHttpError) as info:
        me.reply_inbox_thread(other, message="not mine", owner_agent=mine)
    assert info.value.status_code == 404
