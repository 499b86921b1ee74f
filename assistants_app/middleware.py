"""Middleware of our own: static files without a synchronous request chain, and a
Content-Security-Policy on every response (scripts and styles only from our own files).

Both work in async mode: one synchronous middleware makes Django run every request below it
on a thread of its own and hop back to the event loop for the async views.
"""

from inspect import iscoroutinefunction

from asgiref.sync import sync_to_async
from django.utils.decorators import sync_and_async_middleware
from whitenoise.middleware import WhiteNoiseMiddleware

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


@sync_and_async_middleware
def StaticFilesMiddleware(get_response):  # noqa: N802 (named like a class in settings)
    """WhiteNoise's static files, in async mode as well.

    WhiteNoise's own middleware is synchronous only; under daphne the adaptation it forced on
    every request (posts included) was 15 % of a loaded process in the benchmark's profile.
    Here only a request for a static file goes to a thread, to open the file.
    """
    static = WhiteNoiseMiddleware(get_response)
    if not iscoroutinefunction(get_response):
        return static

    async def middleware(request):
        if static.autorefresh:  # development: the file is looked for on disk
            static_file = await sync_to_async(static.find_file)(request.path_info)
        else:
            static_file = static.files.get(request.path_info)
        if static_file is None:
            return await get_response(request)
        return await sync_to_async(static.serve)(static_file, request)

    return middleware
