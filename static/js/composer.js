// The composer: grows with the text, Enter sends on a desktop (a new line on touch screens,
// where the hint says so), Send turns into Stop while an answer is written, the draft
// survives a reload. On the new-chat page the first message creates the thread.
//
// A message goes over the thread's socket when it is open and the message fits in one
// websocket message, and as an HTTP post otherwise (the new-chat page has no socket).
import { filePicker } from "./attachments.js";
import { SendDropped } from "./chat.js";

const MAX_HEIGHT_SHARE = 0.4; // of the window's height

export function composer(chat, view) {
  const form = document.getElementById("composer");
  const textarea = document.getElementById("composer-text");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const errorLine = document.getElementById("composer-error");
  const hint = document.getElementById("composer-hint");
  const picker = document.getElementById("assistant");
  const touch = window.matchMedia("(pointer: coarse)").matches;
  const draftKey = "draft:" + location.pathname;
  const store = (() => {
    try {
      return window.localStorage; // throws when storage is disabled
    } catch (error) {
      return null;
    }
  })();
  let running = !stopButton.hidden;
  let socket = null; // the thread's, once page.js hands it over
  const files = filePicker(form, showError);

  // --- Growing, keys, hint, draft --------------------------------------------------------

  function grow() {
    textarea.style.height = "auto";
    const limit = Math.round(window.innerHeight * MAX_HEIGHT_SHARE);
    textarea.style.height = Math.min(textarea.scrollHeight + 2, limit) + "px";
    textarea.classList.toggle("at-limit", textarea.scrollHeight + 2 > limit);
  }

  if (touch) hint.firstChild.textContent = "Tap Send to send · Enter adds a line · ";
  if (store && !textarea.value) textarea.value = store.getItem(draftKey) || "";
  grow();
  textarea.addEventListener("input", () => {
    grow();
    if (!store) return;
    if (textarea.value) store.setItem(draftKey, textarea.value);
    else store.removeItem(draftKey);
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing || touch) return;
    event.preventDefault();
    send();
  });

  function clear() {
    textarea.value = "";
    if (store) store.removeItem(draftKey);
    grow();
  }

  function showError(text) {
    errorLine.textContent = text;
    errorLine.hidden = false;
  }

  function csrfToken() {
    return form.querySelector("[name=csrfmiddlewaretoken]").value;
  }

  async function post(url, body) {
    const headers = { "X-CSRFToken": csrfToken(), Accept: "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    const response = await fetch(url, { method: "POST", headers, body: body && JSON.stringify(body) });
    let data = {};
    try {
      data = await response.json();
    } catch (error) {
      // an HTML error page: data stays empty and the status speaks
    }
    return { ok: response.ok, status: response.status, data };
  }

  // Both ways answer alike: { ok, data } with the message, run and thread, or the error.
  function deliver(body) {
    if (socket && socket.canSend(body)) return socket.sendMessage(body);
    return post(chat.dataset.postUrl, body);
  }

  // --- Send and Stop -----------------------------------------------------------------------

  function setRunning(value) {
    running = value;
    sendButton.hidden = value;
    stopButton.hidden = !value;
    stopButton.disabled = false;
  }

  async function send() {
    const text = textarea.value;
    if (!text.trim() || running || sendButton.disabled) return;
    if (files.busy()) {
      showError("Wait a moment: the files are still being attached.");
      return;
    }
    errorLine.hidden = true;
    sendButton.disabled = true;
    const body = { text, attachments: files.ids() };
    if (picker) body.assistant = picker.value;
    try {
      const { ok, data } = await deliver(body);
      if (!ok) {
        showError(data.error ? data.error.message : "Could not send. Your message is still here.");
        return; // the text stays in the composer
      }
      clear();
      files.clear();
      if (data.thread && data.thread.url && chat.hasAttribute("data-new-chat")) {
        location.assign(data.thread.url); // the thread exists now: open it
        return;
      }
      view.addUserMessage(data.message);
      view.showRun(data.run);
      if (data.thread) showTitle(data.thread.title);
    } catch (error) {
      if (error instanceof SendDropped) {
        showError("The connection dropped while sending. If your message does not show above, send it again.");
      } else {
        showError("Could not reach the server. Your message is still here.");
      }
    } finally {
      sendButton.disabled = false;
    }
  }

  // Stop and Retry: a POST about the thread's run, whose statuses the socket then shows.
  async function runAction(button, url, what) {
    errorLine.hidden = true;
    button.disabled = true;
    try {
      const { ok, data } = await post(url);
      if (ok) {
        view.showRun(data.run);
        return;
      }
      showError(data.error ? data.error.message : "Could not " + what + ".");
    } catch (error) {
      showError("Could not reach the server to " + what + ".");
    }
    button.disabled = false;
  }

  // A thread is named after its first message: the heading, the sidebar and the tab follow.
  function showTitle(title) {
    const heading = document.getElementById("chat-title");
    if (heading.textContent === title) return;
    document.title = document.title.replace(heading.textContent, title);
    heading.textContent = title;
    heading.title = title;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  stopButton.addEventListener("click", () => runAction(stopButton, chat.dataset.cancelUrl, "stop the answer"));
  view.onRetry = (button) => runAction(button, chat.dataset.retryUrl, "retry");
  document.addEventListener("chat:run", (event) => {
    const run = event.detail.run;
    setRunning(!run.is_terminal);
    if (run.status === "cancelling") stopButton.disabled = true;
    // After Stop or Retry the focused button is gone: back to typing (not on touch screens,
    // where focus pops up the keyboard).
    if (!touch && (!document.activeElement || document.activeElement === document.body)) textarea.focus();
  });

  // --- The new-chat page: assistant picker and conversation starters --------------------

  if (picker) {
    const pickAssistant = () => {
      const option = picker.selectedOptions[0];
      const name = option.textContent.replace(/ \(simulated\)$/, "");
      document.getElementById("composer-assistant").textContent = name;
      document.getElementById("assistant-description").textContent = option.dataset.description;
      textarea.placeholder = "Message " + name;
      for (const starters of document.querySelectorAll(".starters")) {
        starters.hidden = starters.dataset.assistant !== picker.value;
      }
    };
    picker.addEventListener("change", pickAssistant);
    pickAssistant();
  }
  document.addEventListener("click", (event) => {
    const starter = event.target.closest(".starter");
    if (!starter) return;
    textarea.value = starter.dataset.text;
    grow();
    send();
  });

  if (!touch) textarea.focus();
  return {
    focus: () => textarea.focus(),
    sendOver: (threadSocket) => {
      socket = threadSocket;
    },
    stop: () => {
      if (!stopButton.hidden && !stopButton.disabled) stopButton.click();
      return !stopButton.hidden;
    },
  };
}
