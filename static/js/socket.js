// The thread's websocket, for chat.js: connects, reconnects with jittered backoff, and puts
// events that the server sent in parts back together (assistants_app/framing.py), so the page
// only ever sees whole events, however long the answer.
(function () {
  "use strict";

  // A socket must stay open this long before a reconnect starts again from the shortest
  // delay: one that the server closes straight after opening backs off instead of looping.
  const STABLE_MS = 10000;

  // Parts come one event at a time, in order; a stray one (after a failed send) is dropped.
  function reassembler(onEvent) {
    let pieces = [];
    return function (data) {
      const event = JSON.parse(data);
      if (event.type !== "part") {
        pieces = [];
        onEvent(event);
        return;
      }
      if (event.index === 0) pieces = [];
      if (event.index !== pieces.length) return;
      pieces.push(event.text);
      if (pieces.length < event.count) return;
      const whole = pieces.join("");
      pieces = [];
      onEvent(JSON.parse(whole));
    };
  }

  // options: path, onOpen(), onEvent(event), onState(text: how the connection is, or "").
  window.openThreadSocket = function (options) {
    let socket = null;
    let attempt = 0;
    let stableTimer = null;

    function connect() {
      const scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + options.path);
      const receive = reassembler(options.onEvent);
      socket.addEventListener("open", () => {
        options.onState("");
        stableTimer = setTimeout(() => { attempt = 0; }, STABLE_MS);
        options.onOpen();
      });
      socket.addEventListener("message", (frame) => receive(frame.data));
      socket.addEventListener("close", (closing) => {
        clearTimeout(stableTimer);
        if (closing.code === 4401 || closing.code === 4404) {
          options.onState("This thread is not available. Log in again.");
          return;
        }
        if (closing.code === 4429) {
          options.onState("Too many open tabs. Close some; this one retries.");
          attempt = Math.max(attempt, 5); // retry slowly
        } else {
          options.onState("Connection lost; reconnecting…");
        }
        // Jittered exponential backoff, so a restarted server is not hit by every tab at once.
        const delay = Math.min(30000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2);
        attempt += 1;
        setTimeout(connect, delay);
      });
    }

    connect();
    return {
      send(event) {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(event));
      },
    };
  };
})();
