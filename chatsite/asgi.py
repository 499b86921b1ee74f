"""ASGI entry point: HTTP goes to Django, websockets to the thread consumer."""

import os
import sys

from django.core.asgi import get_asgi_application

# Database threads (Channels' one per process, or assistants_app/db.py's pool) wait for the GIL
# held by the busy event loop after each round trip to PostgreSQL: up to the switch interval
# each time. 0.5 ms instead of 5 ms cut the added latency of 100 polled runs
# by a third in the benchmark (BENCHMARKS.md).
sys.setswitchinterval(0.0005)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before anything imports models (Channels tutorial, part 2).
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from daphne.ws_protocol import WebSocketFactory  # noqa: E402

from assistants_app.process_start import make_ready  # noqa: E402
from assistants_app.routing import websocket_fallback, websocket_urlpatterns  # noqa: E402
from assistants_app.socket_auth import SocketAuthMiddlewareStack  # noqa: E402
from assistants_app.socket_origin import SameOriginValidator  # noqa: E402
from assistants_app.worker import EmbeddedWorker  # noqa: E402


def close_oversized_messages_with_1009() -> None:
    """A client message over daphne's --websocket-max-message-size closes with 1009.

    daphne leaves autobahn's `failByDrop` on, so autobahn fails such a connection by dropping
    its TCP connection: the page sees 1006, as if the network had failed. Off, it sends the
    close frame with 1009 ("message too big") first, and so for protocol errors (a bad frame,
    bad UTF-8) with their own codes, as RFC 6455 prefers. daphne builds its factory after
    importing this module.
    """
    reset = WebSocketFactory.resetProtocolOptions

    def reset_protocol_options(self):
        reset(self)
        self.failByDrop = False

    WebSocketFactory.resetProtocolOptions = reset_protocol_options


close_oversized_messages_with_1009()
make_ready()  # before the first socket rather than on the first answers

application = EmbeddedWorker(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(
                SocketAuthMiddlewareStack(URLRouter([*websocket_urlpatterns, websocket_fallback]))
            ),
        }
    )
)
