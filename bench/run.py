"""Run the scale benchmark: per scenario, a fresh site (daphne processes, the simulator as
provider, PostgreSQL, Redis), a seeded crowd of users, the load generator, and the numbers.

Scenarios differ in how the site follows a run (polling every 5 s, every 1 s, our adaptive
polling, or streaming), in the provider protocol (Responses, or Chat Completions for `chat-*`)
and in how many daphne processes serve. `embedded` and `chat-embedded` are the README's run
command instead: one daphne process on SQLite with the in-memory channel layer (and the run
worker inside it), whatever --database and --layer say. `split` puts every socket on one
process and every post on another (pages and sockets apart). A scenario the site cannot run
yet is listed with `unavailable` and reported as such.

Each scenario also reports what it costs: the servers' CPU seconds per completed answer and
per delivered `message.delta`, over the posting window only, beside the floor (the same load
sent straight to the simulator by bench/floor.py) and the ratio of the two. `--site DIR`
runs the site from another checkout (its own .venv) under this checkout's load, floor,
simulator and report; `--server uvicorn` serves it with uvicorn instead of daphne.
"""

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import httpx
import psutil

from tests.live import ROOT, SERVERS, postgres_database, start_site

from . import report

RESULTS = ROOT / "bench" / "results"
CSRF = "benchcsrftoken0123456789abcdefgh"  # 32 characters, the length of a CSRF secret
SEED = "import json; from bench.seed import seed; print(json.dumps(seed(%d)))"
# Completed runs with no stored answer or more than one; and runs left unfinished.
STORED_ANSWERS = (
    "{'completed': Run.objects.filter(status='completed').annotate(n=models.Count("
    "'messages', filter=models.Q(messages__role='assistant'))).exclude(n=1).count(), "
    "'unfinished': Run.objects.active().count()}"
)


@dataclass(frozen=True)
class Scenario:
    name: str
    label: str
    env: dict = field(default_factory=dict)
    servers: int = 1
    unavailable: str = ""  # why it cannot run yet
    database: str = ""  # "sqlite" or "postgres" whatever --database says; "": as it says
    layer: str = ""  # likewise for --layer
    engine: str = "responses"  # the "Sim" assistant's protocol: "responses" or "chat"
    split: bool = False  # every socket on the first process, every post on the second

    @property
    def streaming(self) -> bool:
        return self.env.get("RUN_STREAMING") == "1"


POLLING = {"RUN_STREAMING": "0"}  # the site streams where the engine can, unless told not to
SCENARIOS = {
    s.name: s
    for s in [
        Scenario(
            "fixed-5s",
            "fixed 5 s (setInterval loop)",
            {**POLLING, "RUN_POLL_STRATEGY": "fixed", "RUN_POLL_FIXED_SECONDS": "5"},
        ),
        Scenario(
            "fixed-1s",
            "fixed 1 s (SDK runs.poll default)",
            {**POLLING, "RUN_POLL_STRATEGY": "fixed", "RUN_POLL_FIXED_SECONDS": "1"},
        ),
        Scenario(
            "adaptive", "ours (adaptive backoff)", {**POLLING, "RUN_POLL_STRATEGY": "adaptive"}
        ),
        Scenario("streaming", "streaming", {"RUN_STREAMING": "1"}),
        Scenario(
            "adaptive-2proc",
            "ours, 2 processes",
            {**POLLING, "RUN_POLL_STRATEGY": "adaptive"},
            servers=2,
        ),
        Scenario(
            "embedded",
            "SQLite, in-memory layer (manage.py serve)",
            {"RUN_STREAMING": "1"},
            database="sqlite",
            layer="memory",
        ),
        Scenario(
            "chat-streaming", "Chat Completions, streaming", {"RUN_STREAMING": "1"}, engine="chat"
        ),
        Scenario(
            "chat-embedded",
            "Chat Completions, SQLite, in-memory layer",
            {"RUN_STREAMING": "1"},
            database="sqlite",
            layer="memory",
            engine="chat",
        ),
        # The sockets' process is loaded as `streaming`'s; the pages move to a second one.
        Scenario(
            "split",
            "streaming, sockets and pages apart",
            {"RUN_STREAMING": "1"},
            servers=2,
            split=True,
        ),
    ]
}


@dataclass(frozen=True)
class Scale:
    users: int  # sockets per daphne process
    runs: int  # runs in flight per daphne process
    duration: float  # seconds of posting
    reconnect: int  # idle sockets per process that reconnect at once, halfway through
    lone_idle: float = 3.0  # seconds of lone connects timed before the runs start


