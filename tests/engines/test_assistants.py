"""The Assistants API engine through the run driver, with the provider mocked at the wire."""

import asyncio
import json

import httpx
import pytest

from assistants_app import runs, services
from assistants_app.engines.assistants import AssistantsEngine
from assistants_app.models import Assistant, EngineKind, Message, Run, RunStatus, Thread
from tests.assistants_api import (
    completed_run,
    message_list,
    provider,
    received,
    remote_message,
    remote_run,
    requires_action,
    sent,
    started_run,
    statuses,
    subscribe,
    tool_call,
)

pytestmark = pytest.mark.django_db(transaction=True)

RUN_URL = "/threads/thread_1/runs/run_1"
MESSAGES_URL = "/threads/thread_1/messages"


@pytest.fixture
def classic(db):
    return Assistant.objects.create(
        name="Classic",
        description="The classic flow",
        instructions="Answer briefly.",
        model="gpt-test",
        engine=EngineKind.ASSISTANTS,
        provider="test",
        tools=["current_datetime"],
    )


@pytest.fixture
def thread(alice, classic):
    return Thread.objects.create(owner=alice, assistant=classic)


@pytest.fixture
def run(classic, thread):
    classic.remote_id = "asst_1"
    classic.save()
    return started_run(thread)


def answer(mock, *messages):
    return mock.get(MESSAGES_URL).respond(json=message_list(*messages))


# --- Starting -------------------------------------------------------------------------


async def test_it_creates_the_assistant_thread_message_and_run_on_first_use(alice, thread):
    remote_assistant = {"id": "asst_1", "object": "assistant", "created_at": 1, "model": "gpt-test",
                        "tools": [], "name": "Classic"}  # fmt: skip
    remote_thread = {"id": "thread_1", "object": "thread", "created_at": 1, "metadata": {}}
    with provider() as mock:
        create_assistant = mock.post("/assistants").respond(json=remote_assistant)
        create_thread = mock.post("/threads").respond(json=remote_thread)
        add_message = mock.post(MESSAGES_URL).respond(
            json=remote_message("Hello", "msg_u1", role="user")
        )
        create_run = mock.post("/threads/thread_1/runs").respond(json=remote_run())
        message, run = await services.submit_message(alice, thread, "Hello")

    assert create_assistant.calls[0].request.headers["openai-beta"] == "assistants=v2"
    assistant_sent = sent(create_assistant)
    assert assistant_sent["name"] == "Classic"
    assert assistant_sent["instructions"] == "Answer briefly."
    assert assistant_sent["model"] == "gpt-test"
    assert [t["function"]["name"] for t in assistant_sent["tools"]] == ["current_datetime"]
    assert sent(create_thread)["metadata"] == {"thread_id": str(thread.pk)}
    assert sent(add_message) == {"role": "user", "content": "Hello"}
    run_sent = sent(create_run)
    assert run_sent["assistant_id"] == "asst_1"
    assert run_sent["instructions"] == "Answer briefly."  # our database holds the truth
    assert run_sent["tools"][0]["function"]["name"] == "current_datetime"

    assert (await Assistant.objects.aget(pk=thread.assistant_id)).remote_id == "asst_1"
    assert (await Thread.objects.aget(pk=thread.pk)).remote_id == "thread_1"
    assert (await Message.objects.aget(pk=message.pk)).remote_id == "msg_u1"
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.remote_id, stored.status) == ("run_1", "queued")


async def test_it_reuses_the_remote_assistant_and_thread(alice, classic, thread):
    classic.remote_id = "asst_1"
    await classic.asave()
    thread.remote_id = "thread_1"
    await thread.asave()
    with provider() as mock:  # strict: creating an assistant or thread would fail the test
        mock.post(MESSAGES_URL).respond(json=remote_message("Hi", "msg_u2", role="user"))
        mock.post("/threads/thread_1/runs").respond(json=remote_run())
        _, run = await services.submit_message(alice, thread, "Hi")
    assert run.remote_id == "run_1"


async def test_a_run_stopped_while_it_was_starting_is_cancelled_on_the_provider_too(
    alice, classic, thread, monkeypatch
):
    classic.remote_id = "asst_1"
    await classic.asave()
    thread.remote_id = "thread_1"
    await thread.asave()
    start_run = AssistantsEngine.start_run

    async def start_while_alice_stops(engine, run, message):
        update = await start_run(engine, run, message)
        await services.cancel_run(alice, thread)  # before the provider's run id is stored
        return update

    monkeypatch.setattr(AssistantsEngine, "start_run", start_while_alice_stops)
    with provider() as mock:
        mock.post(MESSAGES_URL).respond(json=remote_message("Hi", "msg_u2", role="user"))
        mock.post("/threads/thread_1/runs").respond(json=remote_run())
        cancel = mock.post(f"{RUN_URL}/cancel").respond(json=remote_run("cancelling"))
        _, run = await services.submit_message(alice, thread, "Hi")

    assert cancel.called  # no run left going on the provider with nobody watching it
    await run.arefresh_from_db()
    assert (run.status, run.lease_owner) == (RunStatus.CANCELLED, "")


