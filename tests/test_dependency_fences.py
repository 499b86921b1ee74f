"""Where our code reaches into asgiref, Channels, channels_redis, daphne, httpx, httpx-aiohttp
and aiohttp, the versions it was written for are pinned in pyproject.toml, and these tests
check both the installed versions and the private names that code leans on. An upgrade that
moves one of them fails here, with a message naming the module to read again, instead of
failing under load in production.

The reasons for each reach are in the modules named and in README's "Where we go beyond
Channels, channels_redis, asgiref, httpx, aiohttp and daphne, and why".
"""

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# The distributions whose internals we use, and the module of ours that uses them.
FENCED = {
    "aiohttp": "assistants_app/engines/wire.py",
    "asgiref": "assistants_app/db.py",
    "channels": (
        "assistants_app/consumers.py, assistants_app/socket_auth.py, chatsite/channel_layer.py"
    ),
    "channels-redis": "chatsite/channel_layer.py",
    "daphne": "chatsite/server.py, chatsite/asgi.py",
    "httpx": "assistants_app/engines/client.py",
    "httpx-aiohttp": "assistants_app/engines/wire.py",
    "mozilla-django-oidc": "assistants_app/sso.py",
    "pytest": "tests/conftest.py",
    "pytest-xdist": "tests/conftest.py",
}


def pinned(name: str) -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(line)
        if requirement.name == name:
            return requirement
    raise AssertionError(f"{name} is used past its public API but not pinned in pyproject.toml")


@pytest.mark.parametrize("name", sorted(FENCED))
def test_the_installed_version_is_the_one_the_code_was_written_for(name):
    requirement = pinned(name)
    installed = version(name)
    assert requirement.specifier.contains(installed), (
        f"{name} {installed} is installed but the code in {FENCED[name]} was written for "
        f"{name}{requirement.specifier}: read that code against the new version before "
        "widening the pin."
    )


@pytest.mark.parametrize("name", sorted(FENCED))
def test_the_pin_admits_no_next_minor_version(name):
    # A range like ">=4.2,<5" would let a minor release change the internals unseen.
    major, minor = (int(part) for part in version(name).split(".")[:2])
    next_minor = f"{major}.{minor + 1}.0"
    assert not pinned(name).specifier.contains(next_minor), (
        f"{name}'s pin {pinned(name).specifier} admits {next_minor}, whose internals nobody read"
    )


def test_asgiref_still_picks_executors_the_way_db_py_mirrors():
    from asgiref.sync import AsyncToSync, SyncToAsync

    # db._has_thread_of_its_own() reads these three to know where a call would run.
    assert hasattr(AsyncToSync, "executors"), "asgiref: AsyncToSync.executors moved (db.py)"
    assert hasattr(AsyncToSync, "loop_thread_executors"), "asgiref moved loop_thread_executors"
    assert hasattr(SyncToAsync, "thread_sensitive_context"), "asgiref moved its context var"
    # db._PooledSyncToAsync overrides thread_handler and passes executor=.
    assert "thread_handler" in SyncToAsync.__dict__, "asgiref: SyncToAsync.thread_handler moved"
    assert "executor" in inspect.signature(SyncToAsync.__init__).parameters


def test_channels_still_does_what_the_consumer_skips():
    from channels.auth import get_user
    from channels.consumer import AsyncConsumer
    from channels.generic.websocket import AsyncWebsocketConsumer

    # ThreadConsumer.dispatch and websocket_disconnect copy Channels' own less one hop to the
    # database thread; if Channels drops that hop, our copies have no reason to exist.
    assert "aclose_old_connections" in inspect.getsource(AsyncConsumer.dispatch)
    assert "aclose_old_connections" in inspect.getsource(
        AsyncWebsocketConsumer.websocket_disconnect
    )
    # socket_auth.py runs Channels' own user lookup, unwrapped from its database_sync_to_async.
    assert callable(getattr(get_user, "func", None)), "channels.auth.get_user lost .func"


def test_channels_redis_pubsub_keeps_the_shape_channel_layer_py_overrides():
    from channels_redis import pubsub, utils

    assert hasattr(utils, "_wrap_close")
    assert hasattr(pubsub.RedisPubSubChannelLayer, "_get_layer")
    shard = pubsub.RedisSingleShardConnection("redis://127.0.0.1:1", channel_layer=None)
    for name in ("_subscribed_to", "_lock", "_redis", "_pubsub"):
        assert hasattr(shard, name), f"channels_redis' shard lost {name} (channel_layer.py)"
    assert callable(getattr(shard, "_ensure_redis", None))
    assert "_shards" in inspect.getsource(pubsub.RedisPubSubLoopLayer.__init__)
    # The local delivery and the reader's drop: the groups and queues the reader fills, and
    # where it fills them.
    loop_layer = pubsub.RedisPubSubLoopLayer(hosts=["redis://127.0.0.1:1"])
    assert isinstance(loop_layer.groups, dict) and isinstance(loop_layer.channels, dict)
    for name in ("_get_group_channel_name", "_get_shard"):
        assert callable(getattr(loop_layer, name, None)), f"channels_redis lost {name}"
    assert "channel_layer.groups[name]" in inspect.getsource(shard._receive_message)