SCALES = {
    # The tests' tiny run: every path once, in seconds.
    "smoke": Scale(users=8, runs=3, duration=2, reconnect=2, lone_idle=1.0),
    "small": Scale(users=50, runs=10, duration=15, reconnect=10),
    "full": Scale(users=1000, runs=200, duration=40, reconnect=100),
    # A team on the embedded default: 50 people chatting back to back for a minute.
    "team": Scale(users=60, runs=50, duration=60, reconnect=10),
    # Issue 22's setup: N=50 users chatting back to back for 30 s, nobody else connected.
    "users50": Scale(users=50, runs=50, duration=30, reconnect=0),
}


@dataclass
class Options:
    scale: Scale
    database: str  # "postgres" or "sqlite"
    layer: str  # "pubsub", "core" or "memory"
    redis_url: str
    latency: float  # simulator: seconds to the first token...
    jitter: float  # ...plus up to this much, at random
    run_timeout: float
    profile: str  # "": none; "flamegraph" (SVG) or "raw" (collapsed stacks, CPU only)
    site: Path = ROOT  # the checkout the site runs from
    python: str = sys.executable  # ...and its interpreter
    server: str = "daphne"  # of tests.live.SERVERS
    rate: float = 0.0  # answers a second asked of each loaded process (open load); 0: closed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scale", choices=SCALES, default="full")
    parser.add_argument(
        "--scenarios", default="fixed-5s,fixed-1s,adaptive,streaming,adaptive-2proc",
        help=f"comma-separated, of: {', '.join(SCENARIOS)}",
    )  # fmt: skip
    for knob in ("users", "runs", "duration", "reconnect"):
        parser.add_argument(f"--{knob}", type=float, help=f"override the scale's {knob}")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--layer", choices=["pubsub", "core", "memory"], default="pubsub")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--jitter", type=float, default=4.0)
    parser.add_argument("--run-timeout", type=float, default=60.0)
    parser.add_argument(
        "--profile", nargs="?", const="flamegraph", default="", choices=["flamegraph", "raw"],
        help="py-spy samples of the first server: a flame graph (SVG), or raw: the collapsed "
        "stacks of the samples that held the GIL (where its CPU goes), as text to read and diff"
    )
    parser.add_argument(
        "--site", type=Path, default=ROOT, metavar="DIR",
        help="run the site from this checkout, with its DIR/.venv/bin/python",
    )  # fmt: skip
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument(
        "--rate", type=float, default=0.0, metavar="PER_SECOND",
        help="an open load: each process is asked this many answers a second (up to --runs at "
        "once), the same work for any site, so that latencies compare; without it each runner "
        "posts again as its answer ends (a closed load: a faster site is sent more)",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS, help="where results go")
    parser.add_argument("--name", default="", help="results file name (default: the scale)")
    args = parser.parse_args(argv)

    scale = scale_of(args)
    options = Options(
        scale=scale, database=args.database, layer=args.layer,
        redis_url=args.redis_url, latency=args.latency, jitter=args.jitter,
        run_timeout=args.run_timeout, profile=args.profile, server=args.server, rate=args.rate,
        **site_checkout(args.site, args.server),
    )  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = args.name or args.scale
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results = {
        "command": command.strip(),
        "machine": machine(),
        "options": {
            **asdict(options),
            "site": str(options.site),
            "site_commit": commit(options.site),
            "scale_name": args.scale,
        },
        "scenarios": [],
    }
    for scenario_name in args.scenarios.split(","):
        scenario = SCENARIOS[scenario_name]
        print(f"--- {scenario.name}: {scenario.label}", file=sys.stderr, flush=True)
        result = run_scenario(scenario, options, args.out / name)
        results["scenarios"].append(result)
        print(report.line(result), file=sys.stderr, flush=True)
    results["machine"]["load_after"] = load_average()
    (args.out / f"{name}.json").write_text(json.dumps(results, indent=1))
    plot = report.plot(results, args.out / f"{name}-latency.png")
    cost_plot = report.plot_costs(results, args.out / f"{name}-cost.png")
    print(report.markdown(results, plot, cost_plot))


def scale_of(args: argparse.Namespace) -> Scale:
    """The scale asked for, with the knobs given overriding it (0 included: no reconnects)."""
    given = {k: getattr(args, k) for k in ("users", "runs", "reconnect")}
    knobs = {k: int(v) for k, v in given.items() if v is not None}
    if args.duration is not None:
        knobs["duration"] = args.duration
    return replace(SCALES[args.scale], **knobs)


