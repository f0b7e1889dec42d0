"""``python -m bench [--quick] [--only S,...] [--out DIR]``: run, then write the report."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.harness import ROOT, Workdir, raise_fd_limit
from bench.scenarios import SCENARIOS, Plan, log


def machine() -> dict[str, Any]:
    import psutil

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a run of a minute or two")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios to run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    plan = Plan.fast() if args.quick else Plan.full()
    names = [name for name in args.only.split(",") if name]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {sorted(unknown)}; known: {', '.join(SCENARIOS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Workdir()
    results: dict[str, Any] = {
        "meta": {
            "quick": plan.quick,
            "plan": plan.__dict__,
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "fd_limit": raise_fd_limit(),
            "load_before": os.getloadavg(),
            "versions": report.versions(),
        }
    }
    started = time.monotonic()
    raw = args.out / "bench" / "results.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    try:
        for name in names:
            log(f"scenario {name}")
            begun = time.monotonic()
            try:
                SCENARIOS[name](plan, work, results)
            except Exception as exc:  # noqa: BLE001 - one failed scenario must not lose the rest
                log(f"scenario {name} failed: {type(exc).__name__}: {exc}")
                results.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"[:2000]
            results["meta"].setdefault("durations_s", {})[name] = round(time.monotonic() - begun)
            raw.write_text(json.dumps(results, indent=1))
    finally:
        work.remove()
    results["meta"]["load_after"] = os.getloadavg()
    results["meta"]["total_s"] = round(time.monotonic() - started)
    raw.write_text(json.dumps(results, indent=1))
    report.write(results, args.out)
    log(f"done in {results['meta']['total_s']} s: {args.out / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
