// The message list and its scrolling. Messages scroll in their own region above the composer;
// the page opens at the latest one and follows a streaming answer only while the reader is at
// the bottom. An answer shows the version on the thread's current branch, with `< 1/2 >` from
// the server when it has others (tree.js switches them); it says its run's state in words, with
// Retry on the one that can be retried. Files show as chips, sources as numbered links.
import { fileList, linkCitations, sourceList } from "./attachments.js";
import { addCodeBars, addCopy } from "./copy.js";
import { renderLive } from "./markdown.js";

const NEAR_BOTTOM_PX = 24;
const SILENCE_MS = 3000; // no text for this long: "Still working... 12 s" instead of "Writing..."
// The thumb icon of the sprite in chat.html (drawn, not an emoji: not every system has those).
const THUMB = '<svg aria-hidden="true" class="icon"><use href="#icon-thumb"></use></svg>';
const ACTIVE = new Set(["queued", "in_progress", "requires_action", "cancelling"]);

export function messageView(chat) {
  const scroller = document.getElementById("scroller");
  let list = document.getElementById("messages");
  const jump = document.getElementById("jump");
  const live = new Map(); // run id -> {text, lastTextAt, startedAt, frame}
  let following = true;
  let onRetry = () => {};
  let onSwitch = () => {};

  // --- Scrolling ------------------------------------------------------------------------

  const atBottom = () =>
    scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight <= NEAR_BOTTOM_PX;

  function toBottom() {
    scroller.scrollTop = scroller.scrollHeight;
  }

  scroller.addEventListener("scroll", () => {
    following = atBottom();
    jump.hidden = following;
  }, { passive: true });
  jump.addEventListener("click", () => {
    following = true;
    jump.hidden = true;
    scroller.scrollTo({ top: scroller.scrollHeight, behavior: "smooth" });
  });

  // Content grew (an answer streaming, code bars, fonts) or the region shrank (the composer
  // grew, a phone's keyboard opened): stay at the bottom if the reader was there.
  const keepFollowing = () => {
    if (following) toBottom();
    else jump.hidden = atBottom();
  };
  new ResizeObserver(keepFollowing).observe(scroller);
  const listObserver = new ResizeObserver(keepFollowing);
  if (list) listObserver.observe(list);

  // Changes inside the list must not move a reader who scrolled up: the content above them
  // stays as it was, so keeping scrollTop keeps what they read in place.
  function steady(change) {
    const top = scroller.scrollTop;
    change();
    if (following) toBottom();
    else scroller.scrollTop = top;
  }

  // --- Building items -------------------------------------------------------------------

  function roleLine(text, createdAt) {
    const role = document.createElement("div");
    role.className = "role";
    role.textContent = text;
    if (createdAt) {
      const time = document.createElement("time");
      time.dateTime = createdAt;
      time.dataset.relative = "";
      role.append(" ", time);
    }
    return role;
  }

  function userActions() {
    const actions = document.createElement("div");
    actions.className = "message-actions";
    actions.innerHTML = '<button type="button" class="edit" aria-label="Edit your message">Edit</button>';
    return actions;
  }

  // Regenerate and the thumbs on an answer written while the page was open (the server
  // renders them on the others).
  function answerActions(version) {
    const answer = version.closest("li.assistant");
    const actions = version.querySelector(":scope > .message-actions");
    const parts = version.querySelectorAll(".part[data-id]:not(.streaming)");
    if (!actions || !parts.length) return;
    if (answer.dataset.promptId && !actions.querySelector(".regenerate")) {
      const regenerate = document.createElement("button");
      regenerate.type = "button";
      regenerate.className = "regenerate";
      regenerate.dataset.message = answer.dataset.promptId;
      regenerate.setAttribute("aria-label", "Regenerate the answer");
      regenerate.textContent = "Regenerate";
      actions.append(regenerate);
    }
    let thumbs = actions.querySelector(".feedback");
    if (!thumbs) {
      thumbs = document.createElement("span");
      thumbs.className = "feedback";
      thumbs.innerHTML =
        '<button type="button" class="thumb" data-rating="1" aria-label="Good answer" aria-pressed="false">' + THUMB + "</button>" +
        '<button type="button" class="thumb down" data-rating="-1" aria-label="Bad answer" aria-pressed="false">' + THUMB + "</button>";
      actions.append(thumbs);
    }
    thumbs.dataset.message = parts[parts.length - 1].dataset.id;
  }

  function removeEmptyState() {
    const empty = document.getElementById("empty-state");
    if (empty) empty.remove();
  }

  const userItem = (id) => list.querySelector('li.message.user[data-id="' + id + '"]');
  const lastUserItem = () => [...list.querySelectorAll("li.message.user")].pop();

  function addUserMessage(message) {
    if (userItem(message.id)) return;
    removeEmptyState();
    const item = document.createElement("li");
    item.className = "message user";
    item.dataset.id = message.id;
    const body = document.createElement("div");
    body.className = "body user-text";
    body.textContent = message.text; // as typed: never Markdown, never HTML
    item.append(roleLine("You", message.created_at), body);
    const files = fileList(message.attachments);
    if (files) item.append(files);
    item.append(userActions());
    addCopy(item, body, "your message");
    steady(() => {
      // An answer to it may already be shown, if the socket was quicker than the POST.
      const answer = list.querySelector('li.assistant[data-prompt-id="' + message.id + '"]');
      if (answer) answer.before(item);
      else list.append(item);
    });
    following = true;
    toBottom();
    document.dispatchEvent(new CustomEvent("chat:message", { detail: { message } }));
  }

  // The answer to a prompt; a run we know nothing of answers the latest message (a thread
  // has one run at a time, and a retry is for the last message).
  function answerFor(promptId) {
    if (!promptId) promptId = (lastUserItem() || { dataset: {} }).dataset.id || "";
    let answer = list.querySelector('li.assistant[data-prompt-id="' + promptId + '"]');
    if (answer) return answer;
    removeEmptyState();
    answer = document.createElement("li");
    answer.className = "message assistant";
    answer.dataset.promptId = promptId;
    answer.append(roleLine(chat.dataset.assistantName)); // read now: the thread may have switched
    const prompt = userItem(promptId);
    if (prompt && prompt.nextElementSibling) prompt.nextElementSibling.before(answer);
    else list.append(answer);
    return answer;
  }

  function versionFor(runId, promptId) {
    let version = list.querySelector('.version[data-run-id="' + runId + '"]');
    if (version) return version;
    const answer = answerFor(promptId);
    version = document.createElement("div");
    version.className = "version";
    version.dataset.runId = runId;
    version.dataset.status = "queued";
    const body = document.createElement("div");
    body.className = "body";
    const state = document.createElement("p");
    state.className = "run-state";
    state.hidden = true;
    const actions = document.createElement("div");
    actions.className = "message-actions";
    version.append(body, state, actions);
    // A new run of this message (another tab regenerated it): it is what the branch shows now.
    for (const old of answer.querySelectorAll(":scope > .version")) old.remove();
    answer.append(version);
    return version;
  }

  // Clicks inside the list: Retry here, the rest (versions, edit, regenerate, thumbs) tree.js.
  function onListClick(event) {
    if (event.target.closest(".retry")) onRetry(event.target.closest(".retry"));
    else onSwitch(event);
  }
  if (list) list.addEventListener("click", onListClick);

  // --- Messages, streamed text and states ---------------------------------------------

  function decorateAnswer(version) {
    const answer = version.closest("li.assistant");
    const body = version.querySelector(".body");
    addCodeBars(body);
    addCopy(version, body, "the answer");
    answerActions(version);
    if (!answer.querySelector(".role time") && version.dataset.createdAt) {
      const time = document.createElement("time");
      time.dateTime = version.dataset.createdAt;
      time.dataset.relative = "";
      const role = answer.querySelector(".role");
      const nav = role.querySelector(".versions");
      if (nav) nav.before(time, " "); // the name, its time, then `< 1/2 >`
      else role.append(" ", time);
    }
  }

  function addMessage(message) {
    if (message.role === "user") return addUserMessage(message);
    if (list.querySelector('.part[data-id="' + message.id + '"]')) return; // shown already
    steady(() => {
      const version = versionFor(message.run_id || "none-" + message.id, null);
      const streaming = version.querySelector(".part.streaming");
      const part = streaming || document.createElement("div");
      part.className = "part";
      part.dataset.id = message.id;
      part.dataset.partial = message.partial ? "true" : "false";
      part.innerHTML = message.html; // sanitised on the server (nh3)
      if (!streaming) version.querySelector(".body").append(part);
      const sources = sourceList(message.run_id, message.sources);
      if (sources) part.after(sources);
      linkCitations(part, message.run_id);
      live.delete(String(message.run_id));
      version.dataset.createdAt = message.created_at;
      decorateAnswer(version);
    });
    document.dispatchEvent(new CustomEvent("chat:message", { detail: { message } }));
  }

  // The text written so far of a run's answer ("" when none).
  function streamedText(runId) {
    const state = live.get(String(runId));
    return state ? state.text : "";
  }

  function showStreamed(runId, text) {
    const key = String(runId);
    const state = live.get(key) || { startedAt: Date.now() };
    state.text = text;
    state.lastTextAt = Date.now();
    live.set(key, state);
    if (state.frame) return;
    // Rendered once per frame however many pieces arrive.
    state.frame = requestAnimationFrame(() => {
      state.frame = null;
      const version = versionFor(runId, null);
      if (version.querySelector(".part:not(.streaming)") && !version.querySelector(".part.streaming")) return;
      steady(() => {
        let part = version.querySelector(".part.streaming");
        if (!part) {
          part = document.createElement("div");
          part.className = "part streaming";
          version.querySelector(".body").append(part);
          version.closest("li").setAttribute("aria-busy", "true");
        }
        renderLive(part, state.text, addCodeBars);
        if (ACTIVE.has(version.dataset.status) && version.dataset.status !== "cancelling") {
          version.dataset.status = "in_progress";
        }
        sayState(version);
      });
    });
  }

  function showRun(run) {
    const version = versionFor(run.id, run.prompt_id);
    // A POST's answer can arrive after the socket said the run ended: never go back.
    if (!ACTIVE.has(version.dataset.status) && version.dataset.done && ACTIVE.has(run.status)) return;
    steady(() => {
      version.dataset.status = run.status;
      version.dataset.summary = run.summary || "";
      if (!ACTIVE.has(run.status)) {
        version.dataset.done = "true";
        version.closest("li").removeAttribute("aria-busy");
        for (const part of version.querySelectorAll(".part.streaming")) {
          // Kept as text until its message arrives; without the cursor.
          for (const cursor of part.querySelectorAll(".cursor")) cursor.remove();
        }
        const live_ = live.get(String(run.id));
        if (live_ && !live_.text) live.delete(String(run.id));
      } else if (!live.has(String(run.id))) {
        live.set(String(run.id), { text: streamedText(run.id), startedAt: Date.now(), lastTextAt: 0 });
      }
      setRetry(version, run.can_retry);
      sayState(version);
    });
    document.dispatchEvent(new CustomEvent("chat:run", { detail: { run } }));
  }

  function setRetry(version, canRetry) {
    for (const old of list.querySelectorAll(".retry")) {
      if (!canRetry || old.closest(".version") !== version) old.remove();
    }
    if (!canRetry || version.querySelector(".retry")) return;
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "retry";
    retry.textContent = "Retry";
    version.querySelector(".run-state").after(retry);
  }

  // The version's state line: the server's sentence once the run ended; while it runs,
  // "Writing..." only while text arrives, then "Still working... 12 s".
  function sayState(version) {
    const state = version.querySelector(".run-state");
    const status = version.dataset.status;
    state.dataset.status = status;
    let text = version.dataset.summary || "";
    if (ACTIVE.has(status) && status !== "cancelling") {
      const run = live.get(String(version.dataset.runId)) || { startedAt: Date.now(), lastTextAt: 0 };
      const quietFor = Date.now() - Math.max(run.lastTextAt || 0, run.startedAt);
      if (status === "queued" && quietFor < SILENCE_MS) text = "Waiting for the assistant...";
      else if (status === "requires_action") text = "Using a tool...";
      else if (quietFor < SILENCE_MS && run.lastTextAt) text = "Writing...";
      else if (quietFor < SILENCE_MS) text = "Thinking...";
      else text = "Still working... " + Math.round((Date.now() - run.startedAt) / 1000) + " s";
    } else if (status === "cancelling") {
      text = "Stopping...";
    }
    if (state.textContent !== text) state.textContent = text;
    state.hidden = !text;
  }

  setInterval(() => {
    for (const version of list ? list.querySelectorAll(".version") : []) {
      if (ACTIVE.has(version.dataset.status)) sayState(version);
    }
  }, 1000);

  // --- The server-rendered page --------------------------------------------------------

  function adopt() {
    for (const item of list.querySelectorAll("li.message.user")) {
      addCopy(item, item.querySelector(".body"), "your message");
    }
    for (const version of list.querySelectorAll("li.assistant > .version")) {
      version.dataset.summary = version.querySelector(".run-state").textContent.trim();
      if (!ACTIVE.has(version.dataset.status)) version.dataset.done = "true";
      else if (!live.has(String(version.dataset.runId))) {
        live.set(String(version.dataset.runId), { text: "", startedAt: Date.now(), lastTextAt: 0 });
      }
      decorateAnswer(version);
      sayState(version);
      for (const part of version.querySelectorAll(".part")) linkCitations(part, version.dataset.runId);
    }
  }

  // The server's rendering of the list (tree.js asks for it after every change of branch).
  function replaceList(html) {
    const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("messages");
    if (!fresh || !list) return null;
    for (const state of live.values()) if (state.frame) cancelAnimationFrame(state.frame);
    live.clear();
    steady(() => {
      listObserver.unobserve(list);
      list.replaceWith(fresh);
      list = fresh;
      list.addEventListener("click", onListClick);
      listObserver.observe(list);
      adopt();
    });
    return fresh.dataset.lastMessageId;
  }

  if (list) adopt();
  toBottom(); // a thread opens at its latest message

  return {
    addMessage,
    addUserMessage,
    showRun,
    versionFor,
    streamedText,
    showStreamed,
    isFollowing: () => following,
    replaceList,
    hasMessage: (id) => Boolean(list && list.querySelector('[data-id="' + id + '"]')),
    set onRetry(handler) {
      onRetry = handler;
    },
    set onSwitch(handler) {
      onSwitch = handler;
    },
  };
}
