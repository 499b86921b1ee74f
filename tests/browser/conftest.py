"""Browser tests: Playwright drives Debian's Chromium (/usr/bin/chromium, installed by .ci/run;
never downloaded) against real daphne and the simulator (tests/live.py).

Screenshots of the main states go to test-artifacts/screenshots/, which CI keeps. The
accessibility check runs axe-core from node_modules (`npm ci` installs it from package.json).
"""

import json
import os
import re
from pathlib import Path

import pytest

from ..live import PASSWORDS, ROOT, start_site

CHROMIUM = Path("/usr/bin/chromium")
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Answers take this long in the simulator; "Sim slow" answers after SLOW_SECONDS.
LATENCY = 0.5
SLOW_SECONDS = 2
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1440, "height": 900}}


def _missing(what: str, how: str):
    """In CI a missing browser is a failure, never a silent skip; on a laptop, a skip."""
    message = f"{what} is missing: {how}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


# Per module, not per session: while Playwright's sync API runs, its event loop counts as
# running, and the async tests in other modules could not start theirs.
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import expect

    # Two cores run the browser, daphne and the simulator: allow more than the 5 s default.
    expect.set_options(timeout=15_000)
    if not CHROMIUM.exists():
        _missing("Chromium", "apt-get install -y chromium (see .ci/run)")
    if not AXE_SCRIPT.exists():
        _missing("axe-core", "run `npm ci` in the project folder")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with start_site(
        tmp_path_factory.mktemp("browser-site"),
        # Fair use is tested in test_fair_use.py; here one person goes through every state
        # of the page in a minute, far more than the default 10 messages a minute.
        env={"SIMULATOR_SLOW_SECONDS": str(SLOW_SECONDS), "MESSAGES_PER_MINUTE": "0"},
        latency=LATENCY,
        faults=("fail", "stuck", "slow"),
    ) as site:
        yield site


@pytest.fixture
def open_context(browser):
    """Make browser contexts (separate cookie jars: separate people); closed after the test."""
    contexts = []

    def make(**options):
        context = browser.new_context(**options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


# (site, username) -> the session cookies of that person's last login through the form. A site
# is named by its cache prefix, unique to it (an object's id or a port can come back).
_logins: dict[tuple[str, str], list] = {}


@pytest.fixture
def log_in(site, open_context):
    """A logged-in page for a user in a new browser context: `log_in("alice", **options)`.

    The first time on a site the person logs in through the form; later contexts get that
    login's cookies (not its local storage: themes and drafts start afresh), which skips a
    password hash and two page loads per test. A session that ended meanwhile (a test logged
    out, or deleted the account) sends the page to the login form, which is then filled in."""

    def person(username: str, **options):
        context = open_context(base_url=site.url, **options)
        page = context.new_page()
        key = (site.env["CACHE_KEY_PREFIX"], username)
        if key in _logins:
            context.add_cookies(_logins[key])
            page.goto("/")
            if page.url == f"{site.url}/":
                return page
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORDS[username])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{site.url}/")
        _logins[key] = context.cookies()
        return page

    return person


def screenshot(page, name: str) -> Path:
    """What the person sees: the viewport (the messages scroll inside it)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def axe_violations(page, impacts=("minor", "moderate", "serious", "critical")) -> list[str]:
    """Run axe-core on the page; its violations of the given impacts (all), one line each."""
    # evaluate() is not subject to the page's CSP, unlike an injected <script>.
    page.evaluate(AXE_SCRIPT.read_text())
    results = page.evaluate(
        """() => axe.run(document, {runOnly: {type: "tag",
              values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]}})"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}"
        for v in results["violations"]
        if v["impact"] in impacts
    ]


