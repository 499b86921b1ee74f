"""The function tools registry and the two tools it ships."""

import json
from datetime import datetime, timedelta

import pytest

from assistants_app import tools
from assistants_app.exceptions import UnknownTool
from assistants_app.models import Message, Run, Thread


def write(thread: Thread, text: str, role: str = Message.Role.USER) -> Message:
    return Message.objects.create(thread=thread, role=role, text=text)


def test_it_describes_registered_tools_as_function_definitions():
    [definition] = tools.definitions(["current_datetime", "no_such_tool"])
    assert definition["type"] == "function"
    assert definition["function"]["name"] == "current_datetime"
    assert definition["function"]["description"]
    assert definition["function"]["parameters"]["type"] == "object"


def test_it_offers_every_registered_tool_as_a_choice():
    assert [name for name, _ in tools.choices()] == ["current_datetime", "search_my_messages"]


def test_it_gives_the_current_time_in_a_time_zone(alice):
    result = tools.current_datetime(alice, timezone="Asia/Kolkata")
    moment = datetime.fromisoformat(result["datetime"])
    assert moment.utcoffset() == timedelta(hours=5, minutes=30)
    assert abs(moment - datetime.now(moment.tzinfo)) < timedelta(minutes=1)
    assert result["weekday"] == moment.strftime("%A")


def test_it_refuses_an_unknown_time_zone(alice):
    with pytest.raises(ValueError, match="Unknown time zone"):
        tools.current_datetime(alice, timezone="Mars/Olympus_Mons")


def test_it_searches_only_the_asking_users_own_messages(alice_thread, bob_thread):
    write(alice_thread, "Where can I get pizza in Naples?")
    write(alice_thread, "Pizza places near me", role=Message.Role.ASSISTANT)
    write(bob_thread, "Bob's secret pizza recipe")

    found = tools.search_my_messages(alice_thread.owner, query="PIZZA")

    assert [hit["text"] for hit in found] == ["Where can I get pizza in Naples?"]
    assert found[0]["thread"] == str(alice_thread)


def test_it_lists_the_newest_matches_first_up_to_the_limit(alice, alice_thread):
    for number in range(4):
        write(alice_thread, f"note {number}")
    found = tools.search_my_messages(alice, query="note", limit=2)
    assert [hit["text"] for hit in found] == ["note 3", "note 2"]


def test_it_leaves_out_the_message_being_answered(alice, alice_thread):
    write(alice_thread, "I like pizza")
    asking = write(alice_thread, "Search my messages for pizza")
    Run.objects.create(thread=alice_thread, prompt=asking)
    found = tools.search_my_messages(alice, query="pizza")
    assert [hit["text"] for hit in found] == ["I like pizza"]


@pytest.mark.django_db(transaction=True)
async def test_it_calls_an_enabled_tool_for_the_user(alice, alice_thread):
    await Message.objects.acreate(thread=alice_thread, role="user", text="Tea or coffee?")
    output = await tools.call(alice, ["search_my_messages"], "search_my_messages",
                              '{"query": "coffee"}')  # fmt: skip
    assert [hit["text"] for hit in json.loads(output)] == ["Tea or coffee?"]


@pytest.mark.django_db(transaction=True)
async def test_it_never_lets_the_model_choose_whose_messages_to_search(alice, bob, bob_thread):
    await Message.objects.acreate(thread=bob_thread, role="user", text="Bob's pizza secret")
    arguments = json.dumps({"query": "pizza", "user": bob.pk})
    output = await tools.call(alice, ["search_my_messages"], "search_my_messages", arguments)
    assert "multiple values for argument 'user'" in json.loads(output)["error"]
    assert "secret" not in output


@pytest.mark.parametrize(
    ("enabled", "name"),
    [(["current_datetime"], "format_disk"), (["current_datetime"], "search_my_messages")],
)
async def test_it_refuses_a_tool_that_is_unknown_or_not_enabled(alice, enabled, name):
    with pytest.raises(UnknownTool, match=name):
        await tools.call(alice, enabled, name, "{}")


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ("[1, 2]", "TypeError: arguments must be a JSON object"),
        ('{"zone": "UTC"}', "TypeError: current_datetime() got an unexpected keyword argument"),
    ],
)
async def test_it_turns_a_failing_call_into_an_error_output(alice, arguments, error):
    output = await tools.call(alice, ["current_datetime"], "current_datetime", arguments)
    assert json.loads(output)["error"].startswith(error)
