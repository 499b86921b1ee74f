"""Markdown to safe HTML for messages: markdown-it renders, Pygments highlights code blocks,
nh3 (Ammonia) sanitises.

Raw HTML in the source is shown as text, images become plain links (nothing is fetched
from a remote host when a message is shown), and links open in a new tab without a referrer.
Highlighted code keeps only `<span>`s whose class is a Pygments token class, which
static/css/site.css colours for light and dark themes.
"""

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

_formatter = HtmlFormatter(nowrap=True)


def highlight_code(code: str, language: str, attrs: str) -> str:
    """Token spans for a fenced block in a language Pygments knows; "" lets markdown-it
    escape the block as plain code."""
    if not language:
        return ""
    try:
        lexer = get_lexer_by_name(language)
    except ClassNotFound:
        return ""
    return highlight(code, lexer, _formatter)


_markdown = MarkdownIt("commonmark", {"html": False, "highlight": highlight_code}).enable(
    ["table", "strikethrough"]
)
# An image would make the reader's browser fetch an attacker-chosen URL; keep it a link.
_markdown.disable("image")

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "code", "pre", "blockquote", "span",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "ol": {"start"}}
TOKEN_CLASSES = {name for name in STANDARD_TYPES.values() if name}


@lru_cache(maxsize=2048)
def render_markdown(text: str) -> str:
    html = _markdown.render(text)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes={"span": TOKEN_CLASSES},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
