"""The simulator plays other kinds of server under a path prefix: a stateless Responses
server, a Responses proxy, and llama.cpp's server (assistants_app/simulator/app.py)."""

import httpx
import pytest

from assistants_app.simulator.app import create_app


@pytest.fixture
async def http():
    transport = httpx.ASGITransport(app=create_app(latency=0, token_rate=10_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as client:
        yield client


async def test_the_stateless_server_has_no_conversations_and_ignores_background(http):
    assert (await http.post("/stateless/v1/conversations", json={})).status_code == 404
    assert (await http.post("/v1/conversations", json={})).status_code == 200  # the plain one

    created = await http.post("/stateless/v1/responses", json={
        "model": "simulator", "background": True,
        "input": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                  {"role": "user", "content": "Again"}],
    })  # fmt: skip

    answer = created.json()
    assert (answer["status"], answer["background"]) == ("completed", False)  # answered whole
    assert "“Again”. This is turn 2" in answer["output"][0]["content"][0]["text"]
    chained = await http.post("/stateless/v1/responses", json={
        "model": "simulator", "input": "More", "previous_response_id": answer["id"],
    })  # fmt: skip
    assert chained.status_code == 400


async def test_the_proxy_streams_no_retrieve_and_ignores_cancel(http):
    created = (await http.post("/proxy/v1/responses", json={
        "model": "simulator", "input": "Hi", "background": True,
    })).json()  # fmt: skip
    assert created["background"] is True

    retrieved = await http.get(f"/proxy/v1/responses/{created['id']}", params={"stream": "true"})
    cancelled = await http.post(f"/proxy/v1/responses/{created['id']}/cancel")

    assert retrieved.headers["content-type"] == "application/json"
    assert cancelled.json()["status"] in ("queued", "in_progress", "completed")
    assert cancelled.json()["status"] != "cancelled"


async def test_the_llama_server_counts_tokens_and_says_its_context(http):
    tokens = await http.post("/llamacpp/tokenize", json={"content": "one two three four"})
    props = await http.get("/llamacpp/props")
    models = await http.get("/llamacpp/v1/models")

    assert len(tokens.json()["tokens"]) == 4
    assert props.json()["default_generation_settings"]["n_ctx"] == 2048
    assert models.json()["data"][0]["meta"]["n_ctx_train"] == 32768
    assert (await http.post("/tokenize", json={"content": "x"})).status_code == 404


async def test_the_llama_server_sends_no_usage_and_cuts_a_prompt_too_long(http):
    short = await http.post("/llamacpp/v1/chat/completions", json={
        "model": "local", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "Hi"}],
    })  # fmt: skip
    too_long = await http.post("/llamacpp/v1/chat/completions", json={
        "model": "local", "stream": True,
        "messages": [{"role": "user", "content": "word " * 3000}],
    })  # fmt: skip

    assert '"finish_reason": "stop"' in short.text and '"usage": {' not in short.text
    assert too_long.status_code == 200
    assert 'finish_reason": "stop' not in too_long.text and "[DONE]" not in too_long.text
