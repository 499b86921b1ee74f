"""Attaching files to messages: upload, refusals in words, limits, who may see a file, and
deleting what was deleted."""

from datetime import timedelta

import pytest
import respx
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from assistants_app.models import Attachment, Message, Thread

from ..conftest import PROVIDER_URL
from ..provider_payloads import conversation, response
from . import samples
from .conftest import stored_files

pytestmark = pytest.mark.django_db


def upload(client, name, data, content_type="application/octet-stream"):
    return client.post(
        reverse("attachment-upload"), {"file": SimpleUploadedFile(name, data, content_type)}
    )


@pytest.fixture
def provider():
    with respx.mock(using="httpx", base_url=PROVIDER_URL, assert_all_called=False) as mock:
        mock.post("/conversations").respond(json=conversation())
        mock.post("/responses").respond(json=response("queued"))
        yield mock


def send(client, thread, text, attachments):
    return client.post(
        reverse("message-create", args=[thread.pk]),
        {"text": text, "attachments": attachments},
        content_type="application/json",
    )


def test_an_image_is_kept_with_a_thumbnail_and_served_to_its_owner(alice_client, file_storage):
    response = upload(alice_client, "photo.png", samples.png((800, 600)), "image/png")
    assert response.status_code == 201
    event = response.json()["attachment"]
    assert (event["name"], event["kind"]) == ("photo.png", "image")
    attachment = Attachment.objects.get()
    assert attachment.content_type == "image/png" and attachment.message is None
    served = alice_client.get(event["url"])
    assert served.status_code == 200
    assert served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert served["Content-Disposition"].startswith("inline")
    assert "default-src 'self'" in served["Content-Security-Policy"]
    assert b"".join(served.streaming_content) == samples.png((800, 600))
    thumbnail = alice_client.get(event["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail["Content-Type"] == "image/png"
    assert len(b"".join(thumbnail.streaming_content)) < len(samples.png((800, 600)))


def test_another_user_gets_404_for_a_file_url(alice_client, bob_client, client):
    event = upload(alice_client, "photo.png", samples.png(), "image/png").json()["attachment"]
    for url in (event["url"], event["thumbnail_url"]):
        assert bob_client.get(url).status_code == 404
        assert client.get(url).status_code == 302  # anonymous: to the login page
    assert bob_client.delete(event["url"]).status_code == 404
    assert Attachment.objects.count() == 1


def test_a_sent_file_is_served_to_the_threads_owner_only(
    alice_client, bob_client, alice_thread, provider
):
    event = upload(alice_client, "notes.md", b"# Notes\n\nBuy milk.", "text/markdown").json()
    sent = send(alice_client, alice_thread, "Read my notes", [event["attachment"]["id"]])
    assert sent.status_code == 201
    assert [a["name"] for a in sent.json()["message"]["attachments"]] == ["notes.md"]
    url = event["attachment"]["url"]
    served = alice_client.get(url)
    assert served.status_code == 200
    assert served["Content-Type"] == "text/markdown; charset=utf-8"
    assert served["Content-Disposition"].startswith("attachment")  # text is downloaded
    assert bob_client.get(url).status_code == 404
    page = alice_client.get(reverse("thread-detail", args=[alice_thread.pk]))
    assert b"notes.md" in page.content


@pytest.mark.parametrize(
    "name, data, code, words",
    [
        ("report.pdf", samples.ELF_PROGRAM, "FILE_IS_PROGRAM", "is a program (ELF)"),
        ("setup.png", samples.WINDOWS_PROGRAM, "FILE_IS_PROGRAM", "is a program (EXE)"),
        ("locked.pdf", samples.encrypted_pdf(), "PDF_ENCRYPTED", "protected by a password"),
        ("broken.pdf", samples.damaged_pdf(), "PDF_DAMAGED", "damaged PDF"),
        ("scan.pdf", samples.blank_pdf(), "PDF_NO_TEXT", "no text that can be read"),
        ("bomb.png", samples.png_claiming(100_000, 100_000), "IMAGE_TOO_LARGE", "pixels"),
        ("broken.png", samples.png()[:80], "IMAGE_DAMAGED", "cannot be read"),
        ("empty.txt", b"", "FILE_EMPTY", "is empty"),
        ("data.bin", bytes(range(256)) * 4, "FILE_TYPE_REFUSED", "not a type we take"),
        ("archive.zip", b"PK\x03\x04" + b"\x00" * 100, "FILE_TYPE_REFUSED", "ZIP"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_in_words_and_nothing_is_stored(
    alice_client, file_storage, name, data, code, words
):
    response = upload(alice_client, name, data)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code
    assert words in error["message"] and name in error["message"]
    assert not Attachment.objects.exists()
    assert stored_files(file_storage) == []


def test_an_image_over_the_pixel_limit_is_refused(alice_client, settings):
    settings.IMAGE_MAX_PIXELS = 1000
    response = upload(alice_client, "big.png", samples.png((100, 100)))
    assert response.json()["error"]["code"] == "IMAGE_TOO_LARGE"
    assert "100 × 100 pixels" in response.json()["error"]["message"]


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(alice_client, settings):
    settings.FILE_MAX_BYTES = 1000
    response = upload(alice_client, "long.txt", b"a" * 1001)
    assert response.json()["error"]["code"] == "FILE_TOO_LARGE"
    assert not Attachment.objects.exists()


def test_a_users_storage_is_limited(alice_client, bob_client, settings):
    settings.FILE_STORAGE_PER_USER_BYTES = 1500
    assert upload(alice_client, "one.txt", b"a" * 1000).status_code == 201
    refused = upload(alice_client, "two.txt", b"b" * 1000)
    assert refused.json()["error"]["code"] == "STORAGE_FULL"
    assert "does not fit" in refused.json()["error"]["message"]
    assert upload(bob_client, "bobs.txt", b"c" * 1000).status_code == 201  # his own room


def test_the_type_comes_from_the_content_not_the_name(alice_client):
    response = upload(alice_client, "photo.txt", samples.jpeg())
    assert response.json()["attachment"]["kind"] == "image"
    assert Attachment.objects.get().content_type == "image/jpeg"


def test_a_pdf_and_a_word_document_give_their_text(alice_client):
    assert upload(alice_client, "a.pdf", samples.pdf("Quarterly figures")).status_code == 201
    import io

    import docx

    document = docx.Document()
    document.add_paragraph("Minutes of the meeting")
    out = io.BytesIO()
    document.save(out)
    assert upload(alice_client, "minutes.docx", out.getvalue()).status_code == 201
    texts = list(Attachment.objects.order_by("pk").values_list("text", flat=True))
    assert texts == ["Quarterly figures", "Minutes of the meeting"]


def test_a_message_takes_at_most_the_files_per_message(alice_client, alice_thread, settings):
    settings.FILES_PER_MESSAGE = 2
    ids = [upload(alice_client, f"{n}.txt", b"text").json()["attachment"]["id"] for n in "abc"]
    response = send(alice_client, alice_thread, "hi", ids)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "TOO_MANY_FILES"
    assert not Message.objects.exists()


def test_nobody_sends_another_users_file(alice_client, bob_client, bob_thread):
    alices = upload(alice_client, "a.txt", b"secret").json()["attachment"]["id"]
    response = send(bob_client, bob_thread, "look", [alices])
    assert response.json()["error"]["code"] == "ATTACHMENT_GONE"
    assert not Message.objects.exists()
    assert Attachment.objects.get().message is None


def test_an_image_for_a_text_only_model_is_refused_before_anything_is_sent(
    alice_client, alice_thread, assistant
):
    assistant.accepts_images = False
    assistant.save()
    image = upload(alice_client, "chart.png", samples.png()).json()["attachment"]["id"]
    with respx.mock(base_url=PROVIDER_URL, assert_all_mocked=True):  # no request at all
        response = send(alice_client, alice_thread, "what is this?", [image])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "IMAGES_NOT_READ"
    assert "cannot read images" in error["message"] and "chart.png" in error["message"]
    assert not Message.objects.exists()
    assert Attachment.objects.get().message is None  # still in the composer, to remove


def test_taking_back_an_unsent_file_deletes_it(
    alice_client, file_storage, django_capture_on_commit_callbacks
):
    event = upload(alice_client, "photo.png", samples.png()).json()["attachment"]
    assert len(stored_files(file_storage)) == 2  # the image and its thumbnail
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_client.delete(event["url"]).status_code == 200
    assert not Attachment.objects.exists()
    assert stored_files(file_storage) == []


def test_deleting_a_thread_deletes_its_files(
    alice_client, alice_thread, provider, file_storage, django_capture_on_commit_callbacks
):
    ids = [upload(alice_client, "a.png", samples.png()).json()["attachment"]["id"]]
    ids.append(upload(alice_client, "b.txt", b"notes").json()["attachment"]["id"])
    assert send(alice_client, alice_thread, "see these", ids).status_code == 201
    assert len(stored_files(file_storage)) == 3
    alice_thread.runs.update(status="completed")
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("thread-delete", args=[alice_thread.pk]))
    assert not Thread.objects.exists() and not Attachment.objects.exists()
    assert stored_files(file_storage) == []


def test_deleting_a_message_deletes_its_files(alice, alice_thread, file_storage,
                                              django_capture_on_commit_callbacks):  # fmt: skip
    from assistants_app import files

    message = Message.objects.create(thread=alice_thread, role="user", text="hi")
    attachment = files.store_attachment(alice, "a.txt", b"words")
    attachment.message = message
    attachment.save()
    with django_capture_on_commit_callbacks(execute=True):
        message.delete()
    assert stored_files(file_storage) == []


def test_a_provider_declared_without_vision_refuses_images(alice_client, alice_thread, settings):
    settings.ASSISTANT_PROVIDERS["test"] = {**settings.ASSISTANT_PROVIDERS["test"], "vision": False}
    image = upload(alice_client, "chart.png", samples.png()).json()["attachment"]["id"]
    response = send(alice_client, alice_thread, "what is this?", [image])
    assert response.json()["error"]["code"] == "IMAGES_NOT_READ"
    assert not Message.objects.exists()


def test_files_left_unsent_for_a_day_stop_counting(
    alice_client, settings, file_storage, django_capture_on_commit_callbacks
):
    settings.FILE_STORAGE_PER_USER_BYTES = 1500
    assert upload(alice_client, "old.txt", b"a" * 1000).status_code == 201
    Attachment.objects.update(created_at=timezone.now() - timedelta(days=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert upload(alice_client, "new.txt", b"b" * 1000).status_code == 201
    assert list(Attachment.objects.values_list("name", flat=True)) == ["new.txt"]
    assert [p.name for p in stored_files(file_storage)] == ["new.txt"]
