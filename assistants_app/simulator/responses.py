"""The Responses and Conversations APIs as the simulator serves them.

A response follows the answer's timeline (timeline.py): queued for the first fifth of its
latency, then in progress, its text written token by token from `latency` on at the
configured token rate, completed with the last token. A poller sees that lifecycle; a
streamer (`retrieve` with `stream=true`, and `starting_after` to resume) sees every event
with its sequence number when it is due.
Faults: see app.py.
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from .common import (
    SLOW_SECONDS,
    Settings,
    error,
    fault_of,
    input_text,
    json_body,
    new_id,
    no_route,
    poll_fault,
)
from .given import describe
from .replies import canned_reply, count_tokens, tokens_of, variant_of
from .timeline import TimedAnswer
from .tool_plan import calls_for_round, results_text


@dataclass
class Conversation:
    id: str
    created_at: int
    metadata: dict
    items: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "object": "conversation",
            "created_at": self.created_at,
            "metadata": self.metadata,
        }


@dataclass
class SimulatedResponse:
    id: str
    model: str
    instructions: str | None
    input_text: str
    conversation: Conversation | None
    latency: float
    token_rate: float  # tokens a second once writing starts
    fault: str
    turn: int
    earlier: str  # the user's message before the input, quoted in the reply
    variant: int  # how many times this message was answered (replies.variant_of)
    given: str = ""  # what came besides words (given.py)
    started_wall: float = field(default_factory=time.time)  # its start, as time.time()
    created_at: int = field(default_factory=lambda: int(time.time()))
    output_id: str = field(default_factory=lambda: new_id("msg"))
    recorded: bool = False
    polls: int = 0
    streams: int = 0
    calls: list[dict] = field(default_factory=list)  # function_call items it ends with
    tool_outputs: list[tuple[str, str]] = field(default_factory=list)  # (name, output) it got
    rounds_done: int = 0  # rounds of tool calls answered before it, in this answer
    timeline: TimedAnswer = field(init=False)

    def __post_init__(self):
        # A failing response fails before writing anything.
        tokens = [] if self.fault == "fail" else tokens_of(self.reply)
        self.timeline = TimedAnswer(tokens, self.latency, self.token_rate)

    @property
    def tokens(self) -> list[str]:
        return self.timeline.tokens

    @property
    def completed_at(self) -> float:
        """When the answer is complete, in time.time() terms (for benchmarks' added latency)."""
        return self.started_wall + self.timeline.finished_after

    @property
    def status(self) -> str:
        if self.timeline.stopped:
            return "cancelled"
        if self.timeline.queued:
            return "queued"
        if self.fault == "stuck" or not self.timeline.finished:
            return "in_progress"
        return "failed" if self.fault == "fail" else "completed"

    def text_written(self) -> str:
        return self.timeline.text_written()

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled", "incomplete")

    @property
    def reply(self) -> str:
        if self.calls:
            return ""
        reply = canned_reply(self.input_text, self.turn, self.earlier, self.variant, self.given)
        return reply + results_text(self.tool_outputs)

    def output_message(self, text: str | None = None, status: str = "completed") -> dict:
        return {
            "type": "message",
            "id": self.output_id,
            "role": "assistant",
            "status": status,
            "content": [
                {"type": "output_text", "text": self.reply if text is None else text,
                 "annotations": []}
            ],
        }  # fmt: skip

    def output(self) -> list[dict]:
        if self.status == "completed":
            return list(self.calls) if self.calls else [self.output_message()]
        if self.status == "cancelled" and self.text_written():
            # What was written before the cancel is kept, as an incomplete message.
            return [self.output_message(self.text_written(), "incomplete")]
        return []

    async def events(self, starting_after: int) -> AsyncIterator[str]:
        """Server-sent events from `starting_after` on, each sent when it is due."""
        self.streams += 1
        breaks_at = (
            len(self.tokens) // 2 if self.fault == "break-stream" and self.streams == 1 else None
        )
        for sequence, (due, event) in enumerate(self._schedule()):
            if sequence <= starting_after:
                continue
            if breaks_at is not None and sequence >= 4 + breaks_at:
                return  # the connection drops mid-answer
            if self.fault == "drop" and sequence > 0:
                # Lost mid-way: silent, neither closed nor answering (as its polls: common.py),
                # whether the response was created streaming or is retrieved so.
                await asyncio.sleep(3600)
            await self.timeline.wait_until(due)
            if self.timeline.stopped:
                return  # the stream ends; a poll tells the final state
            event = {**event(), "sequence_number": sequence}
            yield f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"

    def _schedule(self):
        """(due in seconds after creation, event builder) for every event of the stream."""
        item = {"output_index": 0, "item_id": self.output_id, "content_index": 0}
        part = {"type": "output_text", "text": "", "annotations": []}
        yield 0.0, lambda: {"type": "response.created", "response": self.to_json()}
        answer = self.timeline
        yield (
            answer.queued_for,
            lambda: {"type": "response.in_progress", "response": self.to_json()},
        )
        if self.fault == "fail":
            yield answer.latency, lambda: {"type": "response.failed", "response": self.to_json()}
            return
        if self.calls:  # it ends at once, asking for tools
            yield answer.latency, lambda: {"type": "response.completed", "response": self.to_json()}
            return
        yield answer.latency, lambda: {
            "type": "response.output_item.added", "output_index": 0,
            "item": self.output_message("", "in_progress"),
        }  # fmt: skip
        yield answer.latency, lambda: {"type": "response.content_part.added", **item, "part": part}
        for index, token in enumerate(self.tokens):
            yield answer.token_due(index), lambda token=token: {
                "type": "response.output_text.delta", **item, "delta": token, "logprobs": [],
            }  # fmt: skip
        if self.fault == "stuck":
            yield 3600.0, lambda: {"type": "response.in_progress", "response": self.to_json()}
            return
        done = answer.finished_after
        yield done, lambda: {"type": "response.output_text.done", **item, "text": self.reply,
                             "logprobs": []}  # fmt: skip
        yield done, lambda: {"type": "response.content_part.done", **item,
                             "part": {**part, "text": self.reply}}  # fmt: skip
        yield done, lambda: {"type": "response.output_item.done", "output_index": 0,
                             "item": self.output_message()}  # fmt: skip
        final = "response.failed" if self.fault == "fail" else "response.completed"
        yield done, lambda: {"type": final, "response": self.to_json()}

    def to_json(self) -> dict:
        status = self.status
        if status == "completed" and self.conversation and not self.recorded:
            self.conversation.items.extend(self.output())
            self.recorded = True
        done = status == "completed"
        input_tokens = count_tokens((self.instructions or "") + self.input_text)
        output_tokens = count_tokens(self.reply) if done else 0
        # After the first turn the instructions, sent again first, are a prefix the provider
        # has cached (as OpenAI's prompt caching reports it), so costs show cached input.
        cached = min(count_tokens(self.instructions or ""), input_tokens) if self.turn > 1 else 0
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "completed_at": self.completed_at if done else None,
            "background": self.fault != "stateless",
            "model": self.model,
            "instructions": self.instructions,
            "conversation": {"id": self.conversation.id} if self.conversation else None,
            "output": self.output(),
            "error": (
                {"code": "server_error", "message": "The simulator was asked to fail."}
                if status == "failed"
                else None
            ),
            "incomplete_details": None,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": input_tokens,
                "input_tokens_details": {"cached_tokens": cached},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            }
            if done
            else None,
        }


