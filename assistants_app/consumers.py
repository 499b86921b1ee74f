"""The websocket of one thread: pushes its runs' statuses and new messages to its owner, and
takes the messages they post (`message.send`) as the HTTP post does, without a request each.

Connecting also drives the thread's unfinished runs, so a run left behind by a closed tab or
a restarted server is picked up as soon as anyone opens the thread again.
"""

import asyncio
import functools
import json
import logging
import re
import time

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings
from django.db.models import prefetch_related_objects
from django.db.models.functions import Length

from . import limits, prepared, runs, services, socket_auth
from .db import socket_database_call
from .exceptions import ClientError, NotFound, RateLimited, SignedOut
from .framing import frames
from .models import Message, Run, Thread
from .runs import events
from .tool_models import ToolStep

log = logging.getLogger(__name__)

# A `heartbeat` event this often: while they arrive the page knows a quiet answer is a slow
# model, and when they stop, that the socket is stalled (static/js/chat.js reconnects).
HEARTBEAT_SECONDS = 5.0
# One `hello` replays at most this many messages, and stops early past this many characters
# of text (one message always goes, however long): the page asks for the next page when it
# has this one, so a long backlog never piles up in the server's send buffer.
REPLAY_PAGE_MESSAGES = 50
REPLAY_PAGE_CHARS = 200_000
# A socket may send this many hellos at once, then one every REPLAY_REFILL_SECONDS; a page
# longer than REPLAY_PAGE_CHARS (one long answer) counts as that many pages, since rendering
# its Markdown is what a flood of hellos would make the server do.
REPLAY_BURST = 10
REPLAY_REFILL_SECONDS = 1.0
# A socket may post this many messages at once, then one every SEND_REFILL_SECONDS: a person
# sends one at a time (a thread takes one while its answer is written), and a script flooding
# the socket is refused here before each send costs a trip to the database. The fair-use
# limits (limits.py) count what is stored, as for the HTTP post.
SEND_BURST = 5
SEND_REFILL_SECONDS = 1.0
# A `message.send` carries a ref of the page's choosing, echoed in its answer: short, and
# plain characters only, so echoing it can never fail to encode.
REF = re.compile(r"[A-Za-z0-9_.:-]{1,64}")

# Close codes: the websocket's counterparts of HTTP 401, 404 and 429, and RFC 6455's own
# "message too big".
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_TOO_BIG = 1009


