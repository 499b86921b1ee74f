"""axe-core finds no serious or critical accessibility violations on the main pages, in the
light and the dark theme (which follow the system setting)."""

import pytest
from playwright.sync_api import expect

from .conftest import answers, axe_violations, screenshot, send, start_thread

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_main_pages_pass_axe(site, log_in, open_context, scheme):
    anonymous = open_context(base_url=site.url, color_scheme=scheme).new_page()
    anonymous.goto("/login/")
    pages = {"login": axe_violations(anonymous)}

    page = log_in("alice", color_scheme=scheme)
    thread_id = start_thread(page)
    pages["empty thread"] = axe_violations(page)
    send(page, "A list and some code, please")
    expect(answers(page).locator(".code-bar")).to_have_count(1)
    pages["answered thread"] = axe_violations(page)
    screenshot(page, f"12-thread-{scheme}")
    page.get_by_text("Thread options").click()
    pages["thread options"] = axe_violations(page)
    page.goto("/")
    pages["thread list"] = axe_violations(page)
    screenshot(page, f"13-thread-list-{scheme}")
    page.goto("/?q=nothing-matches-this")
    pages["no search results"] = axe_violations(page)
    page.goto(f"/threads/{thread_id}/delete/")
    pages["confirm delete"] = axe_violations(page)

    assert {name: found for name, found in pages.items() if found} == {}


def test_the_dark_theme_follows_the_system_setting(site, log_in):
    light, dark = log_in("bob", color_scheme="light"), log_in("bob", color_scheme="dark")
    background = "getComputedStyle(document.body).backgroundColor"
    assert light.evaluate(background) == "rgb(247, 247, 248)"
    assert dark.evaluate(background) == "rgb(22, 22, 26)"
