"""Messages' Markdown: code blocks highlighted by Pygments, everything else sanitised."""

import re

from assistants_app.rendering import TOKEN_CLASSES, render_markdown


def test_it_highlights_a_fenced_block_in_a_known_language():
    html = render_markdown('```python\ndef greet(name):\n    return "hi"\n```')
    assert '<code class="language-python">' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="nf">greet</span>' in html
    assert '<span class="s2">"hi"</span>' in html


def test_it_escapes_code_in_an_unknown_or_missing_language():
    for fence in ("```", "```no-such-language"):
        html = render_markdown(f"{fence}\n<script>alert(1)</script>\n```")
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<span" not in html


def test_highlighted_code_cannot_smuggle_markup():
    html = render_markdown('```html\n<img src=x onerror="alert(1)">\n```')
    assert "<img" not in html
    assert "&lt;" in html
    span_classes = set(re.findall(r'<span class="([^"]*)"', html))
    assert span_classes and span_classes <= TOKEN_CLASSES
