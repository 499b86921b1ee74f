"""What an answer costs the database: the queries of sending a message and driving its run
to the stored answer. Every query is a round trip and about a millisecond of the process's
CPU (BENCHMARKS.md, "Cost per answer"); this fails when a change adds them unnoticed."""

import itertools

import httpx
import pytest
import respx
from django.db.backends.utils import CursorWrapper

from assistants_app import runs, services
from assistants_app.models import Message, RunStatus

from .conftest import PROVIDER_URL
from .provider_payloads import conversation, response

pytestmark = pytest.mark.django_db(transaction=True)

# Statements of a follow-up on SQLite, with the fair-use limits on: 54 before "Cost per
# answer" (BENCHMARKS.md), 39 when this test was written, 37, then 31 with staff's settings
# kept per process (config_cache.py) and no lock of the user's row where SQLite has none.
FOLLOW_UP_BUDGET = 31


@pytest.fixture
def queries(monkeypatch):
    """Every SQL statement any thread runs (the driver's database threads included)."""
    statements: list[str] = []
    execute, executemany = CursorWrapper.execute, CursorWrapper.executemany

    def counted(self, sql, *args, **kwargs):
        statements.append(sql)
        return execute(self, sql, *args, **kwargs)

    def counted_many(self, sql, *args, **kwargs):
        statements.append(sql)
        return executemany(self, sql, *args, **kwargs)

    monkeypatch.setattr(CursorWrapper, "execute", counted)
    monkeypatch.setattr(CursorWrapper, "executemany", counted_many)
    return statements


async def ask(alice, thread, text: str, queries: list[str]) -> int:
    """Send a message and drive its run to its end: the statements that took."""
    queries.clear()
    _, run = await services.submit_message(alice, thread, text)
    await runs.drive(run.pk)
    taken = len(queries)
    await run.arefresh_from_db()
    assert run.status == RunStatus.COMPLETED
    return taken


async def test_a_follow_up_answer_takes_a_bounded_number_of_queries(alice, alice_thread, queries):
    created = itertools.count(1)

    def create(request):
        return httpx.Response(200, json={**response("queued"), "id": f"resp_{next(created)}"})

    def retrieve(request):
        response_id = request.url.path.rsplit("/", 1)[-1]
        answer = response("completed", text="Hi!")
        answer["output"][0]["id"] = f"msg_{response_id}"
        return httpx.Response(200, json={**answer, "id": response_id})

    with respx.mock(using="httpx", base_url=PROVIDER_URL) as provider:
        provider.post("/conversations").respond(json=conversation())
        provider.post("/responses").mock(side_effect=create)
        provider.get(url__regex=r"/responses/resp_\d+$").mock(side_effect=retrieve)
        await ask(alice, alice_thread, "Hello", queries)  # the first makes the conversation

        taken = await ask(alice, alice_thread, "And again", queries)

    assert await Message.objects.filter(thread=alice_thread).acount() == 4
    assert taken <= FOLLOW_UP_BUDGET, "\n".join(queries)