async def test_it_fails_the_run_and_keeps_the_message_when_the_provider_refuses(alice, thread):
    body = {"error": {"message": "Invalid model.", "type": "invalid_request_error",
                      "code": "model_not_found"}}  # fmt: skip
    with provider() as mock:
        mock.post("/assistants").respond(400, json=body)
        message, run = await services.submit_message(alice, thread, "Hello")
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.error_code) == ("failed", "model_not_found")
    assert await Message.objects.filter(pk=message.pk).aexists()


# --- Every status, as the provider reports it -----------------------------------------


async def test_it_completes_a_run_and_stores_its_answer(run):
    channel = await subscribe(run.thread)
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[
                httpx.Response(200, json=remote_run("queued")),
                httpx.Response(200, json=remote_run("in_progress")),
                httpx.Response(200, json=completed_run()),
            ]
        )
        listing = answer(mock, remote_message("Hi **there**"))
        await runs.drive(run.pk)

    assert dict(listing.calls[0].request.url.params) == {
        "run_id": "run_1", "order": "asc", "limit": "100",
    }  # fmt: skip
    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.total_tokens, stored.output_tokens) == ("completed", 17, 5)
    answers = [m async for m in Message.objects.filter(run=stored, role="assistant")]
    assert [(m.text, m.remote_id) for m in answers] == [("Hi **there**", "msg_a1")]
    events = await received(channel)
    assert statuses(events) == ["in_progress", "completed"]
    assert [e["message"]["html"] for e in events if e["type"] == "message.created"] == [
        "<p>Hi <strong>there</strong></p>\n"
    ]


@pytest.mark.parametrize(
    ("remote", "code", "message"),
    [
        (
            remote_run("failed", last_error={"code": "rate_limit_exceeded",
                                             "message": "You exceeded your current quota."}),
            "rate_limit_exceeded",
            "You exceeded your current quota.",
        ),
        (remote_run("expired"), "expired", "The run expired on the provider before it finished."),
        (remote_run("cancelled"), "", ""),
    ],
)  # fmt: skip
async def test_it_ends_the_run_as_the_provider_reports(run, remote, code, message):
    channel = await subscribe(run.thread)
    with provider() as mock:
        mock.get(RUN_URL).respond(json=remote)
        await runs.drive(run.pk)

    stored = await Run.objects.aget(pk=run.pk)
    assert (stored.status, stored.error_code, stored.error_message) == (
        remote["status"], code, message,
    )  # fmt: skip
    assert stored.finished_at is not None
    [event] = [e for e in await received(channel) if e["type"] == "run.status"]
    assert event["run"]["error_message"] == message  # what the page shows the user
    assert not await Message.objects.filter(role="assistant").aexists()


async def test_it_keeps_the_partial_answer_of_an_incomplete_run(run):
    details = {"reason": "max_completion_tokens"}
    with provider() as mock:
        mock.get(RUN_URL).respond(json=remote_run("incomplete", incomplete_details=details))
        answer(mock, remote_message("The beginning of"))
        await runs.drive(run.pk)

    stored = await Run.objects.aget(pk=run.pk)
    assert stored.status == "incomplete"
    assert stored.error_message == "The answer was cut short (max_completion_tokens)."
    assert await Message.objects.filter(run=stored, text="The beginning of").aexists()


async def test_it_shows_each_status_while_it_holds(run):
    channel = await subscribe(run.thread)
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[
                httpx.Response(200, json=remote_run(status))
                for status in ["queued", "in_progress", "in_progress", "cancelling", "cancelled"]
            ]
        )
        await runs.drive(run.pk)
    assert statuses(await received(channel)) == ["in_progress", "cancelling", "cancelled"]


async def test_it_stores_an_answer_once_when_a_second_driver_sees_it_again(run):
    # A first driver stored the answer and died before the run was marked completed.
    await Message.objects.acreate(
        thread=run.thread, role="assistant", text="Hi", remote_id="msg_a1", run=run
    )
    with provider() as mock:
        mock.get(RUN_URL).respond(json=completed_run())
        answer(mock, remote_message("Hi"))
        await runs.drive(run.pk)
    assert await Message.objects.filter(role="assistant").acount() == 1
    assert (await Run.objects.aget(pk=run.pk)).status == "completed"


# --- Polling that respects the provider -----------------------------------------------


