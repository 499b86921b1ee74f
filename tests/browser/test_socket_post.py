"""Sending a message over the thread's websocket (`message.send`), in Chromium: in an open
thread the page sends what fits in a websocket message over its socket instead of an HTTP
post; a bigger message, or one sent while the socket is down, goes as a post; and a send whose
socket drops before the server answers keeps its text and says so."""

import json
import re
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from .conftest import answers, new_chat, screenshot, seed_thread, send

pytestmark = pytest.mark.slow

THREAD_SOCKET = re.compile(r"/ws/threads/\d+/$")
# Over the socket's 16,384 bytes, under MESSAGE_MAX_CHARS (20,000).
LONG_TEXT = ("A long message, longer than one websocket message may be. " * 300).strip()
DROPPED = (
    "The connection dropped while sending. If your message does not show above, send it again."
)


def user_messages(page):
    return page.locator("#messages li.message.user")


def composer_text(page):
    return page.get_by_label("Message", exact=True)


def count_posts(page) -> list[str]:
    """The HTTP posts of messages to this thread page's post URL, as they are made."""
    post_path = page.locator("#chat").get_attribute("data-post-url")
    posts = []

    def note(request):
        if request.method == "POST" and urlparse(request.url).path == post_path:
            posts.append(request.url)

    page.on("request", note)
    return posts


def record_socket_sends(page) -> list[dict]:
    """The `message.send` events the page sends over its websockets (set up before they open)."""
    sent = []

    def watch(socket):
        def note(payload):
            event = json.loads(payload)
            if event["type"] == "message.send":
                sent.append(event)

        socket.on("framesent", note)

    page.on("websocket", watch)
    return sent


def finished(page, count: int) -> None:
    """`count` answers complete, and Send is back (nothing is being written)."""
    expect(answers(page)).to_have_count(count, timeout=20_000)
    expect(page.get_by_role("button", name="Send")).to_be_visible()


def test_a_follow_up_message_goes_over_the_socket_and_shows_above_the_composer(log_in):
    page = log_in("alice")
    socket_sends = record_socket_sends(page)
    new_chat(page, "Hello")
    finished(page, 1)  # the first answer came over the socket: it is open
    posts = count_posts(page)

    send(page, "And a follow-up question")

    expect(user_messages(page)).to_have_count(2)
    expect(user_messages(page).last.locator(".body")).to_have_text("And a follow-up question")
    finished(page, 2)
    expect(composer_text(page)).to_have_value("")
    assert posts == []
    assert [event["text"] for event in socket_sends] == ["And a follow-up question"]
    # The newest exchange is on screen, above the composer, in order.
    composer = page.locator("#composer").bounding_box()
    question = user_messages(page).last.bounding_box()
    answer = answers(page).last.bounding_box()
    assert question["y"] + question["height"] <= answer["y"] + 1
    assert answer["y"] + answer["height"] <= composer["y"] + 1
    expect(answers(page).last).to_be_in_viewport()
    expect(page.locator("#composer-error")).to_be_hidden()
    screenshot(page, "60-sent-over-the-socket")


def test_a_message_too_big_for_the_socket_is_posted(log_in):
    page = log_in("alice")
    socket_sends = record_socket_sends(page)
    new_chat(page, "Hello")
    finished(page, 1)
    posts = count_posts(page)

    send(page, "A short one first")  # what fits goes over the socket
    finished(page, 2)
    send(page, LONG_TEXT)

    expect(user_messages(page).last.locator(".body")).to_have_text(LONG_TEXT)
    finished(page, 3)
    expect(composer_text(page)).to_have_value("")
    assert len(posts) == 1
    assert [event["text"] for event in socket_sends] == ["A short one first"]


def test_with_the_socket_down_a_message_is_posted_and_its_answer_comes_when_it_is_back(
    site, log_in
):
    thread_id = seed_thread(
        site, "alice", "Before the outage", [("user", "Hi"), ("assistant", "Hello")]
    )
    page = log_in("alice")
    outage = {"on": True}

    def route(ws):
        if outage["on"]:
            ws.close()  # refused, as by a proxy that drops websockets
        else:
            ws.connect_to_server()

    page.route_web_socket(THREAD_SOCKET, route)
    page.goto(f"/threads/{thread_id}/")
    expect(page.locator("#connection")).to_have_text(re.compile("Connection lost"))
    posts = count_posts(page)

    send(page, "Sent while the socket is down")

    expect(user_messages(page).last.locator(".body")).to_have_text("Sent while the socket is down")
    expect(composer_text(page)).to_have_value("")
    assert len(posts) == 1
    screenshot(page, "61-posted-while-the-socket-is-down")

    outage["on"] = False
    # The next reconnect gets through, and its replay brings the answer.
    expect(page.locator("#connection")).to_be_hidden(timeout=30_000)
    finished(page, 2)
    send(page, "Sent with the socket back")  # the socket carries it again
    finished(page, 3)
    assert len(posts) == 1


def test_a_send_whose_socket_drops_before_the_answer_keeps_the_text_and_says_so(log_in):
    page = log_in("alice")
    dropped = []

    def route(ws):
        server = ws.connect_to_server()

        def from_page(message):
            # The first message.send never reaches the server: its socket closes instead.
            if not dropped and json.loads(message)["type"] == "message.send":
                dropped.append(message)
                ws.close()  # and so the server's side, by default
                return
            server.send(message)

        ws.on_message(from_page)

    page.route_web_socket(THREAD_SOCKET, route)
    new_chat(page, "Hello")
    finished(page, 1)

    send(page, "Is this stored?")

    expect(page.locator("#composer-error")).to_have_text(DROPPED)
    expect(composer_text(page)).to_have_value("Is this stored?")  # kept, to send again
    assert len(dropped) == 1
    expect(user_messages(page)).to_have_count(1)
    screenshot(page, "62-send-dropped")

    # The page reconnects by itself; sending again works, once.
    expect(page.locator("#connection")).to_be_hidden()
    page.get_by_role("button", name="Send").click()
    finished(page, 2)
    expect(user_messages(page)).to_have_count(2)
    expect(user_messages(page).last.locator(".body")).to_have_text("Is this stored?")
    expect(composer_text(page)).to_have_value("")
    expect(page.locator("#composer-error")).to_be_hidden()
