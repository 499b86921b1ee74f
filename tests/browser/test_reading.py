"""Reading a chat while answers stream, in Chromium at desktop and phone sizes: messages
scroll in their own region and the composer never covers them; a thread opens at its latest
message; a streaming answer is followed only while the reader is at the bottom; an answer
ending never moves the reader; Markdown renders while it streams; what people type is
shown as typed; the composer grows, and on a phone Enter adds a line.

This module's site writes answers slowly (SIMULATOR_TOKENS_PER_SECOND), so there is time to
look at an answer while it streams."""

import time

import pytest
from playwright.sync_api import expect

from ..live import start_site
from .conftest import (
    DESKTOP,
    PHONE,
    answers,
    as_drawn,
    box,
    new_chat,
    screenshot,
    scroll_state,
    seed_thread,
    send,
)

pytestmark = pytest.mark.slow

TOKENS_PER_SECOND = 12
LONG_ASK = "Please give me a list and some code. " + "Details matter here. " * 6
SIZES = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    with start_site(
        tmp_path_factory.mktemp("slow-site"),
        env={"SIMULATOR_TOKENS_PER_SECOND": str(TOKENS_PER_SECOND)},
        latency=0.3,
    ) as site:
        yield site


def history(count: int) -> list[tuple[str, str]]:
    """`count` messages, taking turns, each a few paragraphs long."""
    paragraphs = "\n\n".join(f"Paragraph {p} says something worth reading." for p in range(4))
    return [
        ("user" if n % 2 == 0 else "assistant", f"Message {n}.\n\n{paragraphs}")
        for n in range(count)
    ]


def last_message_bottom_above_composer(page) -> tuple[float, float]:
    """The last message's bottom and the composer's top as drawn, read together."""
    reader = """() => { const items = document.querySelectorAll("#messages > li");
                        const composer = document.getElementById("composer");
                        return [items[items.length - 1].getBoundingClientRect().bottom,
                                composer.getBoundingClientRect().top]; }"""
    return tuple(as_drawn(page, reader))


def live_height(site, page, final) -> float:
    """How tall the page's live rendering (as while streaming, cursor included) of the stored
    answer's whole text is, drawn in the answer's place. Sampling the live part until the
    server's HTML replaced it would race: the last pieces and the stored message can arrive
    in one frame, and the live part is then replaced before it shows them."""
    text = site.query(f"Message.objects.get(pk={final.get_attribute('data-id')}).text")
    return final.evaluate(
        """async (final, text) => {
             const { renderLive } = await import("/static/js/markdown.js");
             const { addCodeBars } = await import("/static/js/copy.js");
             const live = document.createElement("div");
             live.className = "part streaming";
             final.after(live);
             renderLive(live, text, addCodeBars);
             const height = live.getBoundingClientRect().height;
             live.remove();
             return height; }""",
        text,
    )


@pytest.mark.parametrize("size", SIZES)
def test_a_long_thread_opens_at_its_latest_message(site, log_in, size):
    thread_id = seed_thread(site, "alice", f"Forty on {size}", history(40))
    page = log_in("alice", **SIZES[size])

    page.goto(f"/threads/{thread_id}/")

    expect(page.locator("#messages > li")).to_have_count(40)
    expect(page.locator("#messages > li").last).to_contain_text("Message 39.")
    page.wait_for_timeout(300)  # fonts and code bars settle
    state = scroll_state(page)
    assert state["height"] > 2 * state["client"], state  # it does scroll
    assert state["gap"] <= 24, state  # at the bottom
    last, composer_top = last_message_bottom_above_composer(page)
    assert last <= composer_top, (last, composer_top)
    assert box(page, "#jump") is not None and not page.locator("#jump").is_visible()
    page.mouse.wheel(0, 2000)  # the page itself never scrolls: only the messages do
    page.wait_for_timeout(200)
    assert page.evaluate("window.scrollY") == 0


