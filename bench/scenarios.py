"""The benchmark scenarios (see docs/benchmarks.md for what each one measures)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import math
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from django.conf import global_settings
from httpx_sse import aconnect_sse

from bench import biglist, bodies
from bench.harness import (
    ROOT,
    ClientProcess,
    Editor,
    Redis,
    Server,
    Workdir,
    login,
    postgres_available,
    postgres_database,
    prepare_site,
    site_env,
    viewer_cookies,
)
from graphapp.conf import DEFAULTS

DATA_UPLOAD_LIMIT = global_settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # bench.settings keeps Django's

PATHS = {
    "graphapp": "/graph/events/",
    "view": "/bench/view/",
    "floor": "/bench/floor/",
    "eventstream": "/bench/eventstream/",
    "old": "/bench/old/",
}
STATS_FIELDS = ("nodes", "edges", "avg_entanglement", "tiers", "types")


@dataclass(frozen=True)
class Plan:
    """How much to run: the full run or the quick one."""

    quick: bool
    levels: tuple[int, ...]
    old_levels: tuple[int, ...]
    repeats: int
    idle_streams: int
    idle_windows: int
    idle_window: float
    burst_saves: int
    burst_runs: int
    write_saves: int
    write_runs: int
    scaleout_streams: int
    stats_sizes: tuple[int, ...]
    stats_repeats: int
    converge_runs: int = 10
    history_rows: int = 86_400  # a day at one publication a second
    body_mib: int = 256  # scenario 10's POST: a few seconds per server
    recheck_sessions: int = 10_000  # scenario 12: streams, each of its own session

    @classmethod
    def full(cls) -> Plan:
        return cls(
            False,
            (100, 1000, 5000),
            (100, 1000),
            5,
            1000,
            # Windows over one whole REVALIDATE_INTERVAL: every stream checks
            # its session once in it, as it does in every such interval.
            math.ceil(DEFAULTS["REVALIDATE_INTERVAL"] / 15.0),
            15.0,
            10_000,
            3,
            10_000,
            # Pairs of runs: one pair's overhead varies by +-10 points on this
            # machine (the file's pages, the publisher's thread beside the saves).
            11,
            1000,
            (10_000, 100_000, 1_000_000),
            5,
        )

    @classmethod
    def fast(cls) -> Plan:
        return cls(
            True,
            (100, 500),
            (100,),
            3,
            500,
            2,
            3.0,
            1000,
            3,
            1000,
            3,
            100,
            (10_000, 100_000),
            3,
            converge_runs=3,
            history_rows=3_600,
            recheck_sessions=1000,
        )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of several runs."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def clients(work: Workdir) -> Iterator[ClientProcess]:
    process = ClientProcess(work.path / "clients.log")
    try:
        yield process
    finally:
        process.close()


# -- 1, 2, 3: fan-out, connect, idle -----------------------------------------------------


def trigger(editor: Editor, target: str) -> float:
    """Make one update reach ``target``'s streams; returns when it started (time.time())."""
    if target in {"graphapp", "view", "old"}:
        return editor.commit_time(editor.save_node())
    return editor.publish(target)


def fan_out_once(
    server: Server, editor: Editor, procs: list[ClientProcess], target: str
) -> dict[str, Any]:
    for proc in procs:
        proc.call({"cmd": "mark"})
    cpu = [proc.cpu for proc in procs]
    server_cpu = server.cpu()
    started = trigger(editor, target)
    answers = [proc.call({"cmd": "wait", "timeout": 60}) for proc in procs]
    latencies = [(at - started) * 1000 for answer in answers for at in answer["times"]]
    wall = max(time.time() - started, 1e-3)
    return {
        "p50": percentile(latencies, 0.5) if latencies else None,
        "p99": percentile(latencies, 0.99) if latencies else None,
        "last": max(latencies) if latencies else None,
        "received": len(latencies),
        "missing": sum(answer["missing"] for answer in answers),
        "server_cpu_s": server.cpu() - server_cpu,
        "client_cpu_s": sum(proc.cpu - before for proc, before in zip(procs, cpu, strict=True)),
        "wall_s": wall,
    }


