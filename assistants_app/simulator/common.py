"""Pieces every protocol of the simulator shares: ids, errors, request parsing, faults."""

import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse


@dataclass
class Settings:
    latency: float  # seconds from a request to its answer
    tokens_per_second: float = 30.0  # pace of a streamed answer

    def latency_of(self, request: Request) -> float:
        value = request.headers.get("x-simulator-latency")
        return float(value) if value else self.latency

    def tokens_per_second_of(self, request: Request) -> float:
        value = request.headers.get("x-simulator-tokens-per-second")
        return float(value) if value else self.tokens_per_second


def fault_of(request: Request, model: str = "") -> str:
    """The fault asked for: the X-Simulator-Fault header, or what follows '+' in the model."""
    return request.headers.get("x-simulator-fault") or model.partition("+")[2]


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
