"""Production mode (DJANGO_DEBUG=0), checked in fresh processes since settings are read once:
`check --deploy` is clean with the README's variables, no secret key means no start, and
the site answers over HTTPS only with secure cookies and HSTS."""

import json
import os
import secrets
import subprocess
import sys

import pytest

from .live import ROOT

SECRET_KEY = secrets.token_urlsafe(50)
# README's production example, exactly.
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "DJANGO_ALLOWED_HOSTS": "chat.example.com",
}

PROBE = """
import json
from django.conf import settings
from django.test import Client
from assistants_app.management.commands.serve import daphne_args
client = Client(HTTP_HOST="chat.example.com")
plain, secure = client.get("/login/"), client.get("/login/", secure=True)
print(json.dumps({
    "secret_key": settings.SECRET_KEY,
    "providers": settings.ASSISTANT_PROVIDERS,
    "plain": [plain.status_code, plain.get("Location")],
    "hsts": secure.get("Strict-Transport-Security"),
    "cookie_secure": secure.cookies["csrftoken"]["secure"],
    "session_cookie_secure": settings.SESSION_COOKIE_SECURE,
    "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "daphne": daphne_args("0.0.0.0", 8000),
}))
"""


def manage(*args: str, env: dict) -> subprocess.CompletedProcess:
    # Only the variables given: none of the developer's own DJANGO_* or REDIS_URL leak in.
    base = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG")}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def probe(env: dict) -> dict:
    result = manage("shell", "-c", PROBE, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])  # after the shell's own notice


def test_check_deploy_is_clean_with_the_documented_variables():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_warns_in_debug_mode():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env={})
    assert result.returncode != 0
    assert "security.W018" in result.stderr  # DEBUG on


@pytest.mark.parametrize("entry", [["check"], ["shell", "-c", "import chatsite.asgi"]])
def test_it_refuses_to_start_in_production_without_a_secret_key(entry):
    env = {name: value for name, value in PRODUCTION.items() if name != "DJANGO_SECRET_KEY"}
    result = manage(*entry, env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0" in result.stderr


@pytest.fixture(scope="module")
def production():
    return probe({**PRODUCTION, "OPENAI_API_KEY": "sk-from-env"})


def test_production_is_https_only_with_secure_cookies_and_hsts(production):
    assert production["plain"] == [301, "https://chat.example.com/login/"]
    assert production["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert production["cookie_secure"] is True and production["session_cookie_secure"] is True


def test_secrets_come_from_the_environment(production):
    assert production["secret_key"] == SECRET_KEY
    assert production["providers"]["openai"]["api_key"] == "sk-from-env"


def test_behind_a_proxy_it_trusts_forwarded_proto_and_addresses(production):
    assert production["proxy_header"] is None
    assert "--proxy-headers" not in production["daphne"]
    site = probe({**PRODUCTION, "DJANGO_BEHIND_PROXY": "1"})
    assert site["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert "--proxy-headers" in site["daphne"]