def fan_out(
    server: Server, editor: Editor, procs: list[ClientProcess], target: str, repeats: int
) -> list[dict[str, Any]]:
    runs = []
    for _ in range(repeats + 1):
        runs.append(fan_out_once(server, editor, procs, target))
        time.sleep(0.3 if target != "old" else 0.1)
    return runs[1:]  # the first one warms up (imports, first frame, caches)


def grow(
    server: Server, proc: ClientProcess, target: str, cookies: list[str], have: int, want: int
) -> list[dict[str, Any]]:
    """Open streams from ``have`` to ``want`` in batches; rate and RSS of each batch."""
    batches = []
    step = max(100, (want - have) // 4)
    while have < want:
        count = min(step, want - have)
        rss = server.rss()
        cpu = proc.cpu
        answer = proc.open(server, PATHS[target], count, cookies if target != "floor" else [])
        time.sleep(0.5)  # let the server finish the work of the last connects
        opened = answer["opened"]
        batches.append(
            {
                "from": have,
                "opened": opened,
                "failed": answer["failed"],
                "errors": answer["errors"],
                "seconds": answer["seconds"],
                "rate": opened / answer["seconds"] if answer["seconds"] else 0.0,
                "rss_per_stream": (server.rss() - rss) / opened if opened else None,
                "client_cpu_s": proc.cpu - cpu,
            }
        )
        if answer["failed"]:
            log(f"  {answer['failed']} of {count} {target} streams failed: {answer['errors']}")
        have += opened
        if not opened:
            break
    return batches


def idle(server: Server, proc: ClientProcess, windows: int, seconds: float) -> list[dict[str, Any]]:
    time.sleep(3.0)
    results = []
    for _ in range(windows):
        server_cpu, client_cpu, started = server.cpu(), proc.cpu, time.monotonic()
        time.sleep(seconds)
        proc.call({"cmd": "mark"})
        wall = time.monotonic() - started
        results.append(
            {
                "seconds": wall,
                "server_cpu_pct": 100 * (server.cpu() - server_cpu) / wall,
                "client_cpu_pct": 100 * (proc.cpu - client_cpu) / wall,
            }
        )
    return results


def streaming(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    """Scenarios 1-3 for every server and target: grow N, fan out at each N, idle at 1,000."""
    results.setdefault("fanout", [])
    results.setdefault("connect", [])
    results.setdefault("idle", [])
    combos = [("daphne", t) for t in ("graphapp", "view", "floor", "eventstream", "old")]
    combos += [("uvicorn", t) for t in ("graphapp", "view", "floor", "eventstream")]
    for kind, target in combos:
        levels = plan.old_levels if target == "old" else plan.levels
        name = f"{kind}-{target}"
        env = site_env(work.sqlite_url(f"{name}.sqlite3"))
        prepare_site(env)
        server = Server(kind, env, work.path / f"{name}.log")
        log(f"{name}: levels {levels}")
        with running(server), clients(work) as proc:
            editor = Editor(server)
            cookies = viewer_cookies(server)
            have = 0
            rss_start = server.rss()
            try:
                for level in levels:
                    batches = grow(server, proc, target, cookies, have, level)
                    have += sum(batch["opened"] for batch in batches)
                    results["connect"].append(
                        {"server": kind, "target": target, "level": level, "batches": batches}
                    )
                    runs = fan_out(server, editor, [proc], target, plan.repeats)
                    results["fanout"].append(
                        {
                            "server": kind,
                            "target": target,
                            "n": have,
                            "level": level,
                            "runs": runs,
                            "rss": server.rss(),
                            "rss_start": rss_start,
                        }
                    )
                    last = [run["last"] for run in runs if run["last"] is not None]
                    log(f"  n={have}: last {spread(last) if last else 'none'}")
                    if kind == "daphne" and level == plan.idle_streams:
                        # Only graphapp revalidates (every REVALIDATE_INTERVAL): its
                        # windows cover one whole interval; the others' four.
                        count = (
                            plan.idle_windows if target == "graphapp" else min(plan.idle_windows, 4)
                        )
                        windows = idle(server, proc, count, plan.idle_window)
                        results["idle"].append({"target": target, "n": have, "windows": windows})
                        log(f"  idle: {[round(w['server_cpu_pct'], 2) for w in windows]} %")
            finally:
                editor.close()


# -- 4: burst ----------------------------------------------------------------------------


def burst(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    env = site_env(work.sqlite_url("burst.sqlite3"))
    prepare_site(env)
    server = Server("daphne", env, work.path / "burst.log")
    runs = []
    with running(server), clients(work) as proc:
        editor = Editor(server)
        try:
            proc.open(server, PATHS["graphapp"], 100, viewer_cookies(server))
            for _ in range(plan.burst_runs):
                proc.call({"cmd": "mark"})
                cpu = server.cpu()
                answer = editor.post("/bench/burst/", count=plan.burst_saves)
                summary = proc.call({"cmd": "summary", "settle": 1.0, "timeout": 60})
                final = answer["final"]
                lasts = [json.loads(data) for data in summary["last"] if data]
                equal = len(lasts) == 1 and all(lasts[0][key] == final[key] for key in STATS_FIELDS)
                runs.append(
                    {
                        "saves": plan.burst_saves,
                        "seconds": answer["seconds"],
                        "saves_per_s": plan.burst_saves / answer["seconds"],
                        "computations": answer["computations"],
                        "publications": answer["publications"],
                        "events_per_stream_min": summary["events_min"],
                        "events_per_stream_max": summary["events_max"],
                        "streams": summary["open"],
                        "last_event_is_final": equal,
                        "server_cpu_s": server.cpu() - cpu,
                    }
                )
                log(f"burst: {runs[-1]}")
        finally:
            editor.close()
    results["burst"] = runs


# -- 5: write overhead --------------------------------------------------------------------


def writes(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    env = site_env(work.sqlite_url("writes.sqlite3"))
    prepare_site(env, nodes=0)
    answer = subprocess.run(
        [sys.executable, "-m", "bench.writes", str(plan.write_saves), str(plan.write_runs)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    results["writes"] = json.loads(answer.stdout)
    log(f"writes: {results['writes']['summary']}")


# -- 6: scale-out -------------------------------------------------------------------------


def scale_out(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    if not postgres_available():
        results["scaleout"] = {"skipped": "PostgreSQL not reachable"}
        return
    redis = Redis(work.path)
    with postgres_database("scaleout") as database_url:
        try:
            redis.start()
            env = site_env(database_url, redis.url)
            prepare_site(env)
            servers = [Server("daphne", env, work.path / f"scaleout-{i}.log") for i in (0, 1)]
            with contextlib.ExitStack() as stack:
                for server in servers:
                    stack.enter_context(running(server))
                procs = [stack.enter_context(clients(work)) for _ in servers]
                cookies = viewer_cookies(servers[0])
                for server, proc in zip(servers, procs, strict=True):
                    opened = proc.open(server, PATHS["graphapp"], plan.scaleout_streams, cookies)
                    log(f"scale-out: {opened['opened']} streams on :{server.port}")
                editors = [Editor(server) for server in servers]
                for editor in editors:
                    stack.callback(editor.close)
                runs = []
                for index in range(plan.repeats + 1):
                    before = redis.commandstats()
                    run = fan_out_once(servers[index % 2], editors[index % 2], procs, "graphapp")
                    time.sleep(0.5)
                    after = redis.commandstats()
                    run["redis_calls"] = {
                        k: after[k] - before.get(k, 0)
                        for k in after
                        if after[k] != before.get(k, 0)
                    }
                    run["saved_on"] = index % 2
                    runs.append(run)
                runs = runs[1:]
                quiet_before = redis.commandstats()
                time.sleep(2.0)
                quiet_after = redis.commandstats()
                quiet = {
                    k: quiet_after[k] - quiet_before.get(k, 0)
                    for k in quiet_after
                    if quiet_after[k] != quiet_before.get(k, 0)
                }
                results["scaleout"] = {
                    "streams_per_process": plan.scaleout_streams,
                    "runs": runs,
                    "idle_calls_per_2s": quiet,
                }
                last = [run["last"] for run in runs]
                log(f"scale-out: last {spread(last)}; redis {runs[-1]['redis_calls']}")
        finally:
            redis.stop()


# -- 7: statistics cost -------------------------------------------------------------------


def on_each_engine(
    name: str, work: Workdir, module: str, args: list[str]
) -> Iterator[tuple[str, Any]]:
    """Run ``python -m module args`` on a fresh, migrated site of SQLite and (when it
    answers) PostgreSQL; yields (engine, its JSON output)."""
    with contextlib.ExitStack() as stack:
        urls = [("sqlite", work.sqlite_url(f"{name}.sqlite3"))]
        if postgres_available():
            urls.append(("postgresql", stack.enter_context(postgres_database(name))))
        for engine, database_url in urls:
            env = site_env(database_url)
            prepare_site(env, nodes=0)
            answer = subprocess.run(
                [sys.executable, "-m", module, *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if answer.returncode:
                raise RuntimeError(f"{module} failed on {engine}:\n{answer.stderr[-3000:]}")
            yield engine, json.loads(answer.stdout)


def stats_cost(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    results["stats"] = []
    sizes = ",".join(str(size) for size in plan.stats_sizes)
    args = [sizes, str(plan.stats_repeats)]
    for engine, rows in on_each_engine("stats", work, "bench.statscost", args):
        for row in rows:
            results["stats"].append({"engine": engine, **row})
            log(f"stats {engine} {row['nodes']}: {spread(row['ms'])} ms")


# -- 8: convergence without a message -----------------------------------------------------

_RAW_NODE = (
    "INSERT INTO graphapp_node (content, node_type, momentum, created_at, last_accessed,"
    " decayed_at, metadata) VALUES ('written outside Django', 'FACT', 0.5, ?, ?, ?, '{}')"
)


async def _converge_once(server: Server, cookie: str, database: Path) -> float:
    """Seconds from the commit of a row written with raw SQL (no signal, no
    message) to the stream's first snapshot that counts it."""
    async with (
        httpx.AsyncClient(base_url=server.url, headers={"Cookie": cookie}, timeout=30) as client,
        aconnect_sse(client, "GET", PATHS["graphapp"]) as source,
    ):
        events = source.aiter_sse()
        async for event in events:
            if event.event == "stats":
                before = json.loads(event.data)["nodes"]
                break
        now = datetime.datetime.now(datetime.UTC).isoformat(sep=" ")
        with sqlite3.connect(database) as raw:
            raw.execute(_RAW_NODE, (now, now, now))
        committed = time.monotonic()
        async with asyncio.timeout(30):
            async for event in events:
                if event.event == "stats" and json.loads(event.data)["nodes"] == before + 1:
                    return time.monotonic() - committed
    raise RuntimeError("the stream ended before it showed the row")


def convergence(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    """How long a stream takes to show a write that no message announced (the
    hub's own look at the database, every VERIFY_INTERVAL)."""
    env = site_env(work.sqlite_url("convergence.sqlite3"))
    prepare_site(env, nodes=1000)
    server = Server("daphne", env, work.path / "convergence.log")
    with running(server):
        cookie = login(server, "viewer0").cookie
        seconds = [
            asyncio.run(_converge_once(server, cookie, work.path / "convergence.sqlite3"))
            for _ in range(plan.converge_runs)
        ]
    results["convergence"] = {
        "verify_interval": DEFAULTS["VERIFY_INTERVAL"],
        "seconds": seconds,
    }
    log(f"convergence: {spread(seconds)} s")


# -- 9: history and the change log ----------------------------------------------------------


def history_cost(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    """A publication's history point and change-log row, a day of history
    read once per process, and the size of the history event."""
    results["history"] = []
    args = [str(plan.history_rows), "5"]
    for engine, row in on_each_engine("history", work, "bench.historycost", args):
        results["history"].append({"engine": engine, **row})
        log(f"history {engine}: {row}")


# -- 10: large request bodies -------------------------------------------------------------

# (server, application): Django alone, behind BodyLimit, and daphne bounded as well.
BODY_SERVERS = (
    ("daphne", "bench.asgi:application"),
    ("daphne", "bench.asgi:bounded"),
    ("graphapp.daphne", "bench.asgi:bounded"),
    ("uvicorn", "bench.asgi:application"),
    ("uvicorn", "bench.asgi:bounded"),
)
SETTLE_S = 3.0  # daphne reaps finished requests once a second


def large_body_once(
    work: Workdir, kind: str, application: str, size: int, chunked: bool
) -> dict[str, Any]:
    """One anonymous POST of ``size`` bytes to a URL that does not exist, on a
    fresh server: its RSS before, at the peak and settled, and its temporary files."""
    name = f"bodies-{kind}-{application.rsplit(':', 1)[1]}-{'chunked' if chunked else 'length'}"
    temp = work.path / f"{name}-tmp"
    temp.mkdir()
    env = site_env(work.sqlite_url("bodies.sqlite3"), TMPDIR=str(temp))
    server = Server(kind, env, work.path / f"{name}.log", application=application)
    with running(server):
        assert server.process is not None
        bodies.post(server, "/nowhere/", 1000, chunked=chunked)  # every code path imported
        before = server.rss()
        with bodies.Sampler(server.process.pid, temp) as sampler:
            answer = bodies.post(server, "/nowhere/", size, chunked=chunked)
            time.sleep(SETTLE_S)
        alive = httpx.get(f"{server.url}/accounts/login/", timeout=30).status_code
        return {
            "server": kind,
            "application": application,
            "chunked": chunked,
            **answer,
            "rss_before": before,
            "rss_peak": max(sampler.rss_peak, before),
            "rss_settled": server.rss(),
            "temp_peak": sampler.temp_peak,
            "temp_settled": bodies.temp_bytes(server.process.pid, temp),
            "then_login_page": alive,
        }


def large_bodies(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    """What a large anonymous POST costs each server, with and without graphapp's bounds."""
    prepare_site(site_env(work.sqlite_url("bodies.sqlite3")), nodes=0)
    size = plan.body_mib * 2**20
    runs = []
    for kind, application in BODY_SERVERS:
        for chunked in (False, True):
            run = large_body_once(work, kind, application, size, chunked)
            runs.append(run)
            log(
                f"bodies {kind} {application} {'chunked' if chunked else 'length'}: "
                f"{run['status_line']}, sent {run['sent_before_answer'] >> 20} MiB, RSS "
                f"{run['rss_before'] >> 20}/{run['rss_peak'] >> 20}/{run['rss_settled'] >> 20} "
                f"MiB, temp {run['temp_peak'] >> 20} MiB"
            )
    results["bodies"] = {"mib": plan.body_mib, "limit": DATA_UPLOAD_LIMIT, "runs": runs}


# -- 11: a nodes list over rows of megabytes -------------------------------------------------


def big_list(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    """GET /graph/api/nodes/?limit=100 over 100 nodes of 2.5 MB metadata, once and
    four at once, each on a fresh daphne (its memory's high-water mark is the run's)."""
    env = site_env(work.sqlite_url("biglist.sqlite3"))
    prepare_site(env, nodes=0)
    biglist.seed(env)
    results["biglist"] = []
    for parallel in (1, 4):
        server = Server("daphne", env, work.path / f"biglist-{parallel}.log")
        with running(server):
            cookie = login(server, "viewer0").cookie
            row = asyncio.run(biglist.measure(server, cookie, parallel))
        results["biglist"].append(row)
        log(f"biglist x{parallel}: {row}")


# -- 12: a change of access -------------------------------------------------------------


def recheck_cost(plan: Plan, work: Workdir, results: dict[str, Any]) -> None:
    """A recheck of everyone and of one user over streams of distinct sessions,
    and clearsessions with graphapp's session receiver and without it."""
    results["rechecks"] = []
    args = [str(plan.recheck_sessions)]
    for engine, row in on_each_engine("rechecks", work, "bench.recheckcost", args):
        results["rechecks"].append({"engine": engine, **row})
        log(f"rechecks {engine}: {row}")


SCENARIOS: dict[str, Callable[[Plan, Workdir, dict[str, Any]], None]] = {
    "streaming": streaming,
    "burst": burst,
    "writes": writes,
    "scaleout": scale_out,
    "stats": stats_cost,
    "convergence": convergence,
    "history": history_cost,
    "bodies": large_bodies,
    "biglist": big_list,
    "rechecks": recheck_cost,
}
