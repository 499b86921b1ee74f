"""The benchmark counts what it claims to count, and runs end to end (tiny, on PostgreSQL and
Redis with two daphne processes) so it cannot rot."""

import argparse
import asyncio
import json
import subprocess
import sys
import time
from dataclasses import replace

import httpx
import pytest

from bench import floor, profile, report
from bench.loadgen import Observations, Plan, User, offer_at_rate
from bench.run import SCALES, main, scale_of
from tests.live import ROOT


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


NO_TOKENS = {"token_times": [], "token_ends": []}
STATS = {
    "conversations": 3,
    "responses": [
        {"id": "resp_a", "completed_at": 100.0, "polls": 4, "streams": 0, **NO_TOKENS},
        {"id": "resp_b", "completed_at": 200.0, "polls": 6, "streams": 0, **NO_TOKENS},
        {"id": "resp_c", "completed_at": 300.0, "polls": 5, "streams": 0, **NO_TOKENS},
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


def test_it_times_each_token_from_the_simulator_writing_it_to_the_page_holding_it():
    # "Hel", "lo" and " you" (ends at 3, 5, 9 characters), written an eighth of a second apart.
    written = {"token_times": [10.0, 10.125, 10.25], "token_ends": [3, 5, 9]}
    stats = {"conversations": 0, "responses": [
        {"id": "resp_streamed", "completed_at": 10.375, "polls": 0, "streams": 1, **written},
        {"id": "resp_polled", "completed_at": 10.375, "polls": 3, "streams": 0, **written},
    ]}  # fmt: skip
    runs = {
        # "Hel" comes, then "lo y" (short of the end, as mended text may be); the rest comes
        # only with the whole message.
        "1": {"status": "completed", "arrivals": [10.5],
              "delta_arrivals": [[10.0625, 0, 3], [10.375, 3, 4]]},
        "2": {"status": "completed", "arrivals": [10.5]},  # polled: the whole message only
    }  # fmt: skip

    summary = report.summarise(observed(runs), stats, {1: "resp_streamed", 2: "resp_polled"})

    streamed = report.token_latencies(written, runs["1"]["delta_arrivals"], 10.5)
    polled = report.token_latencies(written, [], 10.5)
    assert streamed == [62.5, 250.0, 250.0]
    assert polled == [500.0, 375.0, 250.0]
    assert summary["token_ms"] == {50: 250, 95: 500, 99: 500}
    assert summary["added_ms_samples"] == [125.0, 125.0]  # unchanged: from completion


def test_a_token_is_held_from_the_first_frame_that_reaches_it():
    written = {"token_times": [1.0, 1.5], "token_ends": [4, 8]}
    # The whole message came before a late delta that also covers the second token.
    late = [[1.25, 0, 4], [3.0, 4, 4]]

    assert report.token_latencies(written, late, 2.0) == [250.0, 500.0]


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


def test_a_chat_completion_is_known_at_the_simulator_by_the_prompt_it_answered():
    runs = {
        "7": {"status": "completed", "arrivals": [50.125], "text": "Bench message 1 from user 0"}
    }
    chat = {"completions": [
        {"id": "chatcmpl-1", "prompt": "Bench message 1 from user 0", "completed_at": 50.0,
         "token_times": [49.75], "token_ends": [10]},
        {"id": "chatcmpl-2", "prompt": "Bench message 1 from user 0", "completed_at": 60.0,
         "token_times": [59.75], "token_ends": [10]},
        {"id": "chatcmpl-3", "prompt": "Bench message 2 from user 0", "completed_at": None,
         **NO_TOKENS},
    ]}  # fmt: skip
    no_responses = {"conversations": 0, "responses": []}

    summary = report.summarise(observed(runs), no_responses, {7: "chat-7"}, chat)

    assert summary["added_ms_samples"] == [125.0]  # from the first answer to that prompt
    assert summary["token_ms"] == {50: 375, 95: 375, 99: 375}  # its token, too
    assert summary["requests_per_run"] == 1.0


# CPU seconds of (server 1, server 2, simulator), sampled at these times.
SAMPLES = [
    (10.0, [1.0, 2.0, 0.5]),
    (11.0, [2.0, 2.5, 0.7]),
    (12.0, [4.0, 3.0, 0.9]),
    (13.0, [4.5, 3.5, 1.1]),
]


def test_the_cpu_of_a_window_is_cut_out_of_the_samples_between_them():
    # From halfway through the first second to a quarter into the third.
    assert report.window_cpu(SAMPLES, 10.5, 12.25) == [2.625, 0.875, 0.35]


def test_a_window_past_the_samples_counts_only_what_was_sampled():
    assert report.window_cpu(SAMPLES, 9.0, 14.0) == [3.5, 1.5, 0.6]


def test_the_cost_is_the_servers_cpu_per_answer_and_per_delta_in_the_window():
    runs = {
        "1": {"status": "completed", "ended": 11.5, "deltas": 30},
        "2": {"status": "completed", "ended": 12.0, "deltas": 20},
        "3": {"status": "failed", "ended": 11.8, "deltas": 5},  # its deltas were delivered
        "4": {"status": "completed", "ended": 12.9, "deltas": 40},  # ended after the window
    }
    seen = {"runs": runs, "posting": {"started": 11.0, "stopped": 12.5}}

    cost = report.costs(SAMPLES, seen, servers=2)

    # Servers: (4.25 - 2.0) + (3.25 - 2.5) = 3.0 CPU seconds; the simulator's apart.
    assert cost["cpu_s"] == 3.0
    assert (cost["answers"], cost["deltas"]) == (2, 55)
    assert cost["cpu_s_per_answer"] == 1.5
    assert cost["cpu_ms_per_delta"] == round(3000 / 55, 3)
    assert cost["simulator_cpu_s"] == 0.3
    # The speed-independent figure: our CPU over the provider's in the same window.
    assert cost["per_simulator_cpu"] == 10.0


def test_ours_over_the_floor_compares_cpu_per_answer():
    ours = report.per_unit(cpu_s=6.0, answers=20, deltas=400)
    floor = {"cpu_s": 1.2, "answers": 24, "deltas": 1200}

    compared = report.compare(ours, floor)

    assert compared["floor"]["cpu_s_per_answer"] == 0.05
    assert compared["floor"]["cpu_ms_per_delta"] == 1.0
    assert compared["ours_per_floor"] == 6.0  # 0.3 / 0.05


def test_no_answers_make_no_cost_and_no_ratio():
    compared = report.compare(report.per_unit(2.0, 0, 0), {"cpu_s": 1.0, "answers": 5, "deltas": 0})

    assert compared["cpu_s_per_answer"] is None and compared["cpu_ms_per_delta"] is None
    assert compared["ours_per_floor"] is None


def test_the_load_generator_counts_each_delta_of_a_run_once():
    plan = Plan(urls=["http://127.0.0.1:8000"], users=[], runs_in_flight=0, duration=1,
                reconnect=0, run_timeout=1, connect_timeout=1, csrf="x")  # fmt: skip
    seen = Observations()
    user = User(0, {"session": "s", "thread": 1}, plan, seen)

    for offset, text, now in ((0, "Hel", 1.0), (3, "lo", 1.5)):
        user.receive({"type": "message.delta", "run_id": 5, "offset": offset, "text": text}, now)
    user.receive({"type": "run.status", "run": {"id": 5, "status": "completed",
                                                "is_terminal": True}}, 2.0)  # fmt: skip

    assert seen.runs[5]["deltas"] == 2
    assert seen.runs[5]["ended"] == 2.0
    # When each came and which characters it brought, for the latency of each token.
    assert seen.runs[5]["delta_arrivals"] == [[1.0, 0, 3], [1.5, 3, 2]]


def test_it_reports_how_late_the_load_generators_own_loop_ran():
    lags = [0.5] * 90 + [40.0] * 9 + [120.0]

    summary = report.summarise(
        {**observed({}), "client": {"lag_ms": lags, "cpu_percent": 7}}, STATS, REMOTE_IDS
    )

    assert summary["client"] == {"lag_ms": {50: 0, 95: 40, 99: 40}, "cpu_percent": 7}
    assert "0 / 40 / 40 ms at 7 % CPU" in report._client_text(summary["client"])


class Site:
    """A socket and an HTTP client in one, that answer a post with `answer(event)`."""

    def __init__(self, user: User, answer):
        self.user, self.answer, self.http_posts = user, answer, 0

    async def send(self, raw: str) -> None:
        if (event := self.answer(json.loads(raw))) is not None:
            asyncio.get_running_loop().call_soon(self.user.receive, event, time.time())

    async def post(self, url, **kwargs):
        self.http_posts += 1
        return httpx.Response(201, json={"run": {"id": 99}})


def a_user_on_one_process(answer) -> tuple[User, Site, Observations]:
    plan = Plan(urls=["http://127.0.0.1:8000"], users=[], runs_in_flight=0, duration=1,
                reconnect=0, run_timeout=1, connect_timeout=1, csrf="x")  # fmt: skip
    seen = Observations()
    user = User(0, {"session": "s", "thread": 1}, plan, seen)
    user.socket = site = Site(user, answer)
    user.reader = asyncio.create_task(asyncio.sleep(10))  # a socket that stays open
    return user, site, seen


async def test_a_user_on_one_process_posts_over_its_socket_and_is_answered_by_ref():
    user, site, seen = a_user_on_one_process(
        lambda event: {"type": "message.sent", "ref": event["ref"], "run": {"id": 7}}
    )
    assert await user.post(site, "Hi") == 7
    assert site.http_posts == 0 and seen.error_count == 0
    assert seen.runs[7]["text"] == "Hi" and seen.runs[7]["posted"] > 0
    user.reader.cancel()


async def test_a_send_refused_on_the_socket_counts_as_a_failed_post():
    user, site, seen = a_user_on_one_process(
        lambda event: {"type": "error", "ref": event["ref"], "code": "RUN_ACTIVE"}
    )
    assert await user.post(site, "Hi") is None
    assert seen.errors == ["user 0: post answered RUN_ACTIVE"]
    user.reader.cancel()


async def test_a_site_that_does_not_know_message_send_is_posted_to_over_http():
    user, site, seen = a_user_on_one_process(
        lambda event: {"type": "error", "code": "UNKNOWN_EVENT"}
    )
    assert await user.post(site, "Hi") == 99  # this post too
    assert await user.post(site, "Again") == 99
    assert site.http_posts == 2 and seen.error_count == 0 and not user.over_socket
    user.reader.cancel()


async def test_a_socket_closed_before_the_answer_fails_the_post_without_waiting_it_out():
    user, site, seen = a_user_on_one_process(lambda event: None)
    user.reader.cancel()
    user.reader = asyncio.create_task(asyncio.sleep(0.05))  # closed by the server (4404, say)
    started = time.monotonic()
    assert await user.post(site, "Hi") is None
    assert time.monotonic() - started < 0.5  # not the run timeout (1 s)
    assert seen.errors == ["user 0: post failed: socket closed"]


def test_pages_apart_or_several_processes_post_over_http():
    plan = Plan(urls=["http://127.0.0.1:8000"], users=[], runs_in_flight=0, duration=1,
                reconnect=0, run_timeout=1, connect_timeout=1, csrf="x",
                post_urls=["http://127.0.0.1:8001"])  # fmt: skip
    assert not User(0, {"session": "s", "thread": 1}, plan, Observations()).over_socket
    plan = replace(plan, urls=["http://127.0.0.1:8000", "http://127.0.0.1:8001"], post_urls=[])
    assert not User(0, {"session": "s", "thread": 1}, plan, Observations()).over_socket


class Runner:
    """A runner of the load generator whose answers take `seconds` (or never end: False)."""

    going = 0  # answers under way, of all runners
    most_at_once = 0

    def __init__(self, seconds: float, ends: bool = True):
        self.seconds, self.ends, self.turns = seconds, ends, []

    async def ask(self, http, turn: int) -> bool:
        self.turns.append(turn)
        Runner.going += 1
        Runner.most_at_once = max(Runner.most_at_once, Runner.going)
        await asyncio.sleep(self.seconds)
        Runner.going -= 1
        return self.ends


async def test_an_open_load_posts_at_its_rate_however_long_answers_take():
    Runner.most_at_once = 0
    runners = [Runner(0.25), Runner(0.25), Runner(0.25)]
    # Due at 0, 0.1, 0.2, 0.3 and 0.4 s; each answer outlasts the gap to the next post.
    offered = await offer_at_rate(runners, None, time.monotonic() + 0.45, rate=10)

    assert sorted(turn for runner in runners for turn in runner.turns) == [1, 2, 3, 4, 5]
    assert Runner.most_at_once >= 2  # not one after the other
    assert offered["rate"] == 10 and len(offered["late_s"]) == 5


async def test_a_post_that_finds_every_runner_busy_waits_for_one_and_is_counted_late():
    Runner.most_at_once = 0
    runner = Runner(0.3)
    offered = await offer_at_rate([runner], None, time.monotonic() + 0.25, rate=10)

    assert runner.turns == [1, 2, 3]  # due at 0, 0.1 and 0.2 s, all to the one runner
    assert Runner.most_at_once == 1
    # The second went out when the first answer ended (0.3 s), 0.2 s after it was due.
    assert offered["late_s"][1] >= 0.2 - 0.01
    assert offered["late_s"][2] >= offered["late_s"][1]


async def test_a_runner_whose_answer_never_ended_is_not_posted_to_again():
    stuck, working = Runner(0.0, ends=False), Runner(0.0)
    await offer_at_rate([stuck, working], None, time.monotonic() + 0.25, rate=20)

    assert stuck.turns == [1]
    assert len(working.turns) >= 3


def test_an_open_load_reports_how_late_its_posts_went_out():
    offered = {"rate": 5.0, "late_s": [0.001] * 18 + [0.4, 2.5]}

    summary = report.summarise({**observed({}), "offered": offered}, STATS, REMOTE_IDS)

    assert summary["offered"] == {"rate": 5.0, "posts": 20, "late_max_s": 2.5,
                                  "late_s": {50: 0.001, 95: 0.4, 99: 2.5}}  # fmt: skip
    assert "offered 5.0 answers/s: 20 posts" in report._offered_text(summary["offered"])
    assert report._offered_text(None) == ""  # a closed load says nothing of it


def test_a_knob_set_to_zero_overrides_the_scale():
    args = argparse.Namespace(scale="full", users=None, runs=None, reconnect=0, duration=None)
    assert scale_of(args) == replace(SCALES["full"], reconnect=0)  # the default was 100
    args = argparse.Namespace(scale="small", users=20, runs=None, reconnect=None, duration=5.5)
    assert scale_of(args) == replace(SCALES["small"], users=20, duration=5.5)


def test_the_floor_only_loads_loopback_addresses():
    plan = floor.Plan(base_url="http://10.0.0.5:8001/v1", protocol="chat", streaming=True,
                      runners=1, duration=1, run_timeout=1)  # fmt: skip
    with pytest.raises(SystemExit, match="non-loopback"):
        plan.check()


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
    # Each token of a streamed answer reaches the page after the simulator wrote it.
    token_p95 = streaming["token_ms"][str(95)]
    assert isinstance(token_p95, int) and token_p95 >= 0
    # Polling asks again and again; a streamed answer is one create, which streams it.
    assert two_processes["requests_per_run"] > streaming["requests_per_run"] >= 1
    assert len(two_processes["rss_peak_mb"]) == 2
    # What a streamed answer costs the server, beside the floor: the same load straight to
    # the simulator, which costs less than the site's way (the site streams it on too).
    cost = streaming["cost"]
    assert cost["answers"] >= streaming["runs_planned"] and cost["deltas"] > cost["answers"]
    assert 0 < cost["cpu_s_per_answer"] and 0 < cost["cpu_ms_per_delta"]
    assert cost["floor"]["answers"] > 0 and cost["floor"]["deltas"] > cost["floor"]["answers"]
    assert cost["floor"]["errors"] == 0
    assert cost["ours_per_floor"] == round(
        cost["cpu_s_per_answer"] / cost["floor"]["cpu_s_per_answer"], 1
    )
    assert cost["ours_per_floor"] > 1
    assert two_processes["cost"]["deltas"] == 0  # polled: answers come whole
    assert (tmp_path / "smoke-latency.png").stat().st_size > 0
    assert (tmp_path / "smoke-cost.png").stat().st_size > 0
    out = capsys.readouterr().out
    assert "| ours, 2 processes | 2 | 16 / 16 |" in out
    assert "| streaming | " + f"{cost['answers']} | {cost['deltas']} |" in out
    assert "Latency per token p50 / p95 / p99 (ms)" in out
    # The load generator's own lag is measured too: a busy client would add it to every latency.
    for scenario in (two_processes, streaming):
        assert scenario["client"]["lag_ms"][str(50)] >= 0 and scenario["client"]["cpu_percent"] >= 0


def test_before_and_after_are_compared_per_commit_by_the_median(tmp_path):
    from bench import compare

    def result(commit: str, per_answer: float, ratio: float) -> dict:
        cost = {"cpu_s_per_answer": per_answer, "per_simulator_cpu": ratio,
                "floor": {"cpu_s_per_answer": 0.02}}  # fmt: skip
        return {"options": {"site_commit": commit},
                "scenarios": [{"label": "streaming", "cost": cost}]}  # fmt: skip

    paths = []
    for index, (commit, per_answer, ratio) in enumerate(
        [("aaaaaaa1", 0.07, 5.0), ("bbbbbbb2", 0.05, 4.0), ("aaaaaaa1", 0.09, 6.0),
         ("bbbbbbb2", 0.06, 3.0), ("aaaaaaa1", 0.08, 5.5)]  # fmt: skip
    ):
        path = tmp_path / f"run-{index}.json"
        path.write_text(json.dumps(result(commit, per_answer, ratio)))
        paths.append(path)

    table = compare.load(paths)
    text = compare.markdown(table)

    assert list(table["streaming"]) == ["aaaaaaa", "bbbbbbb"]  # in the order first seen
    assert "| streaming | `aaaaaaa` | 0.070, 0.090, 0.080 | 5.00, 6.00, 5.50 | 5.50 |" in text
    assert "| streaming | `bbbbbbb` | 0.050, 0.060 | 4.00, 3.00 | 3.50 |" in text
    compare.plot(table, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 0


def printed_table(*command: str) -> list[list[str]]:
    """The rows of the Markdown table `python -m COMMAND` prints, run from this checkout."""
    return printed_tables(*command)[0]


def printed_tables(*command: str) -> list[list[list[str]]]:
    """The rows of each Markdown table `python -m COMMAND` prints (below their heads)."""
    shown = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, timeout=180, cwd=ROOT
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    tables = [block.splitlines() for block in shown.stdout.strip().split("\n\n")]
    return [[line.split("|")[1:-1] for line in lines[2:]] for lines in tables]


# A command in a process of its own: seconds, so it is dealt out with the long tests first.
@pytest.mark.slow
def test_the_statement_costs_compare_the_orm_and_built_once_with_the_same_sql_sent():
    rows = printed_table("bench.statements", "--database", "sqlite", "--repeats", "3")
    assert [row[0].strip() for row in rows] == [
        "a request's session (sessions.py)",
        "a user's thread, with its assistant",
        "whether the user may use its assistant",
        "a send's read under the lock",
        "a run's status written",
        "a run inserted",
        "a usage record inserted",
        "a run loaded with its thread",
    ]
    for _, orm, once, plain, ratio, once_ratio in rows:
        assert float(orm.replace(",", "")) > 0 and float(plain.replace(",", "")) > 0
        assert float(ratio) > 0
        assert once.strip() == once_ratio.strip() == "-" or float(once_ratio) > 0
    assert sum(row[2].strip() != "-" for row in rows) == 7  # all but the run's load


@pytest.mark.django_db(transaction=True)
async def test_hop_watch_times_a_database_call_on_its_thread(
    monkeypatch, capsys, settings, tmp_path
):
    from assistants_app import db
    from assistants_app.runs import driver, store, streaming
    from bench.hop_watch import __main__ as hop_report
    from bench.hop_watch import sitecustomize as hop_watch

    settings.DATABASE_THREADS = 2
    for module in (store, driver, streaming):  # put back after the test
        monkeypatch.setattr(module, "record", getattr(module, "record", None), raising=False)
    monkeypatch.setattr(db._DatabaseCall, "__call__", db._DatabaseCall.__call__)
    hop_watch._install()
    nap = db.database_sync_to_async(lambda: time.sleep(0.02))

    for _ in range(3):  # the first call makes its way to the threads; the next ones are timed
        await nap()

    log = capsys.readouterr().err
    lines = [line for line in log.splitlines() if line.startswith("hop-watch ")]
    assert len(lines) == 2 and all("call=<lambda>" in line for line in lines)
    assert all(20 <= float(line.split("ran=")[1].split()[0]) < 1000 for line in lines)
    (tmp_path / "server.log").write_text(log)
    assert "<lambda>: 2 calls" in "\n".join(hop_report.summary(str(tmp_path / "server.log")))


@pytest.mark.slow  # a command in a process of its own, with a simulator: seconds
def test_a_poll_and_a_create_are_timed_each_way_against_the_simulator():
    polls, creates = printed_tables("bench.polls", "--repeats", "5", "--rounds", "2")
    assert [row[0].strip() for row in polls] == [
        "the SDK's typed call",
        "httpx's transport (get_json before)",
        "get_json",
        "aiohttp alone",
    ]
    assert [row[0].strip() for row in creates] == [
        "the SDK's typed call",
        "post_json",
        "aiohttp alone",
    ]
    for _, costs, ratio in polls + creates:
        assert len(costs.split(",")) == 2 and all(float(cost) > 0 for cost in costs.split(","))
        assert float(ratio) > 0


@pytest.mark.slow
def test_an_event_read_from_redis_is_timed_with_each_parser():
    rows = printed_table("bench.event_reads", "--events", "200", "--rounds", "2")
    assert [row[0].strip() for row in rows] == ["redis-py (Python)", "hiredis (C)"]
    for _, costs, _ in rows:
        assert len(costs.split(",")) == 2 and all(float(cost) > 0 for cost in costs.split(","))
    assert float(rows[0][2]) == 1.0 and float(rows[1][2]) > 0


async def test_turn_watch_times_a_delta_from_its_send_to_the_socket_handler(
    monkeypatch, capsys, tmp_path
):
    from assistants_app import consumers
    from assistants_app.runs import events, streaming
    from bench.turn_watch import __main__ as turn_report
    from bench.turn_watch import sitecustomize as turn_watch

    for owner, name in [
        (streaming.LiveText, "add"), (streaming.LiveText, "push"), (events, "broadcast"),
        (consumers.ThreadConsumer, "message_delta"),
    ]:  # fmt: skip
        monkeypatch.setattr(owner, name, getattr(owner, name))  # put back after the test
    sent = []

    async def broadcast(group, events_sent):
        sent.extend(events_sent)

    monkeypatch.setattr(events, "broadcast", broadcast)
    turn_watch._install()
    await events.broadcast("thread-1", [events.message_delta(7, "Hello")])
    consumer = consumers.ThreadConsumer()
    pages = []

    async def send_json(event, close=False):
        pages.append(event)

    consumer.send_json = send_json
    await consumer.message_delta(sent[0])

    assert pages == [{"type": "message.delta", "run_id": 7, "offset": 0, "text": "Hello"}]
    log = capsys.readouterr().err
    assert [line.split()[2].split("=")[0] for line in log.splitlines()] == ["send", "layer"]
    (tmp_path / "server.log").write_text(log)
    report = "\n".join(turn_report.summary(str(tmp_path / "server.log")))
    assert "sent to the socket's handler: p50/p95/p99" in report and "(1)" in report


@pytest.mark.slow  # a command in a process of its own, on the machine's Redis: seconds
def test_a_publish_is_timed_through_redis_pys_client_and_the_layers_own_connection():
    rows = printed_table("bench.publishes", "--events", "200", "--rounds", "2")
    assert [row[0].strip() for row in rows] == [
        "redis-py's client, 1 at a time",
        "the layer's, 1 at a time",
        "redis-py's client, 10 at a time",
        "the layer's, 10 at a time",
    ]
    for _, costs, ratio in rows:
        assert len(costs.split(",")) == 2 and all(float(cost) > 0 for cost in costs.split(","))
        assert float(ratio) > 0


ROOT_FRAMES = [
    "_run_module_as_main (<frozen runpy>:198)", "<module> (daphne/__main__.py:3)",
    "CommandLineInterface.run (daphne/cli.py:309)", "Server.run (daphne/server.py:155)",
    "AsyncioSelectorReactor.run (twisted/internet/asyncioreactor.py:257)",
]  # fmt: skip


OURS, LOOP, TWISTED = (
    "other (event loop, our own code)",
    "the event loop itself (uvloop, asyncio)",
    "websockets and HTTP (Twisted, daphne)",
)


@pytest.mark.parametrize(
    "inner, kind",
    [
        (["_follow_once (assistants_app/runs/streaming.py:206)"], OURS),
        ([], LOOP),
        (["BaseEventLoop._run_once (asyncio/base_events.py:1922)",
          "EpollSelector.select (selectors.py:468)"], LOOP),
        (["AsyncioSelectorReactor._readOrWrite (twisted/internet/asyncioreactor.py:142)",
          "Connection.doRead (twisted/internet/tcp.py:285)"], TWISTED),
        (["_store (assistants_app/runs/store.py:95)",
          "Atomic.__enter__ (django/db/transaction.py:198)"], "database (ORM, driver)"),
    ],  # fmt: skip
    ids=["our code", "uvloop", "asyncio's selector", "Twisted", "the database"],
)
def test_a_profile_sample_is_put_under_its_innermost_work_not_the_servers_start(inner, kind):
    # Every sample of the loop's thread starts in daphne and Twisted's reactor: only what runs
    # inside them says what the time went to.
    assert profile.kind_of(ROOT_FRAMES + inner) == kind
