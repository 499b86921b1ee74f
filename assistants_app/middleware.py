"""A Content-Security-Policy on every response: scripts and styles only from our own files;
and the site's own 404 page in debug mode too."""

from inspect import iscoroutinefunction

from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils.decorators import sync_and_async_middleware
from django.views.defaults import page_not_found

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


@sync_and_async_middleware
def ContentSecurityPolicyMiddleware(get_response):  # noqa: N802 (named like a class in settings)
    if iscoroutinefunction(get_response):

        async def middleware(request):
            response = await get_response(request)
            response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            return response

    else:

        def middleware(request):
            response = get_response(request)
            response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            return response

    return middleware


def _is_debug_not_found(response) -> bool:
    return (
        settings.DEBUG
        and response.status_code == 404
        and response.get("Content-Type", "").startswith("text/html")
    )


@sync_and_async_middleware
def FriendlyNotFoundMiddleware(get_response):  # noqa: N802 (named like a class in settings)
    """The site's own "Not found" page even with DJANGO_DEBUG=1 (the README's default run):
    people following a stale link should not meet Django's debug page, which also lists
    every URL pattern of the site."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            response = await get_response(request)
            if _is_debug_not_found(response):
                return await sync_to_async(page_not_found)(request, None)
            return response

    else:

        def middleware(request):
            response = get_response(request)
            if _is_debug_not_found(response):
                return page_not_found(request, None)
            return response

    return middleware
