// The thread page: sends messages over HTTP and receives runs' statuses and answers over a
// websocket. The server is the source of truth; this page only shows what it says, once.
(function () {
  "use strict";

  const chat = document.getElementById("chat");
  if (!chat) return;

  const list = document.getElementById("messages");
  const statusLine = document.getElementById("run-status");
  const composer = document.getElementById("composer");
  const textarea = document.getElementById("composer-text");
  const sendButton = document.getElementById("send");
  const stopButton = document.getElementById("stop");
  const retryButton = document.getElementById("retry");
  const composerError = document.getElementById("composer-error");
  const connectionLine = document.getElementById("connection");
  const assistantName = chat.querySelector(".chat-header .meta").textContent.split(" — ")[0];

  let lastMessageId = parseInt(chat.dataset.lastMessageId, 10) || null;
  let socket = null;
  let reconnectAttempt = 0;

  // Every status a provider reports, as the page says it while the status holds.
  const STATUS_TEXT = {
    queued: "Queued…",
    in_progress: "Assistant is writing…",
    requires_action: "Assistant is using a tool…",
    cancelling: "Stopping…",
    cancelled: "Stopped.",
    failed: "The run failed",
    completed: "",
    incomplete: "The answer is incomplete",
    expired: "The run expired",
  };

  let shownRun = null;

  function showStatus(run) {
    // The POST's answer can arrive after the socket said the run ended: never go back.
    if (shownRun && shownRun.id === run.id && shownRun.is_terminal && !run.is_terminal) return;
    shownRun = run;
    statusLine.dataset.status = run.status;
    const text = run.status in STATUS_TEXT ? STATUS_TEXT[run.status] : run.status;
    const reason = run.is_terminal && run.error_message ? ": " + run.error_message : "";
    // e.g. older messages were left out to fit the model's context
    const note = run.is_terminal && run.note ? " " + run.note : "";
    statusLine.textContent = (text + reason + note).trim();
    sendButton.disabled = !run.is_terminal;
    stopButton.hidden = run.is_terminal;
    stopButton.disabled = run.status === "cancelling";
    retryButton.hidden = !run.can_retry;
    retryButton.disabled = false;
  }

  function showError(text) {
    composerError.textContent = text;
    composerError.hidden = false;
  }

  function csrfToken() {
    return composer.querySelector("[name=csrfmiddlewaretoken]").value;
  }

  function messageItem(role) {
    const empty = document.getElementById("empty-state");
    if (empty) empty.remove();
    const item = document.createElement("li");
    item.className = "message " + role;
    const label = document.createElement("div");
    label.className = "role";
    label.textContent = role === "user" ? "You" : assistantName;
    const body = document.createElement("div");
    body.className = "body";
    item.append(label, body);
    list.append(item);
    return item;
  }

  function addMessage(message) {
    if (list.querySelector('[data-id="' + message.id + '"]')) return; // shown already
    // The final answer replaces the text streamed for its run.
    const streamed = message.run_id && list.querySelector('[data-streaming-run="' + message.run_id + '"]');
    const item = streamed || messageItem(message.role);
    delete item.dataset.streamingRun;
    item.classList.remove("streaming");
    item.removeAttribute("aria-busy");
    item.dataset.id = message.id;
    item.querySelector(".body").innerHTML = message.html; // sanitised on the server (nh3)
    if (message.partial) {
      const note = document.createElement("p");
      note.className = "cut-off";
      note.textContent = "(stopped before the end)";
      item.append(note);
    }
    if (lastMessageId === null || message.id > lastMessageId) lastMessageId = message.id;
    item.scrollIntoView({ block: "end" });
    // Other scripts (messages.js, composer.js) decorate new messages from this event.
    list.dispatchEvent(new CustomEvent("chat:message", { bubbles: true, detail: { message: message, element: item } }));
  }

  // Streamed text arrives in pieces, each with the offset it starts at. A piece that starts
  // beyond what we have means some were missed: ask the server to bring us up to date.
  function addDelta(event) {
    let item = list.querySelector('[data-streaming-run="' + event.run_id + '"]');
    if (!item) {
      item = messageItem("assistant");
      item.classList.add("streaming");
      item.dataset.streamingRun = event.run_id;
      item.setAttribute("aria-busy", "true");
    }
    const body = item.querySelector(".body");
    const have = body.textContent;
    if (event.offset > have.length) {
      sendHello();
      return;
    }
    body.textContent = have.slice(0, event.offset) + event.text;
  }

  const handlers = {
    "message.created": (event) => addMessage(event.message),
    "message.delta": addDelta,
    "run.status": (event) => showStatus(event.run),
    error: (event) => console.warn("server:", event.code, event.message),
  };

  function sendHello() {
    socket.send(JSON.stringify({ type: "hello", last_message_id: lastMessageId }));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + chat.dataset.socketPath);
    socket.addEventListener("open", () => {
      reconnectAttempt = 0;
      connectionLine.textContent = "";
      sendHello();
    });
    socket.addEventListener("message", (frame) => {
      const event = JSON.parse(frame.data);
      (handlers[event.type] || (() => {}))(event);
    });
    socket.addEventListener("close", (closing) => {
      if (closing.code === 4401 || closing.code === 4404) {
        connectionLine.textContent = "This thread is not available. Log in again.";
        return;
      }
      if (closing.code === 4429) {
        connectionLine.textContent = "Too many open tabs. Close some; this one retries.";
        reconnectAttempt = Math.max(reconnectAttempt, 5); // retry slowly
      }
      // Jittered exponential backoff, so a restarted server is not hit by every tab at once.
      const delay = Math.min(30000, 500 * 2 ** reconnectAttempt) * (0.5 + Math.random() / 2);
      reconnectAttempt += 1;
      if (closing.code !== 4429) connectionLine.textContent = "Connection lost; reconnecting…";
      setTimeout(connect, delay);
    });
  }

  // A thread is named after its first message: the heading and the tab follow.
  function showTitle(title) {
    const heading = chat.querySelector(".chat-header h1");
    if (heading.textContent === title) return;
    document.title = document.title.replace(heading.textContent, title);
    heading.textContent = title;
  }

  async function send() {
    const text = textarea.value;
    if (!text.trim()) return;
    composerError.hidden = true;
    sendButton.disabled = true;
    try {
      const response = await fetch(chat.dataset.postUrl, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "X-CSRFToken": csrfToken(),
        },
        body: JSON.stringify({ text: text }),
      });
      const body = await response.json();
      if (!response.ok) {
        showError(body.error ? body.error.message : "Could not send.");
        sendButton.disabled = false;
        return; // the text stays in the composer
      }
      textarea.value = "";
      addMessage(body.message);
      showStatus(body.run);
      showTitle(body.thread.title);
    } catch (error) {
      showError("Could not reach the server. Your message is still here.");
      sendButton.disabled = false;
    }
  }

  // Stop (cancel the active run) and Retry (a new run for the same message): a POST about
  // the thread's run, whose statuses the socket then shows.
  async function runAction(button, url, what) {
    composerError.hidden = true;
    button.disabled = true;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken() },
      });
      const body = await response.json();
      if (response.ok) {
        showStatus(body.run);
        return;
      }
      showError(body.error ? body.error.message : "Could not " + what + ".");
    } catch (error) {
      showError("Could not reach the server to " + what + ".");
    }
    button.disabled = false;
  }

  stopButton.addEventListener("click", () =>
    runAction(stopButton, chat.dataset.cancelUrl, "stop the answer"),
  );
  retryButton.addEventListener("click", () =>
    runAction(retryButton, chat.dataset.retryUrl, "retry"),
  );
  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
  });
  if (statusLine.dataset.status && !["completed", "failed", "cancelled", "expired", "incomplete"].includes(statusLine.dataset.status)) {
    sendButton.disabled = true;
  }
  connect();
})();
