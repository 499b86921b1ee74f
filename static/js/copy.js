// Copying: a "Copy" button on every message, and a bar with the language and "Copy code" on
// every code block. Works on plain http too, where the clipboard API is missing.
const announcer = () => document.getElementById("announcer");

export function announce(text) {
  const region = announcer();
  if (!region) return;
  region.textContent = "";
  // Set after a tick, so a screen reader announces it even when the words repeat.
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.readOnly = true;
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("the browser refused to copy");
}

export function copyButton(label, accessibleName, textOf) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = label;
  button.setAttribute("aria-label", accessibleName);
  button.addEventListener("click", async () => {
    try {
      await copyText(textOf());
      button.textContent = "Copied";
      announce("Copied to the clipboard.");
    } catch (error) {
      button.textContent = "Copy failed";
      announce("Could not copy: the browser refused.");
    }
    setTimeout(() => {
      button.textContent = label;
    }, 2000);
  });
  return button;
}

// Every <pre> of `body` in a block with a bar above it: the language and a copy button.
export function addCodeBars(body) {
  for (const pre of body.querySelectorAll("pre")) {
    if (pre.parentElement.classList.contains("code-block")) continue;
    const code = pre.querySelector("code") || pre;
    const language = (code.className.match(/language-(\S+)/) || [])[1];
    const name = document.createElement("span");
    name.className = "code-language";
    name.textContent = language || "code";
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const accessibleName = "Copy code" + (language ? " (" + language + ")" : "");
    bar.append(name, copyButton("Copy code", accessibleName, () => code.innerText));
    const block = document.createElement("div");
    block.className = "code-block";
    pre.before(block);
    block.append(bar, pre);
  }
}

// The copy button at the foot of a message (or of an answer's version).
// Rendered actions (Edit, Regenerate, feedback) get the copy button first among them.
export function addCopy(container, body, whose) {
  let actions = container.querySelector(":scope > .message-actions");
  if (actions && actions.querySelector(".copy")) return;
  if (!actions) {
    actions = document.createElement("div");
    actions.className = "message-actions";
    container.append(actions);
  }
  actions.prepend(copyButton("Copy", "Copy " + whose, () => body.innerText.trim()));
}