class ThreadConsumer(AsyncJsonWebsocketConsumer):
    thread: Thread | None = None
    socket_id: str | None = None  # its entry in the user's open-socket count
    heartbeat: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        # However the consumer ends (a clean close, an exception, daphne cancelling it), its
        # socket leaves the user's count; disconnect() alone misses all but the first.
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.heartbeat is not None:
                self.heartbeat.cancel()
            if self.socket_id is not None:
                await limits.close_socket(self.socket_id)

    async def connect(self):
        thread_id = self.scope["url_route"]["kwargs"]["thread_id"]
        try:
            self.user, self.thread, active_run_ids = await _user_thread_and_active_runs(
                self.scope, thread_id
            )
        except NotFound:
            await self.refuse(CLOSE_NOT_FOUND)
            return
        if self.thread is None:
            await self.refuse(CLOSE_NOT_LOGGED_IN)
            return
        self.socket_id = await limits.open_socket(self.user)
        if self.socket_id is None:
            await self.refuse(CLOSE_TOO_MANY_SOCKETS)
            return
        self.replays = TokenBucket(REPLAY_BURST, REPLAY_REFILL_SECONDS)
        self.sends = TokenBucket(SEND_BURST, SEND_REFILL_SECONDS)
        await self.channel_layer.group_add(self.thread.group_name, self.channel_name)
        await self.accept()
        self.heartbeat = asyncio.create_task(self.beat())
        for run_id in active_run_ids:
            runs.ensure_driving(run_id)

    async def dispatch(self, message):
        """Channels' dispatch without its `aclose_old_connections()` before every handler: a
        hop to the process's one database thread for every frame and every group event (each
        streamed delta to each socket), all queueing there. It is not needed: this consumer's
        and the run driver's database calls close stale connections around themselves, on
        whichever thread they run (assistants_app/db.py).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_disconnect(self, message):
        # Channels' own, less the same hop (see dispatch). Its other step, leaving the groups
        # in `self.groups`, has nothing to do: disconnect() leaves the one group joined above.
        await self.disconnect(message["code"])
        raise StopConsumer()

    async def refuse(self, code: int) -> None:
        # Accepting first lets the browser see why (a close code instead of a bare 403).
        await self.accept()
        await self.close(code=code)

    async def beat(self) -> None:
        """Send `heartbeat` every HEARTBEAT_SECONDS until the socket closes."""
        try:
            while True:
                await asyncio.sleep(HEARTBEAT_SECONDS)
                await self.send_json(events.heartbeat())
        except asyncio.CancelledError:
            pass  # disconnect() ends it
        except Exception:
            log.warning("heartbeat stopped on %s", self.thread.group_name, exc_info=True)

    async def disconnect(self, code):
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if self.thread is not None:
            await self.channel_layer.group_discard(self.thread.group_name, self.channel_name)

    async def send_json(self, content, close=False):
        """Every event goes out here: in parts when it is bigger than a websocket message may
        be (assistants_app/framing.py). A send that fails anyway is logged and skipped: were
        the socket closed instead, the page would reconnect and replay the same event again."""
        try:
            for frame in frames(content, settings.WEBSOCKET_MAX_MESSAGE_BYTES):
                await self.send(text_data=frame)
        except Exception:
            log.exception("thread %s: could not send a %r event", self.thread.pk, content["type"])
        if close:
            await self.close()

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Every client event goes through here; a bad one gets an `error` event, not a crash."""
        if self.socket_id is None:  # a refused socket, between its accept and its close
            return
        # daphne refuses big frames too (manage.py serve sets it); this holds under any server.
        if frame_size(text_data, bytes_data) > settings.WEBSOCKET_MAX_MESSAGE_BYTES:
            await self.send_json(events.error("FRAME_TOO_LARGE", "Event too large."))
            await self.close(code=CLOSE_TOO_BIG)
            return
        try:
            await self.handle(parse_event(text_data))
        except ClientError as error:
            await self.send_json(error_event(error))

    async def handle(self, event: dict) -> None:
        if event.get("type") == "hello":
            await self.replay(event.get("last_message_id"))
        elif event.get("type") == "message.send":
            await self.post(event)
        else:
            shown = repr(event.get("type"))[:40]
            raise ClientError("UNKNOWN_EVENT", f"Unknown event type {shown}.")

    async def replay(self, last_message_id) -> None:
        """Send what a client missed: messages after the one it has, a page at a time, then
        the latest run and the answer written so far if that run is still going."""
        if last_message_id is not None and (
            not isinstance(last_message_id, int) or isinstance(last_message_id, bool)
        ):
            raise ClientError("BAD_LAST_MESSAGE_ID", "last_message_id must be a number or null.")
        wait = self.replays.take()
        if wait:
            raise RateLimited("TOO_MANY_HELLOS", "Too many hellos; ask again later.", wait)
        missed, chars = await _missed(self.thread, max(last_message_id or 0, 0))
        self.replays.spend(chars / REPLAY_PAGE_CHARS - 1)
        for event in missed:
            await self.send_json(event)

    async def post(self, event: dict) -> None:
        """Store the message and start its run, as the HTTP post does; answer `message.sent`
        or an `error`, each with the event's ref. The message and the run also reach every
        socket of the thread as group events, this one included."""
        ref = event.get("ref")
        if not isinstance(ref, str) or not REF.fullmatch(ref):
            raise ClientError(
                "BAD_REF", "message.send needs a ref: 1 to 64 letters, digits or '_.:-'."
            )
        try:
            wait = self.sends.take()
            if wait:
                raise RateLimited("TOO_MANY_SENDS", "Too many messages at once.", wait)
            thread, message, run = await services.send_message(
                self.user,
                self.thread.pk,
                event.get("text"),
                event.get("attachments"),
                signed_in=functools.partial(socket_auth.signed_in_now, self.scope, self.user),
            )
        except ClientError as error:
            await self.send_json(error_event(error, ref))
        except SignedOut:
            await self.close(code=CLOSE_NOT_LOGGED_IN)
        except NotFound:  # the thread was deleted (in another tab, say)
            await self.close(code=CLOSE_NOT_FOUND)
        except Exception:
            # The page keeps the text and says so: never a socket closed on a half-known send.
            log.exception("thread %s: a message.send failed", self.thread.pk)
            failed = "Your message could not be sent. Try again in a moment."
            await self.send_json(events.error("SEND_FAILED", failed, ref=ref))
        else:
            await self.send_json(events.message_sent(ref, thread, message, run))

    # Group events, named after their type.

    async def run_started(self, event):
        runs.ensure_driving(event["run_id"])

    async def run_status(self, event):
        await self.send_json(event)

    async def message_created(self, event):
        await self.send_json(event)

    async def message_delta(self, event):
        await self.send_json(event)

    async def tool_step(self, event):
        await self.send_json(event)


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other websocket path (a thread id that is not a number, say): a 4404, not a 500."""

    async def connect(self):
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND)


class TokenBucket:
    """`burst` takes at once, then one more every `refill_seconds`."""

    def __init__(self, burst: int, refill_seconds: float) -> None:
        self.burst, self.refill_seconds = burst, refill_seconds
        self.tokens, self.since = float(burst), time.monotonic()

    def take(self) -> float:
        """0 when a token was taken; otherwise the seconds until one is there."""
        self.spend(0)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0
        return round((1 - self.tokens) * self.refill_seconds, 3)

    def spend(self, tokens: float) -> None:
        """Refill for the time gone by, then take `tokens` more (down below zero: a debt)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.since) / self.refill_seconds)
        self.since = now
        self.tokens -= max(tokens, 0)