def test_channels_in_memory_layer_keeps_what_channel_layer_py_overrides():
    from channels.layers import InMemoryChannelLayer

    source = inspect.getsource(InMemoryChannelLayer)
    # Cleaned on every send and receive, which channel_layer.py does once a second instead;
    # a send suspends nowhere, which its group_send relies on to send without a turn.
    assert "def _clean_expired(self)" in source
    assert "await" not in inspect.getsource(InMemoryChannelLayer.send)
    assert isinstance(InMemoryChannelLayer().groups, dict)


def test_httpx_still_picks_a_transport_per_url_where_respx_mocks():
    import httpx
    import respx.mocks

    # get_json sends to the transport the client would pick, as the client itself would.
    assert "url" in inspect.signature(httpx.AsyncClient._transport_for_url).parameters
    assert "_transport_for_url" in respx.mocks.HTTPXMocker.target_methods


def test_httpx_aiohttp_still_keeps_its_session_and_maps_errors_where_wire_py_reads_them():
    import openai
    from httpx_aiohttp.transport import AiohttpTransport, map_aiohttp_exceptions

    # The SDK's aiohttp client sends on this transport; wire.py takes its session (made on
    # its first request), checks it has no proxy, and maps errors as it does.
    transport = openai.DefaultAioHttpClient()._transport_for_url(httpx.URL("http://x/v1"))
    assert type(transport) is AiohttpTransport
    assert {"client", "proxy"} <= set(vars(transport))
    assert callable(transport.get_client) and callable(map_aiohttp_exceptions)
    source = inspect.getsource(AiohttpTransport.handle_async_request)
    assert "self.client = self.get_client()" in source and "allow_redirects=False" in source


def test_mozilla_django_oidc_still_reads_what_sso_py_feeds_it():
    from mozilla_django_oidc.auth import OIDCAuthenticationBackend
    from mozilla_django_oidc.views import OIDCAuthenticationRequestView

    # sso.SsoBackend replaces __init__ and serves these names from the discovery document.
    backend = inspect.getsource(OIDCAuthenticationBackend)
    for name in ("OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT", "OIDC_OP_JWKS_ENDPOINT",
                 "OIDC_RP_CLIENT_ID", "OIDC_RP_CLIENT_SECRET", "OIDC_RP_SIGN_ALGO",
                 "OIDC_RP_IDP_SIGN_KEY", "UserModel"):  # fmt: skip
        assert f"self.{name}" in backend, f"mozilla-django-oidc no longer reads self.{name}"
    assert "self.OIDC_OP_AUTH_ENDPOINT" in inspect.getsource(OIDCAuthenticationRequestView.get)
    # It checks no audience itself (sso.check_audience_and_issuer does), and passes the nonce
    # to verify_token only for the ID token; the logout reads the ID token it stored.
    assert '"verify_aud": False' in backend
    assert "self.verify_token(id_token, nonce=nonce)" in backend
    assert 'session["oidc_id_token"]' in backend


def test_pytest_and_xdist_still_group_tests_the_way_conftest_py_writes_it():
    # keep_groups_in_ids: pytest-xdist's loadgroup scheduler reads a test's group from the
    # "@group" end of its id, which pytest 9.2 keeps in Node._id (pytest-dev/pytest-xdist#1386).
    from _pytest.nodeid import coerce_node_id
    from _pytest.nodes import Node
    from xdist.scheduler.loadgroup import LoadGroupScheduling

    assert "self._id" in inspect.getsource(Node.nodeid.fget)
    assert str(coerce_node_id("tests/a.py::test_b@tests/a.py")) == "tests/a.py::test_b@tests/a.py"
    assert '"@"' in inspect.getsource(LoadGroupScheduling._split_scope)


def test_aiohttp_still_rearms_its_read_timeout_per_piece_where_wire_py_takes_it_over():
    from aiohttp.client_proto import ResponseHandler

    # wire._QuietLimit turns the protocol's read timeout off once the head is in, drops the
    # timer armed for it, and fails the body as the protocol's own timeout would.
    assert isinstance(ResponseHandler.read_timeout, property), "aiohttp moved read_timeout"
    assert ResponseHandler.read_timeout.fset is not None, "aiohttp: read_timeout is read-only"
    for name in ("start_timeout", "set_exception", "_on_read_timeout"):
        assert callable(getattr(ResponseHandler, name, None)), f"aiohttp moved {name} (wire.py)"
    # What it saves: a timer cancelled and armed anew for every piece received.
    assert "_reschedule_timeout" in inspect.getsource(ResponseHandler.data_received)
    assert "set_exception" in inspect.getsource(ResponseHandler._on_read_timeout)
