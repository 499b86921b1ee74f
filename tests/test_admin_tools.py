"""Staff register MCP servers in admin and see their status and tools; each assistant gets
an allow-list of tools, each running freely or asking the user first."""

import sys

import pytest
from django.urls import reverse

from assistants_app import mcp_client
from assistants_app.tool_models import AssistantTool, McpServer

from .live import free_port

pytestmark = pytest.mark.django_db(transaction=True)

ADD_URL = reverse("admin:assistants_app_mcpserver_add")


def server_form(**changes) -> dict:
    data = {
        "name": "time", "transport": "stdio", "is_active": "on", "url": "",
        "header_env": "{}", "command": sys.executable, "args": '["-m", "mcp_server_time"]',
    }  # fmt: skip
    return {**data, **changes}


def test_a_stdio_server_is_checked_on_save_and_its_tools_shown(staff_client):
    response = staff_client.post(ADD_URL, server_form(), follow=True)
    assert "Time: 2 tools listed." in response.content.decode()
    server = McpServer.objects.get(name="time")
    assert server.status == "ok"
    assert [t["name"] for t in server.tools] == ["get_current_time", "convert_time"]
    page = staff_client.get(reverse("admin:assistants_app_mcpserver_change", args=[server.pk]))
    assert "<code>time__get_current_time</code>: Get current time" in page.content.decode()


def test_a_program_the_operator_has_not_allowed_is_refused_in_admin(staff_client, settings):
    """A stdio server runs a program on the site's machine: admin rights alone cannot add one."""
    settings.MCP_STDIO_COMMANDS = []
    response = staff_client.post(ADD_URL, server_form())
    assert response.status_code == 200  # the form again, with the reason
    assert "Local commands are off on this site" in response.content.decode()
    assert not McpServer.objects.exists()


async def test_a_stored_server_whose_program_is_not_allowed_runs_nothing(settings, tmp_path):
    """A row written past admin (the shell, an old allow-list) starts nothing either."""
    settings.MCP_STDIO_COMMANDS = []
    witness = tmp_path / "ran"
    server = McpServer(name="sneaky", transport="stdio", command=sys.executable,
                       args=["-c", f"open({str(witness)!r}, 'w')"])  # fmt: skip
    with pytest.raises(mcp_client.McpFailure, match="MCP_STDIO_COMMANDS"):
        await mcp_client.list_tools(server)
    assert not witness.exists()


def test_a_server_that_is_down_is_shown_unreachable_in_words(staff_client):
    url = f"http://127.0.0.1:{free_port()}/mcp"
    form = server_form(name="web", transport="http", url=url, command="", args="[]")
    response = staff_client.post(ADD_URL, form, follow=True)
    server = McpServer.objects.get(name="web")
    assert server.status == "unreachable" and server.tools == []
    assert "The server web cannot be reached" in response.content.decode()
    listing = staff_client.get(reverse("admin:assistants_app_mcpserver_changelist"))
    assert "unreachable" in listing.content.decode()


def test_header_values_stay_in_the_environment(staff_client):
    url = f"http://127.0.0.1:{free_port()}/mcp"
    form = server_form(name="web", transport="http", url=url, command="", args="[]",
                       header_env='{"Authorization": "TOOLS_AUTH"}')  # fmt: skip
    staff_client.post(ADD_URL, form, follow=True)
    server = McpServer.objects.get(name="web")
    assert server.header_env == {"Authorization": "TOOLS_AUTH"}  # a name, never a value
    assert "Environment variable not set: TOOLS_AUTH." in server.status_message


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "Bad Name!"}, "name"),
        ({"transport": "http", "url": ""}, "url"),
        ({"command": ""}, "command"),
        ({"header_env": '{"Authorization": "sk-live-123 secret"}'}, "header_env"),
    ],
)
def test_it_refuses_a_server_it_could_not_use(staff_client, changes, field):
    response = staff_client.post(ADD_URL, server_form(**changes))
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not McpServer.objects.exists()


def test_an_assistant_gets_an_allow_list_with_approval_per_tool(staff_client, assistant):
    McpServer.objects.create(
        name="time", transport="stdio", command="x", status="ok",
        tools=[{"name": "get_current_time", "description": "Now.", "input_schema": {}}],
    )  # fmt: skip
    url = reverse("admin:assistants_app_assistant_change", args=[assistant.pk])
    page = staff_client.get(url).content.decode()
    assert "time__get_current_time (MCP: time)" in page and "current_datetime (built in)" in page
    response = staff_client.post(url, {
        "name": assistant.name, "instructions": "", "is_active": "on", "engine": "responses",
        "provider": "test", "model": "gpt-test", "temperature": "",
        "allowed_tools-TOTAL_FORMS": "2", "allowed_tools-INITIAL_FORMS": "0",
        "allowed_tools-0-tool": "time__get_current_time", "allowed_tools-0-approval": "ask",
        "allowed_tools-1-tool": "current_datetime", "allowed_tools-1-approval": "free",
    })  # fmt: skip
    assert response.status_code == 302
    rows = AssistantTool.objects.filter(assistant=assistant).values_list("tool", "approval")
    assert sorted(rows) == [("current_datetime", "free"), ("time__get_current_time", "ask")]


def test_mcp_servers_are_for_staff_only(alice_client):
    assert alice_client.get(ADD_URL).status_code == 302  # to the admin login


def test_a_form_without_the_allow_list_leaves_it_as_it_is(staff_client, assistant):
    AssistantTool.objects.create(assistant=assistant, tool="current_datetime", approval="ask")
    url = reverse("admin:assistants_app_assistant_change", args=[assistant.pk])
    response = staff_client.post(url, {
        "name": "Renamed", "instructions": "", "is_active": "on", "engine": "responses",
        "provider": "test", "model": "gpt-test", "temperature": "",
    })  # fmt: skip
    assert response.status_code == 302
    assert assistant.allowed_tools.get().approval == "ask"
