"""Files in the browser: attach with the picker or by pasting, chips and thumbnails on the
sent message, a refused file said in words, and an answer's numbered sources."""

import io
import re

import pytest
from PIL import Image
from playwright.sync_api import expect

from ..live import start_site
from .conftest import LATENCY, screenshot, send

pytestmark = pytest.mark.slow

ADD_KNOWLEDGE = """
from assistants_app import knowledge
from assistants_app.models import Assistant
sim = Assistant.objects.get(name="Sim")
docs = Assistant.objects.create(name="Sim docs", provider=sim.provider, model=sim.model,
                                engine=sim.engine, instructions="Answer from the guide.")
knowledge.add_document(docs, "garden-guide.md",
    b"# Watering\\n\\nWater tomatoes every morning, at the roots.\\n\\n"
    b"# Pruning\\n\\nPinch out side shoots weekly.\\n")
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with start_site(
        tmp_path_factory.mktemp("files-site"), env={"MESSAGES_PER_MINUTE": "0"}, latency=LATENCY
    ) as site:
        site.manage("shell", "--verbosity", "0", "-c", ADD_KNOWLEDGE)
        yield site


def png_bytes(color=(30, 140, 60)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (400, 300), color).save(out, "PNG")
    return out.getvalue()


def choose(page, assistant: str) -> None:
    page.goto("/")
    page.get_by_label("Assistant", exact=True).select_option(label=f"{assistant} (simulated)")


def test_a_picked_image_is_a_chip_then_a_thumbnail_on_the_sent_message(site, log_in):
    page = log_in("alice")
    choose(page, "Sim")
    expect(page.get_by_role("button", name="Attach files")).to_have_attribute(
        "title", re.compile(r"Up to 5 files a message, 20\.0 MB each")
    )
    page.locator("#file-input").set_input_files(
        {"name": "garden.png", "mimeType": "image/png", "buffer": png_bytes()}
    )
    chip = page.locator("#composer-files .file-chip")
    expect(chip).to_have_count(1)
    expect(chip).not_to_have_class(re.compile("uploading"))
    expect(chip.locator("img")).to_be_visible()
    expect(page.locator("#file-limits")).to_contain_text("Up to 5 files a message")
    screenshot(page, "20-composer-with-file")

    send(page, "What is in this picture?")
    page.wait_for_url(re.compile(r"/threads/\d+/$"))
    sent = page.locator("#messages li.message.user .files .file-chip")
    expect(sent).to_have_count(1)
    thumbnail = sent.locator("img")
    expect(thumbnail).to_be_visible()
    assert thumbnail.evaluate("img => img.complete && img.naturalWidth") > 0  # served by us
    assert re.search(r"/files/\d+/thumbnail/$", thumbnail.get_attribute("src"))
    expect(page.locator("#messages li.message.assistant .part[data-id]")).to_contain_text(
        "I was given 1 image with this message."
    )
    expect(page.locator("#composer-files .file-chip")).to_have_count(0)  # the composer is clear
    box = thumbnail.bounding_box()
    assert box["width"] >= 80 and box["height"] >= 80  # a thumbnail one can see, not an icon
    screenshot(page, "21-thread-with-image")


def test_a_pasted_image_becomes_a_chip(site, log_in):
    page = log_in("alice")
    choose(page, "Sim")
    page.get_by_label("Message", exact=True).click()
    page.evaluate(
        """async () => {
            const canvas = Object.assign(document.createElement("canvas"), {width: 60, height: 40});
            canvas.getContext("2d").fillRect(0, 0, 60, 40);
            const blob = await new Promise((done) => canvas.toBlob(done, "image/png"));
            const data = new DataTransfer();
            data.items.add(new File([blob], "image.png", {type: "image/png"}));
            const event = new ClipboardEvent("paste", {clipboardData: data, bubbles: true,
                                                       cancelable: true});
            document.getElementById("composer-text").dispatchEvent(event);
        }"""
    )
    chip = page.locator("#composer-files .file-chip")
    expect(chip).to_have_count(1)
    expect(chip.locator("img")).to_be_visible()
    expect(page.get_by_label("Message", exact=True)).to_have_value("")  # nothing pasted as text
    chip.get_by_role("button", name="Remove image.png").click()
    expect(chip).to_have_count(0)


def test_a_refused_file_says_why_in_a_sentence(site, log_in):
    page = log_in("alice")
    choose(page, "Sim")
    page.locator("#file-input").set_input_files(
        {"name": "report.pdf", "mimeType": "application/pdf",
         "buffer": b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 200}
    )  # fmt: skip
    error = page.locator("#composer-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("“report.pdf” is a program (ELF), not a document")
    expect(page.locator("#composer-files .file-chip")).to_have_count(0)
    screenshot(page, "22-file-refused")


def test_an_answer_cites_the_assistants_documents(site, log_in):
    page = log_in("alice")
    choose(page, "Sim docs")
    send(page, "When should I water tomatoes?")
    page.wait_for_url(re.compile(r"/threads/\d+/$"))
    answer = page.locator("#messages li.message.assistant .version:not([hidden])").last
    expect(answer.locator(".part[data-id]")).to_contain_text("From garden-guide.md")
    citation = answer.locator("sup a.citation")
    expect(citation).to_have_text("1")
    source = answer.locator("ol.sources li")
    expect(source).to_have_count(1)
    expect(source.get_by_role("link")).to_have_text("garden-guide.md")
    href = source.get_by_role("link").get_attribute("href")
    assert re.fullmatch(r"/knowledge/\d+/", href)
    assert citation.get_attribute("href").endswith(href)
    assert page.request.get(href).status == 200
    screenshot(page, "23-answer-with-sources")

    page.reload()  # the server renders the same
    answer = page.locator("#messages li.message.assistant .version:not([hidden])").last
    expect(answer.locator("sup a.citation")).to_have_text("1")
    expect(answer.locator("ol.sources li")).to_have_count(1)


def test_another_person_gets_404_for_a_file(site, log_in):
    alice = log_in("alice")
    choose(alice, "Sim")
    alice.locator("#file-input").set_input_files(
        {"name": "private.txt", "mimeType": "text/plain", "buffer": b"my secret"}
    )
    expect(alice.locator("#composer-files .file-chip:not(.uploading)")).to_have_count(1)
    file_id = alice.locator("#composer-files .file-chip").get_attribute("data-id")
    bob = log_in("bob")
    assert bob.request.get(f"/files/{file_id}/").status == 404
    assert alice.request.get(f"/files/{file_id}/").status == 200


def test_a_file_dropped_on_the_chat_becomes_a_chip(site, log_in):
    page = log_in("alice")
    choose(page, "Sim")
    page.evaluate(
        """() => {
            const data = new DataTransfer();
            data.items.add(new File(["# Notes\\n\\nBuy seeds."], "notes.md",
                                    {type: "text/markdown"}));
            const target = document.getElementById("composer").closest("main");
            for (const type of ["dragover", "drop"]) {
                target.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true,
                                                          cancelable: true}));
            }
        }"""
    )
    chip = page.locator("#composer-files .file-chip:not(.uploading)")
    expect(chip).to_have_count(1)
    expect(chip).to_contain_text("notes.md")
    send(page, "Summarise my notes")
    page.wait_for_url(re.compile(r"/threads/\d+/$"))
    expect(page.locator("#messages li.message.user .files")).to_contain_text("notes.md")
    expect(page.locator("#messages li.message.assistant .part[data-id]")).to_contain_text(
        "I was given “notes.md” with this message."
    )
