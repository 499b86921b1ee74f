from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from assistants_app import accounts, sso

urlpatterns = [
    # Staff log in through the site's throttled login page too, not admin's own form.
    path("admin/login/", RedirectView.as_view(pattern_name="login", query_string=True)),
    path("admin/", admin.site.urls),
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", accounts.LogoutView.as_view(), name="logout"),
    path("oidc/authenticate/", sso.StartSignIn.as_view(), name="sso-start"),
    path("oidc/callback/", sso.FinishSignIn.as_view(), name="sso-callback"),
    path("signup/", accounts.SignupView.as_view(), name="signup"),
    path("account/", accounts.account, name="account"),
    path("account/export.zip", accounts.account_export, name="account-export"),
    path("account/delete/", accounts.account_delete_data, name="account-delete-data"),
    path("", include("assistants_app.urls")),
]
