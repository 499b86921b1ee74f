// The thread's websocket: receives runs' statuses and answers, and on every (re)connect sends
// `hello` with the last message it has so the server replays what was missed. The server is
// the source of truth; this module only hands what it says to the message list, once.
//
// The server sends a `heartbeat` every few seconds: while they arrive, a quiet answer is a
// slow model ("Still working..."); when they stop, the socket is stalled and is replaced.

import { reassembler } from "./socket.js";

const HEARTBEAT_GRACE_MS = 15000; // three missed heartbeats (consumers.HEARTBEAT_SECONDS)
// A socket must stay open this long before a reconnect starts again from the shortest delay:
// one that the server closes straight after opening backs off instead of looping.
const STABLE_MS = 10000;

export function startSocket(chat, view, banner, steps) {
  let lastMessageId = parseInt(chat.dataset.lastMessageId, 10) || null;
  let socket = null;
  let reconnectAttempt = 0;
  let lastFrameAt = Date.now();

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
    error: (event) => {
      if (event.code === "TOO_MANY_HELLOS") setTimeout(sendHello, event.retry_after * 1000);
      console.warn("server:", event.code, event.message);
    },
  };

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
  return { noteMessage, resync };
}
