"""Why a provider call failed, in words a person can act on: each way of failing has its own
code and sentence. Connection failures go over real sockets through the SDK's aiohttp
transport (which reports them all as a connect timeout); HTTP answers are mocked at the wire.
"""

import asyncio
import contextlib
import socket

import httpx
import pytest

from assistants_app.engines.client import list_models
from assistants_app.exceptions import ProviderError

from ..conftest import PROVIDER_URL


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again on leaving: nothing listens there


@contextlib.asynccontextmanager
async def tcp_server(handle):
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def failure_of(base_url: str, timeout: float = 5.0) -> ProviderError:
    provider = {"base_url": base_url, "api_key": "sk-test", "timeout": timeout}
    with pytest.raises(ProviderError) as raised:
        await list_models(provider, timeout=timeout)
    return raised.value


async def test_a_refused_connection_says_nothing_answers_there():
    error = await failure_of(f"http://127.0.0.1:{closed_port()}/v1")

    assert error.code == "connection_refused"
    assert error.message.startswith("The provider refused the connection")
    assert error.retryable


async def test_a_host_name_that_does_not_resolve_is_a_dns_failure():
    error = await failure_of("http://no-such-host.invalid/v1")

    assert error.code == "dns_failure"
    assert "host name could not be found" in error.message


async def test_https_to_a_server_that_does_not_speak_it_is_a_tls_failure():
    async def plain_http(reader, writer):
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async with tcp_server(plain_http) as port:
        error = await failure_of(f"https://127.0.0.1:{port}/v1")

    assert error.code == "tls_failure"
    assert "TLS" in error.message


async def test_a_server_that_accepts_and_never_answers_is_a_timeout():
    async def silent(reader, writer):
        await asyncio.sleep(10)

    async with tcp_server(silent) as port:
        error = await failure_of(f"http://127.0.0.1:{port}/v1", timeout=0.3)

    assert (error.code, error.message) == ("timeout", "The provider did not answer in time.")


def openai_error(message: str, code: str | None) -> dict:
    return {"error": {"message": message, "type": "invalid_request_error", "code": code}}


NGINX = "<html>Welcome to nginx</html>"
CUT_JSON = '{"object": "list", "data": ['
NO_KEY = "The provider refused the API key (HTTP 401): Incorrect API key provided."
NO_ACCESS = "The provider's key may not do this (HTTP 403): Project lacks access."
NO_MODEL = "The provider does not have this model (HTTP 404): The model `gpt-9` does not exist"
NO_ROUTE = "This provider has no /v1/models (HTTP 404): it does not offer this API."
NOT_THE_API = "The provider's answer is not in the API's format"


@pytest.mark.parametrize(
    ("answer", "code", "sentence"),
    [
        (httpx.Response(401, json=openai_error("Incorrect API key provided", "invalid_api_key")),
         "unauthorized", NO_KEY),
        (httpx.Response(403, json=openai_error("Project lacks access", None)),
         "forbidden", NO_ACCESS),
        (httpx.Response(404, json=openai_error("The model `gpt-9` does not exist",
                                               "model_not_found")),
         "model_not_found", NO_MODEL),
        (httpx.Response(404, text="404 page not found"),  # Ollama
         "endpoint_not_found", NO_ROUTE),
        (httpx.Response(429, json=openai_error("Slow down", "rate_limit_exceeded")),
         "rate_limited", "The provider is rate limiting requests: Slow down."),
        (httpx.Response(503, text="upstream connect error"),
         "server_error", "The provider had an internal error (HTTP 503): upstream connect error."),
        (httpx.Response(200, text=NGINX), "bad_answer", NOT_THE_API),
        (httpx.Response(200, text=CUT_JSON, headers={"content-type": "application/json"}),
         "bad_answer", NOT_THE_API),
    ],
)  # fmt: skip
async def test_each_kind_of_refusal_has_its_own_code_and_sentence(
    provider_mock, answer, code, sentence
):
    provider_mock.get("/models").mock(return_value=answer)

    with pytest.raises(ProviderError) as raised:
        await list_models({"base_url": PROVIDER_URL, "api_key": "sk-test"}, timeout=5)

    assert raised.value.code == code
    assert raised.value.message.startswith(sentence)
