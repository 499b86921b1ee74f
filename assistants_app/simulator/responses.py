"""The Responses and Conversations APIs as the simulator serves them.

Responses move queued -> in_progress -> completed over a configurable latency measured from
creation, so a poller sees a realistic lifecycle. Faults: see app.py.
"""

import time
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .common import Settings, error, fault_of, input_text, json_body, new_id, poll_fault
from .replies import canned_reply, count_tokens


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
    fault: str
    turn: int
    started: float = field(default_factory=time.monotonic)
    created_at: int = field(default_factory=lambda: int(time.time()))
    cancelled: bool = False
    output_id: str = field(default_factory=lambda: new_id("msg"))
    recorded: bool = False
    polls: int = 0

    @property
    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        elapsed = time.monotonic() - self.started
        if self.fault == "stuck" or elapsed < self.latency:
            return "queued" if elapsed < self.latency * 0.2 else "in_progress"
        return "failed" if self.fault == "fail" else "completed"

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled", "incomplete")

    @property
    def reply(self) -> str:
        return canned_reply(self.input_text, self.turn)

    def output_message(self) -> dict:
        return {
            "type": "message",
            "id": self.output_id,
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": self.reply, "annotations": []}],
        }

    def to_json(self) -> dict:
        status = self.status
        if status == "completed" and self.conversation and not self.recorded:
            self.conversation.items.append(self.output_message())
            self.recorded = True
        done = status == "completed"
        input_tokens = count_tokens((self.instructions or "") + self.input_text)
        output_tokens = count_tokens(self.reply) if done else 0
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": True,
            "model": self.model,
            "instructions": self.instructions,
            "conversation": {"id": self.conversation.id} if self.conversation else None,
            "output": [self.output_message()] if done else [],
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
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": input_tokens + output_tokens,
            }
            if done
            else None,
        }


class ResponsesAPI:
    """Conversations and background responses, kept in memory for the life of the process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.conversations: dict[str, Conversation] = {}
        self.responses: dict[str, SimulatedResponse] = {}

    async def create_conversation(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        conversation = Conversation(
            id=new_id("conv"), created_at=int(time.time()), metadata=body.get("metadata") or {}
        )
        conversation.items.extend(body.get("items") or [])
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

    async def create_response(self, request: Request) -> JSONResponse:
        body = await json_body(request)
        if not body.get("model"):
            return error(400, "Missing required parameter: 'model'.", "missing_required_parameter")
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
        if conversation is not None:
            conversation.items.append(
                {
                    "type": "message",
                    "id": new_id("msg"),
                    "role": "user",
                    "content": [{"type": "input_text", "text": text}],
                }
            )
        turn = 1
        if conversation is not None:
            turn = sum(1 for item in conversation.items if item.get("role") == "user")
        response = SimulatedResponse(
            id=new_id("resp"),
            model=body["model"],
            instructions=body.get("instructions"),
            input_text=text,
            conversation=conversation,
            latency=self.settings.latency_of(request),
            fault=fault_of(request, body["model"]),
            turn=turn,
        )
        self.responses[response.id] = response
        return JSONResponse(response.to_json())

    async def retrieve_response(self, request: Request) -> JSONResponse:
        response = self.responses.get(request.path_params["response_id"])
        if response is None:
            return error(404, "Response not found.", "not_found")
        failure = await poll_fault(response.fault, response.started, response.polls)
        response.polls += 1
        if failure is not None:
            return failure
        return JSONResponse(response.to_json())

    async def cancel_response(self, request: Request) -> JSONResponse:
        response = self.responses.get(request.path_params["response_id"])
        if response is None:
            return error(404, "Response not found.", "not_found")
        if not response.is_terminal:
            response.cancelled = True
        return JSONResponse(response.to_json())

    def routes(self) -> list[Route]:
        return [
            Route("/v1/conversations", self.create_conversation, methods=["POST"]),
            Route("/v1/conversations/{conversation_id}", self.get_conversation),
            Route("/v1/conversations/{conversation_id}/items", self.list_conversation_items),
            Route("/v1/responses", self.create_response, methods=["POST"]),
            Route("/v1/responses/{response_id}", self.retrieve_response),
            Route("/v1/responses/{response_id}/cancel", self.cancel_response, methods=["POST"]),
        ]
