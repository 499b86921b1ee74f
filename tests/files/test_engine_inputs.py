"""Every engine sends a message's files: images as image inputs, documents as files where the
protocol takes them or as their text; and the passages of an assistant's knowledge, numbered.
Provider HTTP mocked at the wire; the requests' bodies are what is checked."""

import base64
import json

import pytest
import respx
from asgiref.sync import sync_to_async

from assistants_app import files, knowledge, runs, services
from assistants_app.models import Attachment, EngineKind, Run, Thread

from ..chat_stream import answer, sent, streamed
from ..conftest import PROVIDER_URL, make_assistant
from ..provider_payloads import conversation, response
from . import samples

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as mock:
        yield mock


async def attach(user, name: str, data: bytes) -> int:
    return (await sync_to_async(files.store_attachment)(user, name, data)).pk


async def thread_with(alice, **assistant) -> Thread:
    made = await sync_to_async(make_assistant)(**assistant)
    thread = await Thread.objects.acreate(owner=alice, assistant=made)
    return await Thread.objects.select_related("assistant").aget(pk=thread.pk)


def data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


async def test_chat_completions_gets_image_parts_and_document_text(alice, provider):
    thread = await thread_with(alice, engine=EngineKind.CHAT, model="llava")
    image, notes = samples.png(), b"# Plan\n\nPlant tomatoes in May."
    ids = [await attach(alice, "garden.png", image), await attach(alice, "plan.md", notes)]
    route = provider.post("/chat/completions").mock(return_value=streamed(answer("Ok")))
    _, run = await services.submit_message(alice, thread, "What do you see?", ids)
    await runs.drive(run.pk)

    user = sent(route)["messages"][-1]
    assert user["role"] == "user"
    text, picture = user["content"]
    assert text["type"] == "text"
    assert text["text"].startswith('What do you see?\n\n<file name="plan.md">')
    assert "Plant tomatoes in May." in text["text"]
    assert picture == {"type": "image_url", "image_url": {"url": data_url("image/png", image)}}


async def test_chat_completions_cuts_a_long_document_to_the_limit(alice, provider, settings):
    settings.FILE_TEXT_MAX_CHARS = 50
    thread = await thread_with(alice, engine=EngineKind.CHAT, model="llama")
    ids = [await attach(alice, "long.txt", b"word " * 1000)]
    route = provider.post("/chat/completions").mock(return_value=streamed(answer("Ok")))
    _, run = await services.submit_message(alice, thread, "Summarise", ids)
    await runs.drive(run.pk)
    content = sent(route)["messages"][-1]["content"]
    assert isinstance(content, str)  # no image: plain text, as every server takes
    assert "the rest of long.txt was left out" in content
    assert len(content) < 200


async def test_responses_gets_input_image_and_input_file(alice, alice_thread, provider):
    thread = await Thread.objects.select_related("assistant").aget(pk=alice_thread.pk)
    image, document = samples.png(), samples.pdf("Invoice 42")
    ids = [await attach(alice, "shot.png", image), await attach(alice, "invoice.pdf", document)]
    provider.post("/conversations").respond(json=conversation())
    create = provider.post("/responses").respond(json=response("queued"))
    await services.submit_message(alice, thread, "Check the total", ids)

    body = json.loads(create.calls.last.request.content)
    assert body["input"] == [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Check the total"},
                {"type": "input_image", "image_url": data_url("image/png", image),
                 "detail": "auto"},
                {"type": "input_file", "filename": "invoice.pdf",
                 "file_data": data_url("application/pdf", document)},
            ],
        }
    ]  # fmt: skip


