"""Turn the load generator's observations into the benchmark's numbers, tables and plots."""

import bisect
import math
from pathlib import Path


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarise(observed: dict, stats: dict, remote_ids: dict, chat_stats: dict | None = None
              ) -> dict:  # fmt: skip
    """Per scenario: added latency, token latency, provider requests per run, errors, lost and
    duplicated answers, and connect bursts.

    Added latency is from the simulator completing an answer (its `completed_at`) to the
    answer's `message.created` frame reaching the socket watching the thread; token latency is
    from the simulator writing each token to the page first holding it (token_latencies). Both
    clocks are this machine's time.time(). A response is known by its id (the run's remote
    id), a chat completion by the prompt it answered (each run's text is unique).
    """
    responses = {r["id"]: r for r in stats["responses"] if r["completed_at"] is not None}
    answered = {
        c["prompt"]: c
        for c in reversed((chat_stats or {}).get("completions", []))  # the first one wins
        if c["completed_at"] is not None
    }
    added, tokens, lost, duplicated, completed = [], [], 0, 0, 0
    for run_id, run in observed["runs"].items():
        arrivals = run.get("arrivals", [])
        duplicated += max(0, len(arrivals) - 1)
        if run.get("status") != "completed":
            continue  # counted among the errors by the load generator
        completed += 1
        if not arrivals:
            lost += 1
            continue
        answer = responses.get(remote_ids.get(int(run_id))) or answered.get(run.get("text"))
        if answer is not None:
            added.append(1000 * (arrivals[0] - answer["completed_at"]))
            tokens += token_latencies(answer, run.get("delta_arrivals", []), arrivals[0])
    completions = len((chat_stats or {}).get("completions", []))  # one request each
    requests = (
        stats["conversations"]
        + completions
        # A create, and every retrieve (the simulator counts a streamed one as a poll too; a
        # stream opened by the create is that request).
        + sum(1 + r["polls"] for r in stats["responses"])
    )
    return {
        "sockets": observed["sockets"],
        "runs_completed": completed,
        "added_ms": {p: _round(percentile(added, p)) for p in (50, 95, 99)},
        "added_ms_samples": [round(a, 1) for a in added],
        # No samples: tens of tokens an answer would swell the results file.
        "token_ms": {p: _round(percentile(tokens, p)) for p in (50, 95, 99)},
        "requests_per_run": round(requests / max(1, len(stats["responses"]) + completions), 1),
        "errors": observed["error_count"],
        "error_samples": observed["errors"][:10],
        "lost": lost,
        "duplicated": duplicated,
        "connect": _burst(observed["connect"]),
        "reconnect_under_load": _burst(observed["reconnect_under_load"]),
        "lone_connect": _lone(observed.get("lone_connects")),
        "client": _client(observed.get("client")),
        "offered": _offered(observed.get("offered")),
    }


def _offered(offered: dict | None) -> dict | None:
    """An open load's rate, its posts, and how late they went out (seconds): late posts found
    every runner with a run going, the site not keeping up."""
    if not offered:
        return None
    late = offered["late_s"]
    return {
        "rate": offered["rate"],
        "posts": len(late),
        "late_s": {p: percentile(late, p) for p in (50, 95, 99)},
        "late_max_s": max(late, default=None),
    }


def _client(client: dict | None) -> dict | None:
    """The load generator's own loop lag (ms late on a 10 ms timer) and CPU while it posted."""
    if not client:
        return None
    lags = client["lag_ms"]
    return {
        "lag_ms": {p: _round(percentile(lags, p)) for p in (50, 95, 99)},
        "cpu_percent": client["cpu_percent"],
    }


def token_latencies(answer: dict, deltas: list[list[float]], shown: float) -> list[float]:
    """Milliseconds from the simulator writing each token of `answer` (its `token_times` and
    `token_ends`) to the page first holding the answer's text through that token's end.

    The page holds it from the first frame that reaches that far: a `message.delta` ([arrival,
    offset, length of its text]) reaching offset + length characters, or the whole message
    (`message.created`, at `shown`), whichever came first. Without deltas (a polled answer)
    every token waits for the whole message. Counted in characters, as the site may mend the
    text a little.
    """
    reaches = [(at, offset + length) for at, offset, length in deltas] + [(shown, math.inf)]
    frames = iter(sorted(reaches))  # in the order they came
    latencies, reach = [], 0
    for wrote, end in zip(answer["token_times"], answer["token_ends"], strict=True):
        while reach < end:  # every token adds text, so the first one reads a frame
            held_at, furthest = next(frames)
            reach = max(reach, furthest)
        latencies.append(1000 * (held_at - wrote))
    return latencies


