"""The request chain stays asynchronous under daphne, static files included."""

import logging

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient


def test_no_middleware_forces_requests_onto_a_thread(caplog, settings):
    settings.DEBUG = True  # Django says so only then
    caplog.set_level(logging.DEBUG, logger="django.request")

    ASGIHandler()  # builds the middleware chain in async mode

    adapted = [r.getMessage() for r in caplog.records if "adapted for middleware" in r.getMessage()]
    assert adapted == []


@pytest.mark.parametrize("debug", [True, False])
async def test_static_files_are_served(settings, debug):
    settings.DEBUG = debug
    settings.WHITENOISE_AUTOREFRESH = debug  # read when the chain is built, as at start-up
    settings.WHITENOISE_USE_FINDERS = True

    response = await AsyncClient().get("/static/js/chat.js")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert b"".join(response.streaming_content).startswith(b"//")
    assert response["X-Content-Type-Options"] == "nosniff"  # SecurityMiddleware ran first


async def test_other_paths_go_on_to_the_views():
    response = await AsyncClient().get("/login/")
    assert response.status_code == 200
