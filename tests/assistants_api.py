"""Assistants API (v2) payloads shaped like OpenAI's, and helpers to watch a thread's events.

Ids are fixed (asst_1, thread_1, run_1) so tests read like the wire they mock.
"""

import asyncio
import json

import respx
from channels.layers import get_channel_layer

from assistants_app.models import Message, Run, RunStatus
from tests.conftest import PROVIDER_URL


def provider() -> respx.MockRouter:
    """The test provider's HTTP, mocked strictly: an unexpected request fails the test."""
    return respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True)


def remote_run(status: str = "queued", **extra) -> dict:
    return {
        "id": "run_1",
        "object": "thread.run",
        "created_at": 1767225600,
        "assistant_id": "asst_1",
        "thread_id": "thread_1",
        "status": status,
        "started_at": None,
        "expires_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "required_action": None,
        "last_error": None,
        "incomplete_details": None,
        "model": "gpt-test",
        "instructions": "Answer briefly.",
        "tools": [],
        "metadata": {},
        "usage": None,
        "temperature": 1.0,
        "top_p": 1.0,
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "truncation_strategy": {"type": "auto", "last_messages": None},
        "response_format": "auto",
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        **extra,
    }


def completed_run() -> dict:
    usage = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
    return remote_run("completed", usage=usage, completed_at=1767225601)


def tool_call(name: str, arguments: str = "{}", call_id: str = "call_1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def requires_action(*calls: dict) -> dict:
    action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": list(calls)}}
    return remote_run("requires_action", required_action=action)


def remote_message(text: str, message_id: str = "msg_a1", role: str = "assistant") -> dict:
    return {
        "id": message_id,
        "object": "thread.message",
        "created_at": 1767225601,
        "thread_id": "thread_1",
        "role": role,
        "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
        "assistant_id": "asst_1" if role == "assistant" else None,
        "run_id": "run_1" if role == "assistant" else None,
        "attachments": [],
        "metadata": {},
        "status": "completed",
        "incomplete_details": None,
        "completed_at": 1767225601,
        "incomplete_at": None,
    }


def message_list(*messages: dict) -> dict:
    return {
        "object": "list",
        "data": list(messages),
        "first_id": messages[0]["id"] if messages else None,
        "last_id": messages[-1]["id"] if messages else None,
        "has_more": False,
    }


def sent(route, call: int = -1) -> dict:
    """The JSON body of a request a respx route received."""
    return json.loads(route.calls[call].request.content)


def started_run(thread, status: str = RunStatus.QUEUED) -> Run:
    """A run already started on the provider (remote ids set), as runs.start leaves it."""
    thread.remote_id = "thread_1"
    thread.save()
    prompt = Message.objects.create(
        thread=thread, role=Message.Role.USER, text="Hello", remote_id="msg_u1"
    )
    return Run.objects.create(thread=thread, prompt=prompt, status=status, remote_id="run_1")


async def subscribe(thread) -> str:
    """A channel in the thread's group, to see the events its sockets would get."""
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(thread.group_name, channel)
    return channel


async def received(channel: str) -> list[dict]:
    """Every event the channel has waiting."""
    layer, events = get_channel_layer(), []
    while True:
        try:
            events.append(await asyncio.wait_for(layer.receive(channel), 0.05))
        except TimeoutError:
            return events


def statuses(events: list[dict]) -> list[str]:
    return [event["run"]["status"] for event in events if event["type"] == "run.status"]
