"""Every request and response passes here: a Content-Security-Policy on every response
(scripts and styles only from our own files), input the database cannot store refused, and
the site's own 404 page in debug mode too."""

import json
from inspect import iscoroutinefunction
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.middleware import get_user as cached_user
from django.core import checks
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.middleware import csrf
from django.utils.decorators import sync_and_async_middleware, sync_only_middleware
from django.views.defaults import page_not_found

from . import storable
from .exceptions import ClientError


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""


CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        # Logging out of single sign-on is a form posted here and redirected to the provider's
        # logout page: browsers hold redirects after a post to form-action too.
        f"form-action 'self' {_origin(settings.OIDC_ISSUER)}".strip(),
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
def RefuseUnstorableInputMiddleware(get_response):  # noqa: N802 (named like a class in settings)
    """A 400 in words for a NUL character or a lone surrogate anywhere in a request's query,
    form or JSON body, before any view (admin's included) passes it to the database, where
    it would be a 500. Views and services check their own input too; this is the net."""
    if iscoroutinefunction(get_response):

        async def middleware(request):
            return refusal(request) or await get_response(request)

    else:

        def middleware(request):
            return refusal(request) or get_response(request)

    return middleware


def refusal(request: HttpRequest) -> HttpResponse | None:
    try:
        for text in _texts_in(request):
            storable.check(text, "Your request")
    except ClientError as error:
        if request.content_type == "application/json":
            body = {"error": {"code": error.code, "message": error.message}}
            return JsonResponse(body, status=error.status)
        return HttpResponseBadRequest(error.message, content_type="text/plain; charset=utf-8")
    return None


def _texts_in(request: HttpRequest):
    for form in (request.GET, request.POST):
        for name, values in form.lists():
            yield name
            yield from values
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body)
        except (ValueError, RecursionError):
            return  # not JSON: the view says so
        yield from _strings_in(data)


def _strings_in(data):
    """Every string in parsed JSON, keys included; no recursion, however deep it nests."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


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


@sync_only_middleware
def OneThreadMiddleware(get_response):  # noqa: N802 (named like a class in settings)
    """The innermost middleware, sync only, so that Django runs the whole chain above it on
    one thread, entered once per request. Django's own middleware (sessions, CSRF, auth,
    messages...) is async-capable only by running each of its steps on a thread of its own
    and back: about fifteen hops of a busy event loop per request, which cost a post more
    CPU than its view (BENCHMARKS.md, "Cost per answer"). Async views still run on the event
    loop, entered once from here.

    The signed-in user is read here too, on the chain's thread: an async view's
    `request.auser()` would otherwise take a trip to a thread for the session and another for
    the user. (Django's own cache of it, `_acached_user`, Django being pinned to 5.2:
    tests/test_queries_per_answer.py counts a post's trips to threads.)"""

    def middleware(request):
        if hasattr(request, "auser") and not hasattr(request, "_acached_user"):
            request._acached_user = cached_user(request)
        return get_response(request)

    return middleware


# Bodies whose fields Django parses when the CSRF check reads the form's token: possibly
# megabytes, and a multipart upload written to temporary files.
_FORM_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}


class CsrfViewMiddleware(csrf.CsrfViewMiddleware):
    """Django's CSRF check, unchanged, without its trip to a thread for every post.

    Under ASGI Django runs a middleware's sync `process_view` on a thread and back, after
    OneThreadMiddleware's chain: a trip of every send, stop and retry that only compares a
    header with a cookie. Given an async `process_view` it awaits it instead, so the check runs
    here on the event loop, where it reads nothing but the request's headers and cookies. A
    form's body is still checked on a thread: reading its token parses the whole body."""

    async def process_view(self, request, callback, callback_args, callback_kwargs):
        check = super().process_view
        if request.method == "POST" and request.content_type in _FORM_TYPES:
            return await sync_to_async(check)(request, callback, callback_args, callback_kwargs)
        return check(request, callback, callback_args, callback_kwargs)


CSRF_MIDDLEWARE = f"{__name__}.CsrfViewMiddleware"


@checks.register(checks.Tags.security, deploy=True)
def check_csrf_middleware(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Django's own check (security.W003, silenced in settings) looks for its middleware by
    name: this one looks for ours instead, so that a site without CSRF checks still says so."""
    if CSRF_MIDDLEWARE in settings.MIDDLEWARE:
        return []
    return [
        checks.Warning(
            f"{CSRF_MIDDLEWARE} is not in MIDDLEWARE: posts are not checked for CSRF.",
            id="assistants_app.W003",
        )
    ]
