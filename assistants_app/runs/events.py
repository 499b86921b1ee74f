"""The websocket protocol: one constructor per event a thread's socket carries.

Every sender builds its events here (the run driver, the consumer's replay and heartbeat,
the framing of big events), so from an event's name you reach everything that sends it in
one hop: search for its constructor. The page's side is `static/js/chat.js`.

Server to page (through the thread's group, or straight from its consumer):

    message.created  a stored message (user's or assistant's), once per message
    run.status       a run's status changed (and with it what the page shows about it)
    message.delta    the answer being written: `text` from character `offset` on
    tool.step        a tool call of a run, each time it changes (asked, approved, done...)
    replay.more      one page of a `hello` replay was sent; ask again after this message
    heartbeat        the socket is alive (a quiet answer is a slow model, not a stall)
    message.sent     the page's `message.send` was stored and its run started: the message,
                     the run and the thread's title, with the page's `ref`
    error            a client event was refused: a code and words (and the `ref` of the
                     `message.send` it answers)
    part             one piece of an event too big for one websocket message (built in
                     framing.py, which Python clients use without Django)

Page to server:

    hello            with `last_message_id`: asks for what the page missed
    message.send     posts a message (`text`, `attachments`, a `ref` of the page's choosing):
                     what the HTTP post does, without a request per message; answered by
                     `message.sent` or `error`, each with the `ref`

Within the server only (never sent to a page): `run.started`, the doorbell that makes a
thread's sockets ensure someone drives the run.

A group event is a doorbell, not a record: one that is lost is replayed on the next `hello`.
"""

from channels.layers import get_channel_layer

from ..models import Message, Run


def message_created(message: Message) -> dict:
    return {"type": "message.created", "message": message.as_event()}


def run_status(run: Run) -> dict:
    return {"type": "run.status", "run": run.as_event()}


def message_delta(run_id: int, text: str, offset: int = 0) -> dict:
    """`text` is the answer from character `offset` on: a page holding fewer characters than
    `offset` missed some, and asks for them with `hello`."""
    return {"type": "message.delta", "run_id": run_id, "offset": offset, "text": text}


def replay_more(last_message_id: int) -> dict:
    return {"type": "replay.more", "last_message_id": last_message_id}


def heartbeat() -> dict:
    return {"type": "heartbeat"}


def message_sent(ref: str, thread, message: Message, run: Run) -> dict:
    """A `message.send` was stored: what the HTTP post answers, with the page's `ref`."""
    return {
        "type": "message.sent",
        "ref": ref,
        "message": message.as_event(),
        "run": run.as_event(),
        "thread": {"title": str(thread)},  # a thread's first message names it
    }


def error(code: str, message: str, retry_after: float | None = None, ref: str = "") -> dict:
    event = {"type": "error", "code": code, "message": message}
    if retry_after:
        event["retry_after"] = retry_after
    if ref:
        event["ref"] = ref
    return event


def run_started(run_id: int) -> dict:
    """The doorbell: the thread's sockets make sure someone drives the run (server only)."""
    return {"type": "run.started", "run_id": run_id}


async def broadcast(group: str, events: list[dict]) -> None:
    """Send events to a thread's sockets. A doorbell: a lost event is replayed on `hello`."""
    for event in events:
        await get_channel_layer().group_send(group, event)


def tool_step(step) -> dict:
    """A tool call of a run, each time its state changes (asked, approved, running, done)."""
    return {"type": "tool.step", "step": step.as_event()}
