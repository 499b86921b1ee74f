"""The Assistants API (v2) as the simulator serves it: assistants, threads, messages, runs.

A run follows the answer's timeline (timeline.py): queued for the first fifth of its latency,
then in progress; from `latency` on its answer is written token by token at the configured
token rate, and with the last token the run completes and the answer appears in the thread.
`runs.retrieve` sends an `openai-poll-after-ms` header (a fifth of the latency, at least
50 ms), as OpenAI did.
`runs.create` and `submit_tool_outputs` with `stream: true` answer with the run's events
instead (thread.run.*, thread.message.created / delta / completed, then `[DONE]`), each when
it falls due, and every status in order even when the stream is read late; such a stream
cannot be reopened, as on OpenAI.

Function tools, deterministically: when the run has a function tool whose name appears in the
user's last message ("what time is it? use current_datetime"), the run stops at
requires_action asking for that function once. Required string parameters get the text that
follows the name in the message ("search_my_messages pizza" -> {"query": "pizza"}). After
submit_tool_outputs the run goes on, and the canned reply quotes the outputs.

Cancelling holds for a fifth of the latency, then the run is cancelled. Faults (see app.py):
`fail`, `stuck`, `incomplete`, `expire`, `break-stream` (the first stream stops half-way
through the answer, without `[DONE]`), `no-stream` (streaming refused with a 400), and the
poll faults on runs.retrieve.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from .common import Settings, error, fault_of, json_body, new_id, poll_fault
from .given import describe
from .replies import canned_reply, count_tokens, tokens_of, variant_of
from .timeline import TimedAnswer

TERMINAL = {"completed", "failed", "cancelled", "incomplete", "expired"}
# Statuses a fault ends a run in, instead of completed.
FAULT_ENDINGS = {"fail": "failed", "incomplete": "incomplete", "expire": "expired"}
TOOL_OUTPUT_CHARS = 300


def now() -> int:
    return int(time.time())


def message_json(thread_id: str, role: str, text: str, **extra) -> dict:
    return {
        "id": new_id("msg"),
        "object": "thread.message",
        "created_at": now(),
        "thread_id": thread_id,
        "role": role,
        "content": [{"type": "text", "text": {"value": text, "annotations": []}}],
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
        "status": "completed",
        "incomplete_details": None,
        "completed_at": now(),
        "incomplete_at": None,
        **extra,
    }


def sse(event: str, data: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def text_of(message: dict) -> str:
    return message["content"][0]["text"]["value"]


def content_text(content) -> str:
    """A message's text from `content`: a string, or a list of text parts."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else []
    return "\n".join(p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "text")


@dataclass
class SimThread:
    id: str
    metadata: dict
    created_at: int = field(default_factory=now)
    messages: list[dict] = field(default_factory=list)
    runs: list["SimRun"] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "object": "thread",
            "created_at": self.created_at,
            "metadata": self.metadata,
            "tool_resources": {},
        }

    def active_run(self) -> "SimRun | None":
        return next((run for run in self.runs if not run.is_terminal), None)


