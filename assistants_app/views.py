"""Chat pages and the message endpoint. Each view loads what it needs scoped to the user
and calls one function in services.py.

Every view is wrapped in `@not_found_is_404`: a NotFound from services (a thread or an
assistant that is not the user's, or does not exist) is the site's 404 page.
"""

import functools
import inspect
import json

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages as flash
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import conversation, files, services, sidebar
from .exceptions import ClientError, InvalidInput, NotFound
from .models import Assistant, Thread
from .signed_in import login_required


def not_found_is_404(view):
    """The view, answering 404 for NotFound from wherever it comes (sync or async views)."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def answering_404(*args, **kwargs):
            try:
                return await view(*args, **kwargs)
            except NotFound as error:
                raise Http404(str(error)) from None

        return answering_404

    @functools.wraps(view)
    def answering_404_sync(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except NotFound as error:
            raise Http404(str(error)) from None

    return answering_404_sync


@login_required
@require_GET
@not_found_is_404
def thread_list(request: HttpRequest) -> HttpResponse:
    """The new-chat page: the assistant picker and its conversation starters beside the
    sidebar of threads. No thread exists until the first message is sent."""
    return render(request, "assistants_app/chat.html", _chat_context(request, thread=None))


@login_required
@require_GET
@not_found_is_404
def thread_page(request: HttpRequest) -> JsonResponse:
    """A page of the sidebar's threads as data, for live search and loading more."""
    query = request.GET.get("q", "").strip()
    try:
        offset = max(0, int(request.GET.get("offset", 0)))
    except ValueError:
        offset = 0
    threads = services.list_threads(request.user, query)
    return JsonResponse(sidebar.page_of(threads, offset, query))


@login_required
@require_POST
@not_found_is_404
async def thread_create(request: HttpRequest) -> HttpResponse:
    """Start a chat with its first message: the thread, the message and the run at once. The
    page posts JSON and goes to the thread; a form post (no JavaScript) is redirected there."""
    user = await request.auser()
    wants_json = request.content_type == "application/json"
    if not wants_json and "text" not in request.POST:
        # An empty thread, for API clients (and the integration tests); the page never makes
        # one: its new-chat form always carries the first message.
        try:
            thread = await sync_to_async(services.start_thread)(user, request.POST.get("assistant"))
        except ClientError as error:
            return HttpResponseBadRequest(error.message, content_type="text/plain; charset=utf-8")
        return redirect("thread-detail", pk=thread.pk)
    try:
        data = _json_body(request) if wants_json else request.POST
        thread, message, run = await services.start_chat(
            user, data.get("assistant", ""), data.get("text"), _attachments_from(request, data)
        )
    except ClientError as error:
        if wants_json:
            return _error_response(error)
        await _flash_async(request, error.message)
        return redirect("thread-list")
    url = reverse("thread-detail", args=[thread.pk])
    if not wants_json:
        return redirect(url)
    body = {"thread": {"id": thread.pk, "url": url, "title": str(thread)}}
    body.update(message=message.as_event(), run=run.as_event())
    return JsonResponse(body, status=201)


@login_required
@require_GET
@not_found_is_404
def thread_detail(request: HttpRequest, pk: int) -> HttpResponse:
    thread = services.thread_of(request.user, pk)
    return render(request, "assistants_app/chat.html", _chat_context(request, thread))


def _chat_context(request: HttpRequest, thread: Thread | None) -> dict:
    query = request.GET.get("q", "").strip()
    threads = services.list_threads(request.user, query)
    context = {
        "thread": thread,
        "query": query,
        "threads": threads,
        "sidebar": sidebar.page_of(threads, 0, query),
        "max_chars": settings.MESSAGE_MAX_CHARS,
        "file_limits": files.limits(),
        # The page posts a message over its socket when the event fits in one websocket
        # message (static/js/chat.js), and with an HTTP post otherwise.
        "socket_max_bytes": settings.WEBSOCKET_MAX_MESSAGE_BYTES,
    }
    if thread is None:
        assistants = list(Assistant.objects.available_to(request.user))
        last = Thread.objects.owned_by(request.user).filter(assistant__in=assistants).first()
        context.update(
            assistants=assistants,
            chosen=last.assistant if last else (assistants[0] if assistants else None),
        )
        return context
    entries, last_message_id, latest_run = conversation.entries(thread)
    context.update(
        entries=entries,
        last_message_id=last_message_id or "",
        latest_run=latest_run,
        # The thread can go on with any assistant the user may use (its own, even retired).
        assistants=_with(list(Assistant.objects.available_to(request.user)), thread.assistant),
        chosen=thread.assistant,
    )
    return context


def _with(assistants: list[Assistant], assistant: Assistant) -> list[Assistant]:
    return assistants if assistant in assistants else [assistant, *assistants]


