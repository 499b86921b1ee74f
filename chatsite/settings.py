"""Settings for the chat site, every knob read once from the environment.

With no variable set the site runs on SQLite, an in-memory channel layer and the offline
simulator as its provider. README.md has the table of variables.
"""

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .providers import declared_providers

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be 0 or 1, not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def envchoice(name: str, default: str, choices) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


DEBUG = envbool("DJANGO_DEBUG", True)
SECRET_KEY = envstr("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = envstr("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
CSRF_TRUSTED_ORIGINS = [o for o in envstr("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o]

INSTALLED_APPS = [
    "daphne",  # first, so runserver is the ASGI one (Channels tutorial)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "assistants_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "assistants_app.middleware.RefuseUnstorableInputMiddleware",
    "assistants_app.middleware.CsrfViewMiddleware",  # Django's, without a trip to a thread
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "assistants_app.audit.AuditMiddleware",  # who changes accounts and assistants
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "assistants_app.middleware.ContentSecurityPolicyMiddleware",
    "assistants_app.middleware.FriendlyNotFoundMiddleware",
    "assistants_app.middleware.OneThreadMiddleware",  # last: one hop for all of the above
]

# Django's check for its CSRF middleware looks for it by name; ours (above) is a subclass, and
# assistants_app.middleware checks for it instead.
SILENCED_SYSTEM_CHECKS = ["security.W003"]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=envbool("DATABASE_CONN_HEALTH_CHECKS", True),
    )
}
DATABASE_POOL_SIZE = envint("DATABASE_POOL_SIZE", 20)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE:
    # Under ASGI every HTTP request runs on a thread of its own, and each such thread would
    # keep a persistent connection of its own until it is garbage collected, which runs the
    # server out of connections under load. A pool keeps connections open and bounds them per
    # process instead; Django requires CONN_MAX_AGE 0 with it (connections go back to the pool).
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": DATABASE_POOL_SIZE,
        "timeout": envfloat("DATABASE_POOL_TIMEOUT_SECONDS", 10.0),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Persistent connections (DATABASE_CONN_MAX_AGE) hold no lock between transactions in
    # WAL mode, and spare the database thread a new connection per call: 2 ms each to open,
    # set up and read the schema, on a thread every socket and run of the process shares.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False  # a file does not drop connections
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        # HTTP requests (a thread each) and the database thread write at once. A writer waits
        # this long for the lock instead of failing with "database is locked"...
        timeout=envfloat("SQLITE_BUSY_TIMEOUT_SECONDS", 20.0),
        # ...but SQLite only waits when a transaction asks for the lock at BEGIN: a deferred
        # transaction that reads and then writes fails at once if another wrote meanwhile.
        transaction_mode="IMMEDIATE",
        # WAL: readers never wait for the writer nor it for them, and a commit appends to the
        # log without a sync of its own (NORMAL is safe with WAL; a power cut can lose the
        # last commits, never the file). The mode is stored in the file; asking is cheap.
        init_command="PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    )
# A socket's connect and replay run at most DATABASE_SOCKET_CALLS at once per process (on
# SQLite too), on threads of their own beside DATABASE_THREADS, so that a burst of reconnects
# does not hold up the answers streaming meanwhile (assistants_app/db.py, BENCHMARKS.md).
DATABASE_SOCKET_CALLS = max(1, envint("DATABASE_SOCKET_CALLS", 2))
# Database calls of websockets and run drivers (assistants_app/db.py) run on this many threads
# per process, so sockets do not all queue behind Channels' one database thread. Not by
# default on SQLite, where writers take turns at one lock anyway: there it is 0, that one
# thread (4 threads measured no better, BENCHMARKS.md). On PostgreSQL with the pool, at most
# the pool's size less the sockets' threads (a thread without a connection would only wait
# for one), and fewer by default, leaving connections for HTTP requests.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASE_THREADS = envint("DATABASE_THREADS", 0)
else:
    DATABASE_THREADS = envint("DATABASE_THREADS", 8)
    if DATABASE_POOL_SIZE:  # the sockets' threads and these take connections from one pool
        DATABASE_SOCKET_CALLS = min(DATABASE_SOCKET_CALLS, max(1, DATABASE_POOL_SIZE // 2))
        DATABASE_THREADS = min(DATABASE_THREADS, max(1, DATABASE_POOL_SIZE - DATABASE_SOCKET_CALLS))

REDIS_URL = envstr("REDIS_URL")
# The pub/sub layer by measurement (BENCHMARKS.md): one PUBLISH per event instead of the core
# layer's sorted sets, and no group expiry. Both deliver at most once; the `hello` replay covers
# a lost doorbell either way.
REDIS_CHANNEL_LAYERS = {
    # channels_redis' own, one lock less, its own process's sockets served at once
    "pubsub": "chatsite.channel_layer.RedisPubSubChannelLayer",
    "core": "channels_redis.core.RedisChannelLayer",
}
REDIS_CHANNEL_LAYER = envchoice("REDIS_CHANNEL_LAYER", "pubsub", REDIS_CHANNEL_LAYERS)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": REDIS_CHANNEL_LAYERS[REDIS_CHANNEL_LAYER],
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # redis-py refuses a command ("Too many connections") rather than
                        # wait when its pool is full: the pool must cover a connect burst.
                        "max_connections": envint("REDIS_POOL_SIZE", 1000),
                        # redis-py 8 times reads out after 5 s, as long as the core layer's
                        # blocking receive waits (BZPOPMIN, 5 s): without more slack an idle
                        # socket crashes.
                        "socket_timeout": 30,
                    }
                ],
                # Several sites (or test runs) can share one Redis under different prefixes.
                "prefix": envstr("REDIS_PREFIX", "asgi"),
            },
        }
    }