@pytest.fixture
def sleeps(monkeypatch):
    """The delays the driver waits between polls (without waiting them)."""
    delays, real_sleep = [], asyncio.sleep

    async def sleep(delay):
        delays.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return delays


async def test_it_waits_as_long_as_the_provider_asks(run, sleeps):
    paced = {"openai-poll-after-ms": "1500"}
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[
                httpx.Response(200, json=remote_run("in_progress"), headers=paced),
                httpx.Response(200, json=remote_run("in_progress"), headers=paced),
                httpx.Response(200, json=completed_run()),
            ]
        )
        answer(mock, remote_message("Hi"))
        await runs.drive(run.pk)
    assert sleeps == [1.5, 1.5]


async def test_it_backs_off_when_the_provider_sets_no_pace(run, sleeps, settings):
    settings.RUN_POLL_FIRST_SECONDS, settings.RUN_POLL_MAX_SECONDS = 0.01, 0.05
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[httpx.Response(200, json=remote_run("in_progress"))] * 4
            + [httpx.Response(200, json=completed_run())]
        )
        answer(mock, remote_message("Hi"))
        await runs.drive(run.pk)
    assert sleeps == [0.01, 0.02, 0.04, 0.05]


# --- Function tools (requires_action) --------------------------------------------------


def submitted_outputs(route) -> list[dict]:
    return sent(route)["tool_outputs"]


async def test_it_runs_a_requested_tool_and_submits_its_output(run):
    channel = await subscribe(run.thread)
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[
                httpx.Response(200, json=requires_action(tool_call("current_datetime"))),
                httpx.Response(200, json=completed_run()),
            ]
        )
        submit = mock.post(f"{RUN_URL}/submit_tool_outputs").respond(json=remote_run("queued"))
        answer(mock, remote_message("It is Monday."))
        await runs.drive(run.pk)

    [output] = submitted_outputs(submit)
    assert output["tool_call_id"] == "call_1"
    assert set(json.loads(output["output"])) == {"datetime", "timezone", "weekday"}
    assert statuses(await received(channel)) == [
        "requires_action", "queued", "completed",
    ]  # fmt: skip
    assert (await Run.objects.aget(pk=run.pk)).status == "completed"


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ('{"timezone": "Mars/Olympus_Mons"}',
         '{"error": "ValueError: Unknown time zone \'Mars/Olympus_Mons\'."}'),
        ("{not json", "Error: the arguments must be a JSON object."),
    ],
)  # fmt: skip
async def test_it_answers_a_failing_tool_with_an_error_output(run, arguments, error):
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[
                httpx.Response(200, json=requires_action(tool_call("current_datetime", arguments))),
                httpx.Response(200, json=completed_run()),
            ]
        )
        submit = mock.post(f"{RUN_URL}/submit_tool_outputs").respond(json=remote_run("queued"))
        answer(mock, remote_message("Sorry, that time zone does not exist."))
        await runs.drive(run.pk)

    [output] = submitted_outputs(submit)
    assert output["output"] == error
    assert (await Run.objects.aget(pk=run.pk)).status == "completed"


@pytest.mark.parametrize("name", ["delete_everything", "search_my_messages"])
async def test_it_tells_the_model_when_it_asks_for_a_tool_the_assistant_lacks(run, name):
    # search_my_messages is registered, but not enabled on this assistant. The model hears
    # so as the tool's output and answers; the run is not failed for it.
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[
                httpx.Response(200, json=requires_action(tool_call(name, '{"query": "x"}'))),
                httpx.Response(200, json=completed_run()),
            ]
        )
        submit = mock.post(f"{RUN_URL}/submit_tool_outputs").respond(json=remote_run("queued"))
        answer(mock, remote_message("I cannot do that here."))
        await runs.drive(run.pk)

    [output] = submitted_outputs(submit)
    assert output["output"] == f"Error: no tool named {name!r} is available to this assistant."
    assert (await Run.objects.aget(pk=run.pk)).status == "completed"


async def test_it_runs_the_tools_again_when_submitting_their_outputs_failed_for_now(run):
    ask = requires_action(tool_call("current_datetime"))
    with provider() as mock:
        mock.get(RUN_URL).mock(
            side_effect=[
                httpx.Response(200, json=ask),
                httpx.Response(200, json=ask),  # the first submission did not arrive
                httpx.Response(200, json=completed_run()),
            ]
        )
        submit = mock.post(f"{RUN_URL}/submit_tool_outputs").mock(
            side_effect=[
                httpx.Response(500, json={"error": {"message": "Oops", "type": "server_error"}}),
                httpx.Response(200, json=remote_run("queued")),
            ]
        )
        answer(mock, remote_message("It is Monday."))
        await runs.drive(run.pk)
    assert submit.call_count == 2
    assert (await Run.objects.aget(pk=run.pk)).status == "completed"
