"""docs/benchmarks.md and its plots from the raw results.

``python -m bench.report RESULTS.json OUT_DIR`` writes them again from a saved run.
"""

from __future__ import annotations

import importlib.metadata
import json
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from graphapp.conf import DEFAULTS

TARGETS = {
    "graphapp": "graphapp (in front of Django)",
    "view": "graphapp (Django view)",
    "floor": "floor (bare async view)",
    "eventstream": "django-eventstream",
    "old": "old design (poll every 2 s)",
}
DASH = "\u2013"
GOALS = {
    "within_floor": 15.0,
    "connects_per_s": 500.0,
    "connects_over_floor": 1.5,
    "rss_kb": 60.0,
    "idle_pct": 2.0,
    "write_overhead_pct": 10.0,
    "stats_1m_pg_ms": 500.0,
    "convergence_s": 5.0,
}


def versions() -> dict[str, str]:
    names = ("Django", "channels", "channels-redis", "daphne", "uvicorn", "django-eventstream")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def spread(values: Iterable[float | None]) -> dict[str, float] | None:
    present = [value for value in values if value is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present)}


def fmt(s: dict[str, float] | None, digits: int = 0, unit: str = "") -> str:
    if s is None:
        return "\u2013"
    return f"{s['median']:.{digits}f}{unit} ({s['min']:.{digits}f}\u2013{s['max']:.{digits}f})"


def verdict(ok: bool | None) -> str:
    return "\u2013" if ok is None else ("met" if ok else "**missed**")


# -- summaries ---------------------------------------------------------------------------


def fanout_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for entry in results.get("fanout", []):
        runs = entry["runs"]
        rows.append(
            {
                "server": entry["server"],
                "target": entry["target"],
                "n": entry["level"],
                "p50": spread(run["p50"] for run in runs),
                "p99": spread(run["p99"] for run in runs),
                "last": spread(run["last"] for run in runs),
                "missing": sum(run["missing"] for run in runs),
                "client_cpu": spread(run["client_cpu_s"] * 1000 for run in runs),
                "server_cpu": spread(run["server_cpu_s"] * 1000 for run in runs),
            }
        )
    return rows


def find(rows: list[dict[str, Any]], **keys: Any) -> dict[str, Any] | None:
    for row in rows:
        if all(row.get(k) == v for k, v in keys.items()):
            return row
    return None


