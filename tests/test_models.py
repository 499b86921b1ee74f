import pytest
from django.db import IntegrityError

from assistants_app.models import Assistant, Message, Run, RunStatus, Thread

pytestmark = pytest.mark.django_db


def test_terminal_statuses_are_the_five_final_ones():
    terminal = {s for s in RunStatus if Run(status=s).is_terminal}
    assert terminal == {"cancelled", "failed", "completed", "incomplete", "expired"}


def test_a_thread_can_have_only_one_active_run(alice_thread):
    Run.objects.create(thread=alice_thread, status=RunStatus.IN_PROGRESS)
    with pytest.raises(IntegrityError):
        Run.objects.create(thread=alice_thread, status=RunStatus.QUEUED)


def test_finished_runs_do_not_block_a_new_one(alice_thread):
    Run.objects.create(thread=alice_thread, status=RunStatus.COMPLETED)
    Run.objects.create(thread=alice_thread, status=RunStatus.FAILED)
    assert Run.objects.create(thread=alice_thread).status == RunStatus.QUEUED


def test_a_provider_message_is_stored_once_per_thread(alice_thread, bob_thread):
    Message.objects.create(thread=alice_thread, role="assistant", text="hi", remote_id="msg_1")
    Message.objects.create(thread=bob_thread, role="assistant", text="hi", remote_id="msg_1")
    with pytest.raises(IntegrityError):
        Message.objects.create(thread=alice_thread, role="assistant", text="hi", remote_id="msg_1")


def test_messages_without_provider_ids_do_not_collide(alice_thread):
    Message.objects.create(thread=alice_thread, role="user", text="one")
    Message.objects.create(thread=alice_thread, role="user", text="two")
    assert alice_thread.messages.count() == 2


def test_the_group_name_is_per_thread(alice_thread):
    assert alice_thread.group_name == f"thread.{alice_thread.pk}"


def test_message_html_is_rendered_and_sanitised(alice_thread):
    message = Message(thread=alice_thread, role="assistant", text="**hi** <script>x</script>")
    assert "<strong>hi</strong>" in message.html
    assert "<script>" not in message.html


def test_assistants_available_to_a_user_follow_groups(alice, bob, assistant):
    from django.contrib.auth.models import Group

    staff_only = Assistant.objects.create(name="Staff", model="m", provider="test")
    group = Group.objects.create(name="staff")
    staff_only.groups.add(group)
    alice.groups.add(group)
    Assistant.objects.create(name="Retired", model="m", provider="test", is_active=False)

    assert set(Assistant.objects.available_to(alice)) == {assistant, staff_only}
    assert set(Assistant.objects.available_to(bob)) == {assistant}


def test_a_thread_belongs_to_its_owner(alice, alice_thread):
    assert Thread.objects.get(pk=alice_thread.pk).owner == alice