def run_scenario(scenario: Scenario, options: Options, prefix: Path) -> dict:
    summary = {"name": scenario.name, "label": scenario.label, "servers": scenario.servers}
    if scenario.unavailable:
        return {**summary, "unavailable": scenario.unavailable}
    options = replace(
        options,
        database=scenario.database or options.database,
        layer=scenario.layer or options.layer,
    )
    loaded = 1 if scenario.split else scenario.servers  # processes holding sockets and runs
    users = options.scale.users * loaded
    runs = options.scale.runs * loaded
    log = open(f"{prefix}-{scenario.name}.log", "w")  # the servers' output
    with log, tempfile.TemporaryDirectory() as tmp, database(options) as database_url:
        env = site_env(scenario, options, database_url)
        with start_site(
            Path(tmp), env, engine=scenario.engine, servers=scenario.servers,
            latency=options.latency, output=log, root=options.site, python=options.python,
            server=options.server,
        ) as site:  # fmt: skip
            seeded = json.loads(site.manage("shell", "--verbosity", "0", "-c", SEED % users))
            simulator = next(p for p in site.processes if "simulator" in p.args)
            plan = {
                "urls": site.urls[:1] if scenario.split else site.urls,
                "post_urls": site.urls[1:] if scenario.split else [],
                "users": seeded,
                "runs_in_flight": runs,
                "duration": options.scale.duration,
                "reconnect": options.scale.reconnect * loaded,
                "run_timeout": options.run_timeout,
                "connect_timeout": 60.0,
                "csrf": CSRF,
                "rate": options.rate * loaded,
                "lone_idle": options.scale.lone_idle,
            }
            suffix = "txt" if options.profile == "raw" else "svg"
            profile = f"{prefix}-{scenario.name}-profile.{suffix}"
            with (
                Sampler([p.pid for p in site.servers], simulator.pid) as sampler,
                profiling(site.servers[0].pid, profile) if options.profile else nullcontext(),
            ):
                observed = load(plan)
            simulator_root = site.simulator_url.removesuffix("/v1")
            stats = httpx.get(simulator_root + "/simulator/stats").json()
            chat_stats = httpx.get(simulator_root + "/simulator/chat-stats").json()
            remote_ids = dict(site.query("list(Run.objects.values_list('pk', 'remote_id'))"))
            stored = site.query(STORED_ANSWERS)
            # After the site's load, on the same simulator: what the provider alone costs.
            floor_plan = {
                "base_url": site.simulator_url,
                "protocol": scenario.engine,
                "streaming": scenario.streaming,
                "runners": runs,
                "duration": options.scale.duration,
                "run_timeout": options.run_timeout,
            }
            floor = run_floor(floor_plan, simulator.pid)
    ours = report.costs(sampler.samples, observed, servers=len(site.servers))
    return {
        **summary,
        "server": options.server,
        "sockets_planned": users,
        "runs_planned": runs,
        **report.summarise(observed, stats, remote_ids, chat_stats),
        "answers_not_stored_once": stored,
        **sampler.summary(),
        "cost": report.compare(ours, floor),
        "profile": Path(profile).name if options.profile else None,
    }


def site_env(scenario: Scenario, options: Options, database_url: str) -> dict:
    env = {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-" + uuid.uuid4().hex,
        "DJANGO_SECURE_COOKIES": "0",  # plain HTTP on loopback
        "DJANGO_SSL_REDIRECT": "0",
        "LOG_LEVEL": "WARNING",
        # Simulated users post as fast as their answers come: no fair-use limits here.
        "MESSAGES_PER_MINUTE": "0",
        "CONCURRENT_RUNS": "0",
        "DAILY_TOKEN_BUDGET": "0",
        "SIMULATOR_LATENCY_JITTER_SECONDS": str(options.jitter),
        **scenario.env,
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    if options.layer != "memory":
        env |= {
            "REDIS_URL": options.redis_url,
            "REDIS_CHANNEL_LAYER": options.layer,
            "REDIS_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",  # the Redis may be shared
        }
    elif scenario.servers > 1:
        raise SystemExit("several processes need a Redis channel layer (--layer pubsub|core)")
    return env


@contextmanager
def database(options: Options):
    if options.database == "sqlite":
        yield ""  # start_site's own SQLite file
        return
    # A copy of a migrated database when the site is this checkout; another one migrates its own.
    with postgres_database(migrated=options.site == ROOT) as url:
        yield url


def load(plan: dict) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=plan["duration"] + plan["run_timeout"] + 4 * plan["connect_timeout"] + 60,
    )
    if result.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout)


