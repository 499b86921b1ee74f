"""Every request and response passes here: a Content-Security-Policy on every response
(scripts and styles only from our own files), and input the database cannot store refused."""

import json
from inspect import iscoroutinefunction

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.utils.decorators import sync_and_async_middleware

from . import storable
from .exceptions import ClientError

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
