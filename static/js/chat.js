// The thread's websocket: receives runs' statuses and answers, and on every (re)connect sends
// `hello` with the last message it has so the server replays what was missed. The server is
// the source of truth; this module only hands what it says to the message list, once.
//
// The server sends a `heartbeat` every few seconds: while they arrive, a quiet answer is a
// slow model ("Still working..."); when they stop, the socket is stalled and is replaced.
//
// It also posts the composer's messages (`message.send`), when one fits in a websocket
// message: the server answers with the same body as the HTTP post, tagged with our `ref`.

import { reassembler } from "./socket.js";

const HEARTBEAT_GRACE_MS = 15000; // three missed heartbeats (consumers.HEARTBEAT_SECONDS)
// A socket must stay open this long before a reconnect starts again from the shortest delay:
// one that the server closes straight after opening backs off instead of looping.
const STABLE_MS = 10000;
// What a `message.send` adds to its body, sized with a ref as long as ours get; the margin
// covers longer refs and rounding, as a frame over the limit gets the socket closed (1009).
const SEND_ENVELOPE = { type: "message.send", ref: "send-xxxxxxxx-nnn" };
const SEND_MARGIN_BYTES = 200;

// A send whose socket closed before its answer came: it may or may not have been stored.
export class SendDropped extends Error {
  constructor() {
    super("The connection closed before the server answered.");
    this.name = "SendDropped";
  }
}

export function startSocket(chat, view, banner, steps) {
  let lastMessageId = parseInt(chat.dataset.lastMessageId, 10) || null;
  let socket = null;
  let reconnectAttempt = 0;
  let lastFrameAt = Date.now();
  const maxBytes = parseInt(chat.dataset.socketMaxBytes, 10) || 16384;
  // Sends awaiting their answer, by ref: { socket, resolve, reject }.
  const pending = new Map();
  let sendCount = 0;

  function noteMessage(message) {
    if (lastMessageId === null || message.id > lastMessageId) lastMessageId = message.id;
  }

  function addMessage(message) {
    noteMessage(message);
    view.addMessage(message);
  }

  // Streamed text arrives in pieces, each with the offset it starts at. A piece that starts
  // beyond what we have means some were missed: ask the server to bring us up to date.
  function addDelta(event) {
    const have = view.streamedText(event.run_id);
    if (event.offset > have.length) {
      sendHello();
      return;
    }
    view.showStreamed(event.run_id, have.slice(0, event.offset) + event.text);
  }

  const handlers = {
    "message.created": (event) => addMessage(event.message),
    "message.delta": addDelta,
    "run.status": (event) => view.showRun(event.run),
    "tool.step": (event) => steps.show(event.step),
    heartbeat: () => {},
    // A long backlog is replayed a page at a time: ask for the next one.
    "replay.more": () => sendHello(),
    "message.sent": (event) => {
      const { message, run, thread } = event;
      settle(event.ref, { ok: true, data: { message, run, thread } });
    },
    error: (event) => {
      // The answer to one of our sends: the composer shows its words, as for an HTTP post.
      if (event.ref && pending.has(event.ref)) {
        settle(event.ref, { ok: false, data: { error: { code: event.code, message: event.message } } });
        return;
      }
      if (event.code === "TOO_MANY_HELLOS") setTimeout(sendHello, event.retry_after * 1000);
      console.warn("server:", event.code, event.message);
    },
  };

  function settle(ref, outcome) {
    const send = pending.get(ref);
    if (!send) return;
    pending.delete(ref);
    send.resolve(outcome);
  }

  // The sends a closing socket leaves unanswered: whether the server stored them, we cannot
  // know, so the composer keeps the text and says so (the replay shows them if stored).
  function dropSends(closed) {
    for (const [ref, send] of pending) {
      if (send.socket !== closed) continue;
      pending.delete(ref);
      send.reject(new SendDropped());
    }
  }

  function canSend(body) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    const event = JSON.stringify({ ...body, ...SEND_ENVELOPE });
    return new TextEncoder().encode(event).length + SEND_MARGIN_BYTES <= maxBytes;
  }

  // Resolves like composer.js's post(): { ok, data } with the message, run and thread, or
  // the error; rejects with SendDropped if the socket closes first.
  function sendMessage(body) {
    sendCount += 1;
    const ref = "send-" + Date.now().toString(36) + "-" + sendCount;
    return new Promise((resolve, reject) => {
      socket.send(JSON.stringify({ ...body, type: "message.send", ref }));
      pending.set(ref, { socket, resolve, reject });
    });
  }

  function sendHello() {
    if (socket.readyState !== WebSocket.OPEN) return;
    socket.send(JSON.stringify({ type: "hello", last_message_id: lastMessageId }));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + chat.dataset.socketPath);
    const receive = reassembler((event) => (handlers[event.type] || (() => {}))(event));
    let stableTimer = null;
    socket.addEventListener("open", () => {
      stableTimer = setTimeout(() => { reconnectAttempt = 0; }, STABLE_MS);
      lastFrameAt = Date.now();
      banner.connected();
      sendHello();
    });
    socket.addEventListener("message", (frame) => {
      lastFrameAt = Date.now();
      receive(frame.data);
    });
    socket.addEventListener("close", (closing) => {
      clearTimeout(stableTimer);
      dropSends(closing.target);
      if (closing.code === 4401 || closing.code === 4404) {
        banner.lost("This chat is not available. Log in again.", false);
        return;
      }
      if (closing.code === 4429) {
        banner.lost("Too many open tabs. Close some; this one keeps trying.", true);
        reconnectAttempt = Math.max(reconnectAttempt, 5); // retry slowly
      } else {
        banner.lost("Connection lost. Reconnecting... Answers keep being written meanwhile.", true);
      }
      // Jittered exponential backoff, so a restarted server is not hit by every tab at once.
      const delay = Math.min(30000, 500 * 2 ** reconnectAttempt) * (0.5 + Math.random() / 2);
      reconnectAttempt += 1;
      setTimeout(connect, delay);
    });
  }

  // A socket that says nothing, not even heartbeats, is stalled (a dead network path the
  // browser has not noticed): close it, and the close handler reconnects.
  setInterval(() => {
    if (socket && socket.readyState === WebSocket.OPEN && Date.now() - lastFrameAt > HEARTBEAT_GRACE_MS) {
      banner.lost("The connection stalled. Reconnecting...", true);
      socket.close();
    }
  }, 1000);

  window.addEventListener("online", () => {
    if (socket && socket.readyState !== WebSocket.OPEN) connect();
  });

  connect();
  // After the list was swapped for the server's (tree.js): replay from what it holds.
  function resync(lastId) {
    const id = parseInt(lastId, 10);
    if (id && (lastMessageId === null || id > lastMessageId)) lastMessageId = id;
    sendHello();
  }
  return { noteMessage, resync, canSend, sendMessage };
}
