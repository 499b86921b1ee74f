"""Timers on a clock that counts milliseconds (assistants_app/timers.py)."""

from assistants_app import timers


def test_a_timers_delay_is_rounded_up_to_whole_milliseconds():
    assert timers.delay(0.0504) == 0.051  # asked for 50, it would fire 0.4 ms early
    assert timers.delay(0.0496) == 0.05


def test_floating_points_hair_over_a_millisecond_is_not_another_millisecond():
    assert timers.delay(0.05 + 1e-15) == 0.05


def test_a_wait_left_under_a_millisecond_waits_one_and_none_waits_none():
    assert timers.delay(1e-13) == timers.delay(0.0009) == 0.001
    assert timers.delay(0.0) == timers.delay(-1.0) == 0.0
    assert timers.due(0.0009) and timers.due(0.0) and not timers.due(0.001)