@dataclass
class SimRun:
    id: str
    thread: SimThread
    assistant_id: str
    model: str
    instructions: str
    given: str  # what came besides words (given.py)
    tools: list[dict]
    prompt: str
    turn: int
    earlier: str  # the user's message before the prompt, quoted in the reply
    variant: int  # how many times this message was answered (replies.variant_of)
    latency: float
    token_rate: float  # tokens a second once the answer is being written
    fault: str
    created_at: int = field(default_factory=now)
    started: float = field(default_factory=time.monotonic)
    tool_calls: list[dict] = field(default_factory=list)
    tool_outputs: list[dict] = field(default_factory=list)
    answer_id: str = field(default_factory=lambda: new_id("msg"))
    answer: dict | None = None
    polls: int = 0
    streams: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # wakes streams on a cancel
    # The current phase (the run's start, or since its tool outputs came); a cancel stops it.
    timeline: TimedAnswer = field(init=False)

    def __post_init__(self):
        self.tool_calls = planned_tool_calls(self.tools, self.prompt)
        self.timeline = TimedAnswer(self.planned_tokens(), self.latency, self.token_rate)

    @property
    def tokens(self) -> list[str]:
        """The answer this phase writes, if any."""
        return self.timeline.tokens

    @property
    def awaits_tools(self) -> bool:
        return bool(self.tool_calls) and not self.tool_outputs

    @property
    def writes(self) -> bool:
        """Whether this phase writes an answer (it does unless it stops before that)."""
        return not self.awaits_tools and self.fault not in ("fail", "expire", "stuck")

    def planned_tokens(self) -> list[str]:
        return tokens_of(self.reply()) if self.writes else []

    @property
    def status(self) -> str:
        answer = self.timeline
        if answer.stopped:
            since_cancel = time.monotonic() - answer.stopped_at
            return "cancelled" if since_cancel >= answer.queued_for else "cancelling"
        if answer.queued:
            return "queued"
        if self.fault == "stuck" or answer.elapsed < answer.latency:
            return "in_progress"
        if self.awaits_tools:
            return "requires_action"
        if not answer.finished:
            return "in_progress"  # writing
        return FAULT_ENDINGS.get(self.fault, "completed")

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def settle(self) -> None:
        """Write the answer into the thread once the run has finished writing it."""
        status = self.status
        if self.answer is None and status in ("completed", "incomplete"):
            self.answer = self.message(self.reply(), status)
            self.thread.messages.append(self.answer)

    def message(self, text: str, status: str) -> dict:
        return message_json(
            self.thread.id, "assistant", text,
            id=self.answer_id, assistant_id=self.assistant_id, run_id=self.id, status=status,
        )  # fmt: skip

    def reply(self) -> str:
        text = canned_reply(self.prompt, self.turn, self.earlier, self.variant, self.given)
        if self.tool_outputs:
            names = {call["id"]: call["function"]["name"] for call in self.tool_calls}
            results = "\n".join(
                f"- `{names.get(o['tool_call_id'], '?')}` answered: "
                f"{str(o.get('output', ''))[:TOOL_OUTPUT_CHARS]}"
                for o in self.tool_outputs
            )
            text += "\n\nTool results (a simulated use of the tools):\n" + results
        return text

    def submit(self, outputs: list[dict]) -> None:
        self.tool_outputs = outputs
        # A new queued -> in_progress round, whose reply quotes the outputs.
        self.timeline.begin_again(self.planned_tokens())

    def cancel(self) -> None:
        self.timeline.stop()
        self.changed.set()

    async def events(self, opening: bool) -> AsyncIterator[str]:
        """The current phase as server-sent events, each when it falls due: the run's status
        changes, the answer's message token by token, until the run ends or awaits tools.

        `opening`: the stream of runs.create, which starts with thread.run.created.
        """
        self.streams += 1
        breaks_at = (
            len(self.tokens) // 2 if self.fault == "break-stream" and self.streams == 1 else None
        )
        if opening:
            yield sse("thread.run.created", self.to_json(status="queued"))  # as it was made
        status, sent = "", 0  # the last status and the number of tokens sent
        while True:
            # Each status of the phase is reported, in order, also by a stream that starts
            # (or is read) late on a busy machine, as OpenAI's does: queued, in_progress...
            for opening_status in self.opening_statuses(status):
                status = opening_status
                yield sse(f"thread.run.{status}", self.to_json(status=status))
            written = self.timeline.tokens_written()
            if written > sent and sent == 0:
                empty = self.message("", "in_progress") | {"content": []}
                yield sse("thread.message.created", empty)
                yield sse("thread.message.in_progress", empty)
            for index in range(sent, written):
                if index == breaks_at:
                    return  # the connection drops mid-answer: no more events, no [DONE]
                yield sse("thread.message.delta", self.delta(self.tokens[index]))
            sent = written
            if (now_status := self.status) != status:
                status = now_status
                if status in TERMINAL or status == "requires_action":
                    if sent:
                        ending = "completed" if status == "completed" else "incomplete"
                        text = "".join(self.tokens[:sent])
                        yield sse(f"thread.message.{ending}", self.message(text, ending))
                    yield sse(f"thread.run.{status}", self.to_json())
                    yield "event: done\ndata: [DONE]\n\n"
                    return
                yield sse(f"thread.run.{status}", self.to_json())
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), self.next_change_in(sent))

    def opening_statuses(self, reported: str) -> list[str]:
        """The statuses a phase opens with (queued, then in_progress) that the run has been
        through since `reported`, the last one a stream reported; none once it is cancelled."""
        if self.timeline.stopped or reported not in ("", "queued"):
            return []
        passed = ["queued"] if self.status == "queued" else ["queued", "in_progress"]
        return passed[passed.index(reported) + 1 :] if reported else passed

    def next_change_in(self, sent: int) -> float | None:
        """Seconds until the next token or status change is due (None: only a cancel)."""
        answer = self.timeline
        if answer.stopped:
            return max(0.0, answer.stopped_at + answer.queued_for - time.monotonic())
        elapsed = answer.elapsed
        moments = [answer.queued_for, answer.latency, answer.finished_after]
        if sent < len(self.tokens):
            moments.append(answer.token_due(sent))
        if self.fault == "stuck":
            moments = moments[:1]
        future = [moment - elapsed for moment in moments if moment > elapsed]
        return min(future) if future else (None if self.fault == "stuck" else 0.0)

    def delta(self, token: str) -> dict:
        part = {"index": 0, "type": "text", "text": {"value": token, "annotations": []}}
        return {"id": self.answer_id, "object": "thread.message.delta",
                "delta": {"content": [part]}}  # fmt: skip

    def to_json(self, status: str = "") -> dict:
        """The run as it is now, or as it was in an earlier `status` of its phase."""
        self.settle()
        status = status or self.status
        done = status in TERMINAL
        prompt_tokens = count_tokens(self.instructions + self.prompt)
        completion_tokens = count_tokens(text_of(self.answer)) if self.answer else 0
        return {
            "id": self.id,
            "object": "thread.run",
            "created_at": self.created_at,
            "assistant_id": self.assistant_id,
            "thread_id": self.thread.id,
            "status": status,
            "started_at": self.created_at,
            "expires_at": None,
            "cancelled_at": now() if status == "cancelled" else None,
            "failed_at": now() if status == "failed" else None,
            "completed_at": now() if status == "completed" else None,
            "required_action": (
                {
                    "type": "submit_tool_outputs",
                    "submit_tool_outputs": {"tool_calls": self.tool_calls},
                }
                if status == "requires_action"
                else None
            ),
            "last_error": (
                {"code": "server_error", "message": "The simulator was asked to fail."}
                if status == "failed"
                else None
            ),
            "incomplete_details": (
                {"reason": "max_completion_tokens"} if status == "incomplete" else None
            ),
            "model": self.model,
            "instructions": self.instructions,
            "tools": self.tools,
            "metadata": {},
            "temperature": 1.0,
            "top_p": 1.0,
            "max_prompt_tokens": None,
            "max_completion_tokens": None,
            "truncation_strategy": {"type": "auto", "last_messages": None},
            "response_format": "auto",
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if done
            else None,
        }


