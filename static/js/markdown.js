// An answer rendered as Markdown while it streams, so nothing reflows when it ends: the same
// options as the server (assistants_app/rendering.py), sanitised by DOMPurify, with a cursor.
// Math is MathML here too (math.js); the server's HTML (highlighted code) replaces it when the
// answer is done.
import markdownit from "../vendor/markdown-it.esm.min.mjs";
import DOMPurify from "../vendor/purify.es.mjs";
import { mathPlugin } from "./math.js";

const md = markdownit("commonmark", { html: false, linkify: true }).enable([
  "table",
  "strikethrough",
  "linkify",
]).use(mathPlugin);

// An image would make the browser fetch an attacker-chosen URL: a link, as on the server.
md.renderer.rules.image = (tokens, index, options, env, self) => {
  const token = tokens[index];
  const text = self.renderInlineAsText(token.children || [], options, env) || token.attrGet("src");
  return '<a href="' + md.utils.escapeHtml(token.attrGet("src") || "") + '">' + md.utils.escapeHtml(text) + "</a>";
};

// Cell alignment as a class: the CSP refuses style attributes.
md.core.ruler.push("alignment_as_class", (state) => {
  for (const token of state.tokens) {
    if (token.type !== "th_open" && token.type !== "td_open") continue;
    const style = token.attrGet("style");
    if (!style || !style.startsWith("text-align:")) continue;
    token.attrs = token.attrs.filter(([name]) => name !== "style");
    token.attrSet("class", "align-" + style.slice("text-align:".length));
  }
});

const ALLOWED = {
  ALLOWED_TAGS: [
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote", "span",
    "ul", "ol", "li", "a", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
    // The server's MathML elements and attributes (rendering.py); temml's style attributes
    // go, as the CSP would refuse them, and nothing it draws needs them.
    "math", "semantics", "annotation", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace",
    "msub", "msup", "msubsup", "mfrac", "msqrt", "mroot", "mover", "munder", "munderover",
    "mtable", "mtr", "mtd", "mstyle", "mpadded", "mphantom", "menclose", "merror",
  ],
  ALLOWED_ATTR: [
    "href", "title", "class", "start",
    "display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace",
    "accent", "accentunder", "columnalign", "rowspacing", "columnspacing", "linethickness",
    "width", "height", "depth", "notation", "movablelimits", "largeop", "symmetric",
    "minsize", "maxsize", "scriptlevel", "displaystyle", "form", "encoding",
  ],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
  RETURN_DOM_FRAGMENT: true,
};

// GitHub's "- [ ] task" items, drawn as the server draws them.
function taskLists(fragment) {
  for (const item of fragment.querySelectorAll("li")) {
    const first = item.firstChild && item.firstChild.nodeType === Node.TEXT_NODE
      ? item.firstChild
      : item.firstElementChild && item.firstElementChild.tagName === "P" && item.firstElementChild.firstChild;
    if (!first || first.nodeType !== Node.TEXT_NODE) continue;
    const match = /^\[([ xX])\] /.exec(first.data);
    if (!match) continue;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.disabled = true;
    box.checked = match[1] !== " ";
    box.className = "task-list-item-checkbox";
    box.setAttribute("aria-label", box.checked ? "done" : "to do");
    first.data = " " + first.data.slice(4);
    first.before(box);
    item.classList.add("task-list-item");
    item.parentElement.classList.add("contains-task-list");
  }
}

function lastTextBlock(root) {
  let node = root;
  while (node.lastElementChild && !["CODE", "MATH"].includes(node.lastElementChild.tagName)) {
    const last = node.lastElementChild;
    if (["UL", "OL", "TABLE", "THEAD", "TBODY", "TR", "BLOCKQUOTE", "LI", "TD", "P", "PRE"].includes(last.tagName)) node = last;
    else break;
  }
  return node.tagName === "PRE" ? node.querySelector("code") || node : node;
}

// Renders `text` into `element`, sanitised, with the cursor after the last character.
export function renderLive(element, text, decorate) {
  const fragment = DOMPurify.sanitize(md.render(text), ALLOWED);
  for (const link of fragment.querySelectorAll("a")) {
    link.target = "_blank";
    link.rel = "noopener noreferrer";
  }
  for (const scrolling of fragment.querySelectorAll("pre, table")) scrolling.tabIndex = 0;
  taskLists(fragment);
  const cursor = document.createElement("span");
  cursor.className = "cursor";
  cursor.setAttribute("aria-hidden", "true");
  (fragment.lastElementChild ? lastTextBlock(fragment.lastElementChild) : fragment).append(cursor);
  element.replaceChildren(fragment);
  if (decorate) decorate(element);
}