class Sampler:
    """Samples the servers' resident memory (peak), and the CPU time (user + system) of the
    servers and the simulator while the load runs: (time.time(), [seconds per server...,
    simulator]) every `every` seconds, so that a window can be cut out (report.window_cpu)."""

    def __init__(self, servers: list[int], simulator: int, every: float = 0.25):
        self.servers = [psutil.Process(pid) for pid in servers]
        self.simulator = psutil.Process(simulator)
        self.every = every
        self.peaks = [0] * len(servers)
        self.samples: list[tuple[float, list[float]]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def __enter__(self):
        self.record()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join()
        self.record()
        (began, before), (ended, after) = self.samples[0], self.samples[-1]
        seconds = max(ended - began, 1e-9)
        self.cpu = [round(100 * (a - b) / seconds) for a, b in zip(after, before, strict=True)]

    def record(self) -> None:
        try:
            times = [sum(p.cpu_times()[:2]) for p in [*self.servers, self.simulator]]
        except psutil.Error:
            return  # a process that has ended (the floor's, once done): its last sample stands
        self.samples.append((time.time(), times))

    def sample(self) -> None:
        while not self.stopped.wait(self.every):
            self.record()
            for i, process in enumerate(self.servers):
                with suppress(psutil.Error):
                    self.peaks[i] = max(self.peaks[i], process.memory_info().rss)

    def summary(self) -> dict:
        return {
            "rss_peak_mb": [round(peak / 2**20) for peak in self.peaks],
            "cpu_percent": self.cpu[:-1],
            "simulator_cpu_percent": self.cpu[-1],
        }


def run_floor(plan: dict, simulator: int) -> dict:
    """bench/floor.py on `plan`: its answers and deltas, and the CPU seconds it and the
    simulator spent while it posted."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.floor"], cwd=ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    with Sampler([process.pid], simulator) as sampler:
        out, err = process.communicate(
            json.dumps(plan), timeout=plan["duration"] + plan["run_timeout"] + 60
        )
    if process.returncode != 0:
        raise RuntimeError(f"the floor failed:\n{err[-3000:]}")
    done = json.loads(out)
    floor_cpu, simulator_cpu = report.window_cpu(sampler.samples, **done["posting"])
    return {
        "answers": done["answers"],
        "deltas": done["deltas"],
        "errors": done["error_count"],
        "error_samples": done["errors"],
        "seconds": round(done["posting"]["stopped"] - done["posting"]["started"], 2),
        "cpu_s": floor_cpu,
        "simulator_cpu_s": simulator_cpu,
    }


def site_checkout(site: Path, server: str) -> dict:
    """The checkout the site runs from and its interpreter (its own .venv, unless it is this
    one); refuses one that cannot run the site with `server`."""
    site = site.resolve()
    python = sys.executable if site == ROOT else str(site / ".venv" / "bin" / "python")
    if not (site / "manage.py").is_file() or not Path(python).is_file():
        raise SystemExit(f"--site {site}: needs manage.py and .venv/bin/python there")
    if subprocess.run([python, "-c", f"import {server}"], capture_output=True).returncode:
        raise SystemExit(f"--site {site}: its Python cannot import {server}")
    return {"site": site, "python": python}


def commit(site: Path) -> str:
    """The site checkout's commit, with "+" if it has changes not committed."""
    git = ["git", "-C", str(site)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)  # fmt: skip
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "")


@contextmanager
def profiling(pid: int, output: str):
    """py-spy samples the process until the block ends, then writes a flame graph."""
    py_spy = Path(sys.executable).parent / "py-spy"
    # Non-blocking: the server is not paused to be sampled, so it is measured as it runs.
    command = [str(py_spy), "record", "--pid", str(pid), "--rate", "100", "--nonblocking"]
    if output.endswith(".txt"):  # raw: only samples holding the GIL, i.e. Python's CPU
        command += ["--gil", "--format", "raw", "--output", output]
    else:
        command += ["--format", "flamegraph", "--output", output]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        process.send_signal(2)  # SIGINT: py-spy writes what it has and exits
        process.wait(timeout=60)


def machine() -> dict:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_before": load_average(),
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in psutil.getloadavg()]
