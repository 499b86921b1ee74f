"""Share links' pages: create one from a thread, list and revoke one's own, view a shared
thread, continue it in a thread of one's own. Each view calls one function in sharing.py."""

from functools import wraps

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from . import services, sharing
from .exceptions import ClientError
from .models import Assistant
from .signed_in import login_required
from .views import not_found_is_404


@login_required
@require_POST
@not_found_is_404
def link_create(request: HttpRequest, pk: int) -> HttpResponse:
    """Share the thread as it is now; the new link is shown at the top of the user's links."""
    thread = services.thread_of(request.user, pk)
    try:
        link = sharing.share(request.user, thread)
    except ClientError as error:
        flash.error(request, error.message)
        return redirect("thread-detail", pk=pk)
    who = "Anyone who has it" if settings.SHARE_LINKS_PUBLIC else "Anyone signed in who has it"
    flash.success(
        request,
        f"Link created for “{link.title}”. {who} can read the chat as it is now; "
        "later messages are not shared.",
    )
    return redirect(f"{reverse('shared-links')}#link-{link.pk}")


@login_required
@require_GET
@not_found_is_404
def link_list(request: HttpRequest) -> HttpResponse:
    links = sharing.links_of(request.user)
    return render(
        request,
        "assistants_app/shared_links.html",
        {"links": links, "public": settings.SHARE_LINKS_PUBLIC},
    )


@login_required
@require_POST
@not_found_is_404
def link_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    sharing.revoke(request.user, pk)
    flash.success(request, "Link revoked: it no longer opens.")
    return redirect("shared-links")


def _viewer(view):
    """Signed-in people only, unless SHARE_LINKS_PUBLIC; and whatever the answer, a shared
    page is never indexed, cached, or named to the sites its links lead to."""

    @wraps(view)
    def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.SHARE_LINKS_PUBLIC and not request.user.is_authenticated:
            response = redirect_to_login(request.get_full_path())
        else:
            response = view(request, *args, **kwargs)
        response["X-Robots-Tag"] = "noindex, nofollow"
        # Never to other sites (the token is in the address); "no-referrer" would also make
        # the browser send "Origin: null" with the page's own forms, which CSRF refuses.
        response["Referrer-Policy"] = "same-origin"
        response["Cache-Control"] = "private, no-store"
        return response

    return checked


@_viewer
@require_GET
@not_found_is_404
def shared_thread(request: HttpRequest, token: str) -> HttpResponse:
    link = sharing.find(token)
    context = {
        "link": link,
        "messages_shared": sharing.shared_messages(link),
        "assistant_name": sharing.assistant_name(link),
        "is_owner": request.user.is_authenticated and link.thread.owner_id == request.user.pk,
    }
    if request.user.is_authenticated:
        available = list(Assistant.objects.available_to(request.user))
        context["assistants"] = available
        context["same_assistant"] = any(a.pk == link.thread.assistant_id for a in available)
    return render(request, "assistants_app/shared_thread.html", context)


@_viewer
@login_required
@require_POST
@not_found_is_404
def shared_continue(request: HttpRequest, token: str) -> HttpResponse:
    """Copy the shared messages into a new thread of the viewer's and open it."""
    link = sharing.find(token)
    try:
        thread = sharing.continue_chat(request.user, link, request.POST.get("assistant"))
    except ClientError as error:
        flash.error(request, error.message)
        return redirect("shared-thread", token=token)
    return redirect("thread-detail", pk=thread.pk)
