"""Logging in and signing up: Django's views with a throttle against password guessing.

Failed logins are counted per username and address (a guesser locks out only their own
attempts at that account, not its owner elsewhere) and per address alone (one address trying
many usernames). Each attempt takes its place in the counts before its password is checked and
gives it back only when the password was right, so parallel guesses are checked at most up to
the limit; past it the password is not even checked. Password checks are slow on purpose and
hold a database connection, so a process runs only LOGINS_AT_ONCE of them at a time: a burst
of logins waits its turn (or is told the site is busy) instead of emptying the pool.
Sign-up is off unless SIGNUP_ENABLED; when on, it is throttled per address, since every
account gets its own fair-use budget. There is no password reset: the site sends no mail;
staff reset passwords.
With single sign-on (sso.py) the login page offers the provider's sign-in as well, or alone
when LOCAL_LOGIN_ENABLED is off; logging out then ends the provider's session too.
"""

import threading

from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET, require_http_methods
from django.views.generic.edit import CreateView

from . import limits, personal_data, sso
from .exceptions import ClientError
from .signed_in import login_required

# One address may try this many times the per-account limit of failures (shared NATs).
ADDRESS_FACTOR = 10
SIGNUPS_PER_ADDRESS_PER_HOUR = 5
# How long a login waits for its turn at the password check before the site says it is busy.
LOGIN_WAIT_SECONDS = 10
BUSY_MESSAGE = "Many people are logging in right now. Try again in a few seconds."
SSO_PROBLEMS = {
    "failed": "Signing in with {name} did not complete. Try again.",
    "unavailable": "{name} can't be reached right now. Try again in a minute.",
}
_password_checks = threading.BoundedSemaphore(settings.LOGINS_AT_ONCE)


class LoginThrottle:
    def __init__(self, request: HttpRequest):
        address = request.META.get("REMOTE_ADDR", "")
        username = request.POST.get("username", "").strip().lower()
        limit = settings.LOGIN_FAILURES_LIMIT
        self.window = settings.LOGIN_LOCKOUT_SECONDS
        self.counters = [
            (f"login:{limits.private_name(username, address)}", limit),
            (f"login:{limits.private_name(address)}", limit * ADDRESS_FACTOR),
        ]

    def reserve(self) -> bool:
        """Count this attempt as a failure before its password is checked; False (counting
        nothing) when that would pass a limit. Counting first is what holds against parallel
        guesses: each attempt takes a numbered place atomically, and only the first ones fit."""
        self.reserved = []
        for name, limit in self.counters:
            place = limits.reserve_in_window(name, self.window, limit)
            if place is None:
                self.give_back()
                return False
            self.reserved.append(place)
        return True

    def give_back(self) -> None:
        """Undo the reservation: the password was right, or it was never checked."""
        for place in self.reserved:
            limits.give_back(place)
        self.reserved = []

    def message(self) -> str:
        minutes = -(-limits.seconds_left_in_window(self.window) // 60)
        return f"Too many failed logins. Try again in {minutes} minute{'s' * (minutes != 1)}."


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs):
        problem = SSO_PROBLEMS.get(self.request.GET.get("sso", ""), "")
        return super().get_context_data(
            signup_enabled=settings.SIGNUP_ENABLED and settings.LOCAL_LOGIN_ENABLED,
            local_login=settings.LOCAL_LOGIN_ENABLED,
            sso_enabled=sso.is_enabled(),
            sso_name=settings.OIDC_PROVIDER_NAME,
            sso_problem=problem.format(name=settings.OIDC_PROVIDER_NAME),
            **kwargs,
        )

    def post(self, request, *args, **kwargs):
        if not settings.LOCAL_LOGIN_ENABLED:
            name = settings.OIDC_PROVIDER_NAME
            return self._refuse(f"Password login is off here: sign in with {name}.", status=403)
        self.throttle = LoginThrottle(request)
        if not self.throttle.reserve():
            return self._refuse(self.throttle.message(), status=429)
        if not _password_checks.acquire(timeout=LOGIN_WAIT_SECONDS):
            self.throttle.give_back()
            response = self._refuse(BUSY_MESSAGE, status=503)
            response["Retry-After"] = "5"
            return response
        try:
            return super().post(request, *args, **kwargs)
        finally:
            _password_checks.release()

    def form_valid(self, form):
        self.throttle.give_back()  # the right password is not a failed login
        return super().form_valid(form)

    def _refuse(self, reason: str, status: int) -> HttpResponse:
        # An unbound form: a bound one would check the password when shown.
        form = self.get_form_class()(self.request)
        context = self.get_context_data(form=form, locked_out=reason)
        return self.render_to_response(context, status=status)


class SignupView(CreateView):
    """Open only when SIGNUP_ENABLED; new accounts are plain users with no groups."""

    form_class = UserCreationForm
    template_name = "registration/signup.html"
    success_url = reverse_lazy("thread-list")

    def dispatch(self, request, *args, **kwargs):
        if not (settings.SIGNUP_ENABLED and settings.LOCAL_LOGIN_ENABLED):
            raise Http404("Sign-up is off")
        if request.user.is_authenticated:
            return redirect(self.success_url)
        return super().dispatch(request, *args, **kwargs)

    def post(self, request, *args, **kwargs) -> HttpResponse:
        address = limits.private_name(request.META.get("REMOTE_ADDR", ""))
        if limits.count_in_window(f"signup:{address}", 3600) > SIGNUPS_PER_ADDRESS_PER_HOUR:
            self.object = None
            context = self.get_context_data(
                form=self.get_form(), locked_out="Too many sign-ups from here. Try later."
            )
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        login(self.request, self.object, backend="django.contrib.auth.backends.ModelBackend")
        return response


class LogoutView(auth_views.LogoutView):
    """Django's logout; a session that came from the provider is then sent to the provider's
    end_session_endpoint, so that its session ends too and the next sign-in asks again."""

    def post(self, request, *args, **kwargs):
        provider_logout = sso.provider_logout_url(request)
        response = super().post(request, *args, **kwargs)
        return redirect(provider_logout) if provider_logout else response


# --- The account page: who you are here, your data to download or delete ----------------


@login_required
@require_GET
def account(request: HttpRequest) -> HttpResponse:
    context = {
        "groups": sorted(request.user.groups.values_list("name", flat=True)),
        "via_sso": hasattr(request.user, "sso_identity"),
        "sso_name": settings.OIDC_PROVIDER_NAME,
        "data": personal_data.summary(request.user),
    }
    return render(request, "registration/account.html", context)


@login_required
@require_GET
def account_export(request: HttpRequest) -> FileResponse:
    archive = personal_data.export_archive(request.user)
    name = personal_data.archive_name(request.user)
    return FileResponse(archive, as_attachment=True, filename=name, content_type="application/zip")


@login_required
@require_http_methods(["GET", "POST"])
def account_delete_data(request: HttpRequest) -> HttpResponse:
    """GET: say what goes and what stays. POST: delete, once the username is typed."""
    context = {"data": personal_data.summary(request.user)}
    if request.method == "POST":
        if request.POST.get("confirm", "").strip() != request.user.get_username():
            context["problem"] = "Type your username exactly to confirm."
            return render(request, "registration/account_delete.html", context, status=400)
        try:
            count = personal_data.delete_all(request.user)
        except ClientError as error:
            context["problem"] = error.message
            return render(request, "registration/account_delete.html", context, status=409)
        flash.success(request, f"Deleted all your data: {count} chat{'s' * (count != 1)}.")
        return redirect("account")
    return render(request, "registration/account_delete.html", context)
