// TeX math for the live rendering, found by the same rules as the server's markdown-it plugins
// (mdit_py_plugins' dollarmath with allow_space=False and double_inline=True, then texmath's
// brackets; see assistants_app/rendering.py) and drawn as MathML by temml, as the server's
// latex2mathml does, so the final HTML replaces it without a jump. "$4.50 and $2" stays text
// (a closing "$" after a space closes nothing), and math not yet closed stays text.
import temml from "../vendor/temml.mjs";

// MathML for TeX; the source as code when temml cannot read it (as the server does).
function mathml(tex, display, escapeHtml) {
  try {
    return temml.renderToString(tex, { displayMode: display, throwOnError: true });
  } catch {
    return "<code>" + escapeHtml(tex) + "</code>";
  }
}

const isSpace = (ch) => ch === " " || ch === "\t" || ch === "\n";

function escaped(src, pos) {
  let backslashes = 0;
  while (pos > 0 && src[pos - 1] === "\\") {
    backslashes += 1;
    pos -= 1;
  }
  return backslashes % 2 === 1;
}

// `$a$`, and `$$a$$` inside a paragraph (inline too, as on the server).
function dollarInline(state, silent) {
  const src = state.src;
  const start = state.pos;
  if (src[start] !== "$" || start + 1 >= src.length || isSpace(src[start + 1])) return false;
  if (escaped(src, start)) return false;
  const double = src[start + 1] === "$";
  let pos = start + 1 + (double ? 1 : 0);
  let end;
  for (;;) {
    end = src.indexOf("$", pos);
    if (end < 0) return false;
    if (escaped(src, end)) { pos = end + 1; continue; }
    if (double) {
      if (end + 1 >= src.length) return false;
      if (src[end + 1] !== "$") { pos = end + 1; continue; }
      end += 1;
    }
    break;
  }
  if (isSpace(src[end - 1])) return false;
  const text = double ? src.slice(start + 2, end - 1) : src.slice(start + 1, end);
  if (!text) return false;
  if (!silent) {
    const token = state.push("math_inline", "math", 0);
    token.content = text;
  }
  state.pos = end + 1;
  return true;
}

// `\(a\)`
function bracketInline(state, silent) {
  if (!state.src.startsWith("\\(", state.pos)) return false;
  const match = /^\\\(([\s\S]+?)\\\)/.exec(state.src.slice(state.pos));
  if (!match) return false;
  if (!silent) state.push("math_inline", "math", 0).content = match[1];
  state.pos += match[0].length;
  return true;
}

const LABEL_REVERSED = /^\s*\)([^)$\r\n]+?)\(\s*\${2}/;

// How many characters end a line that closes a `$$` block (the `$$`, any spaces after it, or a
// `$$ (label)`); null for a line that does not close one.
function closingCut(line) {
  if (line.trim().endsWith("$$")) return 2 + (line.length - line.trim().length);
  const label = LABEL_REVERSED.exec(reversed(line));
  return label ? label[0].length : null;
}

const reversed = (text) => [...text].reverse().join("");

// `$$a$$` on its own lines (optionally labelled `$$a$$ (eq1)`); unclosed, it is not math.
function dollarBlock(state, startLine, endLine, silent) {
  if (state.sCount[startLine] - state.blkIndent >= 4) return false;
  const startPos = state.bMarks[startLine] + state.tShift[startLine];
  let end = state.eMarks[startLine];
  if (startPos + 2 > end || !state.src.startsWith("$$", startPos)) return false;
  let found = false;
  let nextLine = startLine;
  let line = state.src.slice(startPos, end);
  if (line.trim().length > 3) {
    const cut = closingCut(line);
    if (cut !== null) {
      found = true;
      end -= cut;
    } else if (line.slice(2).includes("$$")) return false;
  }
  while (!found) {
    nextLine += 1;
    if (nextLine >= endLine) return false;
    const lineStart = state.bMarks[nextLine] + state.tShift[nextLine];
    end = state.eMarks[nextLine];
    line = state.src.slice(lineStart, end);
    const cut = closingCut(line);
    if (cut !== null) {
      found = true;
      end -= cut;
    }
  }
  if (silent) return true;
  const parts = [];
  for (let index = startLine; index <= nextLine; index += 1) {
    const from = index === startLine ? startPos + 2 : state.bMarks[index];
    parts.push(state.src.slice(from, index === nextLine ? end : state.eMarks[index]));
  }
  state.line = nextLine + 1;
  const token = state.push("math_display", "math", 0);
  token.block = true;
  token.content = parts.join("\n");
  token.map = [startLine, state.line];
  return true;
}

// `\[a\]`, optionally followed by a label `(eq1)`.
function bracketBlock(state, startLine, endLine, silent) {
  const begin = state.bMarks[startLine] + state.tShift[startLine];
  if (!state.src.startsWith("\\[", begin)) return false;
  const match = /^\\\[([\s\S]+?)\\\]/.exec(state.src.slice(begin));
  if (!match) return false;
  if (state.parentType === "blockquote" && match[1].includes("\n")) return false;
  const endPos = begin + match[0].length - 1;
  let line = startLine;
  while (line < endLine && endPos > state.eMarks[line]) line += 1;
  if (line >= endLine || endPos < state.bMarks[line]) return false;
  if (silent) return true;
  state.line = line + 1;
  const token = state.push("math_display", "math", 0);
  token.block = true;
  token.content = match[1];
  token.map = [startLine, state.line];
  return true;
}

export function mathPlugin(md) {
  md.inline.ruler.before("escape", "math_dollar", dollarInline);
  md.inline.ruler.before("escape", "math_bracket", bracketInline);
  md.block.ruler.before("fence", "math_dollar_block", dollarBlock);
  md.block.ruler.before("fence", "math_bracket_block", bracketBlock);
  const escape = md.utils.escapeHtml;
  md.renderer.rules.math_inline = (tokens, index) => mathml(tokens[index].content, false, escape);
  md.renderer.rules.math_display = (tokens, index) => mathml(tokens[index].content, true, escape);
}
