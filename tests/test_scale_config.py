"""Configuration for running at scale: PostgreSQL through a connection pool, a Redis channel
layer with an explicit pool, and the polling strategy the benchmark compares."""

import json
import os
import subprocess
import sys

import pytest

from assistants_app import runs

from .live import ROOT

# Variables the tests set; any value in the tests' own environment would leak in otherwise.
SCALE_VARIABLES = (
    "DATABASE_URL", "DATABASE_POOL_SIZE", "DATABASE_CONN_MAX_AGE", "REDIS_URL",
    "REDIS_CHANNEL_LAYER", "REDIS_POOL_SIZE", "REDIS_PREFIX", "RUN_POLL_STRATEGY",
    "RUN_POLL_FIXED_SECONDS", "DATABASE_THREADS", "DATABASE_SOCKET_CALLS",
)  # fmt: skip


def settings_under(env: dict) -> subprocess.CompletedProcess:
    """Import the settings in a fresh interpreter with `env`, as a server would read them."""
    code = (
        "import json; from chatsite import settings as s; print(json.dumps({"
        "'database': s.DATABASES['default'], 'layer': s.CHANNEL_LAYERS['default'],"
        "'poll': [s.RUN_POLL_STRATEGY, s.RUN_POLL_FIXED_SECONDS],"
        "'database_threads': s.DATABASE_THREADS,"
        "'socket_threads': s.DATABASE_SOCKET_CALLS}, default=str))"
    )
    clean = {k: v for k, v in os.environ.items() if k not in SCALE_VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True,
        text=True,
    )  # fmt: skip


def settings_with(**env) -> dict:
    result = settings_under(env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


POSTGRES = "postgres://chat@127.0.0.1:5432/chat"
REDIS = "redis://127.0.0.1:6379/2"


def test_it_pools_postgresql_connections():
    database = settings_with(DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="7")["database"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "chat"
    # Connections stay open in the pool; Django hands them back there after each use.
    assert database["OPTIONS"]["pool"]["max_size"] == 7
    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is True


def test_it_keeps_persistent_connections_per_thread_without_a_pool():
    database = settings_with(DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="0")["database"]
    assert "pool" not in database.get("OPTIONS", {})
    assert database["CONN_MAX_AGE"] == 60


def test_sqlite_waits_for_the_lock_in_wal_mode_with_immediate_transactions():
    database = settings_with(DATABASE_URL="sqlite:////tmp/chat-scale-config.sqlite3")["database"]
    assert "pool" not in database["OPTIONS"]
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert database["OPTIONS"]["timeout"] == 20
    assert "PRAGMA journal_mode=WAL" in database["OPTIONS"]["init_command"]
    # In WAL mode an open connection holds no lock: kept, as on PostgreSQL without a pool.
    assert database["CONN_MAX_AGE"] == 60


def test_postgresql_runs_socket_database_calls_on_threads_within_the_pool():
    assert settings_with(DATABASE_URL=POSTGRES)["database_threads"] == 8
    assert settings_with(DATABASE_URL=POSTGRES, DATABASE_THREADS="12")["database_threads"] == 12
    # A thread beyond the pool's size would only wait for a connection, and the sockets' own
    # threads (DATABASE_SOCKET_CALLS, 2) take theirs from the same pool.
    small_pool = settings_with(DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="4")
    assert (small_pool["database_threads"], small_pool["socket_threads"]) == (2, 2)
    assert settings_with(
        DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="4", DATABASE_SOCKET_CALLS="1"
    )["database_threads"] == 3
    tiny_pool = settings_with(DATABASE_URL=POSTGRES, DATABASE_POOL_SIZE="2")
    assert (tiny_pool["database_threads"], tiny_pool["socket_threads"]) == (1, 1)


def test_sqlite_keeps_one_database_thread_unless_asked():
    sqlite = "sqlite:////tmp/chat-scale-config.sqlite3"
    assert settings_with(DATABASE_URL=sqlite)["database_threads"] == 0
    assert settings_with(DATABASE_URL=sqlite, DATABASE_THREADS="4")["database_threads"] == 4


def test_redis_uses_the_pubsub_layer_with_an_explicit_pool_size():
    layer = settings_with(REDIS_URL=REDIS, REDIS_POOL_SIZE="50", REDIS_PREFIX="site2")["layer"]
    assert layer["BACKEND"] == "chatsite.channel_layer.RedisPubSubChannelLayer"
    assert layer["CONFIG"] == {
        "hosts": [{"address": REDIS, "max_connections": 50, "socket_timeout": 30}],
        "prefix": "site2",
    }


def test_redis_can_use_the_core_layer():
    layer = settings_with(REDIS_URL=REDIS, REDIS_CHANNEL_LAYER="core")["layer"]
    assert layer["BACKEND"] == "channels_redis.core.RedisChannelLayer"
    assert layer["CONFIG"]["hosts"][0]["max_connections"] == 1000


def test_without_redis_the_layer_is_in_memory():
    layer = settings_with()["layer"]
    assert layer["BACKEND"] == "chatsite.channel_layer.InMemoryChannelLayer"


@pytest.mark.parametrize(
    "name, value", [("REDIS_CHANNEL_LAYER", "sorted-sets"), ("RUN_POLL_STRATEGY", "sometimes")]
)
def test_it_refuses_an_unknown_choice(name, value):
    result = settings_under({name: value})
    assert result.returncode != 0
    assert f"{name} must be one of" in result.stderr


def test_the_fixed_strategy_polls_at_one_interval(settings):
    settings.RUN_POLL_STRATEGY = "fixed"
    settings.RUN_POLL_FIXED_SECONDS = 5.0
    assert [runs.poll_delay(quiet) for quiet in (0, 1, 7)] == [5.0, 5.0, 5.0]


def test_the_adaptive_strategy_starts_fast_and_backs_off(settings):
    settings.RUN_POLL_STRATEGY = "adaptive"
    settings.RUN_POLL_FIRST_SECONDS = 0.2
    settings.RUN_POLL_MAX_SECONDS = 1.0
    assert [runs.poll_delay(quiet) for quiet in (0, 1, 2, 3)] == [0.2, 0.4, 0.8, 1.0]


def test_the_strategy_is_adaptive_unless_set():
    assert settings_with()["poll"] == ["adaptive", 1.0]
    assert settings_with(RUN_POLL_STRATEGY="fixed", RUN_POLL_FIXED_SECONDS="5")["poll"] == [
        "fixed",
        5.0,
    ]
