// Message comforts: a time and a "Copy" button on every message, and a bar with the language
// and a "Copy code" button on every code block. Applies to the messages the server rendered
// and to those chat.js adds (its "chat:message" event).
(function () {
  "use strict";

  const list = document.getElementById("messages");
  if (!list) return;
  const announcer = document.getElementById("announcer");

  function announce(text) {
    announcer.textContent = "";
    // Set after a tick, so a screen reader announces it even when the words repeat.
    setTimeout(() => {
      announcer.textContent = text;
    }, 50);
  }

  async function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    // Plain http on a host other than localhost has no clipboard API: copy a selection.
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

  function copyButton(label, accessibleName, textOf) {
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

  function addTime(item, message) {
    const role = item.querySelector(".role");
    if (!message || !role || role.querySelector("time")) return;
    const time = document.createElement("time");
    time.dateTime = message.created_at;
    time.dataset.relative = "";
    role.append(" ", time);
  }

  function addCodeBars(body) {
    for (const pre of body.querySelectorAll("pre")) {
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

  function decorate(item, message) {
    if (!item.classList.contains("message") || item.dataset.decorated) return;
    item.dataset.decorated = "true";
    addTime(item, message);
    const body = item.querySelector(".body");
    addCodeBars(body);
    const whose = item.classList.contains("user") ? "your message" : "the answer";
    const actions = document.createElement("div");
    actions.className = "message-actions";
    actions.append(copyButton("Copy", "Copy " + whose, () => body.innerText.trim()));
    item.append(actions);
  }

  list.querySelectorAll("li.message").forEach((item) => decorate(item, null));
  list.addEventListener("chat:message", (event) => {
    decorate(event.detail.element, event.detail.message);
  });
})();
