"""Logging in and signing up: Django's views with a throttle against password guessing.

Failed logins are counted per username and address (a guesser locks out only their own
attempts at that account, not its owner elsewhere) and per address alone (one address trying
many usernames). While over the limit the password is not even checked. Sign-up is off unless
SIGNUP_ENABLED; when on, it is throttled per address, since every account gets its own
fair-use budget. There is no password reset: the site sends no mail; staff reset passwords.
"""

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.views.generic.edit import CreateView

from . import limits

# One address may try this many times the per-account limit of failures (shared NATs).
ADDRESS_FACTOR = 10
SIGNUPS_PER_ADDRESS_PER_HOUR = 5


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

    def locked(self) -> bool:
        return any(limits.peek_window(key, self.window) >= limit for key, limit in self.counters)

    def failed(self) -> None:
        for key, _ in self.counters:
            limits.count_in_window(key, self.window)

    def message(self) -> str:
        minutes = -(-limits.seconds_left_in_window(self.window) // 60)
        return f"Too many failed logins. Try again in {minutes} minute{'s' * (minutes != 1)}."


class LoginView(auth_views.LoginView):
    def get_context_data(self, **kwargs):
        return super().get_context_data(signup_enabled=settings.SIGNUP_ENABLED, **kwargs)

    def post(self, request, *args, **kwargs):
        self.throttle = LoginThrottle(request)
        if self.throttle.locked():
            # An unbound form: a bound one would check the password when shown.
            form = self.get_form_class()(request)
            context = self.get_context_data(form=form, locked_out=self.throttle.message())
            return self.render_to_response(context, status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        self.throttle.failed()
        return super().form_invalid(form)


class SignupView(CreateView):
    """Open only when SIGNUP_ENABLED; new accounts are plain users with no groups."""

    form_class = UserCreationForm
    template_name = "registration/signup.html"
    success_url = reverse_lazy("thread-list")

    def dispatch(self, request, *args, **kwargs):
        if not settings.SIGNUP_ENABLED:
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
        login(self.request, self.object)
        return response
