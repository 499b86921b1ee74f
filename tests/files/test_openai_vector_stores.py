"""Knowledge on a provider with vector stores (OpenAI): documents go to the assistant's
vector store in step with admin, runs search it with file_search, the provider's citations
become numbered links to our copy, and deleting removes them there too. HTTP mocked at the
wire with payloads shaped like OpenAI's."""

import json

import pytest
import respx
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from assistants_app import knowledge, runs
from assistants_app.models import Assistant, KnowledgeDocument, Message, Run

from ..conftest import PROVIDER_URL, make_assistant
from ..provider_payloads import CONVERSATION_ID, RESPONSE_ID, response
from . import samples

pytestmark = pytest.mark.django_db(transaction=True)

FILE = {"id": "file-guide", "object": "file", "bytes": 30, "created_at": 1,
        "filename": "guide.pdf", "purpose": "assistants", "status": "processed"}  # fmt: skip
STORE = {"id": "vs_1", "object": "vector_store", "created_at": 1, "name": "Gardener",
         "usage_bytes": 0, "status": "completed", "last_active_at": 1, "metadata": {},
         "file_counts": {"in_progress": 0, "completed": 0, "failed": 0, "cancelled": 0,
                         "total": 0}}  # fmt: skip
STORE_FILE = {"id": "file-guide", "object": "vector_store.file", "created_at": 1,
              "vector_store_id": "vs_1", "status": "in_progress", "usage_bytes": 0,
              "last_error": None}  # fmt: skip


@pytest.fixture(autouse=True)
def with_vector_stores(settings, test_provider):
    settings.ASSISTANT_PROVIDERS["test"] = {**test_provider, "vector_stores": True}


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=True) as mock:
        yield mock


@pytest.fixture
def gardener(db):
    return make_assistant(name="Gardener")


def add_in_admin(staff_client, assistant) -> KnowledgeDocument:
    upload = SimpleUploadedFile("guide.pdf", samples.pdf("Water tomatoes every morning"))
    response = staff_client.post(
        reverse("admin:assistants_app_knowledgedocument_add"),
        {"assistant": assistant.pk, "upload": upload},
    )
    assert response.status_code == 302
    return KnowledgeDocument.objects.get()


def test_a_document_added_in_admin_goes_to_the_assistants_vector_store(
    staff_client, gardener, provider
):
    upload = provider.post("/files").respond(json=FILE)
    store = provider.post("/vector_stores").respond(json=STORE)
    added = provider.post("/vector_stores/vs_1/files").respond(json=STORE_FILE)
    document = add_in_admin(staff_client, gardener)

    assert b'filename="guide.pdf"' in upload.calls.last.request.content
    assert json.loads(store.calls.last.request.content)["metadata"] == {
        "assistant_id": str(gardener.pk)
    }
    assert json.loads(added.calls.last.request.content) == {"file_id": "file-guide"}
    gardener.refresh_from_db()
    assert (document.remote_file_id, gardener.vector_store_id) == ("file-guide", "vs_1")
    assert document.chunks.exists()  # indexed here too, should the provider change


def test_a_provider_that_refuses_the_document_is_said_in_admin(staff_client, gardener, provider):
    provider.post("/files").respond(status_code=500, json={"error": {"message": "down"}})
    upload = SimpleUploadedFile("guide.md", b"Water daily.")
    response = staff_client.post(
        reverse("admin:assistants_app_knowledgedocument_add"),
        {"assistant": gardener.pk, "upload": upload},
        follow=True,
    )
    assert "the provider refused it" in response.content.decode()
    assert KnowledgeDocument.objects.get().remote_file_id == ""


async def test_a_run_searches_the_vector_store_and_cites_the_document(
    alice, gardener, provider, alice_client
):
    gardener.vector_store_id = "vs_1"
    await gardener.asave()
    document = await KnowledgeDocument.objects.acreate(
        assistant=gardener, name="guide.pdf", content_type="application/pdf", size=1,
        remote_file_id="file-guide", file="knowledge/x/guide.pdf",
    )  # fmt: skip
    thread = await alice.threads.acreate(assistant=gardener, remote_id=CONVERSATION_ID)
    prompt = await Message.objects.acreate(thread=thread, role="user", text="When to water?")
    run = await Run.objects.acreate(thread=thread, prompt=prompt, remote_id="")
    run.thread = await type(thread).objects.select_related("assistant").aget(pk=thread.pk)
    create = provider.post("/responses").respond(json=response("queued"))
    answered = response("completed", "Water them every morning.")
    answered["output"][0]["content"][0]["annotations"] = [
        {"type": "file_citation", "file_id": "file-guide", "filename": "guide.pdf", "index": 24}
    ]
    provider.get(f"/responses/{RESPONSE_ID}").respond(json=answered)

    await runs.start(run, prompt)
    await runs.drive(run.pk)

    sent = json.loads(create.calls.last.request.content)
    assert sent["tools"] == [{"type": "file_search", "vector_store_ids": ["vs_1"]}]
    assert "Passages from the documents" not in sent.get("instructions", "")  # theirs, not ours
    answer = await Message.objects.aget(thread=thread, role="assistant")
    assert answer.text.startswith("Water them every morning [1].")
    assert "[1]: /knowledge/files/file-guide/" in answer.text
    assert '<a href="/knowledge/files/file-guide/"' in answer.html
    event = await sync_to_async(answer.as_event)()
    assert event["sources"] == [
        {"number": 1, "title": "guide.pdf", "page": None, "url": f"/knowledge/{document.pk}/"}
    ]


def test_deleting_a_document_or_the_assistant_deletes_them_on_the_provider(
    gardener, provider, django_capture_on_commit_callbacks
):
    gardener.vector_store_id = "vs_1"
    gardener.save()
    document = knowledge.add_document(gardener, "guide.md", b"Water daily.")
    document.remote_file_id = "file-guide"
    document.save()
    deleted_file = provider.delete("/files/file-guide").respond(
        json={"id": "file-guide", "object": "file", "deleted": True}
    )
    deleted_store = provider.delete("/vector_stores/vs_1").respond(
        json={"id": "vs_1", "object": "vector_store.deleted", "deleted": True}
    )
    with django_capture_on_commit_callbacks(execute=True):
        Assistant.objects.get(pk=gardener.pk).delete()
    assert deleted_file.call_count == 1 and deleted_store.call_count == 1
    assert not KnowledgeDocument.objects.exists()


def test_saving_an_assistant_moved_to_such_a_provider_uploads_its_documents(
    staff_client, provider, settings
):
    local = make_assistant(name="Librarian", provider="simulator", model="simulator")
    knowledge.add_document(local, "guide.md", b"Water daily.")
    provider.post("/files").respond(json=FILE)
    provider.post("/vector_stores").respond(json=STORE)
    provider.post("/vector_stores/vs_1/files").respond(json=STORE_FILE)
    form = {
        "name": "Librarian", "instructions": "", "engine": "responses", "provider": "test",
        "model": "gpt-test", "is_active": "on", "accepts_images": "on",
        "conversation_starters": "",
    }  # fmt: skip
    response = staff_client.post(
        reverse("admin:assistants_app_assistant_change", args=[local.pk]), form
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    local.refresh_from_db()
    assert local.vector_store_id == "vs_1"
    assert KnowledgeDocument.objects.get().remote_file_id == "file-guide"
