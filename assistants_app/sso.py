"""Single sign-on with OpenID Connect: mozilla-django-oidc's code flow, configured from the
environment (settings.OIDC_*), on when OIDC_ISSUER is set.

The provider's endpoints come from its discovery document, read once per process when someone
first signs in (never at start-up: a provider that is down must not stop the site). People are
known by the provider's issuer and subject, never by email (a provider may let anyone change
theirs); an account is made at the first sign-in, and its groups, which decide the assistants
it may use, are set from the groups claim at every sign-in. The library checks the ID token's
signature, expiry and nonce; the audience and issuer are checked here (`verify_token`).
"""

import logging
import re
import threading
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest
from django.shortcuts import redirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from .models import SsoIdentity

log = logging.getLogger(__name__)

_discovered: dict[str, dict] = {}
_discovery_lock = threading.Lock()
USERNAME_MAX = 150
GROUP_NAME_MAX = Group._meta.get_field("name").max_length
SIGN_IN_ATTEMPTS = 3


class ProviderUnavailable(Exception):
    """The provider's discovery document could not be read."""


def is_enabled() -> bool:
    return bool(settings.OIDC_ISSUER)


def provider_config() -> dict:
    """The provider's discovery document, fetched once per process and issuer."""
    issuer = settings.OIDC_ISSUER
    with _discovery_lock:
        if issuer not in _discovered:
            _discovered[issuer] = _discover(issuer)
        return _discovered[issuer]


def _discover(issuer: str) -> dict:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        config = response.json()
    except (requests.RequestException, ValueError) as error:
        log.warning("sso: could not read %s (%s)", url, error)
        raise ProviderUnavailable(str(error)) from None
    if config.get("issuer") != issuer:
        # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it came from.
        log.warning("sso: %s names issuer %r, not %r", url, config.get("issuer"), issuer)
        raise ProviderUnavailable("issuer mismatch")
    return config


def forget_provider() -> None:
    """Read the discovery document again at the next sign-in (tests; a changed provider)."""
    with _discovery_lock:
        _discovered.clear()


# --- Accounts from claims ----------------------------------------------------------------


def sign_in(claims: dict):
    """The account of the person the verified `claims` describe, made at their first sign-in,
    with name, email and groups brought up to date."""
    for attempt in range(SIGN_IN_ATTEMPTS):
        try:
            with transaction.atomic():
                return _sign_in(claims)
        except IntegrityError:
            # Another sign-in made the same account, username or group at the same moment
            # (two tabs, say): look again, and find theirs.
            if attempt == SIGN_IN_ATTEMPTS - 1:
                raise


