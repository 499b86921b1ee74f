"""axe-core finds no violations of any impact on the site's pages, in the light and the dark
theme and at desktop and phone sizes; on admin pages none serious or critical. Screenshots
of the main states at 1440x900 and 390x844 in both themes go to test-artifacts/screenshots/.
"""

import pytest
from playwright.sync_api import expect

from .conftest import (
    DESKTOP,
    PHONE,
    RICH_ANSWER,
    answers,
    axe_violations,
    new_chat,
    run_state,
    screenshot,
    seed_thread,
)

pytestmark = pytest.mark.slow

SIZES = {"desktop": DESKTOP, "phone": PHONE}
STARTERS = """
from assistants_app.models import Assistant
Assistant.objects.filter(name="Sim").update(
    conversation_starters=["Plan a vegetable bed", "Explain compost like I am five",
                           "Write a haiku about rain", "Compare two watering schedules"])
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("size", SIZES)
def test_the_sites_pages_pass_axe_and_are_pictured(site, log_in, open_context, scheme, size):
    site.manage("shell", "--verbosity", "0", "-c", STARTERS)
    options = {**SIZES[size], "color_scheme": scheme}
    name = f"{size}-{scheme}"
    anonymous = open_context(base_url=site.url, **options).new_page()
    anonymous.goto("/login/")
    pages = {"login": axe_violations(anonymous)}
    screenshot(anonymous, f"30-login-{name}")
    anonymous.goto("/no-such-page/")
    pages["not found"] = axe_violations(anonymous)

    page = log_in("alice", **options)
    pages["new chat"] = axe_violations(page)
    screenshot(page, f"31-new-chat-{name}")

    shown = [("user", "Show me it all"), ("assistant", RICH_ANSWER)]
    rich = seed_thread(site, "alice", "Everything Markdown can do", shown)
    page.goto(f"/threads/{rich}/")
    expect(page.locator("#messages math")).to_have_count(2)
    pages["rich answer"] = axe_violations(page)
    screenshot(page, f"32-rich-answer-{name}")
    page.locator("#scroller").evaluate("s => s.scrollTo(0, 0)")
    screenshot(page, f"33-rich-answer-top-{name}")

    new_chat(page, "A list and some code, please")
    expect(answers(page).locator(".code-bar")).to_have_count(1)
    pages["answered thread"] = axe_violations(page)
    screenshot(page, f"34-answered-{name}")
    page.get_by_label("Thread options").click()
    pages["thread options"] = axe_violations(page)
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Regenerate the answer").click()
    expect(page.locator("#messages .versions .count")).to_have_text("2/2")
    expect(answers(page).locator(".code-bar")).to_have_count(1)
    page.get_by_role("button", name="Good answer").click()
    expect(page.get_by_label("Tell us more (optional)")).to_be_visible()
    pages["versions and feedback"] = axe_violations(page)
    screenshot(page, f"35-versions-{name}")

    new_chat(page, "This will fail", assistant="Sim fail")
    page.locator("#messages .retry").click()
    expect(run_state(page)).to_have_attribute("data-status", "failed")
    expect(page.locator("#messages .retry")).to_be_visible()
    pages["failed, retried"] = axe_violations(page)

    new_chat(page, "Never ending", assistant="Sim stuck")
    expect(page.locator("#stop")).to_be_visible()
    pages["running"] = axe_violations(page)
    screenshot(page, f"36-running-{name}")
    page.locator("#stop").click()
    expect(run_state(page)).to_have_text("You stopped this answer.")

    page.goto("/")
    if size == "phone":
        page.get_by_role("button", name="Chats", exact=True).click()
    page.get_by_role("searchbox", name="Search chats").fill("code")
    expect(page.locator("#threads .snippet").first).to_be_visible()
    page.wait_for_timeout(400)
    pages["search"] = axe_violations(page)
    screenshot(page, f"37-search-{name}")
    page.get_by_role("searchbox", name="Search chats").fill("nothing-matches-this")
    expect(page.locator("#no-results")).to_be_visible()
    pages["no search results"] = axe_violations(page)

    page.goto("/")
    page.keyboard.press("Control+/")
    expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
    pages["shortcuts"] = axe_violations(page)
    screenshot(page, f"38-shortcuts-{name}")

    page.goto(f"/threads/{rich}/delete/")
    pages["confirm delete"] = axe_violations(page)
    page.goto(f"/threads/{rich}/rename/")
    pages["rename page"] = axe_violations(page)

    assert {name: found for name, found in pages.items() if found} == {}


def test_admin_pages_have_no_serious_problems(site, open_context):
    site.manage(
        "shell", "--verbosity", "0", "-c",
        "from django.contrib.auth import get_user_model; "
        "get_user_model().objects.create_superuser('carol', password='carol-password-1')",
    )  # fmt: skip
    page = open_context(base_url=site.url, **DESKTOP).new_page()
    page.goto("/login/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("carol-password-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.url}/")
    found = {}
    for path in (
        "/admin/",
        "/admin/assistants_app/assistant/",
        "/admin/assistants_app/assistant/add/",
        "/admin/assistants_app/assistant/providers/",
        "/admin/assistants_app/mcpserver/",
        "/admin/assistants_app/mcpserver/add/",
        "/admin/assistants_app/run/",
        "/admin/assistants_app/usagereport/",
        "/admin/assistants_app/assistantversion/",
        "/admin/assistants_app/assistantversion/1/change/",
        "/admin/assistants_app/modelprice/add/",
        "/admin/assistants_app/groupbudget/add/",
    ):
        page.goto(path)
        found[path] = axe_violations(page, impacts=("serious", "critical"))
    page.goto("/admin/")
    expect(page.get_by_role("link", name="Provider status")).to_be_visible()
    screenshot(page, "39-admin-index")
    assert {path: v for path, v in found.items() if v} == {}