def new_chat(page, text: str, assistant: str = "Sim") -> int:
    """Start a chat as a person does: New chat, pick the assistant, send the first message;
    the id of the thread that this makes."""
    page.goto("/")
    select = page.get_by_label("Assistant", exact=True)
    # Options read "Name (simulated)"; "Sim" must not pick "Sim fail".
    label = next(
        option for option in select.locator("option").all_inner_texts()
        if option == assistant or option.startswith(f"{assistant} (")
    )  # fmt: skip
    select.select_option(label=label)
    send(page, text)
    page.wait_for_url(re.compile(r"/threads/\d+/$"))
    return int(page.url.rstrip("/").split("/")[-1])


def answers(page):
    """The assistant's finished answers: one being streamed gets its id when it is complete."""
    return page.locator("#messages li.message.assistant:has(.part[data-id])")


def run_state(page):
    """The state line of the answer on show last: "Writing...", a failure, ..."""
    return page.locator("#messages .version:not([hidden]) .run-state").last


def send(page, text: str) -> None:
    page.get_by_label("Message", exact=True).fill(text)
    page.get_by_role("button", name="Send").click()


def box(page, selector: str) -> dict:
    """An element's box on screen (getBoundingClientRect), or None if absent."""
    return page.evaluate(
        "s => { const e = document.querySelector(s); if (!e) return null;"
        " const r = e.getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, left: r.left, right: r.right,"
        " height: r.height, width: r.width}; }",
        selector,
    )


def as_drawn(page, reader: str):
    """What the JavaScript function `reader` returns when called after the next frame is
    drawn: what the person sees. Read at once, it could catch content grown by a task and not
    yet followed: the page follows growth in its ResizeObservers, which run before the frame
    is drawn."""
    return page.evaluate(
        "() => new Promise(resolve => requestAnimationFrame(() => setTimeout(() =>"
        f" resolve(({reader})()))))"
    )


def scroll_state(page) -> dict:
    """The messages' scroll position as the person sees it."""
    return as_drawn(
        page,
        """() => { const s = document.getElementById("scroller");
                   return {top: s.scrollTop, height: s.scrollHeight, client: s.clientHeight,
                           gap: s.scrollHeight - s.scrollTop - s.clientHeight}; }""",
    )


SEED_THREAD = """
import json
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from assistants_app.models import Assistant, Message, Thread
owner = get_user_model().objects.get(username={owner!r})
thread = Thread.objects.create(owner=owner, assistant=Assistant.objects.get(name={assistant!r}),
                               title={title!r})
for role, text in json.loads({messages!r}):  # one by one: each follows the one before
    Message.objects.create(thread=thread, role=role, text=text)
Thread.objects.filter(pk=thread.pk).update(updated_at=timezone.now() - timedelta(days={days_ago}))
print(thread.pk)
"""


def seed_thread(site, owner: str, title: str, messages: list[tuple[str, str]],
                assistant: str = "Sim", days_ago: int = 0) -> int:  # fmt: skip
    """A thread with these messages stored directly (no runs), last active `days_ago`."""
    code = SEED_THREAD.format(
        owner=owner, assistant=assistant, title=title, messages=json.dumps(messages),
        days_ago=days_ago,
    )  # fmt: skip
    return int(site.manage("shell", "--verbosity", "0", "-c", code))


RICH_ANSWER = """Here is **everything** at once, ~~nothing~~ left out; see https://example.com.

| Plant | Seeds | Price |
|:--|--:|:-:|
| San Marzano tomato | 1,250,000 | $4.50 |
| Basil | 980 | $2 |

- [x] sow indoors
- [ ] plant out after the last frost

> Quoted advice with `inline code`.

The area is $A = \\pi r^2$, and

$$\\sum_{i=1}^{n} i = \\frac{n(n+1)}{2}$$

```python
def water(plants: list[str]) -> None:
    for plant in plants:
        print(f"Watering {plant} with a very long line that scrolls sideways in its block")
```
"""


def pytest_terminal_summary(terminalreporter):
    if SCREENSHOTS.exists() and any(SCREENSHOTS.iterdir()):
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS}")