@login_required
@require_POST
@not_found_is_404
async def message_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Store the user's message and start a run. Errors answer {error: {code, message}}. A
    browser's own form post (Send pressed before the page's scripts ran, or without them) is
    sent and goes back to the thread, the error, if any, shown there in words."""
    user = await request.auser()
    from_form = request.content_type != "application/json" and "text/html" in request.headers.get(
        "Accept", ""
    )
    try:
        if request.content_type == "application/json":
            try:
                data = _json_body(request)
            except InvalidInput:
                await services.athread_of(user, pk)  # not theirs: a 404, whatever was sent
                raise
        else:
            data = request.POST
        thread, message, run = await services.send_message(
            user, pk, data.get("text"), _attachments_from(request, data)
        )
    except ClientError as error:
        if from_form:
            # Back to the thread, the error shown there (NotFound is no ClientError: a 404).
            await _flash_async(request, error.message)
            return redirect("thread-detail", pk=pk)
        return _error_response(error)
    if from_form:
        return redirect("thread-detail", pk=pk)
    # The title too: a thread's first message names it.
    body = {"message": message.as_event(), "run": run.as_event(), "thread": {"title": str(thread)}}
    return JsonResponse(body, status=201)


@login_required
@require_POST
@not_found_is_404
async def run_cancel(request: HttpRequest, pk: int) -> JsonResponse:
    """Stop the thread's active run; its statuses follow over the websocket."""
    user = await request.auser()
    thread = await services.athread_of(user, pk)
    try:
        run = await services.cancel_run(user, thread)
    except ClientError as error:
        return _error_response(error)
    return JsonResponse({"run": run.as_event()})


@login_required
@require_POST
@not_found_is_404
async def run_retry(request: HttpRequest, pk: int) -> JsonResponse:
    """Start a new run for the message the thread's last run did not fully answer."""
    user = await request.auser()
    thread = await services.athread_of(user, pk)
    try:
        run = await services.retry_run(user, thread)
    except ClientError as error:
        return _error_response(error)
    return JsonResponse({"run": run.as_event()}, status=201)


@login_required
@require_POST
@not_found_is_404
async def tool_call_decide(request: HttpRequest, pk: int, step_id: int, decision: str):
    """Approve or deny a tool call the thread's run waits on; the run goes on by itself."""
    if decision not in ("approve", "deny"):
        raise Http404("No such decision")
    user = await request.auser()
    step = await services.decide_tool_call(user, pk, step_id, decision == "approve")
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"step": step.as_event()})
    return redirect("thread-detail", pk=pk)  # the form, without JavaScript


def _error_response(error: ClientError) -> JsonResponse:
    response = JsonResponse(
        {"error": {"code": error.code, "message": error.message}}, status=error.status
    )
    if getattr(error, "retry_after", None):
        response["Retry-After"] = str(error.retry_after)
    return response


def _text_from(request: HttpRequest):
    """The message's text, from a JSON body {"text": ...} or a form."""
    if request.content_type == "application/json":
        return _json_body(request).get("text")
    return request.POST.get("text")


def _attachments_from(request: HttpRequest, data) -> list:
    """The ids of the files sent with a message: JSON {"attachments": [...]}, or form fields."""
    if request.content_type == "application/json":
        return data.get("attachments") or []
    return request.POST.getlist("attachments")


def _json_body(request: HttpRequest) -> dict:
    """A JSON body's fields ({} for JSON that is not an object); InvalidInput for a body that
    is not JSON (or nests deeper than the parser goes)."""
    try:
        body = json.loads(request.body)
    except (ValueError, RecursionError):
        raise InvalidInput(
            "BAD_JSON", 'Send the message as JSON, such as {"text": "your message"}.'
        ) from None
    return body if isinstance(body, dict) else {}


async def _flash_async(request: HttpRequest, text: str) -> None:
    await sync_to_async(flash.error)(request, text)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_http_methods(["GET", "POST"])
@not_found_is_404
def thread_rename(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: a page with the rename form (the thread page has it inline too). POST: rename."""
    thread = services.thread_of(request.user, pk)
    if request.method == "POST":
        try:
            services.rename_thread(request.user, thread, request.POST.get("title"))
        except ClientError as error:
            if _wants_json(request):
                return _error_response(error)
            flash.error(request, error.message)
            return redirect("thread-rename", pk=pk)
        if _wants_json(request):
            return JsonResponse({"thread": {"id": thread.pk, "title": str(thread)}})
        flash.success(request, f"Renamed to “{thread.title}”.")
        return redirect("thread-detail", pk=pk)
    return render(request, "assistants_app/thread_rename.html", {"thread": thread})


@login_required
@require_http_methods(["GET", "POST"])
@not_found_is_404
def thread_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: ask for confirmation. POST: delete and go back to the list."""
    thread = services.thread_of(request.user, pk)
    if request.method == "POST":
        try:
            services.delete_thread(request.user, thread)
        except ClientError as error:
            if _wants_json(request):
                return _error_response(error)
            flash.error(request, error.message)
            return redirect("thread-detail", pk=pk)
        if _wants_json(request):
            return JsonResponse({"deleted": pk})
        flash.success(request, f"Deleted “{thread}”.")
        return redirect("thread-list")
    return render(request, "assistants_app/thread_confirm_delete.html", {"thread": thread})


@login_required
@require_GET
@not_found_is_404
def thread_export_markdown(request: HttpRequest, pk: int) -> HttpResponse:
    thread = services.thread_of(request.user, pk)
    response = HttpResponse(
        services.export_markdown(request.user, thread), content_type="text/markdown; charset=utf-8"
    )
    return _as_download(response, _filename(thread, "md"))


@login_required
@require_GET
@not_found_is_404
def thread_export_json(request: HttpRequest, pk: int) -> HttpResponse:
    thread = services.thread_of(request.user, pk)
    data = services.export_json(request.user, thread)
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False, "indent": 2})
    return _as_download(response, _filename(thread, "json"))


def _filename(thread: Thread, extension: str) -> str:
    """Named after the thread, so a folder of exports is readable: "planning-a-garden.md"."""
    return f"{slugify(str(thread))[:80].strip('-') or f'thread-{thread.pk}'}.{extension}"


def _as_download(response: HttpResponse, filename: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
