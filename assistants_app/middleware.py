"""A Content-Security-Policy on every response: scripts and styles only from our own files."""

from inspect import iscoroutinefunction

from django.utils.decorators import sync_and_async_middleware

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
