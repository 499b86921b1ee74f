// The chat page: wires its parts together. Each concern lives in its own module: the socket
// and replay (chat.js), the message list and scrolling (messages.js), the composer, the
// sidebar, Markdown while streaming (markdown.js), copying, the keyboard shortcuts, and the
// thread's tree: versions, edit, regenerate, feedback, switching assistant (tree.js).
import { startSocket } from "./chat.js";
import { composer as makeComposer } from "./composer.js";
import { messageView } from "./messages.js";
import { shortcuts } from "./shortcuts.js";
import { toolSteps } from "./tool_steps.js";
import { sidebar as makeSidebar } from "./sidebar.js";
import { tree } from "./tree.js";

const chat = document.getElementById("chat");
const bar = makeSidebar();
const view = messageView(chat);
const composer = makeComposer(chat, view);
shortcuts({ composer, sidebar: bar });

// A visible banner while the connection is down, until it recovers.
const line = document.getElementById("connection");
const banner = {
  lost(text) {
    line.textContent = text;
    line.hidden = false;
  },
  connected() {
    line.hidden = true;
    line.textContent = "";
  },
};
if (chat.dataset.socketPath) {
  const socket = startSocket(chat, view, banner, toolSteps(chat, view));
  composer.sendOver(socket);
  tree(chat, view, socket);
}