def planned_tool_calls(tools: list[dict], prompt: str) -> list[dict]:
    """The function calls a run asks for: each function tool named in the user's message."""
    calls = []
    lowered = prompt.lower()
    for tool in tools:
        function = tool.get("function") or {}
        name = function.get("name", "")
        if tool.get("type") != "function" or not name or name.lower() not in lowered:
            continue
        after = prompt[lowered.index(name.lower()) + len(name) :].strip(" :,.?!\n") or prompt
        schema = function.get("parameters") or {}
        properties = schema.get("properties") or {}
        arguments = {
            key: after
            for key in schema.get("required") or []
            if properties.get(key, {}).get("type") == "string"
        }
        calls.append(
            {
                "id": new_id("call"),
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
        )
    return calls


class AssistantsAPI:
    """Assistants, threads and runs, kept in memory for the life of the process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.assistants: dict[str, dict] = {}
        self.threads: dict[str, SimThread] = {}
        self.files: dict[str, dict] = {}

    # Assistants

    async def create_assistant(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        if not body.get("model"):
            return error(400, "Missing required parameter: 'model'.", "missing_required_parameter")
        assistant = {
            "id": new_id("asst"),
            "object": "assistant",
            "created_at": now(),
            "name": None,
            "description": None,
            "instructions": None,
            "tools": [],
            "metadata": {},
            "temperature": None,
            "top_p": None,
            "response_format": "auto",
            "tool_resources": {},
        }
        self.assistants[assistant["id"]] = assistant
        assistant.update(self._assistant_fields(body))
        return JSONResponse(assistant)

    async def get_assistant(self, request: Request) -> JSONResponse:
        assistant = self.assistants.get(request.path_params["assistant_id"])
        if assistant is None:
            return error(404, "No assistant found.", "not_found")
        return JSONResponse(assistant)

    async def update_assistant(self, request: Request) -> JSONResponse:
        assistant = self.assistants.get(request.path_params["assistant_id"])
        if assistant is None:
            return error(404, "No assistant found.", "not_found")
        assistant.update(self._assistant_fields(await json_body(request)))
        return JSONResponse(assistant)

    @staticmethod
    def _assistant_fields(body: dict) -> dict:
        names = ("name", "description", "instructions", "model", "tools", "metadata", "temperature")
        return {name: body[name] for name in names if name in body}

    # Threads and messages

    async def create_thread(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        thread = SimThread(id=new_id("thread"), metadata=body.get("metadata") or {})
        for seeded in body.get("messages") or []:  # a thread created with its history
            if not isinstance(seeded, dict) or seeded.get("role") not in ("user", "assistant"):
                return error(400, "Each message needs a role: user or assistant.", "invalid_value")
            text = content_text(seeded.get("content"))
            thread.messages.append(message_json(thread.id, seeded["role"], text))
        self.threads[thread.id] = thread
        return JSONResponse(thread.to_json())

    async def get_thread(self, request: Request) -> JSONResponse:
        thread = self.threads.get(request.path_params["thread_id"])
        if thread is None:
            return error(404, "No thread found.", "not_found")
        return JSONResponse(thread.to_json())

    async def create_file(self, request: Request) -> JSONResponse:
        """An uploaded file (images for vision, documents for file_search): kept by id only;
        the simulator reads no file."""
        size = len(await request.body())
        file = {"id": new_id("file"), "object": "file", "bytes": size, "created_at": now(),
                "filename": "upload", "purpose": "assistants", "status": "processed"}  # fmt: skip
        self.files[file["id"]] = file
        return JSONResponse(file)

    async def delete_file(self, request: Request) -> JSONResponse:
        file_id = request.path_params["file_id"]
        if self.files.pop(file_id, None) is None:
            return error(404, f"No such File object: {file_id}", "not_found")
        return JSONResponse({"id": file_id, "object": "file", "deleted": True})

    async def create_message(self, request: Request) -> JSONResponse:
        thread = self.threads.get(request.path_params["thread_id"])
        if thread is None:
            return error(404, "No thread found.", "not_found")
        if active := thread.active_run():
            return error(
                400, f"Can't add messages to {thread.id} while a run {active.id} is active.",
                "thread_locked",
            )  # fmt: skip
        body = await json_body(request)
        if body.get("role") not in ("user", "assistant"):
            return error(400, "'role' must be 'user' or 'assistant'.", "invalid_value")
        message = message_json(thread.id, body["role"], content_text(body.get("content")))
        message["attachments"] = body.get("attachments") or []
        message["x_given"] = describe(body.get("content"), "", message["attachments"])
        thread.messages.append(message)
        return JSONResponse(message)

    async def list_messages(self, request: Request) -> JSONResponse:
        thread = self.threads.get(request.path_params["thread_id"])
        if thread is None:
            return error(404, "No thread found.", "not_found")
        for run in thread.runs:
            run.settle()
        query = request.query_params
        messages = list(thread.messages)
        if query.get("run_id"):
            messages = [m for m in messages if m["run_id"] == query["run_id"]]
        if query.get("order", "desc") == "desc":
            messages.reverse()
        if query.get("after"):
            ids = [m["id"] for m in messages]
            if query["after"] in ids:
                messages = messages[ids.index(query["after"]) + 1 :]
        limit = max(1, min(100, int(query.get("limit") or 20)))
        page = messages[:limit]
        return JSONResponse(
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(messages) > limit,
            }
        )

    # Runs

    async def create_run(self, request: Request) -> JSONResponse:
        thread = self.threads.get(request.path_params["thread_id"])
        if thread is None:
            return error(404, "No thread found.", "not_found")
        body = await json_body(request)
        assistant = self.assistants.get(body.get("assistant_id") or "")
        if assistant is None:
            return error(
                404, f"No assistant found with id {body.get('assistant_id')!r}.", "not_found"
            )
        if active := thread.active_run():
            return error(
                400, f"Thread {thread.id} already has an active run {active.id}.", "thread_locked"
            )
        prompts = [m for m in thread.messages if m["role"] == "user"]
        model = body.get("model") or assistant["model"]
        run = SimRun(
            id=new_id("run"),
            thread=thread,
            assistant_id=assistant["id"],
            model=model,
            instructions=body.get("instructions") or assistant["instructions"] or "",
            given=" ".join(
                part
                for part in (
                    prompts[-1].get("x_given", "") if prompts else "",
                    describe(None, body.get("additional_instructions") or ""),
                )
                if part
            ),
            tools=body["tools"] if body.get("tools") is not None else assistant["tools"],
            prompt=text_of(prompts[-1]) if prompts else "",
            turn=len(prompts),
            earlier=text_of(prompts[-2]) if len(prompts) > 1 else "",
            variant=variant_of(
                text_of(prompts[-1]) if prompts else "",
                len(prompts),
                text_of(prompts[-2]) if len(prompts) > 1 else "",
            ),
            latency=self.settings.latency_of(request),
            token_rate=self.settings.token_rate_of(request),
            fault=fault_of(request, model),
        )
        if body.get("stream") and run.fault == "no-stream":
            return error(400, "Streaming is not supported here (simulated).", "unsupported")
        thread.runs.append(run)
        if body.get("stream"):
            return StreamingResponse(run.events(opening=True), media_type="text/event-stream")
        return JSONResponse(run.to_json())

    async def list_runs(self, request: Request) -> JSONResponse:
        thread = self.threads.get(request.path_params["thread_id"])
        if thread is None:
            return error(404, "No thread found.", "not_found")
        data = [run.to_json() for run in reversed(thread.runs)]  # newest first, as OpenAI
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            }
        )

    def _run(self, request: Request) -> SimRun | None:
        thread = self.threads.get(request.path_params["thread_id"])
        run_id = request.path_params["run_id"]
        return next((run for run in thread.runs if run.id == run_id), None) if thread else None

    async def retrieve_run(self, request: Request) -> JSONResponse:
        run = self._run(request)
        if run is None:
            return error(404, "No run found.", "not_found")
        failure = await poll_fault(run.fault, run.started, run.polls)
        run.polls += 1
        if failure:
            return failure
        poll_after = max(50, int(run.latency * 200))
        return JSONResponse(run.to_json(), headers={"openai-poll-after-ms": str(poll_after)})

    async def cancel_run(self, request: Request) -> JSONResponse:
        run = self._run(request)
        if run is None:
            return error(404, "No run found.", "not_found")
        if run.is_terminal or run.status == "cancelling":
            return error(400, f"Cannot cancel run with status '{run.status}'.", "invalid_state")
        run.cancel()
        return JSONResponse(run.to_json())

    async def submit_tool_outputs(self, request: Request) -> JSONResponse:
        run = self._run(request)
        if run is None:
            return error(404, "No run found.", "not_found")
        if run.status != "requires_action":
            return error(
                400, f"Runs in status '{run.status}' do not accept tool outputs.", "invalid_state"
            )
        body = await json_body(request)
        outputs = body.get("tool_outputs") or []
        missing = {c["id"] for c in run.tool_calls} - {o.get("tool_call_id") for o in outputs}
        if missing:
            return error(400, f"Missing tool outputs for {sorted(missing)}.", "invalid_value")
        run.submit(outputs)
        if body.get("stream"):
            return StreamingResponse(run.events(opening=False), media_type="text/event-stream")
        return JSONResponse(run.to_json())

    def routes(self) -> list[Route]:
        run_path = "/v1/threads/{thread_id}/runs/{run_id}"
        return [
            Route("/v1/assistants", self.create_assistant, methods=["POST"]),
            Route("/v1/assistants/{assistant_id}", self.get_assistant, methods=["GET"]),
            Route("/v1/assistants/{assistant_id}", self.update_assistant, methods=["POST"]),
            Route("/v1/threads", self.create_thread, methods=["POST"]),
            Route("/v1/files", self.create_file, methods=["POST"]),
            Route("/v1/files/{file_id}", self.delete_file, methods=["DELETE"]),
            Route("/v1/threads/{thread_id}", self.get_thread, methods=["GET"]),
            Route("/v1/threads/{thread_id}/messages", self.create_message, methods=["POST"]),
            Route("/v1/threads/{thread_id}/messages", self.list_messages, methods=["GET"]),
            Route("/v1/threads/{thread_id}/runs", self.create_run, methods=["POST"]),
            Route("/v1/threads/{thread_id}/runs", self.list_runs, methods=["GET"]),
            Route(run_path, self.retrieve_run, methods=["GET"]),
            Route(f"{run_path}/cancel", self.cancel_run, methods=["POST"]),
            Route(f"{run_path}/submit_tool_outputs", self.submit_tool_outputs, methods=["POST"]),
        ]
