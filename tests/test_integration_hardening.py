"""Hardening against a real server on PostgreSQL: a burst of logins with the real password
hasher leaves the connection pool to everyone, and text PostgreSQL cannot store is refused
in words, never a 500."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .live import PASSWORDS, SiteClient, _csrf_token, postgres_database, start_site

pytestmark = pytest.mark.slow

LOGINS = 12


# One site for the module: the burst only logs people in, and the other test stores nothing.
@pytest.fixture(scope="module")
def site_on_postgres(tmp_path_factory):
    """A site whose pool is small enough for a dozen logins to empty it, were each to hold a
    connection while its password is hashed (the real hasher, slow on purpose)."""
    with postgres_database(migrated=True) as database_url:
        env = {
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": "2",
            "DATABASE_POOL_TIMEOUT_SECONDS": "1",
        }
        with start_site(tmp_path_factory.mktemp("site"), env=env) as site:
            site.manage("shell", "--verbosity", "0", "-c", MORE_USERS)
            yield site


# A dozen people who log in at the same moment (from one office, so one address).
MORE_USERS = f"""
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
password = make_password({PASSWORDS["alice"]!r})
get_user_model().objects.bulk_create(
    get_user_model()(username=f"user{{n}}", password=password) for n in range({LOGINS})
)
"""


def log_in(url: str, username: str) -> int:
    with httpx.Client(base_url=url, timeout=60) as http:
        token = _csrf_token(http.get("/login/").text)
        data = {"username": username, "password": PASSWORDS["alice"], "csrfmiddlewaretoken": token}
        return http.post("/login/", data=data).status_code


def test_a_burst_of_logins_does_not_exhaust_the_database_pool(site_on_postgres):
    usernames = [f"user{n}" for n in range(LOGINS)]
    with ThreadPoolExecutor(max_workers=LOGINS) as pool:
        statuses = list(pool.map(log_in, [site_on_postgres.url] * LOGINS, usernames))
    assert 500 not in statuses
    # Each waits its turn at the password check; on a machine too loaded to get through them
    # all within LOGIN_WAIT_SECONDS the last are told the site is busy (503), in words.
    assert set(statuses) <= {302, 503} and statuses.count(302) >= LOGINS // 2, statuses


def test_text_postgresql_cannot_store_is_refused_in_words(site_on_postgres):
    alice = SiteClient(site_on_postgres, "alice")
    thread_id = alice.start_thread()
    csrf = {"X-CSRFToken": alice.http.cookies["csrftoken"]}

    for text in ("a NUL \x00 here", "half an emoji \ud83d here"):
        response = alice.http.post(
            f"/threads/{thread_id}/messages/",
            content=json.dumps({"text": text}),  # escaped, as a browser's JSON.stringify does
            headers={**csrf, "Content-Type": "application/json"},
        )
        assert response.status_code == 400, text
        assert "cannot be stored" in response.json()["error"]["message"]
    renamed = alice.http.post(
        f"/threads/{thread_id}/rename/", data={"title": "nul\x00title"}, headers=csrf
    )
    searched = alice.http.get("/", params={"q": "nul\x00"})
    for response in (renamed, searched):
        assert response.status_code == 400
        assert "cannot be stored" in response.text
    assert site_on_postgres.query("Message.objects.count()") == 0