def window_cpu(samples: list[tuple[float, list[float]]], started: float, stopped: float
               ) -> list[float]:  # fmt: skip
    """CPU seconds each sampled process spent from `started` to `stopped` (time.time()),
    out of samples (time, [cumulative CPU seconds per process]) in time order. Between two
    samples the CPU is taken as spent evenly; outside the samples the nearest one stands."""
    return [
        round(after - before, 3)
        for after, before in zip(_cpu_at(samples, stopped), _cpu_at(samples, started), strict=True)
    ]


def _cpu_at(samples: list[tuple[float, list[float]]], when: float) -> list[float]:
    times = [t for t, _ in samples]
    i = bisect.bisect_right(times, when)
    if i == 0:
        return samples[0][1]
    if i == len(samples):
        return samples[-1][1]
    (t0, before), (t1, after) = samples[i - 1], samples[i]
    share = (when - t0) / (t1 - t0)
    return [b + share * (a - b) for a, b in zip(after, before, strict=True)]


def costs(samples: list[tuple[float, list[float]]], observed: dict, servers: int) -> dict:
    """The servers' CPU seconds (summed over the first `servers` sampled processes) and the
    simulator's (the last) over the posting window, per answer completed and per
    `message.delta` delivered for the runs that ended in it."""
    window = observed["posting"]
    cpu = window_cpu(samples, window["started"], window["stopped"])
    ended = [
        run for run in observed["runs"].values()
        if window["started"] <= run.get("ended", -1) <= window["stopped"]
    ]  # fmt: skip
    answers = sum(1 for run in ended if run.get("status") == "completed")
    deltas = sum(run.get("deltas", 0) for run in ended)
    ours = sum(cpu[:servers])
    return {
        **per_unit(ours, answers, deltas),
        "seconds": round(window["stopped"] - window["started"], 2),
        "simulator_cpu_s": cpu[-1],
        # Ours over the simulator's CPU in the same window: a shared machine's speed changes
        # from minute to minute (the same code measured 60 to 80 ms an answer), and this
        # ratio cancels it (the same code within 3 %). The figure to compare across commits.
        "per_simulator_cpu": round(ours / cpu[-1], 2) if cpu[-1] else None,
    }


def per_unit(cpu_s: float, answers: int, deltas: int) -> dict:
    """CPU seconds in all, per answer, and in milliseconds per delta (None for none)."""
    return {
        "cpu_s": round(cpu_s, 3),
        "answers": answers,
        "deltas": deltas,
        "cpu_s_per_answer": round(cpu_s / answers, 4) if answers else None,
        "cpu_ms_per_delta": round(1000 * cpu_s / deltas, 3) if deltas else None,
    }


def compare(ours: dict, floor: dict) -> dict:
    """Our cost beside the floor's, and ours/floor per answer."""
    floor = {**floor, **per_unit(floor["cpu_s"], floor["answers"], floor["deltas"])}
    mine, theirs = ours["cpu_s_per_answer"], floor["cpu_s_per_answer"]
    ratio = round(mine / theirs, 1) if mine is not None and theirs else None
    return {**ours, "floor": floor, "ours_per_floor": ratio}


def _lone(lone: dict | None) -> dict | None:
    """p50 / p95 of single connects (ms), idle and while runs go."""
    if not lone:
        return None
    return {
        when: {
            "count": len(times),
            **{f"p{p}_ms": _round(percentile([1000 * t for t in times], p)) for p in (50, 95)},
        }
        for when, times in lone.items()
    }


def _burst(burst: dict | None) -> dict | None:
    if burst is None:
        return None
    times = [1000 * t for t in burst["times"]]
    return {
        "sockets": len(times),
        "seconds": round(burst["seconds"], 2),
        "p95_ms": _round(percentile(times, 95)),
        "failed": burst["failed"],
    }


def _round(value: float | None) -> int | None:
    return None if value is None else round(value)


