"""The load generator: simulated users on real websockets, in a process of its own.

It reads its plan (JSON) on stdin and prints what it saw (JSON) on stdout; `bench.run` makes
the plan and turns the observations into numbers. Every user holds one socket on its own
thread. The first `runs_in_flight` users each keep one run going: post a message, wait for
the run to end on the socket, post the next (a closed load: a faster site is sent more). With
a `rate`, posts go out at that rate instead, each to a runner without a run going (an open
load: the same work for any site, so latencies compare; a post that finds every runner busy
waits for one, and how late it went out is kept). Halfway through, `reconnect` idle users drop
their sockets and connect again all at once, to show whether connects starve while runs poll.
Lone connects show the same one at a time: an idle user reconnects every quarter second,
before the runs start and while they go (up to the burst). Everything is bounded: in sockets,
in time, and to loopback addresses.

For the cost figures it counts each run's `message.delta` events (an event sent in `part`s
counts once) and says when the runners started and stopped posting (time.time()), so that
the servers' CPU time can be cut to that window. For the latency of each token it keeps when
each delta came and which characters of the answer it brought.

A user posts over its own socket (`message.send`, answered there by `message.sent` or an
`error` with the post's ref) when the site is one process with its pages on it: the page
posts that way too, and a request per message is CPU the page no longer costs (BENCHMARKS.md,
thirteenth step). Pages and sockets apart (`post_urls`) and several processes post over
HTTP, since crossing processes is what those measure. A site older than `message.send`
answers it with a ref-less UNKNOWN_EVENT; that user then posts over HTTP, so old checkouts
still compare with new ones.
"""

import asyncio
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import websockets
from websockets.exceptions import ConnectionClosed

from assistants_app.framing import Reassembler

LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_SOCKETS = 5000
MAX_DURATION = 600.0
MAX_RATE = 1000.0  # posts a second
MAX_ERRORS_KEPT = 50
LONE_CONNECT_USERS = 50  # idle users who take turns reconnecting alone
LONE_CONNECT_EVERY = 0.25  # seconds between lone connects
LONE_CONNECT_IDLE_SECONDS = 3.0  # of lone connects before the runs start (by default)


@dataclass
class Plan:
    urls: list[str]  # one per daphne process; users are spread over them
    users: list[dict]  # {"session", "thread"} from bench.seed
    runs_in_flight: int
    duration: float  # seconds of posting; runs then in flight are waited for
    reconnect: int  # idle users who reconnect at once, halfway through
    run_timeout: float  # seconds a run may take from post to its end on the socket
    connect_timeout: float
    csrf: str  # any 32-character token: sent as cookie and header, as the page does
    # Where posts go, when not to the processes holding the sockets (pages and sockets on
    # separate processes); empty: each user posts over its socket when there is one process,
    # to the process after its socket's when there are several.
    post_urls: list[str] = field(default_factory=list)
    rate: float = 0.0  # posts a second in all (open load); 0: back to back (closed load)
    lone_idle: float = LONE_CONNECT_IDLE_SECONDS  # seconds of lone connects before the runs

    def check(self) -> None:
        for url in [*self.urls, *self.post_urls]:
            if urlsplit(url).hostname not in LOOPBACK:
                raise SystemExit(f"refusing to load a non-loopback address: {url}")
        if len(self.users) > MAX_SOCKETS or self.duration > MAX_DURATION:
            raise SystemExit("plan exceeds the load generator's bounds")
        if not 0 <= self.rate <= MAX_RATE:
            raise SystemExit(f"rate must be from 0 to {MAX_RATE} posts a second")
        if self.runs_in_flight + self.reconnect > len(self.users):
            raise SystemExit("more runners and reconnecting users than users")


