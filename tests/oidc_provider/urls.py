"""The provider's URLs: django-oauth-toolkit under /o/, a login page, and the tests' controls."""

import json

from django.contrib.auth import views as auth_views
from django.contrib.auth.models import Group, User
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt
from oauth2_provider.models import get_application_model
from oauth2_provider.oauth2_validators import OAuth2Validator


class GroupsClaimValidator(OAuth2Validator):
    """Sends the user's name, email and groups as claims, as an organisation's provider does."""

    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "groups": "openid"}

    def get_additional_claims(self, request):
        user = request.user
        return {
            "preferred_username": user.username,
            "email": user.email,
            "email_verified": True,
            "name": user.get_full_name(),
            "groups": sorted(user.groups.values_list("name", flat=True)),
        }


@csrf_exempt
def set_user(request):
    """Create or update a user of the provider: {username, password, email, groups}."""
    data = json.loads(request.body)
    user, _ = User.objects.get_or_create(username=data["username"])
    user.set_password(data["password"])
    user.email = data.get("email", "")
    user.save()
    user.groups.set([Group.objects.get_or_create(name=name)[0] for name in data["groups"]])
    return JsonResponse({"sub": str(user.pk)})


@csrf_exempt
def set_client(request):
    """Register a client: {client_id, client_secret, redirect_uris, post_logout_redirect_uris}."""
    data = json.loads(request.body)
    Application = get_application_model()
    Application.objects.filter(client_id=data["client_id"]).delete()
    Application.objects.create(
        name=data["client_id"],
        client_id=data["client_id"],
        client_secret=data["client_secret"],
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(data["redirect_uris"]),
        post_logout_redirect_uris=" ".join(data.get("post_logout_redirect_uris", [])),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,  # an organisation's own app: no consent screen
    )
    return JsonResponse({"ok": True})


def whoami(request):
    """Who is signed in at the provider (to see that logging out of the site ended it)."""
    return JsonResponse({"user": request.user.username if request.user.is_authenticated else None})


urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("test/users/", set_user),
    path("test/clients/", set_client),
    path("test/whoami/", whoami),
]
