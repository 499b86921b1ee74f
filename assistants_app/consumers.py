"""The websocket of one thread: pushes its runs' statuses and new messages to its owner.

Connecting also drives the thread's unfinished runs, so a run left behind by a closed tab or
a restarted server is picked up as soon as anyone opens the thread again.
"""

import asyncio
import json
import logging

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from . import limits, runs
from .db import database_sync_to_async
from .exceptions import ClientError
from .models import Message, Run, Thread

log = logging.getLogger(__name__)

REPLAY_LIMIT = 500
# A `heartbeat` event this often: while they arrive the page knows a quiet answer is a slow
# model, and when they stop, that the socket is stalled (static/js/chat.js reconnects).
HEARTBEAT_SECONDS = 5.0

# Close codes: the websocket's counterparts of HTTP 401, 404 and 429, and RFC 6455's own
# "message too big".
CLOSE_NOT_LOGGED_IN = 4401
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_TOO_BIG = 1009


class ThreadConsumer(AsyncJsonWebsocketConsumer):
    thread: Thread | None = None
    counted_socket = False  # in the user's open-socket count, so to be taken out of it
    heartbeat: asyncio.Task | None = None

    async def connect(self):
        user = self.scope["user"]
        if not user.is_authenticated:
            await self.refuse(CLOSE_NOT_LOGGED_IN)
            return
        thread_id = self.scope["url_route"]["kwargs"]["thread_id"]
        self.thread, active_run_ids = await _owned_thread_and_active_runs(user, thread_id)
        if self.thread is None:
            await self.refuse(CLOSE_NOT_FOUND)
            return
        if not await limits.open_socket(user):
            await self.refuse(CLOSE_TOO_MANY_SOCKETS)
            return
        self.counted_socket = True
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
                await self.send_json({"type": "heartbeat"})
        except asyncio.CancelledError:
            pass  # disconnect() ends it
        except Exception:
            log.warning("heartbeat stopped on %s", self.thread.group_name, exc_info=True)

    async def disconnect(self, code):
        if self.heartbeat is not None:
            self.heartbeat.cancel()
        if self.thread is not None:
            await self.channel_layer.group_discard(self.thread.group_name, self.channel_name)
        if self.counted_socket:
            await limits.close_socket(self.scope["user"])

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        """Every client event goes through here; a bad one gets an `error` event, not a crash."""
        # daphne refuses big frames too (manage.py serve sets it); this holds under any server.
        if frame_size(text_data, bytes_data) > settings.WEBSOCKET_MAX_MESSAGE_BYTES:
            await self.send_json(
                {"type": "error", "code": "FRAME_TOO_LARGE", "message": "Event too large."}
            )
            await self.close(code=CLOSE_TOO_BIG)
            return
        try:
            await self.handle(parse_event(text_data))
        except ClientError as error:
            await self.send_json({"type": "error", "code": error.code, "message": error.message})

    async def handle(self, event: dict) -> None:
        if event.get("type") == "hello":
            await self.replay(event.get("last_message_id"))
        else:
            raise ClientError("UNKNOWN_EVENT", f"Unknown event type {event.get('type')!r}.")

    async def replay(self, last_message_id) -> None:
        """Send what a client missed: messages after the one it has, the latest run, and the
        answer written so far if that run is still going."""
        if last_message_id is not None and not isinstance(last_message_id, int):
            raise ClientError("BAD_LAST_MESSAGE_ID", "last_message_id must be a number or null.")
        events = await _missed(self.thread, last_message_id or 0)
        for event in events:
            await self.send_json(event)

    # Group events, named after their type.

    async def run_started(self, event):
        runs.ensure_driving(event["run_id"])

    async def run_status(self, event):
        await self.send_json(event)

    async def message_created(self, event):
        await self.send_json(event)

    async def message_delta(self, event):
        await self.send_json(event)


def frame_size(text_data: str | None, bytes_data: bytes | None) -> int:
    return len(text_data.encode()) if text_data is not None else len(bytes_data or b"")


def parse_event(text_data: str | None) -> dict:
    if text_data is None:
        raise ClientError("BAD_FRAME", "Send JSON text frames, not binary ones.")
    try:
        event = json.loads(text_data)
    except ValueError:
        raise ClientError("BAD_JSON", "Events must be JSON objects.") from None
    if not isinstance(event, dict):
        raise ClientError("BAD_JSON", "Events must be JSON objects.")
    return event


# database_sync_to_async (assistants_app/db.py) closes stale connections around each call, as
# a long-lived consumer needs after waking up, and on PostgreSQL runs the calls of many sockets
# at once instead of one after another.


@database_sync_to_async
def _owned_thread_and_active_runs(user, thread_id) -> tuple[Thread | None, list[int]]:
    # One call, not two: on SQLite every socket of the process queues for the same database
    # thread, so in a connect burst each extra call puts a socket behind all the others again.
    thread = Thread.objects.filter(pk=thread_id, owner=user).first()
    if thread is None:
        return None, []
    return thread, list(Run.objects.filter(thread=thread).active().values_list("pk", flat=True))


@database_sync_to_async
def _missed(thread: Thread, last_message_id: int) -> list[dict]:
    messages = Message.objects.filter(thread=thread, pk__gt=last_message_id)[:REPLAY_LIMIT]
    events = [{"type": "message.created", "message": m.as_event()} for m in messages]
    latest_run = Run.objects.filter(thread=thread).order_by("-pk").first()
    if latest_run is not None:
        events.append({"type": "run.status", "run": latest_run.as_event()})
        if not latest_run.is_terminal and (delta := runs.live_delta(latest_run)):
            events.append(delta)
    return events