MAX_ITEMS_AT_ONCE = 20  # OpenAI's limit, for a conversation's create and each addition

# The personas that play Responses providers other than OpenAI (see app.py).
PROXIES = KEEPS_NO_CONVERSATIONS = ("stateless", "proxy")


class ResponsesAPI:
    """Conversations and background responses, kept in memory for the life of the process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.conversations: dict[str, Conversation] = {}
        self.responses: dict[str, SimulatedResponse] = {}
        self.asked_by: dict[str, SimulatedResponse] = {}  # call id -> the response calling

    async def create_conversation(self, request: Request) -> JSONResponse:
        if fault_of(request) in KEEPS_NO_CONVERSATIONS:
            return no_route()
        body = await json_body(request)
        conversation = Conversation(
            id=new_id("conv"), created_at=int(time.time()), metadata=body.get("metadata") or {}
        )
        items = body.get("items") or []
        if not isinstance(items, list) or len(items) > MAX_ITEMS_AT_ONCE:
            return error(400, f"At most {MAX_ITEMS_AT_ONCE} items at create.", "invalid_value")
        conversation.items.extend(items)
        self.conversations[conversation.id] = conversation
        return JSONResponse(conversation.to_json())

    async def get_conversation(self, request: Request) -> JSONResponse:
        conversation = self.conversations.get(request.path_params["conversation_id"])
        if conversation is None:
            return error(404, "Conversation not found.", "not_found")
        return JSONResponse(conversation.to_json())

    async def list_conversation_items(self, request: Request) -> JSONResponse:
        conversation = self.conversations.get(request.path_params["conversation_id"])
        if conversation is None:
            return error(404, "Conversation not found.", "not_found")
        return JSONResponse({"object": "list", "data": conversation.items, "has_more": False})

    async def add_conversation_items(self, request: Request) -> JSONResponse:
        """Items added to a conversation (a history seeded in batches, as OpenAI's API takes
        at most 20 at create)."""
        conversation = self.conversations.get(request.path_params["conversation_id"])
        if conversation is None:
            return error(404, "Conversation not found.", "not_found")
        items = (await json_body(request)).get("items")
        if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS_AT_ONCE:
            return error(400, f"Send 1 to {MAX_ITEMS_AT_ONCE} items.", "invalid_value")
        added = [{"id": new_id("msg"), **item} for item in items if isinstance(item, dict)]
        conversation.items.extend(added)
        return JSONResponse({"object": "list", "data": added, "has_more": False})

    async def create_response(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        if not body.get("model"):
            return error(400, "Missing required parameter: 'model'.", "missing_required_parameter")
        fault = fault_of(request, body["model"])
        if (
            fault in KEEPS_NO_CONVERSATIONS
            and body.get("conversation")
            or (fault == "stateless" and body.get("previous_response_id"))
        ):
            return error(400, "Unsupported parameter: conversation, previous_response_id "
                         "(this server keeps no state).", "unsupported_parameter")  # fmt: skip
        conversation = None
        if body.get("conversation"):
            conversation_id = body["conversation"]
            if isinstance(conversation_id, dict):
                conversation_id = conversation_id.get("id")
            conversation = self.conversations.get(conversation_id)
            if conversation is None:
                return error(404, f"Conversation {conversation_id!r} not found.", "not_found")
            if any(
                r.conversation is conversation and not r.is_terminal
                for r in self.responses.values()
            ):
                return error(
                    409,
                    "Another response is in progress for this conversation.",
                    "conversation_locked",
                )
        text = input_text(body.get("input"))
        given = describe(_last_user_content(body.get("input")), body.get("instructions") or "")
        asked_by, outputs = self._answered_calls(body.get("input"))
        if asked_by is not None and conversation is not None:
            conversation.items.extend(item for _, item in outputs)
        elif conversation is not None:
            conversation.items.append(
                {
                    "type": "message",
                    "id": new_id("msg"),
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
            )
        turn, earlier = 1, ""
        if conversation is not None:
            said = [item for item in conversation.items if item.get("role") == "user"]
            turn, earlier = len(said), input_text(said[-2:-1])
        elif isinstance(body.get("input"), list):
            # A whole history sent as input: the answer is to its last user message.
            said = [item for item in body["input"] if isinstance(item, dict)]
            said = [item for item in said if item.get("role") == "user"]
            turn, text, earlier = max(1, len(said)), input_text(said[-1:]), input_text(said[-2:-1])
        elif previous := self.responses.get(body.get("previous_response_id") or ""):
            turn, earlier = previous.turn + 1, previous.input_text  # chained to its history
        if asked_by is not None:  # tool outputs: the answer to the same prompt goes on
            turn, text, earlier, given = (
                asked_by.turn, asked_by.input_text, asked_by.earlier, asked_by.given
            )
        rounds_done = asked_by.rounds_done + 1 if asked_by is not None else 0
        names = {c["call_id"]: c["name"] for c in asked_by.calls} if asked_by else {}
        calls = [
            {"type": "function_call", "id": new_id("fc"), "call_id": call["id"],
             "name": call["function"]["name"], "arguments": call["function"]["arguments"],
             "status": "completed"}
            for call in calls_for_round(body.get("tools") or [], text, rounds_done)
        ]  # fmt: skip
        response = SimulatedResponse(
            id=new_id("resp"),
            model=body["model"],
            instructions=body.get("instructions"),
            input_text=text,
            given=given,
            conversation=conversation,
            # `slow` makes every poll slow; a response streamed from its create has no polls,
            # so its answer comes that much later instead.
            latency=self.settings.latency_of(request)
            + (SLOW_SECONDS if fault == "slow" and body.get("stream") else 0.0),
            token_rate=self.settings.token_rate_of(request),
            fault=fault,
            turn=turn,
            earlier=earlier,
            # One answer however many rounds of tools it takes.
            variant=asked_by.variant if asked_by is not None else variant_of(text, turn, earlier),
            calls=calls,
            rounds_done=rounds_done,
            tool_outputs=[
                (names.get(item.get("call_id"), "?"), str(item.get("output")))
                for _, item in outputs
            ],
        )
        self.asked_by.update((call["call_id"], response) for call in response.calls)
        self.responses[response.id] = response
        if body.get("stream"):
            return StreamingResponse(response.events(-1), media_type="text/event-stream")
        if fault == "stateless":
            # No background mode: `background` is ignored and the answer comes whole.
            await response.timeline.wait_until(response.timeline.finished_after)
        return JSONResponse(response.to_json())

    def _answered_calls(self, given) -> tuple[SimulatedResponse | None, list[tuple[str, dict]]]:
        """The response whose function calls `input` answers, and the outputs it brings."""
        items = [i for i in given if isinstance(i, dict)] if isinstance(given, list) else []
        outputs = [(i.get("call_id"), i) for i in items if i.get("type") == "function_call_output"]
        asked = [self.asked_by[c] for c, _ in outputs if c in self.asked_by]
        if not asked:
            return None, []
        # Outputs of the last round only; earlier rounds are history the model already saw.
        last = max(asked, key=lambda r: r.rounds_done)
        mine = {c["call_id"] for c in last.calls}
        return last, [(c, i) for c, i in outputs if c in mine]

    async def retrieve_response(self, request: Request) -> JSONResponse:
        response = self.responses.get(request.path_params["response_id"])
        if response is None:
            return error(404, "Response not found.", "not_found")
        failure = await poll_fault(response.fault, response.timeline.started, response.polls)
        response.polls += 1
        if failure is not None:
            return failure
        if request.query_params.get("stream") == "true" and response.fault not in PROXIES:
            return self.stream(request, response)  # a stateless server answers plain JSON
        return JSONResponse(response.to_json())

    def stream(self, request: Request, response: SimulatedResponse):
        if response.fault == "no-stream":
            return error(400, "Streaming is not supported here (simulated).", "unsupported")
        try:
            starting_after = int(request.query_params.get("starting_after", "-1"))
        except ValueError:
            return error(400, "starting_after must be an integer.", "invalid_value")
        return StreamingResponse(response.events(starting_after), media_type="text/event-stream")

    async def cancel_response(self, request: Request) -> JSONResponse:
        response = self.responses.get(request.path_params["response_id"])
        if response is None:
            return error(404, "Response not found.", "not_found")
        if not response.is_terminal and response.fault not in PROXIES:  # they ignore cancel
            response.timeline.stop()
        return JSONResponse(response.to_json())

    async def stats(self, request: Request) -> JSONResponse:
        """Simulator-only, not OpenAI's: every response's timing (when it completed, when each
        token was written) and how often it was polled, so a benchmark can measure the latency
        the site adds."""
        responses = [
            {
                "id": r.id,
                "status": r.status,
                "completed_at": r.completed_at if r.status == "completed" else None,
                "polls": r.polls,
                "streams": r.streams,
                **r.timeline.writing_record(r.started_wall),
            }
            for r in self.responses.values()
        ]
        return JSONResponse({"conversations": len(self.conversations), "responses": responses})

    def routes(self) -> list[Route]:
        return [
            Route("/simulator/stats", self.stats),
            Route("/v1/conversations", self.create_conversation, methods=["POST"]),
            Route("/v1/conversations/{conversation_id}", self.get_conversation),
            Route("/v1/conversations/{conversation_id}/items", self.list_conversation_items),
            Route(
                "/v1/conversations/{conversation_id}/items",
                self.add_conversation_items,
                methods=["POST"],
            ),
            Route("/v1/responses", self.create_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", self.retrieve_response),
            Route("/v1/responses/{response_id}/cancel", self.cancel_response, methods=["POST"]),
        ]


def _last_user_content(value):
    """The content of the last user message of an `input` (the input itself if a string)."""
    if not isinstance(value, list):
        return value
    said = [i for i in value if isinstance(i, dict) and i.get("role") == "user"]
    return said[-1].get("content") if said else None
