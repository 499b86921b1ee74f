"""Every admin page checks its permission: staff without it get 403, whatever the page, the
custom ones (usage report, provider status) included; actions that change assistants need
the permission to change them."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from assistants_app.models import Assistant

STANDARD_VIEWS = ("changelist", "add", "history", "delete", "change", "autocomplete")


@pytest.fixture
def dave(django_user_model):
    """Staff, with no permission at all: he sees admin's index and nothing in it."""
    return django_user_model.objects.create_user("dave", password="dave-password", is_staff=True)


@pytest.fixture
def dave_client(dave):
    client = Client()
    client.force_login(dave)
    return client


def custom_admin_urls() -> list[str]:
    """Every page a ModelAdmin adds of its own (no arguments), and every change list (which
    a ModelAdmin may replace with a page of its own, like the usage report)."""
    urls = []
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        for pattern in model_admin.get_urls():
            name = pattern.name or ""
            standard = any(name.endswith(f"_{view}") for view in STANDARD_VIEWS)
            if name and not standard and not pattern.pattern.regex.groups:
                urls.append(reverse(f"admin:{name}"))
    return urls


def test_it_finds_the_custom_pages():
    urls = custom_admin_urls()
    assert reverse("admin:assistants_app_usagereport_changelist") in urls
    assert reverse("admin:assistants_app_provider_status") in urls


@pytest.mark.parametrize("url", custom_admin_urls())
def test_staff_without_the_permission_get_403(dave_client, url):
    assert dave_client.get(url).status_code == 403, url


def test_the_usage_report_opens_with_its_view_permission(dave, dave_client):
    dave.user_permissions.add(Permission.objects.get(codename="view_usagereport"))
    response = dave_client.get(reverse("admin:assistants_app_usagereport_changelist"))
    assert response.status_code == 200 and b"Per user" in response.content


def test_staff_who_may_only_view_assistants_cannot_deactivate_them(dave, dave_client, assistant):
    dave.user_permissions.add(Permission.objects.get(codename="view_assistant"))
    url = reverse("admin:assistants_app_assistant_changelist")
    page = dave_client.get(url)
    assert page.status_code == 200 and b"Deactivate selected" not in page.content

    dave_client.post(url, {"action": "deactivate", "_selected_action": [assistant.pk]})

    assert Assistant.objects.get(pk=assistant.pk).is_active