async def test_assistants_uploads_files_and_attaches_documents_for_file_search(alice, provider):
    thread = await thread_with(alice, engine=EngineKind.ASSISTANTS, remote_id="asst_1")
    thread.remote_id = "thread_1"
    await thread.asave()
    ids = [
        await attach(alice, "a.png", samples.png()),
        await attach(alice, "b.pdf", samples.pdf("B")),
    ]
    uploads = provider.post("/files").mock(
        side_effect=[
            respx.MockResponse(json={"id": "file_img", "object": "file", "bytes": 1,
                                     "created_at": 1, "filename": "a.png", "purpose": "vision",
                                     "status": "processed"}),
            respx.MockResponse(json={"id": "file_pdf", "object": "file", "bytes": 1,
                                     "created_at": 1, "filename": "b.pdf",
                                     "purpose": "assistants", "status": "processed"}),
        ]
    )  # fmt: skip
    message = provider.post("/threads/thread_1/messages").respond(
        json={"id": "msg_1", "object": "thread.message", "created_at": 1,
              "thread_id": "thread_1", "role": "user", "content": [], "attachments": [],
              "metadata": {}, "status": "completed"}
    )  # fmt: skip
    provider.post("/threads/thread_1/runs").respond(
        json={"id": "run_1", "object": "thread.run", "created_at": 1, "thread_id": "thread_1",
              "assistant_id": "asst_1", "status": "queued", "model": "gpt-test",
              "instructions": "", "tools": [], "parallel_tool_calls": True}
    )  # fmt: skip
    await services.submit_message(alice, thread, "Compare", ids)

    assert [call.request.content.count(b'name="purpose"') for call in uploads.calls] == [1, 1]
    assert b"vision" in uploads.calls[0].request.content
    body = json.loads(message.calls.last.request.content)
    assert body["content"] == [
        {"type": "text", "text": "Compare"},
        {"type": "image_file", "image_file": {"file_id": "file_img"}},
    ]
    assert body["attachments"] == [{"file_id": "file_pdf", "tools": [{"type": "file_search"}]}]
    kept = await sync_to_async(list)(
        Attachment.objects.order_by("pk").values_list("remote_files", flat=True)
    )
    assert kept == [{"test": "file_img"}, {"test": "file_pdf"}]


async def test_deleting_the_thread_deletes_the_providers_files(alice, provider):
    thread = await thread_with(alice, engine=EngineKind.ASSISTANTS)
    attachment_id = await attach(alice, "a.pdf", samples.pdf("A"))
    message = await thread.messages.acreate(role="user", text="hi")
    await Attachment.objects.filter(pk=attachment_id).aupdate(
        message=message, remote_files={"test": "file_pdf"}
    )
    deleted = provider.delete("/files/file_pdf").respond(
        json={"id": "file_pdf", "object": "file", "deleted": True}
    )
    await sync_to_async(services.delete_thread)(alice, thread)
    assert deleted.call_count == 1


async def test_knowledge_passages_go_to_the_model_numbered(alice, provider):
    thread = await thread_with(alice, engine=EngineKind.CHAT, model="llama")
    await sync_to_async(knowledge.add_document)(
        thread.assistant, "garden.md", b"# Tomatoes\n\nTomatoes are planted out in May.\n"
    )
    route = provider.post("/chat/completions").mock(return_value=streamed(answer("In May [1].")))
    _, run = await services.submit_message(alice, thread, "When are tomatoes planted?")
    await runs.drive(run.pk)

    system = sent(route)["messages"][0]["content"]
    assert system.startswith("Answer briefly.\n\nPassages from the documents")
    assert "[1] garden.md\nTomatoes are planted out in May." in system
    answer_message = await thread.messages.filter(role="assistant").aget()
    event = await sync_to_async(answer_message.as_event)()
    assert [(s["number"], s["title"]) for s in event["sources"]] == [(1, "garden.md")]
    assert event["sources"][0]["url"].startswith("/knowledge/")
    assert await Run.objects.filter(pk=run.pk, citations__number=1).aexists()


async def test_images_count_against_the_history_budget(alice, provider, settings):
    settings.CHAT_HISTORY_MAX_CHARS = 2000  # less than an image is counted
    thread = await thread_with(alice, engine=EngineKind.CHAT, model="llava")
    old = await thread.messages.acreate(role="user", text="Look at this")
    image_id = await attach(alice, "old.png", samples.png())
    await Attachment.objects.filter(pk=image_id).aupdate(message=old)
    await thread.messages.acreate(role="assistant", text="A red square.")
    route = provider.post("/chat/completions").mock(return_value=streamed(answer("Ok")))
    _, run = await services.submit_message(alice, thread, "And now?")
    await runs.drive(run.pk)
    assert sent(route)["messages"][1:] == [{"role": "user", "content": "And now?"}]
    assert (await Run.objects.aget(pk=run.pk)).note.startswith("Older messages were left out")