@dataclass
class Observations:
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    # run id -> {"user", "posted", "status", "arrivals": [time.time() of each message frame],
    # "deltas": message.delta events, "delta_arrivals": [[time.time(), offset, len(text)] of
    # each]}
    runs: dict[int, dict] = field(default_factory=dict)

    def error(self, text: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(text)


class User:
    """One person with one tab open on their thread."""

    def __init__(self, index: int, entry: dict, plan: Plan, seen: Observations):
        self.index = index
        self.thread = entry["thread"]
        self.cookie = f"sessionid={entry['session']}; csrftoken={plan.csrf}"
        self.url = plan.urls[index % len(plan.urls)]
        # Posts go to another process than the socket when there are several, so every
        # answer crosses the channel layer between processes.
        if plan.post_urls:
            self.post_url = plan.post_urls[index % len(plan.post_urls)]
        else:
            self.post_url = plan.urls[(index + 1) % len(plan.urls)]
        # One process with its pages on it: post over the socket, as the page does.
        self.over_socket = len(plan.urls) == 1 and not plan.post_urls
        self.refs = itertools.count(1)
        self.sending: dict[str, asyncio.Future] = {}  # ref -> the socket's answer to the post
        self.plan = plan
        self.seen = seen
        self.socket = None
        self.reader: asyncio.Task | None = None
        self.closing = False
        self.ended: dict[int, str] = {}  # run id -> terminal status seen on the socket
        self.changed = asyncio.Event()

    async def connect(self) -> float | None:
        """Open the socket and say hello; seconds until accepted, None on failure."""
        started = time.monotonic()
        self.closing = False
        try:
            self.socket = await websockets.connect(
                self.url.replace("http", "ws", 1) + f"/ws/threads/{self.thread}/",
                additional_headers={"Cookie": self.cookie, "Origin": self.url},
                open_timeout=self.plan.connect_timeout,
                ping_interval=None,  # like a browser: the server pings, the page does not
            )
            await self.socket.send(json.dumps({"type": "hello", "last_message_id": None}))
        except (OSError, TimeoutError, websockets.InvalidHandshake, ConnectionClosed) as error:
            self.seen.error(f"user {self.index}: connect failed: {error!r}")
            return None
        self.reader = asyncio.create_task(self.read())
        return time.monotonic() - started

    async def read(self) -> None:
        parts = Reassembler()
        try:
            async for raw in self.socket:
                if (event := parts.feed(raw)) is not None:
                    self.receive(event, time.time())
        except ConnectionClosed:
            pass
        if not self.closing:
            self.seen.error(f"user {self.index}: socket closed by the server")

    def receive(self, event: dict, now: float) -> None:
        kind = event.get("type")
        if kind == "message.created" and event["message"]["role"] == "assistant":
            run = self.seen.runs.setdefault(event["message"]["run_id"], {"user": self.index})
            run.setdefault("arrivals", []).append(now)
        elif kind == "message.delta":
            run = self.seen.runs.setdefault(event["run_id"], {"user": self.index})
            run["deltas"] = run.get("deltas", 0) + 1
            # A delta's text is the answer from character `offset` on.
            run.setdefault("delta_arrivals", []).append([now, event["offset"], len(event["text"])])
        elif kind == "run.status" and event["run"]["is_terminal"]:
            self.ended[event["run"]["id"]] = event["run"]["status"]
            self.seen.runs.setdefault(event["run"]["id"], {"user": self.index})["ended"] = now
            self.changed.set()
        elif kind in ("message.sent", "error") and (answer := self.answer_to(event)):
            if not answer.done():
                answer.set_result(event)
        elif kind == "error":
            self.seen.error(f"user {self.index}: error event {event.get('code')}")

    def answer_to(self, event: dict) -> asyncio.Future | None:
        """The post waiting for this event: by its ref. A site older than `message.send` answers
        it with an UNKNOWN_EVENT without a ref: the user's post, since it has one at a time."""
        if "ref" in event:
            return self.sending.pop(event["ref"], None)
        if event.get("code") == "UNKNOWN_EVENT" and self.sending:
            return self.sending.popitem()[1]
        return None

    async def close(self) -> None:
        self.closing = True
        if self.socket is not None:
            await self.socket.close()
        if self.reader is not None:
            await self.reader

    async def keep_a_run_going(self, http: httpx.AsyncClient, until: float) -> None:
        turn = 0
        while time.monotonic() < until:
            turn += 1
            if not await self.ask(http, turn):
                return

    async def ask(self, http: httpx.AsyncClient, turn: int) -> bool:
        """Post a message and wait for its run to end on the socket; False when no end came
        in time (this user then stops)."""
        run_id = await self.post(http, f"Bench message {turn} from user {self.index}")
        if run_id is None:
            await asyncio.sleep(1.0)
            return True
        try:
            async with asyncio.timeout(self.plan.run_timeout):
                while run_id not in self.ended:
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            self.seen.error(f"run {run_id}: no end seen within {self.plan.run_timeout}s")
            return False
        self.seen.runs[run_id]["status"] = self.ended[run_id]
        if self.ended[run_id] != "completed":
            self.seen.error(f"run {run_id}: ended {self.ended[run_id]}")
        return True

    async def post(self, http: httpx.AsyncClient, text: str) -> int | None:
        """Post a message: its run's id, or None when the post failed (counted as an error)."""
        run_id = await self.post_over_socket(text) if self.over_socket else None
        if not self.over_socket:  # posting over HTTP, or the site does not know message.send
            run_id = await self.post_over_http(http, text)
        if run_id is None:
            return None
        run = self.seen.runs.setdefault(run_id, {"user": self.index})
        run["posted"] = time.time()  # when the post was answered, over either way
        run["text"] = text  # what a Chat Completions answer is known by at the simulator
        return run_id

    async def post_over_socket(self, text: str) -> int | None:
        if self.reader is None or self.reader.done():  # never connected, or closed since
            self.seen.error(f"user {self.index}: post failed: no socket")
            return None
        ref = f"{self.index}.{next(self.refs)}"
        answer = asyncio.get_running_loop().create_future()
        self.sending[ref] = answer
        event = {"type": "message.send", "ref": ref, "text": text, "attachments": []}
        try:
            await self.socket.send(json.dumps(event))
            # The reader ends when the socket closes (4401, 4404): then no answer comes.
            await asyncio.wait(
                [answer, self.reader],
                timeout=self.plan.run_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except ConnectionClosed as error:
            self.seen.error(f"user {self.index}: post failed: {error!r}")
            return None
        finally:
            self.sending.pop(ref, None)
        if not answer.done():
            why = "socket closed" if self.reader.done() else "no answer in time"
            self.seen.error(f"user {self.index}: post failed: {why}")
            return None
        answered = answer.result()
        if answered.get("code") == "UNKNOWN_EVENT" and "ref" not in answered:
            self.over_socket = False  # an older site: post() goes on over HTTP
            return None
        if answered["type"] == "error":  # refused, as an HTTP post answered 409 or 429 is
            self.seen.error(f"user {self.index}: post answered {answered.get('code')}")
            return None
        return answered["run"]["id"]

    async def post_over_http(self, http: httpx.AsyncClient, text: str) -> int | None:
        headers = {"Cookie": self.cookie, "X-CSRFToken": self.plan.csrf}
        try:
            response = await http.post(
                f"{self.post_url}/threads/{self.thread}/messages/",
                json={"text": text},
                headers=headers,
            )
        except httpx.HTTPError as error:
            self.seen.error(f"user {self.index}: post failed: {error!r}")
            return None
        if response.status_code != 201:
            self.seen.error(f"user {self.index}: post answered {response.status_code}")
            return None
        return response.json()["run"]["id"]


async def offer_at_rate(
    runners: list[User], http: httpx.AsyncClient, until: float, rate: float
) -> dict:
    """Posts at `rate` a second until `until` (monotonic), each to a runner with no run going:
    the same work however fast the site is. When every runner has one, the post waits for the
    first to finish; how late each post went out says whether the site kept up."""
    free: asyncio.Queue[User] = asyncio.Queue()
    for user in runners:
        free.put_nowait(user)
    going: set[asyncio.Task] = set()
    started, late = time.monotonic(), []
    for turn in itertools.count(1):
        due = started + (turn - 1) / rate
        if due >= until:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        user = await free.get()
        late.append(round(time.monotonic() - due, 3))
        task = asyncio.create_task(_ask_then_free(user, http, turn, free))
        going.add(task)
        task.add_done_callback(going.discard)
    await asyncio.gather(*going)
    return {"rate": rate, "late_s": late}


async def _ask_then_free(user: User, http: httpx.AsyncClient, turn: int, free: asyncio.Queue):
    if await user.ask(http, turn):
        free.put_nowait(user)


async def connect_all(users: list[User]) -> dict:
    """Connect users at once; the burst's length and each connect's time."""
    started = time.monotonic()
    times = await asyncio.gather(*(user.connect() for user in users))
    return {
        "seconds": time.monotonic() - started,
        "times": [t for t in times if t is not None],
        "failed": sum(1 for t in times if t is None),
    }


async def reconnect_later(users: list[User], delay: float) -> dict:
    await asyncio.sleep(delay)
    await asyncio.gather(*(user.close() for user in users))
    return await connect_all(users)


async def lone_connects(users: list[User], start: float, until: float) -> list[float]:
    """From `start` to `until` (monotonic), one user at a time reconnects, every
    LONE_CONNECT_EVERY seconds: how long a single new connect takes, in seconds."""
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    times = []
    for user in itertools.cycle(users):
        if time.monotonic() >= until:
            break
        await user.close()
        if (seconds := await user.connect()) is not None:
            times.append(seconds)
        await asyncio.sleep(LONE_CONNECT_EVERY)
    return times


async def watch_client(until: float, every: float = 0.01) -> dict:
    """How late this load generator's own event loop ran, and its CPU, until `until`. A frame's
    arrival time is taken here, after the loop got to it: a busy client adds its own lag to
    every latency it measures, so the report gives it beside them."""
    loop = asyncio.get_running_loop()
    lags, cpu_started, started = [], time.process_time(), time.monotonic()
    while time.monotonic() < until:
        due = loop.time() + every
        await asyncio.sleep(every)
        lags.append(1000 * (loop.time() - due))
    cpu = (time.process_time() - cpu_started) / (time.monotonic() - started)
    return {"lag_ms": lags, "cpu_percent": round(100 * cpu)}


async def drive(plan: Plan) -> dict:
    seen = Observations()
    users = [User(i, entry, plan, seen) for i, entry in enumerate(plan.users)]
    runners = users[: plan.runs_in_flight]
    reconnecting = users[len(users) - plan.reconnect :] if plan.reconnect else []
    probes = users[plan.runs_in_flight : len(users) - plan.reconnect][:LONE_CONNECT_USERS]
    connect = await connect_all(users)
    now = time.monotonic()
    lone_idle = await lone_connects(probes, now, now + plan.lone_idle)
    until = time.monotonic() + plan.duration
    # Cookies go in each request's header; the client's own jar stays empty.
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(timeout=plan.run_timeout, limits=limits) as http:
        reconnect = asyncio.create_task(reconnect_later(reconnecting, plan.duration / 2))
        # From when the runs are under way until the burst.
        lone_loaded = asyncio.create_task(
            lone_connects(probes, until - 0.85 * plan.duration, until - 0.5 * plan.duration)
        )
        posting = {"started": time.time()}
        client = asyncio.create_task(watch_client(until))
        if plan.rate:
            offered = await offer_at_rate(runners, http, until, plan.rate)
        else:
            offered = None
            await asyncio.gather(*(user.keep_a_run_going(http, until) for user in runners))
        posting["stopped"] = time.time()
        client = await client
        reconnect = await reconnect
        lone_loaded = await lone_loaded
    await asyncio.sleep(0.5)  # a duplicate frame would come right after the first
    await asyncio.gather(*(user.close() for user in users))
    return {
        "connect": connect,
        "reconnect_under_load": reconnect if reconnecting else None,
        "lone_connects": {"idle": lone_idle, "under_load": lone_loaded},
        "sockets": len(users) - connect["failed"],
        "runs": seen.runs,
        "posting": posting,
        "offered": offered,
        "client": client,
        "errors": seen.errors,
        "error_count": seen.error_count,
    }


def main() -> None:
    plan = Plan(**json.load(sys.stdin))
    plan.check()
    deadline = plan.connect_timeout * 2 + plan.duration + plan.run_timeout + 30
    result = asyncio.run(asyncio.wait_for(drive(plan), timeout=deadline))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
