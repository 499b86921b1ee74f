"""Tool calls in the browser: a step in the answer that opens to show arguments and result,
and a call that asks first, with Approve / Deny that outlive a reload."""

import pytest
from playwright.sync_api import expect

from ..live import start_site
from ..mcp_servers import seed_tools
from .conftest import LATENCY, answers, axe_violations, new_chat, run_state, screenshot

pytestmark = pytest.mark.slow

ASK = "What time is it in Paris? time__get_current_time Europe/Paris"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """Chat Completions assistants on the simulator: "Tools chat" asks before each call."""
    with start_site(tmp_path_factory.mktemp("tools-site"), engine="chat", latency=LATENCY,
                    env={"MESSAGES_PER_MINUTE": "0"}) as site:  # fmt: skip
        seed_tools(site, approval="ask", engines=("chat",))
        yield site


def test_a_call_that_asks_first_waits_for_approve_even_across_a_reload(site, log_in):
    page = log_in("alice")
    new_chat(page, ASK, assistant="Tools chat")
    step = page.locator(".tool-step").first
    expect(step).to_have_attribute("data-state", "awaiting_approval")
    approve = step.get_by_role("button", name="Approve")
    expect(approve).to_be_visible()
    expect(step.get_by_role("button", name="Deny")).to_be_visible()
    expect(step.locator(".step-arguments")).to_have_text('{"timezone": "Europe/Paris"}')
    expect(run_state(page)).to_have_text("Using a tool...")
    screenshot(page, "40-tool-asks-first")
    assert axe_violations(page) == []

    page.reload()  # the question is the server's: it is still there
    step = page.locator(".tool-step").first
    expect(step).to_have_attribute("data-state", "awaiting_approval")
    expect(step.get_by_text("Run it?")).to_be_visible()  # drawn by the page's script
    # Above the answer's text, inside the answer, and on screen (once the replayed page has
    # settled: the step is drawn again as the run's events come in).
    expect(step).to_be_in_viewport()
    # Its box once drawn for good: a step drawn again in between has none for a moment.
    page.wait_for_function(
        "() => { const b = document.querySelector('.tool-step')?.getBoundingClientRect();"
        " return b && b.width > 100 && b.y >= 0; }"
    )
    box = step.bounding_box()
    assert box and box["width"] > 100 and box["y"] >= 0
    step.get_by_role("button", name="Approve").click()

    expect(answers(page)).to_have_count(1)
    expect(answers(page).first).to_contain_text("time__get_current_time answered")
    expect(step).to_have_attribute("data-state", "done")
    expect(step.get_by_role("button", name="Approve")).to_have_count(0)
    expect(step.locator(".step-state")).to_contain_text("done")
    # Folded once the answer is there; it opens to show what the tool said.
    step.locator("summary").click()
    expect(step.locator(".step-output")).to_contain_text('"timezone": "Europe/Paris"')
    screenshot(page, "41-tool-step-done")
    assert axe_violations(page) == []


def test_a_denied_call_does_not_run_and_the_answer_says_so(site, log_in):
    page = log_in("alice")
    new_chat(page, ASK, assistant="Tools chat")
    step = page.locator(".tool-step").first
    step.get_by_role("button", name="Deny").click()
    expect(answers(page)).to_have_count(1)
    expect(answers(page).first).to_contain_text("declined to run this tool")
    expect(step).to_have_attribute("data-state", "denied")
    expect(step.locator(".step-state")).to_have_text("denied")


def test_someone_else_never_sees_the_step(site, log_in):
    alice = log_in("alice")
    thread_id = new_chat(alice, ASK, assistant="Tools chat")
    expect(alice.locator(".tool-step")).to_have_count(1)
    bob = log_in("bob")
    response = bob.goto(f"/threads/{thread_id}/")
    assert response.status == 404
    expect(bob.locator(".tool-step")).to_have_count(0)
