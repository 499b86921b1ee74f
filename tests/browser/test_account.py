"""The account page in Chromium: a person downloads all their data as one zip, then deletes
all of it after typing their username; someone else's chats stay."""

import zipfile

import pytest
from playwright.sync_api import expect

from .conftest import axe_violations, screenshot, seed_thread

pytestmark = pytest.mark.slow


def test_a_person_downloads_then_deletes_all_their_data(site, log_in):
    seed_thread(site, "bob", "Bob's garden", [("user", "Tomatoes?"), ("assistant", "Yes.")])
    seed_thread(site, "alice", "Alice's trip", [("user", "Lisbon?"), ("assistant", "Go.")])
    page = log_in("alice")
    page.get_by_role("link", name="alice", exact=True).click()
    expect(page.locator("#data-summary")).to_contain_text("chat")
    assert axe_violations(page) == []

    with page.expect_download() as download:
        page.get_by_role("link", name="Download all my data").click()
    path = download.value.path()
    names = zipfile.ZipFile(path).namelist()
    assert "account.json" in names
    assert any(name.endswith("alices-trip.md") for name in names)
    assert not any("garden" in name for name in names)

    page.get_by_role("link", name="Delete all my data").click()
    screenshot(page, "account-delete-data")
    assert axe_violations(page) == []
    page.get_by_label("Type your username").fill("alice")
    page.get_by_role("button", name="Delete all my data").click()
    expect(page.get_by_role("status").or_(page.locator(".flash"))).to_contain_text(
        "Deleted all your data"
    )
    expect(page.locator("#data-summary")).to_have_text("0 chats with 0 messages.")
    assert site.query("Thread.objects.filter(owner__username='alice').count()") == 0
    assert site.query("Thread.objects.filter(owner__username='bob').count()") >= 1
