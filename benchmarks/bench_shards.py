"""Shards against one process and the old two-process mode, as ratios to the parse floor of the same run.

    python benchmarks/bench_shards.py --exchanges 1000000 --repeat 3 [--dask] [--compiled] [--modes jobs2]
    python benchmarks/bench_shards.py --balance 10000000 --contexts 100000

Writes (or reuses) a log made by fsm.generate (benchmarks/bench_validate.py's ``make_log``, in
benchmarks/out/) and runs, in rounds, each mode in a fresh child process:

- floor: read the lines and parse each with orjson;
- jobs1: ``validate --jobs 1`` (one process);
- parallel: ``--jobs 1 --parallel`` (a second process parses and checks payloads);
- jobs2: ``--jobs 2`` (the first pass on two forked processes, one part of the file each, joined
  and packed in this process; then two forked shard processes; the merge here);
- dask2 (``--dask``): a 2-worker LocalCluster (scheduler and client on the same cores; its start
  is not counted).

Every mode's CPU includes writing the report as JSON (as ``validate -f json`` does). Printed per
mode and round, with the load average when it started: wall seconds; ``cpu``, the CPU seconds of
the critical path (jobs2: this process all along, plus the busier part of the first pass, plus the
busier shard; parallel: the busier of its two processes; dask2: the busiest of workers, scheduler
and client); ``busiest``, the CPU seconds of the busiest single process; each as a ratio to the
floor of the same round. Every mode's report must equal jobs1's (checked by its JSON). The machine
this was written on has 2 shared cores: CPU seconds are the figure, wall seconds swing with load.

``--compiled``: the modes run in the optional compiled (mypyc) build, made once in benchmarks/out/
(bench_validate.py's ``--compiled``); ``--modes``: only these (the floor is always measured).

``--balance EXCHANGES``: only the plan (first pass and packing, no judging) of a generated log of
that many exchanges over ``--contexts`` payment contexts, streamed from the generator (no file),
and the shard sizes for 2, 4, 8 and 16 shards, the largest over the mean, the largest component.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_validate import compiled_python, make_log, parse_floor, run_child  # noqa: E402


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


def _timed_part(job: Any) -> tuple[float, Any]:
    """fsm.shards._scan_part, with the CPU seconds of the process that scanned the part."""
    from fsm.shards import _scan_part

    start = _cpu()
    scan = _scan_part(job)
    return _cpu() - start, scan


def _plan_in_parts(path: str, spec: Any) -> tuple[Any, list[float]]:
    """What ``fsm.shards.plan([path], 2, processes=2)`` does, with each part's CPU seconds.

    (Spelt out rather than patched in: the compiled build's classes take no new attributes.)
    """
    from fsm.config import Config
    from fsm.shards import Scan, _parts, pack, planned_files

    [f] = planned_files([path])
    with multiprocessing.get_context("fork").Pool(2) as pool:
        timed = pool.map(_timed_part, [(f, *part, spec, Config()) for part in _parts(path, 2)], chunksize=1)
    scan = Scan()
    for _, part in timed:
        scan.extend(part)
    return pack(scan, 2), [c for c, _ in timed]


def _digest(report: Any) -> int:
    """The report written as JSON (counted in the mode's CPU, as ``validate -f json`` writes it), hashed."""
    from fsm.render import render

    return hash(render(report, "json"))


def child(mode: str, path: str) -> None:
    """One measurement in this process; prints a JSON line."""
    start, cpu0 = time.perf_counter(), _cpu()
    extra: dict[str, Any] = {}
    report: Any = None
    digest = 0
    if mode == "floor":
        count = parse_floor(path)
        critical = _cpu() - cpu0
        extra = {"busiest": critical}
    elif mode in ("jobs1", "parallel"):
        from fsm.pipeline import Validator

        v = Validator()
        v.feed_file(path, parallel=mode == "parallel")
        report = v.finish()
        digest = _digest(report)
        mine = _cpu() - cpu0
        worker = resource.getrusage(resource.RUSAGE_CHILDREN)
        critical = max(mine, worker.ru_utime + worker.ru_stime)
        extra = {"busiest": critical}
    elif mode == "jobs2":
        from fsm.config import Config
        from fsm.shards import merge
        from fsm.spec import load_spec

        spec = load_spec()
        p, scans = _plan_in_parts(path, spec)  # (two forked parts, then joined and packed here)
        planned_parent = _cpu() - cpu0
        planned = time.perf_counter() - start
        with multiprocessing.get_context("fork").Pool(2) as pool:
            parts = pool.map(_shard, [(p, 0), (p, 1)], chunksize=1)
        t = _cpu()
        report = merge(p, [r for _, r in parts], spec=spec, config=Config())
        merged = _cpu() - t
        digest = _digest(report)
        parent = _cpu() - cpu0  # (this process all along: join, packing, shards' results, merge, output)
        first = planned_parent + max(scans, default=0.0)
        critical = parent + max(scans, default=0.0) + max(c for c, _ in parts)
        extra = {
            "busiest": max(parent, *scans, *(c for c, _ in parts)),
            "parent_cpu": parent,
            "part_cpu": scans,
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
            workers0 = client.run(_cpu)
            scheduler0 = client.run_on_scheduler(_cpu)
            me0 = _cpu()
            report = validate_distributed([path], client=client, shards=4)
            digest = _digest(report)
            me = _cpu() - me0
            workers = [client.run(_cpu)[w] - t for w, t in workers0.items()]
            scheduler = client.run_on_scheduler(_cpu) - scheduler0
            here = client.run_on_scheduler(os.getpid) == os.getpid()  # (a LocalCluster's: in this process)
        critical = max(me, scheduler, *workers)  # (the processes overlap: the busiest of them)
        if here:
            critical = max(me, *workers)
        extra = {
            "busiest": critical,
            "cluster_start_wall": up,
            "worker_cpu": workers,
            "scheduler_cpu": scheduler,
            "scheduler_here": here,
            "client_cpu": me,
        }
    seconds = time.perf_counter() - start
    out: dict[str, Any] = {"mode": mode, "seconds": seconds, "cpu": critical, **extra}
    if report is not None:
        out["count"] = report.totals.read
        out["digest"] = digest
    else:
        out["count"] = count
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


_PER_SESSION, _PER_VOUCHER = 7.1, 3.43  # exchanges fsm.generate makes per session and per voucher (about)


def balance(exchanges: int, contexts: int, seed: int) -> None:
    """The plan of a generated log of ``exchanges`` over about ``contexts`` contexts, for 2, 4, 8, 16 shards.

    The records go from the generator straight into the first pass (no file: 10 million are 6.6 GB),
    in one process; the shard sizes are what ``--jobs N`` would run.
    """
    import math

    from fsm.config import Config
    from fsm.generate import generate
    from fsm.shards import PlannedFile, Scan, pack
    from fsm.spec import load_spec

    vouchers = max(1, math.ceil((exchanges / contexts - _PER_SESSION) / _PER_VOUCHER))
    records = generate(contexts, seed=seed, vouchers_per_session=vouchers, partial=False, tour=False)

    def items() -> Any:
        for n, record in enumerate(records, 1):
            if n % 500_000 == 0:
                print(f"\r  scanned {n:,}/{exchanges:,}", end="", file=sys.stderr, flush=True)
            yield n, record, None
            if n >= exchanges:
                break

    start, cpu0 = time.perf_counter(), _cpu()
    scan = Scan()
    generated = PlannedFile("generated.jsonl", "generated.jsonl", "jsonl", None, False, 0)
    scan.read(generated, items(), load_spec(), Config())
    print(file=sys.stderr)
    opened = sum(1 for name in scan.uf.nodes if name[0] == "context" and name[1] == "id")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"# shard balance: {len(scan.comp):,} generated exchanges, {opened:,} contexts ({vouchers} vouchers "
        f"a session), {len(scan.uf.nodes):,} ids and codes looked up; generated and scanned in "
        f"{time.perf_counter() - start:.0f} s wall, {_cpu() - cpu0:.0f} s CPU, peak {peak:.0f} MB"
    )
    print(f"{'shards':>6} {'mean':>10} {'largest':>10} {'smallest':>10} {'largest/mean':>12} {'pack s':>7}")
    for n in (2, 4, 8, 16):
        t = _cpu()
        p = pack(scan, n)
        packed = _cpu() - t
        mean = sum(p.sizes) / n
        print(f"{n:6} {mean:10,.0f} {max(p.sizes):10,} {min(p.sizes):10,} {p.skew:12.4f} {packed:7.2f}")
    print(f"components {p.components:,}, the largest {p.largest:,} exchanges")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--dask", action="store_true", help="also a 2-worker LocalCluster")
    ap.add_argument(
        "--compiled", action="store_true", help="measure the compiled (mypyc) build, made in benchmarks/out/"
    )
    ap.add_argument("--modes", help="the modes to run, comma-separated (default: all; the floor always)")
    ap.add_argument(
        "--balance",
        type=int,
        metavar="EXCHANGES",
        help="only the plan (first pass and packing) of a generated log this long, streamed, for 2-16 shards",
    )
    ap.add_argument("--contexts", type=int, default=100_000, help="payment contexts of the --balance log")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.balance:
        balance(args.balance, args.contexts, args.seed)
        return
    log = HERE / "out" / f"bench-{args.exchanges}-{args.seed}.jsonl"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        make_log(log, args.exchanges, args.seed)
    modes = ["floor", "jobs1", "parallel", "jobs2"] + (["dask2"] if args.dask else [])
    if args.modes:
        modes = ["floor", *(m for m in args.modes.split(",") if m != "floor")]
    python = compiled_python() if args.compiled else sys.executable
    rows: dict[str, list[dict[str, Any]]] = {}
    print(
        f"# shards benchmark ({'compiled (mypyc)' if args.compiled else 'pure Python'} build): "
        f"{log.stat().st_size / 1e6:.0f} MB log, {os.cpu_count()} cores; ratios are "
        "to the floor of the same round (cpu: the critical path; busiest: the busiest process)"
    )
    print(
        f"{'round':>5} {'mode':9} {'wall s':>8} {'cpu s':>8} {'busiest s':>9} {'wall/fl':>8} {'cpu/fl':>7} "
        f"{'busy/fl':>7} {'peak MB':>8} {'load':>5}"
    )
    for n in range(args.repeat):
        floor: dict[str, Any] = {}
        for mode in modes:
            load = os.getloadavg()[0]
            r = run_child(python, __file__, mode, log)
            r["load"] = load
            rows.setdefault(mode, []).append(r)
            floor = floor or r
            r["ratios"] = (
                r["seconds"] / floor["seconds"],
                r["cpu"] / floor["cpu"],
                r["busiest"] / floor["cpu"],
            )
            print(
                f"{n + 1:5} {mode:9} {r['seconds']:8.2f} {r['cpu']:8.2f} {r['busiest']:9.2f} "
                f"{r['ratios'][0]:8.2f} {r['ratios'][1]:7.2f} {r['ratios'][2]:7.2f} {r['peak_mb']:8.0f} "
                f"{load:5.1f}",
                flush=True,
            )
            if mode == "jobs2":
                print(
                    f"      jobs2: parts {', '.join(f'{c:.2f}' for c in r['part_cpu'])} s CPU, this process "
                    f"{r['parent_cpu']:.2f} (merge {r['merge_cpu']:.2f}), shards "
                    f"{', '.join(f'{c:.2f}' for c in r['shard_cpu'])}; first pass "
                    f"{r['first_pass_cpu']:.2f} s on the critical path ({r['first_pass_wall']:.2f} s wall); "
                    f"sizes {r['sizes']} (skew {r['skew']:.3f}), {r['components']:,} components, "
                    f"largest {r['largest']}",
                    flush=True,
                )
            if mode == "dask2":
                print(
                    f"      dask2: workers {', '.join(f'{c:.2f}' for c in r['worker_cpu'])} s CPU, scheduler "
                    f"{r['scheduler_cpu']:.2f}{' (in the client process)' if r['scheduler_here'] else ''}, "
                    f"client {r['client_cpu']:.2f}; cluster start "
                    f"{r['cluster_start_wall']:.2f} s wall (not counted)",
                    flush=True,
                )
    digests = {r["digest"] for m in modes if m != "floor" for r in rows[m]}
    count = rows["floor"][0]["count"]
    print(f"reports identical across modes and rounds: {len(digests) == 1}; {count:,} exchanges")
    print("median over rounds:", end="")
    for m in modes[1:]:
        wall, cpu, busiest = (statistics.median(r["ratios"][k] for r in rows[m]) for k in range(3))
        print(f"  {m} cpu/floor {cpu:.2f}, busiest/floor {busiest:.2f}, wall/floor {wall:.2f};", end="")
    print()
    if "dask2" in rows:
        pairs = list(zip(rows["dask2"], rows["jobs2"], strict=True))
        print(
            "dask2 over jobs2 (same round): wall "
            + ", ".join(f"{d['seconds'] / j['seconds']:.2f}" for d, j in pairs)
            + "; busiest process "
            + ", ".join(f"{d['busiest'] / j['busiest']:.2f}" for d, j in pairs)
            + "; critical path "
            + ", ".join(f"{d['busiest'] / j['cpu']:.2f}" for d, j in pairs)
        )


if __name__ == "__main__":
    main()
