"""Pieces every protocol of the simulator shares: ids, errors, request parsing, faults."""

import asyncio
import os
import random
import time
import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse


@dataclass
class Settings:
    latency: float  # seconds from a request to the first token of its answer
    token_rate: float  # tokens a second, once the answer is being written
    jitter: float = 0.0  # up to this many seconds more latency, at random (benchmarks)

    def latency_of(self, request: Request) -> float:
        value = request.headers.get("x-simulator-latency")
        return float(value) if value else self.latency + random.uniform(0, self.jitter)

    def token_rate_of(self, request: Request) -> float:
        value = request.headers.get("x-simulator-token-rate")
        return float(value) if value else self.token_rate


# The fault for every request that asks for none (see app.py for the list).
DEFAULT_FAULT = os.environ.get("SIMULATOR_FAULT", "")
STORM_SECONDS = float(os.environ.get("SIMULATOR_STORM_SECONDS", "2.0"))
SLOW_SECONDS = float(os.environ.get("SIMULATOR_SLOW_SECONDS", "3.0"))


# The simulator plays other kinds of server under a path prefix (see app.py): a whole provider
# behaves one way, as capabilities are found out per provider.
PERSONAS = ("stateless", "proxy", "llamacpp")
CONTEXT_TOKENS = int(os.environ.get("SIMULATOR_CONTEXT_TOKENS", "2048"))  # llamacpp's window


def fault_of(request: Request, model: str = "") -> str:
    """The fault asked for: the X-Simulator-Fault header, what follows '+' in the model name,
    the persona its path plays, or SIMULATOR_FAULT."""
    return (
        request.headers.get("x-simulator-fault")
        or model.partition("+")[2]
        or request.scope.get("simulator_persona", "")
        or DEFAULT_FAULT
    )


class Personas:
    """ASGI wrapper: `/stateless/v1/...` (and the other personas') are served as `/v1/...` by a
    server playing that kind of provider (the prefix is kept in the scope for `fault_of`)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            first, _, rest = scope["path"].lstrip("/").partition("/")
            if first in PERSONAS:
                scope = {**scope, "path": "/" + rest, "simulator_persona": first}
        await self.app(scope, receive, send)


async def poll_fault(fault: str, started: float, polls: int) -> JSONResponse | None:
    """The error a poll (retrieve) answers under `fault`, or None to answer normally.

    `started` is when the polled object was created (time.monotonic), `polls` how many
    polls it had before this one.
    """
    storming = time.monotonic() - started < STORM_SECONDS
    if fault == "rate-limit-once" and polls == 0 or fault == "rate-limit-storm" and storming:
        return error(
            429, "Rate limit reached (simulated).", "rate_limit_exceeded",
            headers={"retry-after": "0.2"},
        )  # fmt: skip
    if fault == "error-500-once" and polls == 0 or fault == "error-500-storm" and storming:
        return error(500, "Internal error (simulated).", "server_error")
    if fault == "slow":
        await asyncio.sleep(SLOW_SECONDS)
    if fault == "drop":
        # A connection lost mid-way looks like this from the client: no answer, ever.
        await asyncio.sleep(3600)
    return None


def no_route() -> JSONResponse:
    """What FastAPI-based servers (LiteLLM, vLLM) answer for a route they do not have."""
    return JSONResponse({"detail": "Not Found"}, status_code=404)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def error(status: int, message: str, code: str, headers: dict | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


async def json_body(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def input_text(value) -> str:
    """The user's text from `input`: a string, or a list of message items."""
    if isinstance(value, str):
        return value
    texts = []
    for item in value or []:
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            texts.append(content)
        for part in content if isinstance(content, list) else []:
            if isinstance(part, dict) and part.get("text"):
                texts.append(part["text"])
    return "\n".join(texts)
