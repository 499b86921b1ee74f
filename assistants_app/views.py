"""Chat pages and the message endpoint. Each view loads what it needs scoped to the user
and calls one function in services.py."""

import json

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import services
from .exceptions import ClientError, InvalidInput
from .models import Assistant, Thread


@login_required
@require_GET
def thread_list(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    threads = services.list_threads(request.user, query)
    assistants = Assistant.objects.available_to(request.user)
    return render(
        request,
        "assistants_app/thread_list.html",
        {"threads": threads, "assistants": assistants, "query": query},
    )


@login_required
@require_POST
def thread_create(request: HttpRequest) -> HttpResponse:
    try:
        thread = services.start_thread(request.user, request.POST.get("assistant", ""))
    except ClientError as error:
        return HttpResponseBadRequest(error.message, content_type="text/plain; charset=utf-8")
    return redirect("thread-detail", pk=thread.pk)


@login_required
@require_GET
def thread_detail(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _my_thread(request, pk)
    messages = list(thread.messages.all())
    return render(
        request,
        "assistants_app/thread_detail.html",
        {
            "thread": thread,
            "messages": messages,
            "last_message_id": messages[-1].pk if messages else "",
            "latest_run": thread.runs.order_by("-pk").first(),
            "max_chars": settings.MESSAGE_MAX_CHARS,
        },
    )


@login_required
@require_POST
async def message_create(request: HttpRequest, pk: int) -> JsonResponse:
    """Store the user's message and start a run. Errors answer {error: {code, message}}."""
    user = await request.auser()
    thread = await _owned_thread(user, pk)
    try:
        message, run = await services.submit_message(user, thread, _text_from(request))
    except ClientError as error:  # a body that is not JSON too
        return _error_response(error)
    # The title too: a thread's first message names it.
    body = {"message": message.as_event(), "run": run.as_event(), "thread": {"title": str(thread)}}
    return JsonResponse(body, status=201)


@login_required
@require_POST
async def run_cancel(request: HttpRequest, pk: int) -> JsonResponse:
    """Stop the thread's active run; its statuses follow over the websocket."""
    user = await request.auser()
    thread = await _owned_thread(user, pk)
    try:
        run = await services.cancel_run(user, thread)
    except ClientError as error:
        return _error_response(error)
    return JsonResponse({"run": run.as_event()})


@login_required
@require_POST
async def run_retry(request: HttpRequest, pk: int) -> JsonResponse:
    """Start a new run for the message the thread's last run did not fully answer."""
    user = await request.auser()
    thread = await _owned_thread(user, pk)
    try:
        run = await services.retry_run(user, thread)
    except ClientError as error:
        return _error_response(error)
    return JsonResponse({"run": run.as_event()}, status=201)


async def _owned_thread(user, pk: int) -> Thread:
    thread = await Thread.objects.select_related("assistant").filter(pk=pk, owner=user).afirst()
    if thread is None:
        raise Http404("No such thread")
    return thread


def _error_response(error: ClientError) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": error.code, "message": error.message}}, status=error.status
    )
    if getattr(error, "retry_after", None):
        response["Retry-After"] = str(error.retry_after)
    return response


def _text_from(request: HttpRequest):
    """The message's text, from a JSON body {"text": ...} or a form; InvalidInput for a body
    that is not JSON (or nests deeper than the parser goes)."""
    if request.content_type != "application/json":
        return request.POST.get("text")
    try:
        data = json.loads(request.body)
    except (ValueError, RecursionError):
        raise InvalidInput(
            "BAD_JSON", 'Send the message as JSON: {"text": "your message"}.'
        ) from None
    return data.get("text") if isinstance(data, dict) else None


@login_required
@require_http_methods(["GET", "POST"])
def thread_rename(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: a page with the rename form (the thread page has it inline too). POST: rename."""
    thread = _my_thread(request, pk)
    if request.method == "POST":
        try:
            services.rename_thread(request.user, thread, request.POST.get("title"))
        except ClientError as error:
            flash.error(request, error.message)
            return redirect("thread-rename", pk=pk)
        flash.success(request, f"Renamed to “{thread.title}”.")
        return redirect("thread-detail", pk=pk)
    return render(request, "assistants_app/thread_rename.html", {"thread": thread})


@login_required
@require_http_methods(["GET", "POST"])
def thread_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: ask for confirmation. POST: delete and go back to the list."""
    thread = _my_thread(request, pk)
    if request.method == "POST":
        try:
            services.delete_thread(request.user, thread)
        except ClientError as error:
            flash.error(request, error.message)
            return redirect("thread-detail", pk=pk)
        flash.success(request, f"Deleted “{thread}”.")
        return redirect("thread-list")
    return render(request, "assistants_app/thread_confirm_delete.html", {"thread": thread})


@login_required
@require_GET
def thread_export_markdown(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _my_thread(request, pk)
    response = HttpResponse(
        services.export_markdown(request.user, thread), content_type="text/markdown; charset=utf-8"
    )
    return _as_download(response, f"thread-{pk}.md")


@login_required
@require_GET
def thread_export_json(request: HttpRequest, pk: int) -> HttpResponse:
    thread = _my_thread(request, pk)
    data = services.export_json(request.user, thread)
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False, "indent": 2})
    return _as_download(response, f"thread-{pk}.json")


def _my_thread(request: HttpRequest, pk: int) -> Thread:
    """The thread, if it is the requesting user's; 404 otherwise (sync views)."""
    return get_object_or_404(Thread.objects.select_related("assistant"), pk=pk, owner=request.user)


def _as_download(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
