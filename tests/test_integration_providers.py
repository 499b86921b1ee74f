"""Providers in the wild, through the real run driver and a real simulator process playing
each kind of server (assistants_app/simulator/app.py, "personas"): a stateless Responses
server (LiteLLM, Ollama), a Responses proxy whose streamed retrieve and cancel do nothing,
and llama.cpp's server (no usage, a small context it overflows with a 200 and a cut stream).
"""

import asyncio
import os
import subprocess
import sys

import pytest

from assistants_app import runs
from assistants_app.engines import capabilities
from assistants_app.models import Message, ProviderCapabilities, Run, RunStatus, Thread

from .conftest import make_assistant
from .live import ROOT, free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CONTEXT_TOKENS = 300  # the llamacpp persona's window, small so a thread outgrows it fast


@pytest.fixture(scope="module")
def simulator_url():
    port = free_port()
    env = {
        **os.environ,
        # Long enough that a capability check's cancel, sent right after its create, comes
        # before that tiny answer is done even on a busy machine (a cancel of a finished
        # answer would say nothing about cancelling).
        "SIMULATOR_LATENCY_SECONDS": "1.0",
        "SIMULATOR_TOKENS_PER_SECOND": "400",
        "SIMULATOR_CONTEXT_TOKENS": str(CONTEXT_TOKENS),
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "simulator", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()  # nothing to finish; a clean stop takes seconds on a busy machine
        process.wait()


@pytest.fixture
def personas(settings, simulator_url):
    """One provider per persona, none of them known yet: each run's engine finds out."""
    capabilities.forget()
    settings.ASSISTANT_PROVIDERS = {
        **settings.ASSISTANT_PROVIDERS,
        **{
            name: {"base_url": f"{simulator_url}/{name}/v1", "api_key": "x", "simulated": True}
            for name in ("stateless", "proxy", "llamacpp")
        },
        "plain": {"base_url": f"{simulator_url}/v1", "api_key": "x", "simulated": True},
    }


async def send(alice, assistant, text: str, thread: Thread | None = None) -> Run:
    """Post a message as the site does and drive its run to the end, as a socket would."""
    if thread is None:
        thread = await Thread.objects.acreate(owner=alice, assistant=assistant)
        thread.assistant = assistant
    prompt = await Message.objects.acreate(thread=thread, role="user", text=text)
    run = await Run.objects.acreate(thread=thread, prompt=prompt, **runs.starting_lease())
    run.thread = thread
    await runs.start(run, prompt)
    async with asyncio.timeout(30):
        await runs.ensure_driving(run.pk, standby=False)
        while not (await Run.objects.aget(pk=run.pk)).is_terminal:
            await runs.ensure_driving(run.pk, standby=False)
            await asyncio.sleep(0.1)
    return await Run.objects.select_related("thread__assistant").aget(pk=run.pk)


async def answers(run: Run) -> list[str]:
    return [m.text async for m in Message.objects.filter(run=run, role="assistant")]


async def test_a_stateless_responses_server_answers_from_the_history_we_keep(alice, personas):
    assistant = await make_assistant_async(provider="stateless", model="simulator")

    first = await send(alice, assistant, "Hello there")
    second = await send(alice, assistant, "And again", thread=first.thread)

    assert (first.status, second.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    [answer] = await answers(second)
    assert "“And again”. This is turn 2" in answer  # the first exchange went along as input
    known = await ProviderCapabilities.objects.aget(provider="stateless")
    assert (known.responses, known.conversations, known.background) == (True, False, False)
    assert known.previous_response_id is False
    assert any("/v1/conversations" in note for note in known.notes)
    await first.thread.arefresh_from_db()
    assert first.thread.remote_id == ""  # no conversation was made
    assert second.total_tokens and not second.usage_estimated


async def test_a_proxy_is_chained_and_polled_and_a_stop_it_ignores_still_stops(
    alice, personas, streaming
):
    assistant = await make_assistant_async(provider="proxy", model="simulator")

    first = await send(alice, assistant, "Hello there")
    second = await send(alice, assistant, "Once more", thread=first.thread)

    assert (first.status, second.status) == (RunStatus.COMPLETED, RunStatus.COMPLETED)
    # Chained: only the new message is sent, and the proxy finds the rest by the previous id.
    reply = (await answers(second))[0]
    assert "This is turn 2" in reply and "Before that you said: “Hello there”" in reply
    known = await ProviderCapabilities.objects.aget(provider="proxy")
    assert (known.conversations, known.background, known.previous_response_id) == (
        False, True, True,
    )  # fmt: skip
    assert (known.streamed_retrieve, known.cancel) == (False, False)

    # Stop: the proxy answers in_progress and goes on; the run is stopped here all the same,
    # and the answer the driver then sees completed is not stored.
    thread = first.thread
    prompt = await Message.objects.acreate(thread=thread, role="user", text="A long one")
    run = await Run.objects.acreate(thread=thread, prompt=prompt, **runs.starting_lease())
    run.thread = thread
    await runs.start(run, prompt)
    driving = runs.ensure_driving(run.pk, standby=False)
    await asyncio.sleep(0.1)
    await runs.cancel(await Run.objects.select_related("thread__assistant").aget(pk=run.pk))
    await asyncio.wait_for(driving, 10)
    await asyncio.sleep(2.0)  # the proxy finishes the answer meanwhile (latency, then words)
    await runs.ensure_driving(run.pk, standby=False)

    await run.arefresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert await answers(run) == []


async def test_llama_server_usage_is_counted_by_its_tokenizer(alice, personas):
    assistant = await make_assistant_async(provider="llamacpp", model="local", engine="chat")

    run = await send(alice, assistant, "Hello there")

    assert run.status == RunStatus.COMPLETED
    assert run.usage_estimated
    assert run.input_tokens > 0 and run.output_tokens > 0
    assert run.total_tokens == run.input_tokens + run.output_tokens
    known = await ProviderCapabilities.objects.aget(provider="llamacpp")
    assert known.tokenizer.endswith("/llamacpp/tokenize")
    assert known.context_sizes == {"simulator": CONTEXT_TOKENS}  # /props beats n_ctx_train


async def test_a_thread_longer_than_the_context_is_answered_with_older_messages_left_out(
    alice, personas
):
    assistant = await make_assistant_async(provider="llamacpp", model="local", engine="chat")
    thread = None
    for turn in range(4):
        run = await send(alice, assistant, f"Message {turn}: " + "words " * 60, thread=thread)
        thread = run.thread
        assert run.status == RunStatus.COMPLETED, run.error_message

    assert run.note.startswith("Older messages were left out")


async def test_an_overflow_of_an_unknown_context_is_retried_shorter(alice, personas):
    # As llama-cpp-python: no context size anywhere, and a prompt too long is answered 200
    # and a stream cut before its first word. One retry with half the history is answered.
    capabilities._known["llamacpp"] = capabilities.Capabilities(context_sizes={})
    assistant = await make_assistant_async(provider="llamacpp", model="local", engine="chat")
    thread = None
    for turn in range(3):
        run = await send(alice, assistant, f"Message {turn}: " + "words " * 50, thread=thread)
        thread = run.thread

    assert run.status == RunStatus.COMPLETED, run.error_message
    assert run.note.startswith("Older messages were left out")


async def make_assistant_async(**fields):
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_assistant)(instructions="Be brief.", **fields)
