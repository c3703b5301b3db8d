"""Shards against one process and the old two-process mode, as ratios to the parse floor of the same run.

    python benchmarks/bench_shards.py --exchanges 200000 [--repeat 1] [--dask]

Writes (or reuses) a log made by fsm.generate (benchmarks/bench_validate.py's ``make_log``) and runs,
each in a fresh child process:

- floor: read the lines and parse each with orjson;
- jobs1: ``validate --jobs 1`` (one process);
- parallel: ``--jobs 1 --parallel`` (a second process parses and checks payloads);
- jobs2: ``--jobs 2`` (the first pass in this process, then two forked shard processes);
- dask2 (``--dask``): a 2-worker LocalCluster (scheduler and client on the same cores).

Printed per mode: wall seconds, the CPU seconds of the critical path (jobs2: the first pass, the
busiest shard and the merge; parallel: the busier of its two processes; dask2: wall only, its
processes are the cluster's), and both as ratios to the floor's. Every mode's report must equal
jobs1's (checked by its JSON). The machine this was written on has 2 shared cores: keep runs short.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_validate import make_log, parse_floor, run_child  # noqa: E402


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _shard(args: tuple[Any, int]) -> tuple[float, Any]:
    from fsm.config import Config
    from fsm.shards import run_shard
    from fsm.spec import load_spec

    p, k = args
    start = _cpu()
    result = run_shard(p, k, spec=load_spec(), config=Config())
    return _cpu() - start, result


def child(mode: str, path: str) -> None:
    """One measurement in this process; prints a JSON line."""
    start, cpu0 = time.perf_counter(), _cpu()
    extra: dict[str, Any] = {}
    report: Any = None
    if mode == "floor":
        count = parse_floor(path)
        critical = _cpu() - cpu0
    elif mode in ("jobs1", "parallel"):
        from fsm.pipeline import Validator

        v = Validator()
        v.feed_file(path, parallel=mode == "parallel")
        report = v.finish()
        mine = _cpu() - cpu0
        worker = resource.getrusage(resource.RUSAGE_CHILDREN)
        critical = max(mine, worker.ru_utime + worker.ru_stime)
    elif mode == "jobs2":
        from fsm.config import Config
        from fsm.shards import merge, plan
        from fsm.spec import load_spec

        spec = load_spec()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = plan([path], 2, spec=spec, processes=2)  # (two forked parts; their CPU split evenly)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        parts_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        first = _cpu() - cpu0 + parts_cpu / 2
        planned = time.perf_counter() - start
        with multiprocessing.get_context("fork").Pool(2) as pool:
            parts = pool.map(_shard, [(p, 0), (p, 1)], chunksize=1)
        t = _cpu()
        report = merge(p, [r for _, r in parts], spec=spec, config=Config())
        merged = _cpu() - t
        critical = first + max(c for c, _ in parts) + merged
        extra = {
            "first_pass_cpu": first,
            "first_pass_wall": planned,
            "shard_cpu": [c for c, _ in parts],
            "merge_cpu": merged,
            "sizes": p.sizes,
            "components": p.components,
            "largest": p.largest,
            "skew": p.skew,
        }
    else:  # dask2
        from dask.distributed import Client, LocalCluster

        from fsm.distributed import validate_distributed

        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
            Client(cluster) as client,
        ):
            up = time.perf_counter() - start
            report = validate_distributed([path], client=client, shards=4)
        critical = float("nan")
        extra = {"cluster_start_wall": up}
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"mode": mode, "seconds": seconds, "cpu": critical, **extra}
    if report is not None:
        from fsm.render import render

        out["count"] = report.totals.read
        out["digest"] = hash(render(report, "json"))
    else:
        out["count"] = count
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--dask", action="store_true", help="also a 2-worker LocalCluster")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    log = HERE / "out" / f"bench-{args.exchanges}-{args.seed}.jsonl"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        make_log(log, args.exchanges, args.seed)
    modes = ["floor", "jobs1", "parallel", "jobs2"] + (["dask2"] if args.dask else [])
    rows: dict[str, list[dict[str, Any]]] = {}
    for n in range(args.repeat):
        for mode in modes:
            print(f"\r  round {n + 1}/{args.repeat}: {mode}    ", end="", file=sys.stderr, flush=True)
            rows.setdefault(mode, []).append(run_child(sys.executable, __file__, mode, log))
    print(file=sys.stderr)
    best = {m: min(rows[m], key=lambda r: r["seconds"]) for m in modes}
    floor = best["floor"]
    digests = {best[m]["digest"] for m in modes if m != "floor"}
    print(
        f"# shards benchmark: {floor['count']:,} exchanges, {log.stat().st_size / 1e6:.0f} MB, "
        f"{os.cpu_count()} cores"
    )
    print(f"reports identical across modes: {len(digests) == 1}")
    print(f"{'mode':9} {'wall s':>8} {'cpu s':>8} {'wall/floor':>11} {'cpu/floor':>10} {'peak MB':>8}")
    for m in modes:
        r = best[m]
        print(
            f"{m:9} {r['seconds']:8.2f} {r['cpu']:8.2f} {r['seconds'] / floor['seconds']:11.2f} "
            f"{r['cpu'] / floor['cpu']:10.2f} {r['peak_mb']:8.0f}"
        )
    j = best["jobs2"]
    print(
        f"jobs2: first pass {j['first_pass_cpu']:.2f} s CPU ({j['first_pass_wall']:.2f} s wall), shards "
        f"{', '.join(f'{c:.2f}' for c in j['shard_cpu'])} s CPU, merge {j['merge_cpu']:.2f} s; shard sizes "
        f"{j['sizes']} (skew {j['skew']:.3f}), {j['components']:,} components, largest {j['largest']}"
    )


if __name__ == "__main__":
    main()
