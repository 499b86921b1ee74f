"""The simulator's HTTP server (Starlette): every protocol's routes, shaped like OpenAI's.

Faults are asked for per request with the `X-Simulator-Fault` header, per assistant with a
model name such as `simulator+fail`, or for everything with `SIMULATOR_FAULT`:

- `fail`: the answer ends as failed with a server_error
- `stuck`: the answer stays in_progress forever
- `rate-limit-once` / `error-500-once`: the first poll answers 429 (with Retry-After) / 500
- `rate-limit-storm` / `error-500-storm`: every poll answers 429 / 500 for the first
  SIMULATOR_STORM_SECONDS (default 2) after creation
- `slow`: every poll answers after SIMULATOR_SLOW_SECONDS (default 3)
- `drop`: polls never answer, as over a connection lost mid-way; the client times out
- `break-stream`: the first stream of an answer stops half-way (a Responses stream can be
  resumed with starting_after, an Assistants run only polled); a streamed chat completion
  stops half-way every time, with no finish reason
- `no-stream`: streaming is refused (400), so clients must poll
- `incomplete` / `expire`: an Assistants API run ends as incomplete / expired

Latency to the first token: `SIMULATOR_LATENCY_SECONDS` (default 1.0) plus up to
`SIMULATOR_LATENCY_JITTER_SECONDS` (default 0) at random, or the `X-Simulator-Latency` header;
then `SIMULATOR_TOKENS_PER_SECOND` (default 100) or
`X-Simulator-Token-Rate`.
"""

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .assistants import AssistantsAPI
from .chat import ChatCompletionsAPI
from .common import Settings
from .responses import ResponsesAPI


async def list_models(request: Request) -> JSONResponse:
    model = {"id": "simulator", "object": "model", "created": 0, "owned_by": "simulator"}
    return JSONResponse({"object": "list", "data": [model]})


def create_app(latency: float | None = None, token_rate: float | None = None) -> Starlette:
    if latency is None:
        latency = float(os.environ.get("SIMULATOR_LATENCY_SECONDS", "1.0"))
    if token_rate is None:
        token_rate = float(os.environ.get("SIMULATOR_TOKENS_PER_SECOND", "100"))
    jitter = float(os.environ.get("SIMULATOR_LATENCY_JITTER_SECONDS", "0"))
    settings = Settings(latency=latency, token_rate=token_rate, jitter=jitter)
    routes = [
        Route("/v1/models", list_models),
        *ResponsesAPI(settings).routes(),
        *AssistantsAPI(settings).routes(),
        *ChatCompletionsAPI(settings).routes(),
    ]
    return Starlette(routes=routes)


app = create_app()
