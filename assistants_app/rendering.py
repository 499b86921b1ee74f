"""Markdown to safe HTML for answers: markdown-it renders GitHub-flavoured Markdown (tables,
strikethrough, task lists, bare links) and TeX math as MathML, Pygments highlights code
blocks, nh3 (Ammonia) sanitises.

Raw HTML in the source is shown as text, images become plain links (nothing is fetched
from a remote host when a message is shown), and links open in a new tab without a referrer.
Highlighted code keeps only `<span>`s whose class is a Pygments token class, which
static/css/site.css colours for light and dark themes. Code blocks and tables scroll
sideways, so they take keyboard focus. The page's own live rendering while an answer streams
(static/js/markdown.js) uses the same options, so the final HTML replaces it without a jump.
"""

import re
from functools import lru_cache

import nh3
from latex2mathml.converter import convert as latex_to_mathml
from markdown_it import MarkdownIt
from mdit_py_plugins.dollarmath import dollarmath_plugin
from mdit_py_plugins.tasklists import tasklists_plugin
from mdit_py_plugins.texmath import texmath_plugin
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


def math(tex: str, display: bool) -> str:
    """MathML for TeX (browsers draw it with their own fonts); the source as code if the TeX
    is beyond the converter."""
    try:
        return latex_to_mathml(tex, display="block" if display else "inline")
    except Exception:  # the converter raises many kinds on TeX it cannot read
        return f"<code>{nh3.clean_text(tex)}</code>"


def _render_image_as_link(self, tokens, idx, options, env) -> str:
    # An image would make the reader's browser fetch an attacker-chosen URL; keep it a link
    # whose text is the image's description.
    token = tokens[idx]
    alt = self.renderInline(token.children or [], options, env) or token.attrGet("src")
    href = nh3.clean_text(token.attrGet("src") or "")
    return f'<a href="{href}">{alt}</a>'


def _alignment_as_class(state) -> None:
    # markdown-it aligns table cells with style attributes, which the CSP (style-src 'self')
    # would refuse; a class does the same from the stylesheet.
    for token in state.tokens:
        style = token.attrGet("style") if token.type in ("th_open", "td_open") else None
        if style and style.startswith("text-align:"):
            token.attrs.pop("style")
            token.attrSet("class", "align-" + style.split(":", 1)[1])


def _display_math(self, tokens, idx, options, env) -> str:
    return math(tokens[idx].content, display=True)


def _inline_math(self, tokens, idx, options, env) -> str:
    return math(tokens[idx].content, display=False)


_markdown = (
    MarkdownIt(
        "commonmark",
        {"html": False, "linkify": True, "typographer": False, "highlight": highlight_code},
    )
    .enable(["table", "strikethrough", "linkify"])
    .use(tasklists_plugin)
    .use(dollarmath_plugin, allow_space=False, double_inline=True)
    .use(texmath_plugin, delimiters="brackets")
)
_markdown.core.ruler.push("alignment_as_class", _alignment_as_class)
_markdown.add_render_rule("image", _render_image_as_link)
for _rule in ("math_inline", "math_inline_double", "math_single", "math_inline_eq"):
    _markdown.add_render_rule(_rule, _inline_math)
for _rule in ("math_block", "math_block_label", "math_block_eqno", "math_block_eqno_label"):
    _markdown.add_render_rule(_rule, _display_math)

MATHML_TAGS = {
    "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace",
    "msub", "msup", "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover",
    "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "merror",
}  # fmt: skip
ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote", "span",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6", "input",
    "table", "thead", "tbody", "tr", "th", "td",
} | MATHML_TAGS  # fmt: skip
MATHML_ATTRIBUTES = {
    "display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace",
    "accent", "accentunder", "columnalign", "rowspacing", "columnspacing", "linethickness",
    "width", "height", "depth", "notation", "movablelimits", "largeop", "symmetric",
    "minsize", "maxsize", "scriptlevel", "displaystyle", "form", "encoding",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "ol": {"start"},
    "input": {"type", "checked"},
    **{tag: MATHML_ATTRIBUTES for tag in MATHML_TAGS},
}
TOKEN_CLASSES = {name for name in STANDARD_TYPES.values() if name}
ALIGN_CLASSES = {"align-left", "align-center", "align-right"}


_TASK_BOX = re.compile(
    r'<input class="task-list-item-checkbox"( checked="checked")? type="checkbox" '
    r'disabled="disabled">'
)


def _name_task_box(match: re.Match) -> str:
    # A checkbox needs a name for screen readers; a task list's says its state.
    state = "done" if match[1] else "to do"
    return match[0].removesuffix(">") + f' aria-label="{state}">'


@lru_cache(maxsize=2048)
def render_markdown(text: str) -> str:
    return _TASK_BOX.sub(_name_task_box, _sanitised(_markdown.render(text)))


# An answer as models write them: a bare link, and code in the languages they write most.
_WARM_UP_TEXT = "See https://example.com.\n\n" + "".join(
    f"```{language}\nx = 1\n```\n\n"
    for language in ("python", "javascript", "typescript", "bash", "json", "sql", "html")
)


def warm_up() -> None:
    """Render an answer once, at start-up. linkify compiles its patterns and Pygments imports
    a language's lexer and compiles its patterns on first use: 5 to 30 ms each (a bare link,
    a Python block), which a process's first answers would spend while every socket of the
    process waited."""
    render_markdown.__wrapped__(_WARM_UP_TEXT)


def _sanitised(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        allowed_classes={
            "span": TOKEN_CLASSES,
            "th": ALIGN_CLASSES,
            "td": ALIGN_CLASSES,
            "li": {"task-list-item"},
            "ul": {"contains-task-list"},
            "input": {"task-list-item-checkbox"},
        },
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
        set_tag_attribute_values={
            "a": {"target": "_blank"},
            # Reachable by keyboard: both scroll sideways when wider than the answer.
            "pre": {"tabindex": "0"},
            "table": {"tabindex": "0"},
            # A task list shows state; nothing on the page can tick it.
            "input": {"type": "checkbox", "disabled": "disabled"},
        },
    )