else:
    # Channels' own, sending to a group's sockets at once (chatsite/channel_layer.py).
    CHANNEL_LAYERS = {"default": {"BACKEND": "chatsite.channel_layer.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "thread-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# HTTPS in production: cookies only over TLS, plain HTTP redirected, HSTS. `manage.py check
# --deploy` passes with DJANGO_DEBUG=0 and the variables in README's production example.
# Django's database sessions, read with a statement built once (assistants_app/sessions.py).
SESSION_ENGINE = "assistants_app.sessions"
SESSION_COOKIE_SECURE = envbool("DJANGO_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = envbool("DJANGO_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("DJANGO_HSTS_PRELOAD", not DEBUG)
# Behind a TLS-terminating proxy the request reaches daphne as plain HTTP from the proxy's
# address: trust its X-Forwarded-Proto here, and `manage.py serve` passes --proxy-headers so
# per-address limits see the client's address, not the proxy's.
BEHIND_PROXY = envbool("DJANGO_BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# The cache holds the fair-use counters, so several processes must share it: Redis when
# REDIS_URL is set (its INCR is atomic), this process's memory otherwise.
CACHE_KEY_PREFIX = envstr("CACHE_KEY_PREFIX", "chatsite")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "assistants_app": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
        # One line per provider request is too much at INFO; failures still surface.
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},  # the MCP SDK's HTTP client: four lines per tool call
        "mcp": {"level": "WARNING"},
    },
}

# Providers: named OpenAI-compatible endpoints. Keys come from the environment only; an
# assistant stores the provider's name, never its key.
SIMULATOR_URL = envstr("SIMULATOR_URL", "http://127.0.0.1:8001/v1")
OPENAI_API_KEY = envstr("OPENAI_API_KEY")
ASSISTANT_PROVIDERS = {
    "simulator": {
        "base_url": SIMULATOR_URL,
        "api_key": "simulator",
        "label": "Offline simulator (canned replies)",
        "simulated": True,
        "default_model": "simulator",
    },
}
if OPENAI_API_KEY:
    ASSISTANT_PROVIDERS["openai"] = {
        "base_url": envstr("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        "api_key": OPENAI_API_KEY,
        "api_key_env": "OPENAI_API_KEY",
        "label": "OpenAI",
        "simulated": False,
        "vector_stores": True,  # knowledge goes to vector stores, searched with file_search
        "default_model": "",
    }
# More providers (Ollama, vLLM, llama-server, LM Studio, gateways): chatsite/providers.py.
ASSISTANT_PROVIDERS.update(declared_providers(os.environ))
DEFAULT_PROVIDER = "openai" if OPENAI_API_KEY else "simulator"

# Messages and runs.
MESSAGE_MAX_CHARS = envint("MESSAGE_MAX_CHARS", 20_000)
PROVIDER_TIMEOUT_SECONDS = envfloat("PROVIDER_TIMEOUT_SECONDS", 30.0)
RUN_MAX_SECONDS = envint("RUN_MAX_SECONDS", 600)  # a run still active after this expires
RUN_POLL_FIRST_SECONDS = envfloat("RUN_POLL_FIRST_SECONDS", 0.2)
RUN_POLL_MAX_SECONDS = envfloat("RUN_POLL_MAX_SECONDS", 1.0)
# `adaptive`: the backoff above; `fixed`: every RUN_POLL_FIXED_SECONDS (benchmarks compare them).
RUN_POLL_STRATEGY = envchoice("RUN_POLL_STRATEGY", "adaptive", ("adaptive", "fixed"))
RUN_POLL_FIXED_SECONDS = envfloat("RUN_POLL_FIXED_SECONDS", 1.0)
RUN_LEASE_SECONDS = envint("RUN_LEASE_SECONDS", 30)
# Runs nobody drives are finished by a worker loop (assistants_app/worker.py). Its events must
# reach the pages: without Redis only this process's sockets hear them, so the loop runs here.
RUN_WORKER_IN_SERVER = envbool("RUN_WORKER_IN_SERVER", not REDIS_URL)
RUN_WORKER_INTERVAL_SECONDS = envfloat("RUN_WORKER_INTERVAL_SECONDS", 2.0)
# Chat Completions runs: how much of the thread is sent, how often a generation looks for a
# cancel from another process.
CHAT_HISTORY_MAX_CHARS = envint("CHAT_HISTORY_MAX_CHARS", 16_000)
CHAT_CANCEL_CHECK_SECONDS = envfloat("CHAT_CANCEL_CHECK_SECONDS", 0.5)
# Tools (tool_registry.py, runs/tool_calls.py): every call and every run's tool use is bounded.
TOOL_CALL_SECONDS = envfloat("TOOL_CALL_SECONDS", 30)  # one call; then the model hears "timed out"
TOOL_RUN_SECONDS = envfloat("TOOL_RUN_SECONDS", 120)  # all of one answer's calls together
TOOL_MAX_ROUNDS = envint("TOOL_MAX_ROUNDS", 5)  # rounds of calls in one answer
TOOL_RESULT_MAX_CHARS = envint("TOOL_RESULT_MAX_CHARS", 8_000)  # a result the model reads
TOOL_APPROVAL_SECONDS = envint("TOOL_APPROVAL_SECONDS", 300)  # an unanswered approval expires
MCP_STDIO_IDLE_SECONDS = envfloat("MCP_STDIO_IDLE_SECONDS", 60)  # a stdio server kept running
# The programs staff may register as stdio MCP servers: each runs on this machine as the site's
# user, so the site's operator names them here; none by default (HTTP servers only).
MCP_STDIO_COMMANDS = [c.strip() for c in envstr("MCP_STDIO_COMMANDS").split(",") if c.strip()]
RUN_STREAMING = envbool("RUN_STREAMING", True)  # follow runs live where the engine can
STREAM_DELTA_SECONDS = envfloat("STREAM_DELTA_SECONDS", 0.05)  # coalesce deltas this long
# ...or longer, in proportion to the event loop's lag when the process is saturated (runs/lag.py)
STREAM_DELTA_MAX_SECONDS = envfloat("STREAM_DELTA_MAX_SECONDS", 1.0)
STREAM_SAVE_SECONDS = envfloat("STREAM_SAVE_SECONDS", 1.0)  # save the partial answer this often

# Files: attachments on messages and assistants' knowledge (assistants_app/files.py). Stored
# through Django's storage API: local files under FILES_ROOT, or an S3-compatible bucket
# through django-storages (FILE_STORAGE=s3, README). Never served as public media: only by the
# authorised views.
FILE_STORAGE = envchoice("FILE_STORAGE", "local", ("local", "s3"))
MEDIA_ROOT = Path(envstr("FILES_ROOT", str(BASE_DIR / "files")))
if FILE_STORAGE == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": envstr("FILES_S3_BUCKET"),
            "endpoint_url": envstr("FILES_S3_ENDPOINT_URL") or None,
            "region_name": envstr("FILES_S3_REGION") or None,
            "location": envstr("FILES_S3_PREFIX"),
            "default_acl": None,  # private objects: the bucket's own policy, never public-read
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
    # Keys: boto3 reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment.
else:
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
FILE_MAX_BYTES = envint("FILE_MAX_BYTES", 20 * 1024 * 1024)
FILES_PER_MESSAGE = envint("FILES_PER_MESSAGE", 5)
FILE_STORAGE_PER_USER_BYTES = envint("FILE_STORAGE_PER_USER_BYTES", 200 * 1024 * 1024)
IMAGE_MAX_PIXELS = envint("IMAGE_MAX_PIXELS", 40_000_000)  # 8000 x 5000
# A document's extracted text sent along with a Chat Completions message, at most.
FILE_TEXT_MAX_CHARS = envint("FILE_TEXT_MAX_CHARS", 12_000)
# Knowledge retrieved from our own database (English stemming, PostgreSQL and SQLite alike):
# passages put before the model with each question.
KNOWLEDGE_PASSAGES = envint("KNOWLEDGE_PASSAGES", 4)

# Fair use, per user (admin can override the first three for one user; 0 means no limit).
MESSAGES_PER_MINUTE = envint("MESSAGES_PER_MINUTE", 10)
CONCURRENT_RUNS = envint("CONCURRENT_RUNS", 3)
DAILY_TOKEN_BUDGET = envint("DAILY_TOKEN_BUDGET", 200_000)
# Shown with the prices staff set per model and the costs worked out from them (costs.py).
COST_CURRENCY = envstr("COST_CURRENCY", "USD")
# Whether a thread's share link opens for anyone who has it, or only for people signed in.
SHARE_LINKS_PUBLIC = envbool("SHARE_LINKS_PUBLIC", False)
WEBSOCKETS_PER_USER = envint("WEBSOCKETS_PER_USER", 20)
# Client events are small JSON objects; daphne and the consumer both refuse bigger frames.
WEBSOCKET_MAX_MESSAGE_BYTES = envint("WEBSOCKET_MAX_MESSAGE_BYTES", 16_384)

# Accounts: failed logins are throttled per username and address, and per address alone.
LOGIN_FAILURES_LIMIT = envint("LOGIN_FAILURES_LIMIT", 5)
LOGIN_LOCKOUT_SECONDS = envint("LOGIN_LOCKOUT_SECONDS", 900)
# Password checks a process runs at once: each is slow on purpose and holds a database
# connection, so a burst of logins must not take the pool (nor the CPU) from everyone else.
LOGINS_AT_ONCE = max(1, envint("LOGINS_AT_ONCE", 2))
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE:
    LOGINS_AT_ONCE = min(LOGINS_AT_ONCE, max(1, DATABASE_POOL_SIZE // 2))
SIGNUP_ENABLED = envbool("SIGNUP_ENABLED", False)

# Single sign-on with OpenID Connect (assistants_app/sso.py), on when OIDC_ISSUER is set. The
# OIDC_RP_* and OIDC_* names below are mozilla-django-oidc's settings.
OIDC_ISSUER = envstr("OIDC_ISSUER").rstrip("/")
OIDC_RP_CLIENT_ID = envstr("OIDC_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = envstr("OIDC_CLIENT_SECRET")
OIDC_RP_SCOPES = envstr("OIDC_SCOPES", "openid email profile")
OIDC_RP_SIGN_ALGO = envstr("OIDC_SIGN_ALGO", "RS256")
OIDC_GROUPS_CLAIM = envstr("OIDC_GROUPS_CLAIM", "groups")  # empty: groups are set in admin
OIDC_PROVIDER_NAME = envstr("OIDC_PROVIDER_NAME", "single sign-on")
OIDC_TIMEOUT = envfloat("OIDC_TIMEOUT_SECONDS", 10.0)
OIDC_SESSION_SECONDS = envint("OIDC_SESSION_SECONDS", 86_400)  # 0: as long as any session
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the provider's logout wants it back (id_token_hint)
OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
LOGIN_REDIRECT_URL_FAILURE = "/login/?sso=failed"
LOCAL_LOGIN_ENABLED = envbool("LOCAL_LOGIN_ENABLED", True)
if OIDC_ISSUER and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured("OIDC_ISSUER needs OIDC_CLIENT_ID and OIDC_CLIENT_SECRET")
if not (LOCAL_LOGIN_ENABLED or OIDC_ISSUER):
    raise ImproperlyConfigured("LOCAL_LOGIN_ENABLED=0 needs single sign-on (OIDC_ISSUER)")
# Without local login no password is checked anywhere, admin included.
AUTHENTICATION_BACKENDS = ["assistants_app.sso.SsoBackend"]
if LOCAL_LOGIN_ENABLED:
    AUTHENTICATION_BACKENDS.insert(0, "django.contrib.auth.backends.ModelBackend")

# Retention (assistants_app/retention.py): threads untouched for this many days are deleted by
# the worker and `manage.py apply_retention`; 0 keeps them.
THREAD_RETENTION_DAYS = envint("THREAD_RETENTION_DAYS", 0)
RETENTION_SWEEP_SECONDS = envint("RETENTION_SWEEP_SECONDS", 3600)

TESTING = "pytest" in sys.modules
if TESTING:
    # Test-only speed-ups live here and nowhere else.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Tests clear the cache between them; never let that flush a shared Redis.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    RUN_WORKER_IN_SERVER = False  # tests drive runs themselves
    RUN_POLL_FIRST_SECONDS = 0.01
    RUN_POLL_MAX_SECONDS = 0.05
    CHAT_CANCEL_CHECK_SECONDS = 0.02