@pytest.mark.parametrize("size", SIZES)
def test_a_streaming_answer_is_followed_while_the_reader_is_at_the_bottom(site, log_in, size):
    thread_id = seed_thread(site, "alice", f"Follow on {size}", history(12))
    page = log_in("alice", **SIZES[size])
    page.goto(f"/threads/{thread_id}/")
    send(page, LONG_ASK)
    expect(page.locator(".part.streaming")).to_have_count(1)

    gaps = []
    while page.locator(".part.streaming").count():
        gaps.append(scroll_state(page)["gap"])
        last, composer_top = last_message_bottom_above_composer(page)
        assert last <= composer_top + 0.5, (last, composer_top)  # never under the composer
        page.wait_for_timeout(150)
    assert len(gaps) >= 5, gaps  # it streamed for a while
    assert max(gaps) <= 24, gaps  # followed all along

    expect(answers(page)).to_have_count(7)
    page.wait_for_timeout(300)
    # The finished answer, its Copy button included, sits above the composer.
    actions = answers(page).last.locator(".message-actions").last.bounding_box()
    assert actions["y"] + actions["height"] <= box(page, "#composer")["top"] + 0.5
    assert scroll_state(page)["gap"] <= 24


@pytest.mark.parametrize("size", SIZES)
def test_scrolling_up_stops_following_and_the_end_never_moves_the_reader(site, log_in, size):
    thread_id = seed_thread(site, "alice", f"Read back on {size}", history(12))
    page = log_in("alice", **SIZES[size])
    page.goto(f"/threads/{thread_id}/")
    send(page, LONG_ASK)
    expect(page.locator(".part.streaming")).to_have_count(1)

    page.locator("#scroller").evaluate("s => s.scrollBy(0, -500)")
    expect(page.locator("#jump")).to_be_visible()
    reading_at = scroll_state(page)["top"]
    screenshot(page, f"20-reading-back-while-streaming-{size}")
    expect(answers(page)).to_have_count(7, timeout=30_000)  # the answer ends...
    page.wait_for_timeout(500)

    assert scroll_state(page)["top"] == reading_at  # ...and the reader stays where they were
    expect(page.locator("#jump")).to_be_visible()
    page.locator("#jump").click()
    page.wait_for_timeout(800)  # a smooth scroll
    assert scroll_state(page)["gap"] <= 24
    expect(page.locator("#jump")).to_be_hidden()


def test_markdown_renders_while_the_answer_streams(site, log_in):
    page = log_in("bob", **DESKTOP)
    new_chat(page, "A list and some code, please. " + "Take it slowly. " * 4)
    streaming = page.locator(".part.streaming")
    # Before the end: formatted already (emphasis, the list, a code block), with a cursor.
    expect(streaming.locator("em")).to_have_text(
        "Simulated reply from the offline simulator, not a model."
    )
    expect(streaming.locator(".cursor")).to_have_count(1)
    expect(streaming.locator("pre code")).to_have_count(1, timeout=20_000)
    expect(streaming.locator(".code-bar .code-language")).to_have_text("python")
    assert "_Simulated" not in streaming.inner_text()  # no raw Markdown
    screenshot(page, "21-live-markdown-streaming")
    expect(streaming.locator("ul li").first).to_have_text("first point", timeout=20_000)
    assert page.locator("#stop").is_visible()  # still writing
    # Its height just before the server's HTML replaces it, sampled every frame.

    expect(answers(page)).to_have_count(1, timeout=20_000)
    final = answers(page).locator(".part[data-id]")
    expect(final.locator(".cursor")).to_have_count(0)
    expect(final.locator("pre code span.k").first).to_have_text("def")  # the server's HTML
    # The server's HTML takes the place of the live one without a jump (a line at most, the
    # cursor's).
    assert abs(final.bounding_box()["height"] - live_height(site, page, final)) <= 30


def test_what_people_type_is_shown_exactly_as_typed(site, log_in):
    typed = "# not a heading\n1) not a list\n    indented   spaces\n<b>not bold</b> *not em*"
    page = log_in("bob", **DESKTOP)
    new_chat(page, typed)
    mine = page.locator("#messages li.message.user .body")
    expect(mine).to_have_count(1)
    assert mine.evaluate("e => e.textContent") == typed  # from the POST's answer
    assert mine.locator("h1, ol, b, em").count() == 0
    assert mine.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"

    page.reload()
    mine = page.locator("#messages li.message.user .body")
    assert mine.evaluate("e => e.textContent") == typed  # and from the server's page


