"""Which pages may open a websocket: the site's own origins, compared as Django's CSRF check
compares a form's Origin.

Channels' AllowedHostsOriginValidator compares only the Origin's host name with ALLOWED_HOSTS,
so any page on another port or scheme of an allowed host (http://localhost:9999, anything a
user runs there) could open a logged-in user's socket and read their messages. Here scheme,
host and port must all match: the request's own origin (its Host, which must be allowed, and
its scheme, from X-Forwarded-Proto behind a trusted proxy) or one of CSRF_TRUSTED_ORIGINS
(`https://*.example.com` included), like Django's CsrfViewMiddleware.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain


class SameOriginValidator:
    """ASGI middleware: websockets from the site's own pages only; others are denied."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if is_allowed_origin(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)


def is_allowed_origin(scope: dict) -> bool:
    headers = {name: value.decode("latin1") for name, value in scope.get("headers", [])}
    origin = headers.get(b"origin")
    if not origin:  # browsers always send one; a page's socket without one is not ours
        return False
    return origin == own_origin(scope, headers) or is_trusted(origin)


def own_origin(scope: dict, headers: dict[bytes, str]) -> str | None:
    """The origin the request was made to, if its Host is one of ours (Django's get_host)."""
    host = headers.get(b"host", "")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, _allowed_hosts()):
        return None
    return f"{_scheme(scope, headers)}://{host}"


def is_trusted(origin: str) -> bool:
    if origin in settings.CSRF_TRUSTED_ORIGINS:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:  # e.g. "http://[::1"
        return False
    for trusted in (urlsplit(o) for o in settings.CSRF_TRUSTED_ORIGINS if "*" in o):
        if parsed.scheme == trusted.scheme and is_same_domain(
            parsed.netloc, trusted.netloc.lstrip("*")
        ):
            return True
    return False


def _scheme(scope: dict, headers: dict[bytes, str]) -> str:
    secure = scope.get("scheme") in ("wss", "https")
    # Behind a proxy (DJANGO_BEHIND_PROXY) its X-Forwarded-Proto decides, as for pages.
    if settings.SECURE_PROXY_SSL_HEADER:
        meta_name, secure_value = settings.SECURE_PROXY_SSL_HEADER
        header = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode()
        if (forwarded := headers.get(header)) is not None:
            secure = forwarded.split(",")[0].strip() == secure_value
    return "https" if secure else "http"


def _allowed_hosts() -> list[str]:
    if settings.DEBUG and not settings.ALLOWED_HOSTS:  # as Django's own get_host()
        return [".localhost", "127.0.0.1", "[::1]"]
    return settings.ALLOWED_HOSTS