def connect_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per server and target: the batches of the largest growth step."""
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for entry in results.get("connect", []):
        key = (entry["server"], entry["target"])
        best[key] = entry  # later (larger) levels replace earlier ones
    rows = []
    for (server, target), entry in best.items():
        batches = [b for b in entry["batches"] if b["opened"]]
        rows.append(
            {
                "server": server,
                "target": target,
                "level": entry["level"],
                "rate": spread(b["rate"] for b in batches),
                "rss_kb": spread(
                    b["rss_per_stream"] / 1024 for b in batches if b["rss_per_stream"] is not None
                ),
                "client_cpu": spread(
                    100 * b["client_cpu_s"] / b["seconds"] for b in batches if b["seconds"]
                ),
                "failed": sum(b["failed"] for b in entry["batches"]),
            }
        )
    return rows


def mean_spread(values: list[float]) -> dict[str, float] | None:
    """The mean over the whole time (under "median", as fmt() prints), min and max window.

    Not the median of the windows: work that comes once a minute (the streams'
    permission revalidation) lands in one window, and a median would hide it.
    """
    if not values:
        return None
    return {"median": statistics.fmean(values), "min": min(values), "max": max(values)}


def idle_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "target": entry["target"],
            "n": entry["n"],
            "server": mean_spread([w["server_cpu_pct"] for w in entry["windows"]]),
            "client": mean_spread([w["client_cpu_pct"] for w in entry["windows"]]),
            "window": entry["windows"][0]["seconds"] if entry["windows"] else 0,
            "windows": len(entry["windows"]),
        }
        for entry in results.get("idle", [])
    ]


# -- plots ---------------------------------------------------------------------------------


def plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    folder = out / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    rows = fanout_rows(results)
    servers = sorted({row["server"] for row in rows})
    if rows:
        fig, axes = plt.subplots(1, len(servers), figsize=(6 * len(servers), 4.2), squeeze=False)
        for ax, server in zip(axes[0], servers, strict=True):
            for target in TARGETS:
                mine = sorted(
                    (
                        r
                        for r in rows
                        if r["server"] == server and r["target"] == target and r["last"]
                    ),
                    key=lambda r: r["n"],
                )
                if not mine:
                    continue
                ns = [r["n"] for r in mine]
                med = [r["last"]["median"] for r in mine]
                low = [r["last"]["median"] - r["last"]["min"] for r in mine]
                high = [r["last"]["max"] - r["last"]["median"] for r in mine]
                ax.errorbar(ns, med, yerr=[low, high], marker="o", capsize=3, label=TARGETS[target])
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("open streams")
            ax.set_ylabel("commit \u2192 last client (ms)")
            ax.set_title(f"Fan-out under {server} (median, min\u2013max)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "fanout.png", dpi=110)
        plt.close(fig)
        made.append("bench/fanout.png")

    conn = [r for r in connect_rows(results) if r["rate"]]
    idle = idle_rows(results)
    if conn or idle:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        labels = [f"{r['target']}\n{r['server']}" for r in conn]
        axes[0].bar(
            labels,
            [r["rate"]["median"] for r in conn],
            yerr=[
                [r["rate"]["median"] - r["rate"]["min"] for r in conn],
                [r["rate"]["max"] - r["rate"]["median"] for r in conn],
            ],
            capsize=3,
        )
        axes[0].axhline(GOALS["connects_per_s"], color="red", linestyle="--", label="target")
        axes[0].set_title("Streams opened per second")
        axes[0].legend()
        withrss = [r for r in conn if r["rss_kb"]]
        axes[1].bar(
            [f"{r['target']}\n{r['server']}" for r in withrss],
            [r["rss_kb"]["median"] for r in withrss],
        )
        axes[1].axhline(GOALS["rss_kb"], color="red", linestyle="--", label="target")
        axes[1].set_title("Server RSS per open stream (KB)")
        axes[1].legend()
        idle_ok = [r for r in idle if r["server"]]
        axes[2].bar(
            [r["target"] for r in idle_ok],
            [r["server"]["median"] for r in idle_ok],
            yerr=[
                [r["server"]["median"] - r["server"]["min"] for r in idle_ok],
                [r["server"]["max"] - r["server"]["median"] for r in idle_ok],
            ],
            capsize=3,
        )
        axes[2].axhline(GOALS["idle_pct"], color="red", linestyle="--", label="target")
        axes[2].set_yscale("log")
        axes[2].set_title("Idle server CPU, % of one core (daphne)")
        axes[2].legend()
        for ax in axes:
            ax.tick_params(axis="x", labelsize=7)
        fig.tight_layout()
        fig.savefig(folder / "connections.png", dpi=110)
        plt.close(fig)
        made.append("bench/connections.png")

    stats = results.get("stats", [])
    if stats:
        fig, ax = plt.subplots(figsize=(6, 4))
        for engine in sorted({row["engine"] for row in stats}):
            mine = [row for row in stats if row["engine"] == engine]
            ax.errorbar(
                [row["nodes"] for row in mine],
                [statistics.median(row["ms"]) for row in mine],
                yerr=[
                    [statistics.median(row["ms"]) - min(row["ms"]) for row in mine],
                    [max(row["ms"]) - statistics.median(row["ms"]) for row in mine],
                ],
                marker="o",
                capsize=3,
                label=engine,
            )
        ax.axhline(GOALS["stats_1m_pg_ms"], color="red", linestyle="--", label="1M target")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("nodes (5 edges each)")
        ax.set_ylabel("compute_stats() ms")
        ax.set_title("Statistics cost")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "stats.png", dpi=110)
        plt.close(fig)
        made.append("bench/stats.png")
    return made


# -- the document ----------------------------------------------------------------------------


def targets_table(results: dict[str, Any]) -> list[str]:
    rows = fanout_rows(results)
    lines = ["| target | measured | verdict |", "| --- | --- | --- |"]
    for row in rows:
        if row["target"] != "graphapp":
            continue
        floor = find(rows, server=row["server"], target="floor", n=row["n"])
        if not floor or not row["last"] or not floor["last"]:
            continue
        gap = 100 * (row["last"]["median"] / floor["last"]["median"] - 1)
        lines.append(
            f"| fan-out within 15% of the floor, {row['server']}, N={row['n']:,} (last client) "
            f"| {row['last']['median']:.0f} ms vs {floor['last']['median']:.0f} ms "
            f"({gap:+.0f}%) | {verdict(gap <= GOALS['within_floor'])} |"
        )
    connects = connect_rows(results)
    for row in connects:
        floor_rate = find(connects, server=row["server"], target="floor")
        if row["target"] in {"graphapp", "view"} and row["rate"] and floor_rate:
            ratio = row["rate"]["median"] / floor_rate["rate"]["median"]
            lines.append(
                f"| ≥1.5x the floor's connects/s with session + permission checks, "
                f"{TARGETS[row['target']]}, {row['server']} | {ratio:.2f}x "
                f"({row['rate']['median']:.0f}/s vs {floor_rate['rate']['median']:.0f}/s) | "
                f"{verdict(ratio >= GOALS['connects_over_floor'])} |"
            )
        if row["target"] == "graphapp" and row["rate"]:
            lines.append(
                f"| ≥500 streams opened/s with login + permission checks, "
                f"{row['server']} | {row['rate']['median']:.0f}/s | "
                f"{verdict(row['rate']['median'] >= GOALS['connects_per_s'])} |"
            )
        if row["target"] == "graphapp" and row["rss_kb"]:
            lines.append(
                f"| ≤60 KB RSS per open stream, {row['server']} | "
                f"{row['rss_kb']['median']:.1f} KB | "
                f"{verdict(row['rss_kb']['median'] <= GOALS['rss_kb'])} |"
            )
    for row in idle_rows(results):
        if row["target"] == "graphapp" and row["server"]:
            lines.append(
                f"| idle CPU ≤2% of one core at {row['n']:,} streams | "
                f"{row['server']['median']:.2f}% | "
                f"{verdict(row['server']['median'] <= GOALS['idle_pct'])} |"
            )
    writes = results.get("writes")
    if writes:
        overhead = writes["summary"]["overhead_pct"]
        lines.append(
            f"| write overhead ≤10% | {overhead:+.1f}% | "
            f"{verdict(overhead <= GOALS['write_overhead_pct'])} |"
        )
    for row in results.get("stats", []):
        if row["engine"] == "postgresql" and row["nodes"] >= 1_000_000:
            ms = statistics.median(row["ms"])
            lines.append(
                f"| 1M-node snapshot on PostgreSQL ≤500 ms | {ms:.0f} ms | "
                f"{verdict(ms <= GOALS['stats_1m_pg_ms'])} |"
            )
    converge = results.get("convergence")
    if converge:
        worst = max(converge["seconds"])
        lines.append(
            f"| a write no message announced shown within 5 s | {worst:.2f} s (slowest of "
            f"{len(converge['seconds'])}) | {verdict(worst <= GOALS['convergence_s'])} |"
        )
    burst = results.get("burst")
    if burst:
        ok = all(run["last_event_is_final"] for run in burst)
        lines.append(
            f"| burst: last event equals the final state | "
            f"{sum(r['last_event_is_final'] for r in burst)}/{len(burst)} runs | "
            f"{verdict(ok)} |"
        )
    return lines


def fanout_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| server | streams | implementation | p50 ms | p99 ms | last client ms | "
        "missed | server CPU ms | client CPU ms |",
        "| --- | ---: | --- | --- | --- | --- | ---: | --- | --- |",
    ]
    order = list(TARGETS)
    for row in sorted(
        fanout_rows(results), key=lambda r: (r["server"], r["n"], order.index(r["target"]))
    ):
        lines.append(
            f"| {row['server']} | {row['n']:,} | {TARGETS[row['target']]} | {fmt(row['p50'], 1)} "
            f"| {fmt(row['p99'], 1)} | {fmt(row['last'], 1)} | {row['missing']} "
            f"| {fmt(row['server_cpu'])} | {fmt(row['client_cpu'])} |"
        )
    return lines


def connect_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| server | implementation | streams opened/s | RSS per stream KB "
        "| client CPU % while opening | failed |",
        "| --- | --- | --- | --- | --- | ---: |",
    ]
    for row in connect_rows(results):
        lines.append(
            f"| {row['server']} | {TARGETS[row['target']]} | {fmt(row['rate'])} "
            f"| {fmt(row['rss_kb'], 1)} | {fmt(row['client_cpu'])} | {row['failed']} |"
        )
    return lines


def idle_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| implementation | streams | server CPU % of one core, mean (min\u2013max window) "
        "| client CPU % |",
        "| --- | ---: | --- | --- |",
    ]
    for row in idle_rows(results):
        lines.append(
            f"| {TARGETS[row['target']]} | {row['n']:,} | {fmt(row['server'], 2)} "
            f"| {fmt(row['client'], 2)} |"
        )
    return lines


def other_tables(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    burst = results.get("burst")
    if burst:
        lines += [
            "### 4. Burst",
            "",
            f"{burst[0]['saves']:,} saves (each its own transaction) in a loop in the server "
            f"while {burst[0]['streams']} streams listen; {len(burst)} runs.",
            "",
            "| saves/s | statistics computations | events per stream | last event = final state |",
            "| --- | --- | --- | --- |",
            f"| {fmt(spread(r['saves_per_s'] for r in burst))} "
            f"| {fmt(spread(r['computations'] for r in burst))} "
            f"| {fmt(spread(r['events_per_stream_max'] for r in burst))} "
            f"| {sum(r['last_event_is_final'] for r in burst)}/{len(burst)} |",
            "",
        ]
    writes = results.get("writes")
    if writes:
        s = writes["summary"]

        def per_save(kind: str) -> dict[str, float] | None:
            return spread(1e6 * t / writes["saves"] for t in writes["seconds"][kind])

        lines += [
            "### 5. Write overhead",
            "",
            f"{writes['saves']:,} `Node.save()` calls, autocommit, SQLite (WAL), "
            f"{len(writes['seconds']['connected'])} alternating runs each.",
            "",
            "| graphapp | µs per save | statistics computations per run |",
            "| --- | --- | --- |",
            f"| receivers and version triggers | {fmt(per_save('connected'), 1)} "
            f"| {fmt(spread(writes['computations_per_run']))} |",
            f"| version triggers only | {fmt(per_save('disconnected'), 1)} | {DASH} |",
            *(
                [f"| neither | {fmt(per_save('bare'), 1)} | {DASH} |"]
                if "bare" in writes["seconds"]
                else []
            ),
            "",
            f"Overhead, all of graphapp against neither: {s['overhead_pct']:+.1f}% (medians; "
            f"the version triggers alone {s.get('triggers_pct', 0.0):+.1f}%); per set of runs "
            f"{fmt(spread(writes['overhead_pct_runs']), 1, '%')}.",
            "",
        ]
    converge = results.get("convergence")
    if converge:
        lines += [
            "### 8. Convergence without a message",
            "",
            "A node row inserted with raw SQL into the server's SQLite file (no signal, no "
            "message: what a writer outside Django, a lost message or a dead publisher "
            "leaves), then the time from its commit to the first `stats` event of an open "
            "stream that counts it. The hub looks at the graph's version every "
            f"`VERIFY_INTERVAL` ({converge['verify_interval']:g} s) and computes a version "
            "that has not arrived by its next look.",
            "",
            f"Seconds: {fmt(spread(converge['seconds']), 2)} over {len(converge['seconds'])} runs.",
            "",
        ]
    rows = results.get("history")
    if rows:
        lines += [
            "### 9. History and the change log",
            "",
            "What each publication adds (one history point and, when nodes changed, one "
            "change-log row, each its own small insert on the snapshot worker, after the "
            "send and before it, respectively), what a process reads once when its first "
            f"stream connects (a day of history at one snapshot a second, {rows[0]['rows']:,} "
            "rows, chosen down to `HISTORY_POINTS`), and the size of the history event, "
            "one encoding shared by every stream of the process (points of a million-node "
            "graph: the widest numbers).",
            "",
            "| database | history point µs | change-log row µs | day of history read, ms | "
            "points | event bytes |",
            "| --- | ---: | ---: | --- | ---: | ---: |",
        ]
        for row in rows:
            lines.append(
                f"| {row['engine']} | {row['record_us']:.0f} | {row['log_us']:.0f} | "
                f"{fmt(spread(row['load_ms']), 1)} | {row['points']} | {row['event_bytes']:,} |"
            )
        lines.append("")
    lines += bodies_table(results)
    rechecks = results.get("rechecks")
    if rechecks:
        lines += [
            "### 12. A change of access",
            "",
            f"{rechecks[0]['sessions']:,} streams in one process, each of its own user and "
            "session. A recheck of everyone (a group's permissions changed: every session "
            "checked again on the check worker, 50 a trip) and of one user, from the message "
            "to the end of the pass; then `clearsessions` over as many expired rows, with "
            "graphapp's `post_delete` receiver (Django then loads the rows) and without it.",
            "",
            "| database | everyone, s | one user, ms | clearsessions, s "
            "| without the receiver, s |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for row in rechecks:
            lines.append(
                f"| {row['engine']} | {row['everyone_s']:.2f} | {row['one_user_s'] * 1000:.1f} | "
                f"{row['clearsessions_s']:.2f} | {row['clearsessions_without_receiver_s']:.2f} |"
            )
        lines.append("")
    big = results.get("biglist")
    if big:
        lines += [
            "### 11. A nodes list over rows of megabytes",
            "",
            "100 nodes of 2.5 MB metadata each, written in bulk past validation (rows from "
            "before `MAX_METADATA_BYTES`); `GET /graph/api/nodes/?limit=100` by a viewer, once "
            "and four at once, on a fresh daphne each; meanwhile another client asks for "
            "`/graph/api/stats/` every 20 ms.",
            "",
            "| at once | answer bytes | truncated | seconds | RSS before MiB | RSS peak MiB | "
            "stats/ median ms | stats/ max ms |",
            "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |",
            *[
                f"| {row['parallel']} | {row['bytes']:,} | {row['truncated']} "
                f"| {row['seconds']:.2f} | {row['rss_before'] / 2**20:.0f} "
                f"| {row['rss_peak'] / 2**20:.0f} | {row['other_median_ms']:.0f} "
                f"| {row['other_max_ms']:.0f} |"
                for row in big
            ],
            "",
        ]
    scale = results.get("scaleout")
    if scale and "runs" in scale:
        runs = scale["runs"]
        calls: dict[str, list[int]] = {}
        for run in runs:
            for name, count in run["redis_calls"].items():
                calls.setdefault(name, []).append(count)
        lines += [
            "### 6. Scale-out",
            "",
            f"2 daphne processes on PostgreSQL + Redis (a redis-server of the harness's own), "
            f"{scale['streams_per_process']:,} streams each, one client process per server; "
            "the save alternates between the two processes.",
            "",
            "| p50 ms | p99 ms | last client ms | missed |",
            "| --- | --- | --- | ---: |",
            f"| {fmt(spread(r['p50'] for r in runs), 1)} "
            f"| {fmt(spread(r['p99'] for r in runs), 1)} "
            f"| {fmt(spread(r['last'] for r in runs), 1)} | {sum(r['missing'] for r in runs)} |",
            "",
            "Redis commands per update (INFO commandstats, median of the runs; the window "
            "includes 0.5 s after the last receipt):",
            "",
            "| command | calls per update |",
            "| --- | ---: |",
            *[
                f"| {name} | {statistics.median(v + [0] * (len(runs) - len(v))):g} |"
                for name, v in sorted(calls.items())
            ],
            "",
            f"Idle, for comparison, over 2 s: {scale['idle_calls_per_2s'] or 'no calls'}.",
            "",
        ]
    elif scale:
        lines += ["### 6. Scale-out", "", f"Skipped: {scale.get('skipped')}.", ""]
    stats = results.get("stats")
    if stats:
        lines += [
            "### 7. Statistics cost",
            "",
            "`graphapp.stats.compute_stats()` after one warm-up call; seeded with plain SQL, "
            "5 edges per node, then VACUUM/ANALYZE.",
            "",
            "| database | nodes | edges | ms |",
            "| --- | ---: | ---: | --- |",
            *[
                f"| {row['engine']} | {row['nodes']:,} | {row['edges']:,} "
                f"| {fmt(spread(row['ms']), 1)} |"
                for row in stats
            ],
            "",
        ]
    return lines


def bodies_table(results: dict[str, Any]) -> list[str]:
    bodies = results.get("bodies")
    if not bodies:
        return []
    mib = 2**20
    lines = [
        "### 10. Large request bodies",
        "",
        f"One anonymous POST of {bodies['mib']} MiB (zeros, made as they are sent) to a URL "
        "that does not exist, on a fresh server each: `application` is Django's handler "
        "alone, `bounded` the same behind `graphapp.bodylimit.BodyLimit` (graphsite's, limit "
        f"{bodies['limit']:,} bytes), `graphapp.daphne` daphne with the same bound as the "
        "body arrives. Sent: what the client had handed to its socket when the answer came. "
        "RSS before, at the peak and 3 s after the answer; temporary files: the largest "
        "total the server held open in its TMPDIR.",
        "",
        "| server | application | body | answer | sent MiB | RSS MiB before / peak / after "
        "| temporary files MiB |",
        "| --- | --- | --- | --- | ---: | --- | ---: |",
    ]
    for run in bodies["runs"]:
        rss = "/".join(f"{run[key] / mib:.0f}" for key in ("rss_before", "rss_peak", "rss_settled"))
        lines.append(
            f"| {run['server']} | {run['application'].rsplit(':', 1)[1]} "
            f"| {'chunked' if run['chunked'] else 'Content-Length'} "
            f"| {run['status_line'].split(' ', 1)[1]} | {run['sent_before_answer'] / mib:.0f} "
            f"| {rss} | {run['temp_peak'] / mib:.0f} |"
        )
    return [*lines, ""]


def write(results: dict[str, Any], out: Path) -> None:
    made = plots(results, out)
    meta = results["meta"]
    m = meta["machine"]
    head = [
        "# Benchmarks",
        "",
        "Made by `make bench` (about 20 minutes; `make bench-quick` is a short run for "
        "development that writes to `build/bench-quick/`). Raw numbers: "
        "[bench/results.json](bench/results.json). Every figure is the median of several "
        "runs with (min\u2013max).",
        "",
        f"Run: {meta['started']}{' (quick)' if meta['quick'] else ''}, "
        f"{meta.get('total_s', '?')} s. "
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}, "
        f"Linux {m['kernel']}. Load average before {fmt_load(meta['load_before'])}, "
        f"after {fmt_load(meta.get('load_after'))}. "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
        + ".",
        "",
    ]
    body = [
        "## Targets",
        "",
        *targets_table(results),
        "",
        "## Results",
        "",
        *[f"![{name}]({name})" for name in made],
        "",
        "### 1. Fan-out",
        "",
        "Time from the commit of a node saved through the JSON API (graphapp, old design) "
        "or from the publish call (floor, django-eventstream: the same snapshot JSON) to each "
        "client's receipt of the event's bytes. `missed`: receipts that did not arrive within "
        "60 s. CPU columns: per update, server process and client process.",
        "",
        *fanout_table(results),
        "",
        "### 2. Connect",
        "",
        "Streams opened per second (100 connects in flight; open = status 200 and the first "
        "bytes), and the server's RSS growth per open stream, over the batches of the largest "
        "growth step. graphapp (both paths: in front of Django, graphapp.asgi, and the Django "
        "view behind the middleware), the old design and django-eventstream check the session "
        "and `graphapp.view_node` on every connect; the floor (a bare async view behind the "
        "same middleware) checks nothing.",
        "",
        *connect_table(results),
        "",
        "### 3. Idle",
        "",
        "Server CPU while the streams are open and nothing changes (heartbeats; for graphapp "
        "also its permission revalidation, every REVALIDATE_INTERVAL = "
        f"{DEFAULTS['REVALIDATE_INTERVAL']:.0f} s, which the windows cover whole), "
        "as the mean over "
        "consecutive windows of "
        + (f"{idle_rows(results)[0]['window']:.0f} s" if idle_rows(results) else "\u2013")
        + " (lowest and highest window in brackets), under daphne.",
        "",
        *idle_table(results),
        "",
        *other_tables(results),
    ]
    errors = results.get("errors") or {}
    if errors:
        body += ["### Scenarios that failed in this run", ""]
        body += [f"- {name}: `{message}`" for name, message in errors.items()]
        body += [""]
    notes_path = Path(__file__).with_name("NOTES.md")
    notes = notes_path.read_text().splitlines() if notes_path.exists() else []
    (out / "benchmarks.md").write_text("\n".join([*head, *body, *notes]).rstrip() + "\n")


def fmt_load(load: Any) -> str:
    return "\u2013" if not load else "/".join(f"{value:.2f}" for value in load)


if __name__ == "__main__":
    raw, folder = Path(sys.argv[1]), Path(sys.argv[2])
    write(json.loads(raw.read_text()), folder)
