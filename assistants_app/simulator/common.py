"""Pieces every protocol of the simulator shares: ids, errors, request parsing, faults."""

import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse


@dataclass
class Settings:
    latency: float  # seconds from a request to its answer

    def latency_of(self, request: Request) -> float:
        value = request.headers.get("x-simulator-latency")
        return float(value) if value else self.latency


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


def first_retrieve_fault(item) -> JSONResponse | None:
    """The error a `*-once` fault gives on the first retrieve of `item` (which has `fault` and
    `failed_retrieves`), so a poller's retry path is exercised; None afterwards."""
    if not item.fault.endswith("-once") or item.failed_retrieves:
        return None
    item.failed_retrieves += 1
    if item.fault == "rate-limit-once":
        return error(
            429, "Rate limit reached (simulated).", "rate_limit_exceeded",
            headers={"retry-after": "0.2"},
        )  # fmt: skip
    return error(500, "Internal error (simulated).", "server_error")
