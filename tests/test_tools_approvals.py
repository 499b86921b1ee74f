"""A tool that asks first pauses its run until the owner approves or denies the call; the
pause lives in the database, so it survives the driver going away (a restart), and it
expires with a clear message. A Stop reaches a call under way."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from assistants_app import runs, services
from assistants_app.exceptions import NotFound
from assistants_app.models import Run
from assistants_app.tool_models import ToolStep

from .mcp_servers import http_server
from .test_tools_bounds import ask, finished, web_server
from .tool_fixtures import simulated_provider  # noqa: F401

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("simulated_provider"),
]


@pytest.fixture(scope="module")
def web_url():
    with http_server() as url:
        yield url


async def step_in_state(run, state: str, timeout: float = 10) -> ToolStep:
    async with asyncio.timeout(timeout):
        while True:
            step = await ToolStep.objects.filter(run=run, state=state).afirst()
            if step is not None:
                return step
            await asyncio.sleep(0.05)


async def test_an_approved_call_runs_and_its_result_is_used(alice, bob, web_url):
    await web_server(web_url)
    run = await ask(alice, "web__echo approved words", "web__echo", asks_first=True)
    driving = asyncio.create_task(finished(run))
    waiting = await step_in_state(run, "awaiting_approval")
    assert (await ToolStep.objects.aget(pk=waiting.pk)).output == ""  # nothing ran yet
    with pytest.raises(NotFound):  # bob cannot approve alice's call
        await services.decide_tool_call(bob, run.thread_id, waiting.pk, True)
    await services.decide_tool_call(alice, run.thread_id, waiting.pk, True)
    run, reply, [step] = await asyncio.wait_for(driving, 20)
    assert run.status == "completed" and step.state == "done"
    assert "`web__echo` answered: echo: approved words" in reply


async def test_a_denied_call_does_not_run_and_the_model_hears_so(alice, web_url):
    await web_server(web_url)
    run = await ask(alice, "web__echo secret", "web__echo", asks_first=True)
    driving = asyncio.create_task(finished(run))
    waiting = await step_in_state(run, "awaiting_approval")
    await services.decide_tool_call(alice, run.thread_id, waiting.pk, False)
    # A second decision (another tab) changes nothing.
    await services.decide_tool_call(alice, run.thread_id, waiting.pk, True)
    run, reply, [step] = await asyncio.wait_for(driving, 20)
    assert run.status == "completed" and step.state == "denied"
    assert "The user declined to run this tool" in reply
    assert "echo: secret" not in reply


async def test_an_unanswered_approval_expires_with_a_clear_message(alice, web_url, settings):
    settings.TOOL_APPROVAL_SECONDS = 1
    await web_server(web_url)
    run = await ask(alice, "web__echo late", "web__echo", asks_first=True)
    run, reply, [step] = await asyncio.wait_for(finished(run), 20)
    assert run.status == "completed" and step.state == "expired"
    assert step.error == "Not approved in time."
    assert "did not answer the request to run this tool in time" in reply
    # Approving after the expiry changes nothing.
    late = await services.decide_tool_call(alice, run.thread_id, step.pk, True)
    assert late.state == "expired"


async def test_the_pause_survives_the_driver_going_away(alice, web_url):
    await web_server(web_url)
    run = await ask(alice, "web__echo after restart", "web__echo", asks_first=True)
    first = runs.ensure_driving(run.pk)
    waiting = await step_in_state(run, "awaiting_approval")
    await runs.stop_driving()  # as a process that stops: its driver ends, its lease is freed
    assert first.done()
    await services.decide_tool_call(alice, run.thread_id, waiting.pk, True)
    # Another driver (another process, after the restart) takes the run up from the database.
    run, reply, steps = await asyncio.wait_for(finished(run), 20)
    assert run.status == "completed"
    assert [(s.call_id, s.state) for s in steps] == [(waiting.call_id, "done")]  # once
    assert "`web__echo` answered: echo: after restart" in reply


async def test_stop_reaches_a_call_under_way(alice, web_url, settings):
    settings.TOOL_CALL_SECONDS = 60
    await web_server(web_url)
    run = await ask(alice, 'web__sleep {"seconds": 30}', "web__sleep")
    driving = asyncio.create_task(finished(run))
    await step_in_state(run, "running")
    thread = await sync_to_async(
        lambda: type(run.thread).objects.select_related("assistant").get(pk=run.thread_id)
    )()
    await services.cancel_run(alice, thread)
    run, reply, [step] = await asyncio.wait_for(driving, 5)  # not after the 30 s
    assert run.status == "cancelled"
    assert step.state == "error" and step.error == "Stopped."


async def test_stop_while_waiting_for_approval_ends_the_run(alice, web_url):
    await web_server(web_url)
    run = await ask(alice, "web__echo never", "web__echo", asks_first=True)
    driving = asyncio.create_task(finished(run))
    await step_in_state(run, "awaiting_approval")
    thread = await sync_to_async(
        lambda: type(run.thread).objects.select_related("assistant").get(pk=run.thread_id)
    )()
    await services.cancel_run(alice, thread)
    run, reply, [step] = await asyncio.wait_for(driving, 5)
    assert run.status == "cancelled"
    assert (step.state, step.error) == ("error", "Stopped.")  # no buttons left on the page


async def test_a_run_ended_elsewhere_stops_waiting_and_runs_nothing(alice, web_url):
    # As when a provider reports the run cancelled (the Assistants API's cancel does).
    await web_server(web_url)
    run = await ask(alice, "web__echo never", "web__echo", asks_first=True)
    driving = asyncio.create_task(finished(run))
    await step_in_state(run, "awaiting_approval")
    await Run.objects.filter(pk=run.pk).aupdate(status="cancelled")
    run, reply, [step] = await asyncio.wait_for(driving, 5)
    assert run.status == "cancelled" and reply == ""
    assert (step.state, step.error) == ("error", "Stopped.")