def _sign_in(claims: dict):
    issuer, subject = settings.OIDC_ISSUER, str(claims["sub"])
    identity = (
        SsoIdentity.objects.select_for_update()
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    if identity is None:
        # No password: this account signs in through the provider only.
        user = get_user_model().objects.create_user(_free_username(claims))
        identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    user = identity.user
    _update_profile(user, claims)
    if settings.OIDC_GROUPS_CLAIM:
        sync_groups(user, claims.get(settings.OIDC_GROUPS_CLAIM))
    return user


def _free_username(claims: dict) -> str:
    wanted = claims.get("preferred_username") or claims.get("email") or f"user-{claims['sub']}"
    base = re.sub(r"[^\w.@+-]", "-", str(wanted))[: USERNAME_MAX - 4] or "user"
    taken = get_user_model().objects.filter(username__istartswith=base)
    names = {name.lower() for name in taken.values_list("username", flat=True)}
    candidate, number = base, 1
    while candidate.lower() in names:
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def _update_profile(user, claims: dict) -> None:
    fields = {
        "email": claims.get("email") or "",
        "first_name": (claims.get("given_name") or "")[:150],
        "last_name": (claims.get("family_name") or "")[:150],
    }
    changed = [name for name, value in fields.items() if getattr(user, name) != value]
    for name in changed:
        setattr(user, name, fields[name])
    if changed:
        user.save(update_fields=changed)


def sync_groups(user, claim) -> None:
    """Make the user's groups exactly those the claim names (created if new, so staff can
    open assistants to them); a missing claim means no groups."""
    if isinstance(claim, str):
        claim = [claim]
    if not isinstance(claim, list):
        claim = []
    names = {name for name in claim if isinstance(name, str) and 0 < len(name) <= GROUP_NAME_MAX}
    if len(names) < len(claim):
        log.warning("sso: ignored group names in the claim of user %s", user.pk)
    groups = [Group.objects.get_or_create(name=name)[0] for name in sorted(names)]
    if set(user.groups.all()) != set(groups):
        user.groups.set(groups)


# --- mozilla-django-oidc, fed from the discovery document -----------------------------


class SsoBackend(OIDCAuthenticationBackend):
    """The library's backend without its settings for endpoints (they are discovered) and
    without its email matching (people are known by subject)."""

    def __init__(self, *args, **kwargs):
        # No network here: Django builds a backend for every request that reads a session.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None

    @property
    def OIDC_OP_TOKEN_ENDPOINT(self) -> str:  # noqa: N802 (the library's name)
        return provider_config()["token_endpoint"]

    @property
    def OIDC_OP_USER_ENDPOINT(self) -> str:  # noqa: N802
        return provider_config().get("userinfo_endpoint", "")

    @property
    def OIDC_OP_JWKS_ENDPOINT(self) -> str:  # noqa: N802
        return provider_config()["jwks_uri"]

    def authenticate(self, request, **kwargs):
        # Only the callback view passes a nonce: a password login never reaches the provider.
        if not is_enabled() or "nonce" not in kwargs:
            return None
        try:
            return super().authenticate(request, **kwargs)
        except (SuspiciousOperation, ProviderUnavailable, requests.RequestException) as error:
            log.warning("sso: sign-in refused: %s", error)
            return None

    def verify_token(self, token, **kwargs):
        claims = super().verify_token(token, **kwargs)
        if "nonce" in kwargs:  # the ID token; a signed userinfo answer is checked without one
            check_audience_and_issuer(claims)
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            userinfo = self.get_userinfo(access_token, id_token, payload)
            if str(userinfo.get("sub")) != str(payload["sub"]):
                # OpenID Connect Core 1.0, 5.3.2: userinfo of someone else is refused.
                raise SuspiciousOperation("userinfo is about another subject")
            claims.update(userinfo)
        return sign_in(claims)


def check_audience_and_issuer(claims: dict) -> None:
    """OpenID Connect Core 1.0, 3.1.3.7: the token was issued by our provider, for us."""
    if claims.get("iss") != settings.OIDC_ISSUER:
        raise SuspiciousOperation(f"ID token from another issuer: {claims.get('iss')!r}")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if settings.OIDC_RP_CLIENT_ID not in audiences:
        raise SuspiciousOperation(f"ID token for another audience: {audience!r}")
    if len(audiences) > 1 and claims.get("azp") != settings.OIDC_RP_CLIENT_ID:
        raise SuspiciousOperation("ID token authorised for another party")


class StartSignIn(OIDCAuthenticationRequestView):
    """Sends the browser to the provider's sign-in page."""

    def __init__(self, *args, **kwargs):
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID  # endpoint: looked up in get()

    def get(self, request):
        if not is_enabled():
            raise Http404("Single sign-on is off")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider_config()["authorization_endpoint"]
        except (ProviderUnavailable, KeyError):
            return redirect(f"{reverse('login')}?sso=unavailable")
        return super().get(request)


class FinishSignIn(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back; a refused sign-in goes back to the login
    page, which says so."""

    def get(self, request):
        if not is_enabled():
            raise Http404("Single sign-on is off")
        try:
            return super().get(request)
        except SuspiciousOperation as error:  # a state this browser never asked for
            log.warning("sso: callback refused: %s", error)
            return self.login_failure()

    def login_success(self):
        response = super().login_success()
        # Groups are read at sign-in: a session that ends brings the next sign-in, and with it
        # what the provider says now.
        if settings.OIDC_SESSION_SECONDS:
            self.request.session.set_expiry(settings.OIDC_SESSION_SECONDS)
        return response


def provider_logout_url(request: HttpRequest) -> str | None:
    """Where to send the browser so the provider's session ends too (RP-Initiated Logout),
    if this session came from the provider and it has an end_session_endpoint."""
    id_token = request.session.get("oidc_id_token")
    if not (is_enabled() and id_token):
        return None
    try:
        endpoint = provider_config().get("end_session_endpoint")
    except ProviderUnavailable:
        return None
    if not endpoint:
        return None
    query = {
        "id_token_hint": id_token,
        "client_id": settings.OIDC_RP_CLIENT_ID,
        "post_logout_redirect_uri": request.build_absolute_uri(reverse("login")),
    }
    return f"{endpoint}?{urlencode(query)}"
