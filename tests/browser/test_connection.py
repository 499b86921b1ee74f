"""Honest states when things are slow or broken, in Chromium: a quiet answer says how long
it has been working; a lost connection shows a banner until it recovers; a socket that goes
silent (no heartbeat) is noticed and replaced. This module's site is its own, as its server
is stopped and frozen on purpose."""

import re
import signal

import pytest
from playwright.sync_api import expect

from ..live import start_site
from .conftest import DESKTOP, PHONE, answers, new_chat, run_state, screenshot

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with start_site(tmp_path_factory.mktemp("fragile-site"), faults=("stuck",)) as site:
        yield site


def daphne(site):
    """The site's one daphne process and its port."""
    return site.processes[-1], int(site.url.rsplit(":", 1)[1])


def test_a_quiet_answer_says_it_is_still_working_and_for_how_long(site, log_in):
    page = log_in("alice", **DESKTOP)
    new_chat(page, "Take forever", assistant="Sim stuck")

    expect(run_state(page)).to_have_text(re.compile(r"^Still working\.\.\. \d+ s$"), timeout=10_000)
    first = int(re.search(r"(\d+) s", run_state(page).inner_text())[1])
    page.wait_for_timeout(2200)
    later = int(re.search(r"(\d+) s", run_state(page).inner_text())[1])
    assert later >= first + 2  # it counts, so a person sees it is alive
    screenshot(page, "22-still-working")
    page.locator("#stop").click()
    expect(run_state(page)).to_have_text("You stopped this answer.")


@pytest.mark.parametrize("size", {"desktop": DESKTOP, "phone": PHONE})
def test_a_lost_connection_shows_a_banner_until_it_recovers(site, log_in, size):
    page = log_in("alice", **(DESKTOP if size == "desktop" else PHONE))
    new_chat(page, "Hello before the outage")
    expect(answers(page)).to_have_count(1)
    banner = page.locator("#connection")
    expect(banner).to_be_hidden()

    process, port = daphne(site)
    process.terminate()
    process.wait(timeout=10)
    try:
        expect(banner).to_be_visible()
        expect(banner).to_have_text(re.compile("Connection lost. Reconnecting"))
        top = banner.bounding_box()
        assert top["y"] < 120 and top["height"] >= 30  # at the top, where it is seen
        screenshot(page, f"23-connection-lost-{size}")
    finally:
        site.processes.remove(process)
        site.start_daphne(port)
    expect(banner).to_be_hidden(timeout=40_000)


def test_a_silent_socket_is_noticed_by_its_missing_heartbeat(site, log_in):
    page = log_in("bob", **DESKTOP)
    page.clock.install()  # the chat page's clock, which runs on as it would, and can jump
    new_chat(page, "Hello before the freeze")
    expect(answers(page)).to_have_count(1)
    banner = page.locator("#connection")

    process, _ = daphne(site)
    process.send_signal(signal.SIGSTOP)  # the socket stays open, and nothing comes through
    try:
        # The page's 15 s of grace (three missed heartbeats) pass at once instead of in real
        # time: nothing can come through meanwhile. (A frame already on its way would only
        # start the grace again, in real time, within the 30 s below.)
        page.clock.fast_forward(16_000)
        expect(banner).to_have_text(re.compile("stalled|Connection lost"), timeout=30_000)
    finally:
        process.send_signal(signal.SIGCONT)
    expect(banner).to_be_hidden(timeout=40_000)
