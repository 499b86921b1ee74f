"""Answers render as GitHub-flavoured Markdown with math, and stay safe: strikethrough, task
lists, bare links, aligned tables that scroll (by keyboard too), images as links, TeX as
MathML. The page's CSP forbids style attributes, so alignment is a class."""

import re

import pytest

from assistants_app.rendering import render_markdown


def test_it_strikes_through():
    assert "<s>gone</s>" in render_markdown("~~gone~~ stays")


def test_it_draws_task_lists_that_cannot_be_ticked():
    html = render_markdown("- [x] done\n- [ ] todo")
    assert 'class="contains-task-list"' in html
    boxes = re.findall(r"<input ([^>]*)> (\w+)", html)
    assert [(box.count("checked"), label) for box, label in boxes] == [(2, "done"), (0, "todo")]
    assert all('type="checkbox"' in box and 'disabled="disabled"' in box for box, _ in boxes)
    assert ['aria-label="done"' in box for box, _ in boxes] == [True, False]
    assert 'aria-label="to do"' in boxes[1][0]  # named for screen readers


def test_it_links_bare_urls():
    html = render_markdown("see https://example.com/docs today")
    assert '<a href="https://example.com/docs" target="_blank" rel="noopener noreferrer">' in html


def test_an_image_becomes_a_link_without_a_stray_exclamation_mark():
    html = render_markdown("look ![a chart](https://img.example/c.png) here")
    assert html == (
        '<p>look <a href="https://img.example/c.png" target="_blank" '
        'rel="noopener noreferrer">a chart</a> here</p>\n'
    )


def test_tables_align_with_classes_and_take_keyboard_focus():
    html = render_markdown("| n | name |\n|--:|:-:|\n| 12345 | x |")
    assert '<table tabindex="0">' in html
    assert '<td class="align-right">12345</td>' in html
    assert '<th class="align-center">name</th>' in html
    assert "style=" not in html


def test_code_blocks_take_keyboard_focus():
    assert '<pre tabindex="0"><code>' in render_markdown("```\nplain\n```")


@pytest.mark.parametrize(
    "source, display",
    [
        ("$x^2$", "inline"),
        (r"\(x^2\)", "inline"),
        ("$$x^2$$", "block"),
        ("\\[\nx^2\n\\]", "block"),
    ],
)
def test_math_becomes_mathml(source, display):
    html = render_markdown(source)
    x_squared = "<mrow><msup><mi>x</mi><mn>2</mn></msup></mrow>"
    assert f'<math display="{display}">{x_squared}</math>' in html


def test_prices_are_not_math():
    assert render_markdown("costs $5 and $10") == "<p>costs $5 and $10</p>\n"


@pytest.mark.parametrize(
    "source",
    [
        r"$\text{<script>alert(1)</script>}$",
        r"$\href{javascript:alert(1)}{x}$",
        "$$<img src=x onerror=alert(1)>$$",
    ],
)
def test_math_cannot_smuggle_markup(source):
    html = render_markdown(source)
    assert "<script" not in html and "<img" not in html
    assert "javascript:" not in html and "onerror=" not in html


def test_quotes_and_inline_code_keep_their_elements():
    html = render_markdown("> quoted `code`")
    assert "<blockquote>\n<p>quoted <code>code</code></p>\n</blockquote>" in html
