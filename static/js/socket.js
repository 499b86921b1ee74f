// Events the server sent in parts, put back together (assistants_app/framing.py): an event
// bigger than a websocket message may be comes as ordered `part` messages whose texts, joined,
// are its JSON. So the page only ever sees whole events, however long the answer.

// Parts come one event at a time, in order; a stray one (after a failed send) is dropped.
export function reassembler(onEvent) {
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