def error_event(error: ClientError, ref: str = "") -> dict:
    return events.error(error.code, error.message, getattr(error, "retry_after", None), ref)


def frame_size(text_data: str | None, bytes_data: bytes | None) -> int:
    if text_data is None:
        return len(bytes_data or b"")
    # surrogatepass: a lone surrogate cannot come through daphne, but must not crash here.
    return len(text_data.encode("utf-8", "surrogatepass"))


def parse_event(text_data: str | None) -> dict:
    if text_data is None:
        raise ClientError("BAD_FRAME", "Send JSON text frames, not binary ones.")
    try:
        event = json.loads(text_data)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        raise ClientError("BAD_JSON", "Events must be JSON objects.") from None
    if not isinstance(event, dict):
        raise ClientError("BAD_JSON", "Events must be JSON objects.")
    return event


# database_sync_to_async (assistants_app/db.py) closes stale connections around each call, as
# a long-lived consumer needs after waking up, and on PostgreSQL runs the calls of many sockets
# at once instead of one after another. The statements of a connect and its first `hello` are
# built once per process (prepared.py): a burst of connects (every page of a restarted site)
# was mostly the ORM building them anew.


@socket_database_call(opens_socket=True)
def _user_thread_and_active_runs(scope, thread_id) -> tuple[object, Thread | None, list[int]]:
    """The socket's user, their thread (NotFound if it is not theirs; None if nobody is signed
    in) and its unfinished runs' ids."""
    # One call, where Channels would make two (the user, then the thread): every connect of a
    # burst waits its turn in the socket lane for each call it makes, and on SQLite queues
    # for the same database thread each time.
    user = socket_auth.user_of(scope)
    if not user.is_authenticated:
        return user, None, []
    thread = services.thread_of(user, thread_id)
    return user, thread, _active_runs(thread_id=thread.pk)


@prepared.select
def _active_runs(thread_id: int):
    return Run.objects.filter(thread_id=thread_id).active().values_list("pk", flat=True)


@socket_database_call
def _missed(thread: Thread, last_message_id: int) -> tuple[list[dict], int]:
    """The events of one page of replay, and how many characters of text it holds."""
    # Lengths first, so a page of long answers is never read (or rendered) whole.
    # Read once: a message stored between two reads would make them disagree.
    sizes = _sizes_after(thread_id=thread.pk, after_id=last_message_id)
    page, chars = [], 0
    for pk, size in sizes:
        if len(page) == REPLAY_PAGE_MESSAGES or (page and chars + size > REPLAY_PAGE_CHARS):
            break
        page.append(pk)
        chars += size
    if page:
        # The page is the first messages after the one the client has: from it to the last.
        messages = _messages_between(thread_id=thread.pk, after_id=last_message_id,
                                     last_id=page[-1])  # fmt: skip
        prefetch_related_objects(messages, "attachments")
    else:
        messages = []
    replayed = [events.message_created(message) for message in messages]
    if len(page) < len(sizes):
        return [*replayed, events.replay_more(page[-1])], chars
    for latest_run in _latest_run(thread_id=thread.pk):
        replayed.append(events.run_status(latest_run))
        replayed += [events.tool_step(step) for step in _steps_of(run_id=latest_run.pk)]
        if not latest_run.is_terminal and (delta := runs.live_delta(latest_run)):
            replayed.append(delta)
    return replayed, chars


@prepared.select
def _sizes_after(thread_id: int, after_id: int):
    after = Message.objects.filter(thread_id=thread_id, pk__gt=after_id).order_by("pk")
    return after.annotate(size=Length("text")).values_list("pk", "size")[
        : REPLAY_PAGE_MESSAGES + 1
    ]


@prepared.select
def _messages_between(thread_id: int, after_id: int, last_id: int):
    between = Message.objects.filter(thread_id=thread_id, pk__gt=after_id, pk__lte=last_id)
    return between.order_by("pk")


@prepared.select
def _latest_run(thread_id: int):
    return Run.objects.filter(thread_id=thread_id).order_by("-pk")[:1]


@prepared.select
def _steps_of(run_id: int):
    return ToolStep.objects.filter(run_id=run_id)  # in their order (ToolStep.Meta)
