"""The simulator's one timed lifecycle of an answer, which its three protocols share."""

import pytest

from assistants_app.simulator import timeline
from assistants_app.simulator.timeline import TimedAnswer


@pytest.fixture
def clock(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(timeline.time, "monotonic", lambda: now[0])
    return now


def test_an_answer_is_queued_then_written_token_by_token_then_finished(clock):
    answer = TimedAnswer(["Once", " upon", " a time"], latency=1.0, token_rate=10, started=clock[0])

    assert answer.queued and answer.tokens_written() == 0
    clock[0] += 0.5  # past the fifth of the latency spent queued
    assert not answer.queued and answer.text_written() == ""
    clock[0] += 0.65  # 1.15 s: the first token at 1.0, the second at 1.1
    assert answer.text_written() == "Once upon" and not answer.finished
    clock[0] += 0.2  # 1.35 s: all three written by 1.2, finished at 1.3
    assert answer.text_written() == "Once upon a time" and answer.finished
    assert answer.finished_after == pytest.approx(1.3)


def test_a_stop_freezes_what_was_written(clock):
    answer = TimedAnswer(["Once", " upon"], latency=1.0, token_rate=10, started=clock[0])
    clock[0] += 1.05
    answer.stop()
    clock[0] += 60

    assert answer.stopped and answer.text_written() == "Once" and not answer.finished


def test_a_new_round_starts_queued_again(clock):
    answer = TimedAnswer([], latency=1.0, token_rate=10, started=clock[0])
    clock[0] += 5
    assert answer.finished

    answer.begin_again(["Tool", " results"])

    assert answer.queued and answer.tokens_written() == 0