def test_the_composer_grows_up_to_a_limit(site, log_in):
    page = log_in("bob", **DESKTOP)
    page.goto("/")
    field = page.get_by_label("Message", exact=True)
    one_line = field.bounding_box()["height"]
    field.fill("line\n" * 5)
    five = field.bounding_box()["height"]
    field.fill("line\n" * 80)
    many = field.bounding_box()["height"]
    assert five > one_line * 2, (one_line, five)
    assert many <= 900 * 0.4 + 1, many  # a limit: the messages stay in view
    assert field.evaluate("e => e.scrollHeight > e.clientHeight")  # scrolls inside instead
    expect(page.locator("#composer-assistant")).to_have_text("Sim")  # who will answer


def test_on_a_phone_enter_adds_a_line_and_the_hint_says_so(site, log_in):
    page = log_in("bob", **PHONE)
    page.goto("/")
    field = page.get_by_label("Message", exact=True)
    expect(page.locator("#composer-hint")).to_contain_text("Tap Send to send · Enter adds a line")
    field.fill("first")
    field.press("Enter")
    field.press_sequentially("second")
    expect(field).to_have_value("first\nsecond")
    time.sleep(0.5)
    assert page.url == f"{site.url}/"  # nothing was sent
    page.get_by_role("button", name="Send").click()
    page.wait_for_url("**/threads/*/")
    expect(page.locator("#messages li.message.user .body")).to_have_text("first\nsecond")


def test_on_a_desktop_the_hint_says_enter_sends(site, log_in):
    page = log_in("bob", **DESKTOP)
    page.goto("/")
    expect(page.locator("#composer-hint")).to_contain_text("Enter sends · Shift+Enter adds a line")


def test_math_renders_while_the_answer_streams_and_prices_stay_text(site, log_in):
    page = log_in("alice", **DESKTOP)
    new_chat(
        page,
        r"Is $E = mc^2$ and $$\frac{a}{b}$$ and \(\sqrt{x}\) worth $4.50 and $2 to you? "
        "Give me a list. " + "Take it slowly. " * 6,
    )
    streaming = page.locator(".part.streaming")
    # Before the end: MathML already (drawn by the browser), not TeX source; the prices text.
    expect(streaming.locator("math")).to_have_count(3, timeout=20_000)
    assert page.locator("#stop").is_visible()  # still writing
    text = streaming.inner_text()
    assert "mc^2" not in text and "\\frac" not in text
    expect(streaming).to_contain_text("worth $4.50 and $2 to you?")

    expect(answers(page)).to_have_count(1, timeout=30_000)
    final = answers(page).locator(".part[data-id]")
    expect(final.locator(".cursor")).to_have_count(0)
    expect(final.locator("math")).to_have_count(3)
    expect(final).to_contain_text("worth $4.50 and $2 to you?")
    # The server's MathML takes the place of the browser's without a visible jump.
    assert abs(final.bounding_box()["height"] - live_height(site, page, final)) <= 4


def test_unclosed_math_at_the_end_of_a_stream_shows_as_text(site, log_in):
    page = log_in("bob", **DESKTOP)
    page.goto("/")
    errors = []
    page.on("pageerror", lambda error: errors.append(error))
    shown = page.evaluate(
        """async () => { const { renderLive } = await import("/static/js/markdown.js");
                         const out = [];
                         for (const text of ["$$\\\\frac{a}{", "Sum: $x + ", "\\\\[ a +"]) {
                           const div = document.createElement("div");
                           renderLive(div, text);
                           out.push([div.querySelectorAll("math").length, div.textContent.trim()]);
                         }
                         return out; }"""
    )
    # ("\[" unclosed is Markdown's escaped "[", as on the server.)
    assert shown == [[0, "$$\\frac{a}{"], [0, "Sum: $x +"], [0, "[ a +"]]
    assert errors == []


def test_math_drawn_in_the_browser_keeps_no_style_attributes(site, log_in):
    # The CSP refuses style attributes; temml writes some (colours, boxes), DOMPurify drops them.
    page = log_in("bob", **DESKTOP)
    page.goto("/")
    found = page.evaluate(
        """async () => { const { renderLive } = await import("/static/js/markdown.js");
                         const div = document.createElement("div");
                         renderLive(div, "$\\\\color{red}{x}$ and $\\\\boxed{y}$");
                         return [div.querySelectorAll("math").length,
                                 div.querySelectorAll("[style]").length]; }"""
    )
    assert found == [2, 0]
