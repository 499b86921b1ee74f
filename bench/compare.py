"""Before and after, from the JSON of `python -m bench` runs made alternately (`--site` for
the other checkout): what an answer costs per scenario, and a plot of it.

    python -m bench.compare --out PLOT.png before-1.json after-1.json before-2.json ...

Runs are grouped by the commit they measured (`site_commit`) and the server that served it
when not the default (`--server`), in the order first seen. The
table gives each run's CPU seconds per answer and ours/simulator (the same window's provider
CPU, which cancels how fast the shared machine was at that moment), and the median of each.
"""

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path


def load(paths: list[Path]) -> dict:
    """{scenario label: {commit: [cost, ...]}}, commits in the order first seen (with the
    server, when it is not daphne)."""
    table: dict = defaultdict(lambda: defaultdict(list))
    for path in paths:
        results = json.loads(path.read_text())
        options = results["options"]
        commit = (options.get("site_commit") or path.stem)[:7]
        if options.get("server", "daphne") != "daphne":
            commit += f" on {options['server']}"
        for scenario in results["scenarios"]:
            if scenario.get("cost"):
                table[scenario["label"]][commit].append(scenario["cost"])
    return table


def markdown(table: dict) -> str:
    lines = [
        "| Scenario | Commit | CPU-s per answer (each run) | Ours / simulator (each run) "
        "| Median ours / simulator | Floor CPU-s per answer |",
        "|---|---|---|---|---|---|",
    ]
    for label, commits in table.items():
        for commit, costs in commits.items():
            per_answer = ", ".join(f"{c['cpu_s_per_answer']:.3f}" for c in costs)
            ratios = [c["per_simulator_cpu"] for c in costs if c.get("per_simulator_cpu")]
            floors = ", ".join(f"{c['floor']['cpu_s_per_answer']:.3f}" for c in costs)
            median = f"{statistics.median(ratios):.2f}" if ratios else "-"
            lines.append(
                f"| {label} | `{commit}` | {per_answer} | "
                f"{', '.join(f'{r:.2f}' for r in ratios)} | {median} | {floors} |"
            )
    return "\n".join(lines)


def plot(table: dict, path: Path) -> None:
    """Two panels: CPU ms per answer (with the floor), which moves with the machine's speed,
    and ours / simulator, which cancels it, with half of the first commit's marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(table)
    commits = list(dict.fromkeys(c for commits in table.values() for c in commits))
    width = 0.8 / (len(commits) + 1)
    figure, (cpu, ratio) = plt.subplots(1, 2, figsize=(12, 4))
    for index, commit in enumerate(commits):
        positions = [i + index * width for i in range(len(labels))]
        costs = [table[label].get(commit, []) for label in labels]
        cpu.bar(positions, [_median(c, "cpu_s_per_answer", 1000) for c in costs], width,
                label=f"ours at {commit}")  # fmt: skip
        ratio.bar(positions, [_median(c, "per_simulator_cpu") for c in costs], width,
                  label=f"ours at {commit}")  # fmt: skip
    floors = [
        _median([c["floor"] for costs in table[label].values() for c in costs],
                "cpu_s_per_answer", 1000)
        for label in labels
    ]  # fmt: skip
    positions = [i + len(commits) * width for i in range(len(labels))]
    cpu.bar(positions, floors, width, label="floor (the SDK straight to the simulator)")
    for i, label in enumerate(labels):
        first = _median(table[label][commits[0]], "per_simulator_cpu")
        span = (i - width / 2, i + width * (len(commits) - 0.5))
        marked = f"half of {commits[0]}" if i == 0 else None
        ratio.hlines(first / 2, *span, colors="black", linestyles="dashed", label=marked)
    for axes in (cpu, ratio):
        axes.set_xticks([i + width * len(commits) / 2 for i in range(len(labels))], labels)
        axes.legend(fontsize="small")
    cpu.set_ylabel("server CPU ms per answer (median of runs)")
    ratio.set_ylabel("ours / simulator CPU (median of runs)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def _median(costs: list[dict], key: str, scale: float = 1) -> float:
    values = [c[key] * scale for c in costs if c.get(key)]
    return statistics.median(values) if values else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("results", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, help="where the plot goes (PNG)")
    args = parser.parse_args()
    table = load(args.results)
    print(markdown(table))
    if args.out:
        plot(table, args.out)


if __name__ == "__main__":
    main()