def line(result: dict) -> str:
    if result.get("unavailable"):
        return f"{result['name']}: not available: {result['unavailable']}"
    return (
        f"{result['name']}: {result['sockets']} sockets, {result['runs_completed']} runs, "
        f"added p50/p95/p99 {_percentiles_text(result['added_ms'], '/')} ms, "
        f"per token p50/p95/p99 {_percentiles_text(result['token_ms'], '/')} ms, "
        f"{result['requests_per_run']} requests/run, errors {result['errors']}, "
        f"lost {result['lost']}, duplicated {result['duplicated']}, "
        f"not stored once / unfinished {_stored_text(result.get('answers_not_stored_once'))}, "
        f"RSS {result['rss_peak_mb']} MB, CPU {result['cpu_percent']} %, "
        f"connect {_burst_text(result['connect'])}, "
        f"reconnect under load {_burst_text(result['reconnect_under_load'])}, "
        f"lone connect {_lone_text(result.get('lone_connect'))}, "
        f"client lag p50/p95/p99 {_client_text(result.get('client'))}, "
        f"cost {_cost_text(result.get('cost'))}"
        f"{_offered_text(result.get('offered'))}"
    )


def _offered_text(offered: dict | None) -> str:
    if not offered:
        return ""  # a closed load
    return (
        f", offered {offered['rate']} answers/s: {offered['posts']} posts, late p50/p95/p99 "
        f"{_percentiles_text(offered['late_s'], '/')} s (max {offered['late_max_s']} s)"
    )


def _client_text(client: dict | None) -> str:
    if not client:
        return "-"
    return f"{_percentiles_text(client['lag_ms'])} ms at {client['cpu_percent']} % CPU"


def _percentiles_text(percentiles: dict, between: str = " / ") -> str:
    return between.join(str(percentiles[p]) for p in (50, 95, 99))


def _cost_text(cost: dict | None) -> str:
    if not cost:
        return "-"
    return (
        f"{cost['cpu_s_per_answer']} CPU-s/answer, {cost['cpu_ms_per_delta']} ms/delta "
        f"(floor {cost['floor']['cpu_s_per_answer']} CPU-s/answer, "
        f"{cost['floor']['cpu_ms_per_delta']} ms/delta; ours/floor {cost['ours_per_floor']}; "
        f"ours/simulator {cost.get('per_simulator_cpu')})"
    )


def _burst_text(burst: dict | None) -> str:
    if burst is None:
        return "-"
    return f"{burst['sockets']} in {burst['seconds']} s (p95 {burst['p95_ms']} ms)"


def _stored_text(stored: dict | None) -> str:
    return "-" if stored is None else f"{stored['completed']} / {stored['unfinished']}"


def _lone_text(lone: dict | None) -> str:
    if not lone:
        return "-"
    idle, loaded = lone["idle"], lone["under_load"]
    return (
        f"{idle['p50_ms']} / {idle['p95_ms']} ms idle, "
        f"{loaded['p50_ms']} / {loaded['p95_ms']} ms while runs go"
    )


COLUMNS = [
    "Scenario", "Processes", "Sockets", "Runs completed", "Added latency p50 / p95 / p99 (ms)",
    "Latency per token p50 / p95 / p99 (ms)",
    "Provider requests per run", "Errors", "Lost", "Duplicated", "Peak RSS per process (MB)",
    "CPU per process (%)", "Connect burst", "Reconnect burst while runs poll",
    "Lone connect p50 / p95", "Answers not stored once / runs unfinished",
    "Load generator's loop lag p50 / p95 / p99 (ms), its CPU",
]  # fmt: skip


