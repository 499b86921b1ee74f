"""The benchmark counts what it claims to count, and runs end to end (tiny, on PostgreSQL and
Redis with two daphne processes) so it cannot rot."""

import json

import pytest

from bench import report
from bench.loadgen import Plan
from bench.run import main


def observed(runs: dict) -> dict:
    burst = {"seconds": 0.5, "times": [0.1, 0.2], "failed": 0}
    return {
        "runs": runs,
        "sockets": 2,
        "errors": [],
        "error_count": 0,
        "connect": burst,
        "reconnect_under_load": None,
    }


STATS = {
    "conversations": 3,
    "responses": [
        {"id": "resp_a", "completed_at": 100.0, "polls": 4, "streams": 0},
        {"id": "resp_b", "completed_at": 200.0, "polls": 6, "streams": 0},
        {"id": "resp_c", "completed_at": 300.0, "polls": 5, "streams": 0},
    ],
}
REMOTE_IDS = {1: "resp_a", 2: "resp_b", 3: "resp_c"}


def test_it_measures_latency_from_the_provider_finishing_to_the_frame():
    runs = {"1": {"status": "completed", "arrivals": [100.25]},
            "2": {"status": "completed", "arrivals": [200.5]}}  # fmt: skip

    summary = report.summarise(observed(runs), STATS, REMOTE_IDS)

    assert summary["added_ms_samples"] == [250.0, 500.0]
    assert summary["added_ms"] == {50: 250, 95: 500, 99: 500}
    # A conversation per thread, then a create and the polls per response.
    assert summary["requests_per_run"] == round((3 + 5 + 7 + 6) / 3, 1)


def test_it_counts_an_answer_never_shown_as_lost_and_a_second_frame_as_duplicated():
    runs = {"1": {"status": "completed", "arrivals": []},
            "2": {"status": "completed", "arrivals": [200.1, 200.2]},
            "3": {"status": "failed"}}  # fmt: skip

    summary = report.summarise(observed(runs), STATS, REMOTE_IDS)

    assert (summary["lost"], summary["duplicated"], summary["runs_completed"]) == (1, 1, 2)


def test_it_sums_up_lone_connects_idle_and_while_runs_go():
    lone = {"idle": [0.010, 0.012, 0.030], "under_load": [0.050, 0.080, 0.400]}

    summary = report.summarise({**observed({}), "lone_connects": lone}, STATS, REMOTE_IDS)

    assert summary["lone_connect"] == {
        "idle": {"count": 3, "p50_ms": 12, "p95_ms": 30},
        "under_load": {"count": 3, "p50_ms": 80, "p95_ms": 400},
    }


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert [report.percentile(values, p) for p in (50, 95, 99)] == [50, 95, 99]
    assert report.percentile([], 50) is None


def test_the_load_generator_only_loads_loopback_addresses():
    plan = Plan(urls=["http://10.0.0.5:8000"], users=[], runs_in_flight=0, duration=1,
                reconnect=0, run_timeout=1, connect_timeout=1, csrf="x")  # fmt: skip
    with pytest.raises(SystemExit, match="non-loopback"):
        plan.check()


# Two sites with their processes on PostgreSQL, on a machine that may be busy with other tests:
# minutes, not the default 2. The load generator fails a run that takes over a minute itself.
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_tiny_run_on_postgres_and_redis_delivers_every_answer_once(tmp_path, capsys):
    # Answers after 0.5 to 1 s instead of the benchmark's 2 to 6: the same paths, sooner.
    main(["--scale", "smoke", "--scenarios", "adaptive-2proc,streaming", "--out", str(tmp_path),
          "--latency", "0.5", "--jitter", "0.5"])  # fmt: skip

    results = json.loads((tmp_path / "smoke.json").read_text())
    two_processes, streaming = results["scenarios"]
    assert two_processes["sockets"] == two_processes["sockets_planned"] == 16
    assert streaming["sockets"] == streaming["sockets_planned"] == 8
    for scenario in (two_processes, streaming):
        assert scenario["runs_completed"] >= scenario["runs_planned"]
        assert scenario["lone_connect"]["idle"]["count"] > 0
        assert scenario["lone_connect"]["under_load"]["count"] > 0
        assert (scenario["errors"], scenario["lost"], scenario["duplicated"]) == (0, 0, 0)
        assert scenario["added_ms"][str(95)] is not None
    # Polling asks again and again; a stream is one create and one streamed retrieve.
    assert two_processes["requests_per_run"] > streaming["requests_per_run"] >= 2
    assert len(two_processes["rss_peak_mb"]) == 2
    assert (tmp_path / "smoke-latency.png").stat().st_size > 0
    assert "| ours, 2 processes | 2 | 16 / 16 |" in capsys.readouterr().out
