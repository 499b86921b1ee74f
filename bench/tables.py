"""The table the small cost benchmarks print (bench.polls, bench.event_reads,
bench.publishes): each way's cost in every round, and its best against the best of the way
named as the baseline."""


def print_costs(columns: tuple[str, str, str], costs: dict[str, list[float]], baseline: str,
                digits: int, ratio_digits: int) -> None:  # fmt: skip
    best = min(costs[baseline])
    print(f"| {' | '.join(columns)} |")
    print("|---|---|---|")
    for name, rounds in costs.items():
        shown = ", ".join(f"{cost:.{digits}f}" for cost in rounds)
        print(f"| {name} | {shown} | {min(rounds) / best:.{ratio_digits}f} |")
