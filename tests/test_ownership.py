"""One ownership scope: Thread.objects.owned_by(user), and NotFound from the services for
anything that is not the user's (views answer 404, the socket 4404: test_isolation.py)."""

import inspect

import pytest
from django.http import Http404

from assistants_app import services
from assistants_app.exceptions import NotFound
from assistants_app.models import Thread

pytestmark = pytest.mark.django_db


def test_owned_by_holds_only_the_users_threads(alice, bob, alice_thread, bob_thread):
    assert list(Thread.objects.owned_by(alice)) == [alice_thread]
    assert list(Thread.objects.owned_by(bob)) == [bob_thread]


def test_thread_of_finds_her_thread_with_its_assistant(alice, alice_thread):
    thread = services.thread_of(alice, alice_thread.pk)
    assert thread == alice_thread
    assert "assistant" in thread._state.fields_cache  # loaded: no query when a view reads it


@pytest.mark.parametrize("pk", ["bobs", 99999])
def test_thread_of_someone_elses_or_no_thread_is_not_found(alice, bob_thread, pk):
    pk = bob_thread.pk if pk == "bobs" else pk
    with pytest.raises(NotFound):
        services.thread_of(alice, pk)


@pytest.mark.django_db(transaction=True)
async def test_athread_of_someone_elses_thread_is_not_found(alice, bob_thread):
    with pytest.raises(NotFound):
        await services.athread_of(alice, bob_thread.pk)


@pytest.mark.parametrize(
    "call",
    [
        lambda user, thread: services.rename_thread(user, thread, "Mine now"),
        lambda user, thread: services.delete_thread(user, thread),
        lambda user, thread: services.export_json(user, thread),
        lambda user, thread: services.export_markdown(user, thread),
    ],
)
def test_services_refuse_another_users_thread_with_not_found(alice, bob_thread, call):
    with pytest.raises(NotFound) as refused:
        call(alice, bob_thread)
    assert not isinstance(refused.value, Http404)  # a domain error; the views map it
    bob_thread.refresh_from_db()
    assert bob_thread.title != "Mine now"


@pytest.mark.parametrize(
    "call",
    [
        lambda user, thread: services.submit_message(user, thread, "Hi"),
        lambda user, thread: services.retry_run(user, thread),
        lambda user, thread: services.cancel_run(user, thread),
    ],
)
@pytest.mark.django_db(transaction=True)
async def test_run_services_refuse_another_users_thread_with_not_found(alice, bob_thread, call):
    with pytest.raises(NotFound):
        await call(alice, bob_thread)
    assert not await bob_thread.messages.aexists()


def test_services_raise_no_http_errors():
    assert "Http404" not in inspect.getsource(services)
