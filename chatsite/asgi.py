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
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from assistants_app.engines.client import preload  # noqa: E402
from assistants_app.routing import websocket_urlpatterns  # noqa: E402
from assistants_app.socket_auth import SocketAuthMiddlewareStack  # noqa: E402
from assistants_app.worker import EmbeddedWorker  # noqa: E402

preload()  # the provider SDK, before the first socket rather than on the first run

application = EmbeddedWorker(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                SocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
            ),
        }
    )
)
