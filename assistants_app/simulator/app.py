"""The simulator's HTTP server (Starlette): every protocol's routes, shaped like OpenAI's.

Faults are asked for per request with the `X-Simulator-Fault` header, per assistant with a
model name such as `simulator+fail`, or for everything with `SIMULATOR_FAULT`:

- `fail`: the answer ends as failed with a server_error
- `stuck`: the answer stays in_progress forever
- `rate-limit-once` / `error-500-once`: the first poll answers 429 (with Retry-After) / 500
- `rate-limit-storm` / `error-500-storm`: every poll answers 429 / 500 for the first
  SIMULATOR_STORM_SECONDS (default 2) after creation
- `slow`: every poll answers after SIMULATOR_SLOW_SECONDS (default 3); a response streamed
  from its create, which has no polls, starts answering that much later instead
- `drop`: polls never answer, and a stream goes silent once it named the response, as over a
  connection lost mid-way; the client times out
- `break-stream`: the first stream of an answer stops half-way (a Responses stream can be
  resumed with starting_after, an Assistants run only polled); a streamed chat completion
  stops half-way every time, with no finish reason
- `no-stream`: streaming is refused (400), so clients must poll
- `incomplete` / `expire`: an Assistants API run ends as incomplete / expired

Other kinds of server, each under its own path prefix (a base URL such as
`http://127.0.0.1:8001/stateless/v1`), or per request as a fault of the same name:

- `stateless`: Responses as LiteLLM, Ollama and OpenRouter serve it: no `/v1/conversations`
  (404), no `previous_response_id`, `background` ignored (the answer comes whole, or streamed
  from the create call with `stream`), `retrieve(stream=true)` answers plain JSON and
  `cancel` answers in_progress while the answer goes on
- `proxy`: the same, but with background responses and `previous_response_id` (the proxy
  of issue 16): runs are chained and polled, and Stop is not heard
- `llamacpp`: Chat Completions as llama.cpp's server does it: `stream_options.include_usage`
  ignored (no usage), `/tokenize` and `/props` (context `SIMULATOR_CONTEXT_TOKENS`, default
  2048), and a prompt over that context answered 200 with a stream that stops at once

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
from .common import Personas, Settings, fault_of
from .responses import ResponsesAPI


async def list_models(request: Request) -> JSONResponse:
    model = {"id": "simulator", "object": "model", "created": 0, "owned_by": "simulator"}
    if fault_of(request) == "llamacpp":
        # llama-server's list: the size it was trained for (its /props says what it runs with).
        model["meta"] = {"n_ctx_train": 32768, "n_vocab": 32000}
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
    return Personas(Starlette(routes=routes))


app = create_app()
