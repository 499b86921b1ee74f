"""An assistant's knowledge: passages indexed in the database itself and found again, kept
apart per assistant, deleted with their document, served only to those who may use the
assistant; and the retrieval-quality check on PostgreSQL and SQLite."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.urls import reverse

from assistants_app import knowledge
from assistants_app.models import KnowledgeChunk, KnowledgeDocument

from ..conftest import make_assistant
from ..live import postgres_database
from . import samples
from .conftest import stored_files
from .retrieval_questions import QUESTIONS

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).parent.parent / "fixtures" / "knowledge" / "README.md"


def normalised(text: str) -> str:
    return " ".join(text.split())


def test_the_right_passage_is_in_the_top_3_for_at_least_18_of_20_questions(assistant):
    knowledge.add_document(assistant, "README.md", CORPUS.read_bytes())
    missed = []
    for question, phrase in QUESTIONS:
        top = knowledge.search(assistant.pk, question, 3)
        if not any(normalised(phrase) in normalised(f"{c.heading} {c.text}") for c in top):
            missed.append(question)
    found = len(QUESTIONS) - len(missed)
    print(
        f"retrieval on {connection.vendor}: {found}/{len(QUESTIONS)} in the top 3; missed {missed}"
    )
    assert len(QUESTIONS) == 20
    assert found >= 18, missed


@pytest.mark.slow
def test_retrieval_quality_holds_on_postgresql_too():
    """The same check in a process of its own on a fresh PostgreSQL database."""
    if connection.vendor == "postgresql":
        pytest.skip("this run is on PostgreSQL already: the test above is the check")
    with postgres_database() as database_url:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
             f"{__file__}::test_the_right_passage_is_in_the_top_3_for_at_least_18_of_20_questions"],
            env={**os.environ, "DATABASE_URL": database_url, "DATABASE_POOL_SIZE": "0"},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    print(done.stdout[-2000:])
    assert "retrieval on postgresql" in done.stdout
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_pdf_is_indexed_page_by_page(assistant):
    document = knowledge.add_document(
        assistant, "manual.pdf", samples.pdf("Safety first", "Replace the filter every month")
    )
    assert document.pages == 2
    [found] = knowledge.search(assistant.pk, "how often to replace the filter?", 3)
    assert (found.document, found.page) == (document, 2)
    assert document.url(found.page).endswith("#page=2")


def test_an_assistant_finds_only_its_own_passages(assistant):
    other = make_assistant(name="Other")
    knowledge.add_document(other, "secret.md", b"The launch code is tangerine.")
    knowledge.add_document(assistant, "public.md", b"Our office opens at nine.")
    assert knowledge.search(assistant.pk, "launch code tangerine", 3) == []
    assert [c.document.name for c in knowledge.search(other.pk, "launch code", 3)] == ["secret.md"]


def test_odd_questions_find_nothing_rather_than_fail(assistant):
    knowledge.add_document(assistant, "a.md", b"Some text about gardens.")
    for question in ['"', "NEAR(", "-", "the of and", "' OR 1=1 --", "*", "\x01", ""]:
        assert knowledge.search(assistant.pk, question, 3) == []


def test_deleting_a_document_removes_its_passages_and_file(
    assistant, file_storage, django_capture_on_commit_callbacks
):
    document = knowledge.add_document(assistant, "a.md", b"Gardens need water.")
    assert knowledge.search(assistant.pk, "water", 3)
    with django_capture_on_commit_callbacks(execute=True):
        document.delete()
    assert knowledge.search(assistant.pk, "water", 3) == []
    assert not KnowledgeChunk.objects.exists()
    assert stored_files(file_storage) == []


def test_an_image_is_not_knowledge(assistant, file_storage):
    with pytest.raises(knowledge.FileRefused):
        knowledge.add_document(assistant, "a.png", samples.png())
    assert not KnowledgeDocument.objects.exists() and stored_files(file_storage) == []


def test_a_document_is_served_to_those_who_may_use_the_assistant(
    assistant, alice, alice_client, bob_client
):
    document = knowledge.add_document(assistant, "manual.pdf", samples.pdf("Hello"))
    url = reverse("knowledge-document", args=[document.pk])
    served = alice_client.get(url)
    assert served.status_code == 200
    assert served["Content-Type"] == "application/pdf"
    assert served["Content-Disposition"].startswith("inline")
    assert served["X-Content-Type-Options"] == "nosniff"
    staff_only = Group.objects.create(name="staff only")
    assistant.groups.add(staff_only)
    alice.groups.add(staff_only)
    assert alice_client.get(url).status_code == 200
    assert bob_client.get(url).status_code == 404


def test_staff_add_a_document_in_admin_and_a_bad_one_is_refused_in_words(staff_client, assistant):
    url = reverse("admin:assistants_app_knowledgedocument_add")
    good = SimpleUploadedFile("guide.md", b"# Guide\n\nWater the plants daily.")
    response = staff_client.post(url, {"assistant": assistant.pk, "upload": good})
    assert response.status_code == 302
    document = KnowledgeDocument.objects.get()
    assert (document.assistant, document.name) == (assistant, "guide.md")
    assert knowledge.search(assistant.pk, "how often water plants", 3)
    bad = SimpleUploadedFile("locked.pdf", samples.encrypted_pdf())
    response = staff_client.post(url, {"assistant": assistant.pk, "upload": bad})
    assert response.status_code == 200
    assert "protected by a password" in response.content.decode()
    assert KnowledgeDocument.objects.count() == 1


def test_adding_and_deleting_knowledge_makes_versions_of_the_assistant(assistant):
    """Knowledge is part of what an assistant answers with (#21): each change is a version."""
    before = assistant.versions.count()
    document = knowledge.add_document(assistant, "hours.md", b"Our office opens at nine.")
    added = assistant.versions.order_by("-number").first()
    assert assistant.versions.count() == before + 1
    assert added.changed == ["knowledge"]
    assert added.values["knowledge"] == [f"hours.md (#{document.pk})"]

    document.delete()
    removed = assistant.versions.order_by("-number").first()
    assert (removed.number, removed.values["knowledge"]) == (added.number + 1, [])


def test_an_assistant_with_knowledge_is_deleted_whole(assistant):
    knowledge.add_document(assistant, "hours.md", b"Our office opens at nine.")
    assistant.delete()  # its documents go with it, and make no version on the way
    assert not KnowledgeDocument.objects.exists()
