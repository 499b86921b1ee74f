"""The login throttle against parallel guessing: every attempt takes its place in the counts
before its password is checked, so a burst is checked at most up to the limit, and password
checks run a few at a time per process so that a burst of logins cannot take the database
pool from everyone else. Requests run on real threads, as daphne serves them."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.db import connections
from django.test import Client

from assistants_app import accounts

from .test_accounts import alert, logged_in

pytestmark = pytest.mark.django_db(transaction=True)

HASHING_SECONDS = 0.2  # what a real password hasher takes, roughly; the tests' MD5 takes none


@pytest.fixture
def three_failures(settings):
    settings.LOGIN_FAILURES_LIMIT = 3


@pytest.fixture
def checked(monkeypatch):
    """Every password check, as it starts; each takes as long as a real hasher's would, so
    parallel requests overlap in it as they do on a real server."""
    started = []
    real_check = AbstractBaseUser.check_password

    def slow_check(user, raw_password):
        started.append(raw_password)
        threading.Event().wait(HASHING_SECONDS)
        return real_check(user, raw_password)

    monkeypatch.setattr(AbstractBaseUser, "check_password", slow_check)
    return started


@pytest.fixture
def failures():
    """Failed logins whose password was checked (Django signals each one)."""
    seen = []

    def record(**kwargs):
        seen.append(kwargs["credentials"]["username"])

    user_login_failed.connect(record)
    yield seen
    user_login_failed.disconnect(record)


def log_in(username: str, password: str, address: str = "10.0.0.1"):
    client = Client()
    try:
        response = client.post(
            "/login/", {"username": username, "password": password}, REMOTE_ADDR=address
        )
    finally:
        if threading.current_thread() is not threading.main_thread():
            # The test client keeps a request's connection open (a real request's end closes
            # it): hand it back, or on PostgreSQL a few dozen threads would empty the pool.
            connections.close_all()
    return response, client


def in_parallel(attempts: list[tuple]) -> list:
    """All attempts at once, each on its own thread; their responses in order."""
    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        return [future.result() for future in [pool.submit(log_in, *a) for a in attempts]]


def test_parallel_wrong_guesses_are_checked_at_most_up_to_the_limit(
    alice, three_failures, checked, failures
):
    responses = in_parallel([("alice", f"guess{n}") for n in range(20)])

    statuses = sorted(response.status_code for response, _ in responses)
    assert statuses == [200] * 3 + [429] * 17
    assert len(checked) == 3 and len(failures) == 3
    refused = [response for response, _ in responses if response.status_code == 429]
    assert "Too many failed logins" in alert(refused[0])


def test_a_burst_of_guesses_cannot_reach_the_right_password(alice, three_failures, checked):
    with ThreadPoolExecutor(max_workers=8) as pool:
        guesses = [pool.submit(log_in, "alice", f"guess{n}") for n in range(8)]
        # The right password arrives while the guesses are still being checked, before any
        # of them has been found wrong.
        while len(checked) < 3:
            threading.Event().wait(0.01)
        right, client = log_in("alice", "alice-password")
        wrong = [future.result()[0].status_code for future in guesses]

    assert right.status_code == 429 and not logged_in(client)
    assert sorted(wrong) == [200] * 3 + [429] * 5


def test_parallel_guesses_at_many_usernames_stop_at_the_address_limit(
    three_failures, checked, failures
):
    limit = 3 * accounts.ADDRESS_FACTOR  # 30 per address
    responses = in_parallel([(f"user{n}", "guess", "10.0.0.66") for n in range(45)])

    assert sorted(response.status_code for response, _ in responses).count(200) == limit
    assert len(failures) == limit


def test_right_passwords_are_not_counted_as_failures(alice, three_failures):
    for _ in range(6):
        response, client = log_in("alice", "alice-password")
        assert response.status_code == 302 and logged_in(client)
    response, _ = log_in("alice", "guess")
    assert response.status_code == 200  # the first failure, not the seventh


def test_a_refused_attempt_at_one_account_does_not_count_against_the_address(
    alice, bob, three_failures
):
    for _ in range(3 * accounts.ADDRESS_FACTOR + 5):
        log_in("alice", "guess")  # three checked, the rest refused
    response, client = log_in("bob", "bob-password")
    assert response.status_code == 302 and logged_in(client)


def test_logins_beyond_those_being_checked_wait_and_then_hear_the_site_is_busy(
    alice, monkeypatch, checked
):
    monkeypatch.setattr(accounts, "LOGIN_WAIT_SECONDS", 0.05)
    monkeypatch.setattr(accounts, "_password_checks", threading.BoundedSemaphore(1))
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(log_in, "alice", "alice-password")
        while not checked:
            threading.Event().wait(0.01)
        busy, client = log_in("alice", "alice-password")
        assert first.result()[0].status_code == 302

    assert busy.status_code == 503 and busy["Retry-After"] == "5"
    assert alert(busy) == accounts.BUSY_MESSAGE
    assert not logged_in(client)
    assert log_in("alice", "alice-password")[0].status_code == 302  # nothing was counted
