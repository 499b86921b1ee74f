"""Endpoints of the thread's tree: edit and resend, regenerate, show another version, switch
assistant, feedback, and the message list as HTML for the page to swap in after each of them.
Thin, like views.py: load what is the user's, call versions.py or feedback.py."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from . import conversation, feedback, services, versions
from .exceptions import ClientError
from .signed_in import login_required
from .views import _error_response, _json_body, _text_from, not_found_is_404


def _data(request: HttpRequest):
    return _json_body(request) if request.content_type == "application/json" else request.POST


def _reply(request: HttpRequest, pk: int, body: dict | None = None) -> HttpResponse:
    """JSON for the page; a form post (no JavaScript) goes back to the thread."""
    if request.content_type == "application/json" or "application/json" in request.headers.get(
        "Accept", ""
    ):
        return JsonResponse(body or {"ok": True})
    return redirect("thread-detail", pk=pk)


@login_required
@require_POST
@not_found_is_404
async def message_edit(request: HttpRequest, pk: int, message_id: int) -> JsonResponse:
    """A new version of one of my messages, answered from the history before it."""
    user = await request.auser()
    thread = await services.athread_of(user, pk)
    try:
        message, run = await versions.edit_message(user, thread, message_id, _text_from(request))
    except ClientError as error:
        return _error_response(error)
    return JsonResponse({"message": message.as_event(), "run": run.as_event()}, status=201)


@login_required
@require_POST
@not_found_is_404
async def message_regenerate(request: HttpRequest, pk: int, message_id: int) -> JsonResponse:
    """A new answer to the message this one answers."""
    user = await request.auser()
    thread = await services.athread_of(user, pk)
    try:
        run = await versions.regenerate(user, thread, message_id)
    except ClientError as error:
        return _error_response(error)
    return JsonResponse({"run": run.as_event()}, status=201)


@login_required
@require_POST
@not_found_is_404
def version_show(request: HttpRequest, pk: int) -> HttpResponse:
    """Show the branch through the message posted as `message`."""
    thread = services.thread_of(request.user, pk)
    try:
        versions.show_version(request.user, thread, _data(request).get("message"))
    except ClientError as error:
        return _error_response(error)
    return _reply(request, pk)


@login_required
@require_POST
@not_found_is_404
def assistant_switch(request: HttpRequest, pk: int) -> HttpResponse:
    """The thread's next messages go to the assistant posted as `assistant`."""
    thread = services.thread_of(request.user, pk)
    try:
        versions.switch_assistant(request.user, thread, _data(request).get("assistant"))
    except ClientError as error:
        return _error_response(error)
    body = {"assistant": {"id": thread.assistant_id, "name": thread.assistant.name}}
    return _reply(request, pk, body)


@login_required
@require_POST
@not_found_is_404
def message_feedback(request: HttpRequest, pk: int, message_id: int) -> HttpResponse:
    """Thumbs up or down on an answer, with an optional comment and permission to share."""
    thread = services.thread_of(request.user, pk)
    data = _data(request)
    try:
        given = feedback.give(
            request.user,
            thread,
            message_id,
            rating=data.get("rating"),
            comment=data.get("comment", ""),
            share_thread=data.get("share_thread", False),
        )
    except ClientError as error:
        return _error_response(error)
    return _reply(request, pk, {"feedback": given.as_event()})


@login_required
@require_GET
@not_found_is_404
def message_list(request: HttpRequest, pk: int) -> HttpResponse:
    """The thread's messages as the page shows them, for the page to swap in."""
    thread = services.thread_of(request.user, pk)
    entries, last_message_id, latest_run = conversation.entries(thread)
    context = {
        "thread": thread,
        "entries": entries,
        "last_message_id": last_message_id or "",
        "latest_run": latest_run,
    }
    return render(request, "assistants_app/_messages.html", context)