def markdown(results: dict, plot: Path | None, cost_plot: Path | None = None) -> str:
    machine = results["machine"]
    rows = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results["scenarios"]:
        if r.get("unavailable"):
            cells = [r["label"], str(r["servers"]), f"not available: {r['unavailable']}"]
            cells += [""] * (len(COLUMNS) - len(cells))
        else:
            cells = [
                r["label"], str(r["servers"]), f"{r['sockets']} / {r['sockets_planned']}",
                _runs_text(r),
                _percentiles_text(r["added_ms"]), _percentiles_text(r["token_ms"]),
                str(r["requests_per_run"]),
                str(r["errors"]), str(r["lost"]), str(r["duplicated"]),
                ", ".join(map(str, r["rss_peak_mb"])), ", ".join(map(str, r["cpu_percent"])),
                _burst_text(r["connect"]), _burst_text(r["reconnect_under_load"]),
                _lone_text(r.get("lone_connect")), _stored_text(r.get("answers_not_stored_once")),
                _client_text(r.get("client")),
            ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    lines = [
        f"Command: `{results['command']}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gb']} GB, "
        f"{machine['os']}, Python {machine['python']}; load average before "
        f"{machine['load_before']}, after {machine.get('load_after')}.",
        "",
        _site_text(results["options"]),
        "",
        *rows,
    ]
    lines += ["", *cost_table(results["scenarios"])]
    if plot:
        lines += ["", f"![Added latency per scenario]({plot.name})"]
    if cost_plot:
        lines += ["", f"![CPU per answer per scenario]({cost_plot.name})"]
    return "\n".join(lines)


def _runs_text(result: dict) -> str:
    offered = result.get("offered")
    if not offered:
        return f"{result['runs_completed']} ({result['runs_planned']} in flight)"
    return (
        f"{result['runs_completed']} ({offered['rate']} a second asked, up to "
        f"{result['runs_planned']} at once; posts late p95 {offered['late_s'][95]} s)"
    )


def _site_text(options: dict) -> str:
    site = f"{options['site_commit']} ({options['site']})" if "site" in options else "this checkout"
    return f"Site: {site}, served by {options.get('server', 'daphne')}."


COST_COLUMNS = [
    "Scenario", "Answers", "Deltas", "Server CPU-s per answer", "ms CPU per delta",
    "Floor: CPU-s per answer / ms per delta", "Ours / floor (per answer)",
    "Simulator CPU-s per answer", "Ours / simulator (same window)",
]  # fmt: skip


def cost_table(scenarios: list[dict]) -> list[str]:
    """What an answer costs the servers, over the posting window, beside the floor."""
    rows = ["| " + " | ".join(COST_COLUMNS) + " |", "|" + "---|" * len(COST_COLUMNS)]
    for r in scenarios:
        if not (cost := r.get("cost")):
            continue
        floor = cost["floor"]
        simulator = cost["simulator_cpu_s"] / cost["answers"] if cost["answers"] else None
        cells = [
            r["label"], str(cost["answers"]), str(cost["deltas"]),
            _figure(cost["cpu_s_per_answer"]), _figure(cost["cpu_ms_per_delta"]),
            f"{_figure(floor['cpu_s_per_answer'])} / {_figure(floor['cpu_ms_per_delta'])}",
            _figure(cost["ours_per_floor"]), _figure(simulator),
            _figure(cost.get("per_simulator_cpu")),
        ]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def plot(results: dict, path: Path) -> Path | None:
    """The distribution (CDF) of added latency per scenario, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in results["scenarios"] if r.get("added_ms_samples")]
    if not measured:
        return None
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    for r in measured:
        samples = sorted(max(s, 0.1) for s in r["added_ms_samples"])
        share = [(i + 1) / len(samples) for i in range(len(samples))]
        axes.step(samples, share, where="post", label=f"{r['label']} (n={len(samples)})")
    axes.set_xscale("log")
    axes.set_xlabel("added latency: answer complete at the provider -> frame at the client (ms)")
    axes.set_ylabel("share of answers")
    axes.axhline(0.95, color="grey", linewidth=0.5, linestyle=":")
    axes.grid(True, which="both", linewidth=0.3)
    axes.legend(loc="lower right", fontsize="small")
    scale = results["options"]["scale"]
    axes.set_title(
        f"Added latency, {scale['users']} sockets and {scale['runs']} runs in flight per process"
    )
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_costs(results: dict, path: Path) -> Path | None:
    """Server CPU seconds per answer beside the floor's, per scenario, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costed = [r for r in results["scenarios"] if (r.get("cost") or {}).get("cpu_s_per_answer")]
    if not costed:
        return None
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    where = range(len(costed))
    ours = [r["cost"]["cpu_s_per_answer"] for r in costed]
    floor = [r["cost"]["floor"]["cpu_s_per_answer"] or 0 for r in costed]
    axes.bar([x - 0.2 for x in where], ours, width=0.4, label="site (all its processes)")
    axes.bar([x + 0.2 for x in where], floor, width=0.4, label="floor: straight to the provider")
    axes.set_xticks(list(where), [r["name"] for r in costed], rotation=20, fontsize="small")
    axes.set_ylabel("CPU seconds per completed answer")
    axes.grid(True, axis="y", linewidth=0.3)
    axes.legend(fontsize="small")
    axes.set_title("What an answer costs, over the posting window")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
