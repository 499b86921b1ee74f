"""A long answer, far over a websocket message, shows in the page whole as it arrives: the page
joins the parts the server sends it (static/js/socket.js), and the socket stays up."""

import pytest
from playwright.sync_api import expect

from ..live import start_site
from ..long_answers import add_big_assistant, provider_env, provider_in_thread, russian_of
from .conftest import answers, new_chat, screenshot

pytestmark = pytest.mark.slow

ANSWER = russian_of(200_000)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """This module's site: the conftest's log_in() uses it, with the long-answer provider."""
    with provider_in_thread(ANSWER) as url:
        with start_site(tmp_path_factory.mktemp("long-site"), env=provider_env(url)) as site:
            add_big_assistant(site)
            yield site


def test_a_long_non_latin_answer_shows_whole(log_in):
    page = log_in("alice")
    new_chat(page, "Tell me a long story", assistant="Big")

    answer = answers(page).first
    expect(answer).to_be_visible(timeout=60_000)
    assert answer.locator(".version:not([hidden]) .body").inner_text().strip() == ANSWER
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.locator("#connection")).to_have_text("")
    screenshot(page, "long-answer")
