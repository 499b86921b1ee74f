"""The simulator's HTTP server (Starlette): every protocol's routes, shaped like OpenAI's.

Faults are asked for per request with the
`X-Simulator-Fault` header or per assistant with a model name such as `simulator+fail`:

- `fail`: the response ends as failed with a server_error
- `stuck`: the response stays in_progress forever
- `rate-limit-once`: the first retrieve answers 429 with Retry-After
- `error-500-once`: the first retrieve answers 500
- `break`: a streamed chat completion stops halfway, unfinished (chat.py)

Chat Completions answer `fail` with HTTP 500.

Latency: `SIMULATOR_LATENCY_SECONDS` (default 1.0), or the `X-Simulator-Latency` header.
Streamed chat pace: `SIMULATOR_TOKENS_PER_SECOND` (default 30), or the
`X-Simulator-Tokens-Per-Second` header.
"""

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .chat import ChatCompletionsAPI
from .common import Settings
from .responses import ResponsesAPI


async def list_models(request: Request) -> JSONResponse:
    model = {"id": "simulator", "object": "model", "created": 0, "owned_by": "simulator"}
    return JSONResponse({"object": "list", "data": [model]})


def create_app(latency: float | None = None) -> Starlette:
    if latency is None:
        latency = float(os.environ.get("SIMULATOR_LATENCY_SECONDS", "1.0"))
    tokens_per_second = float(os.environ.get("SIMULATOR_TOKENS_PER_SECOND", "30"))
    settings = Settings(latency=latency, tokens_per_second=tokens_per_second)
    routes = [
        Route("/v1/models", list_models),
        *ResponsesAPI(settings).routes(),
        *ChatCompletionsAPI(settings).routes(),
    ]
    return Starlette(routes=routes)


app = create_app()
