"""Validator throughput and memory against the parse floor, measured in the same run.

    python benchmarks/bench_validate.py --exchanges 1000000

Writes (or reuses) a realistic log made by fsm.generate, then runs, each in a
fresh child process so peak memory is its own:

- floor: read the lines and parse each with orjson (the fastest JSON parser here);
- validate: the full validator (table engine) over the same file, in one process;
- parallel: the same with ``parallel=True`` (a second process reads, parses and checks
  payloads while the first steps the machines); its peak is the sum of both processes'
  peaks (shared pages counted twice: an upper bound).

The modes run in ``--repeat`` rounds (floor, validate, parallel, back to back); prints
exchanges/s, MB/s and peak RSS of each mode's fastest run, and the ratios to the floor of
each round with their median. Targets (issue 4): 1M exchanges under 300 MB peak,
throughput within 5x of the floor.

``--compiled`` measures the optional compiled build: it makes (once, and again
when the sources change) a virtual environment under ``benchmarks/out/`` with
``HATCH_BUILD_HOOK_ENABLE_MYPYC=1 pip install .`` (a C compiler, the Python headers
and about a minute). ``--python EXE`` measures another environment's install; the
report says which build it measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent


def make_log(path: Path, exchanges: int, seed: int) -> None:
    """Write at least ``exchanges`` generated exchanges to ``path``."""
    from fsm.generate import generate

    n = 0
    with path.open("wb") as fh:
        # one generator, one clock: enough sessions for the count (about 20 exchanges each)
        for record in generate(exchanges // 10 + 10, seed=seed, partial=False):
            fh.write(orjson.dumps(record) + b"\n")
            n += 1
            if n % 100_000 == 0:
                print(f"\r  generating {n:,}/{exchanges:,}", end="", file=sys.stderr, flush=True)
            if n >= exchanges:
                break
    print(file=sys.stderr)


def compiled_python(extras: str = "") -> str:
    """The interpreter of a venv holding the compiled build of this checkout (made if missing or stale).

    ``extras``: the extras installed with it (``serve``: uvicorn, uvloop and httptools too).
    """
    root = HERE.parent
    sources = [  # (not __pycache__: importing fsm from the checkout changes it)
        *sorted(
            p for top in ("fsm", "schemas") for p in (root / top).rglob("*") if p.suffix in (".py", ".json")
        ),
        root / "pyproject.toml",
    ]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    venv = HERE / "out" / ("venv-compiled" + (f"-{extras}" if extras else ""))
    python = venv / "bin" / "python"
    stamp = venv / "built-from"
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return str(python)
    print(f"building the compiled (mypyc) install in {venv} (about a minute)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        # mypyc leaves its products in the directory it builds in, where they would shadow the
        # sources: build in a copy
        src = Path(tmp) / "src"
        shutil.copytree(root, src, ignore=not_built_from(root))
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", str(src) + (f"[{extras}]" if extras else "")],
            check=True,
            env={**os.environ, "HATCH_BUILD_HOOK_ENABLE_MYPYC": "1"},
        )
    stamp.write_text(digest)
    return str(python)


def not_built_from(root: Path) -> Callable[[str, list[str]], set[str]]:
    """For copytree: what a build does not need (hidden files, build products; at the top only: docs...)."""
    anywhere = shutil.ignore_patterns(".*", "*.so", "__pycache__")

    def ignore(directory: str, names: list[str]) -> set[str]:
        skip = set(anywhere(directory, names))
        if Path(directory) == root:  # (fsm/diagrams is code: only the top-level folders are left out)
            skip |= {"build", "diagrams", "docs", "tests", "benchmarks"} & set(names)
        return skip

    return ignore


def parse_floor(path: str) -> int:
    """Read the lines and parse each with orjson: the floor every mode is measured against."""
    loads = orjson.loads
    count = 0
    with open(path, "rb") as fh:
        for line in fh:
            loads(line)
            count += 1
    return count


def child(mode: str, path: str) -> None:
    """Run one measurement in this process and print a JSON line."""
    start = time.perf_counter()
    if mode == "floor":
        count = parse_floor(path)
        extra: dict[str, object] = {}
    else:
        import fsm.stepper
        from fsm.pipeline import Validator

        v = Validator()
        v.feed_file(path, parallel=mode == "parallel")
        report = v.finish()
        count = report.totals.read
        extra = {
            "errors": report.errors,
            "warnings": report.warnings,
            "info": report.infos,
            "judged": report.totals.judged,
            "build": "compiled (mypyc)" if not fsm.stepper.__file__.endswith(".py") else "pure Python",
        }
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if mode == "parallel":  # the worker has ended: add its peak
        peak_kb += resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"mode": mode, "count": count, "seconds": seconds, "peak_mb": peak_kb / 1024, **extra}))


def run_child(python: str, script: str, mode: str, log: Path) -> dict[str, Any]:
    """Run ``script --child MODE LOG`` in a fresh process; its JSON line."""
    out = subprocess.run(
        [python, script, "--child", mode, str(log)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> None:
    """Parse arguments, make the log, measure both modes, print figures and ratios."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log", type=Path, default=None, help="use this log instead of generating one")
    ap.add_argument("--python", default=sys.executable, help="the interpreter (environment) to measure")
    ap.add_argument(
        "--compiled", action="store_true", help="measure the compiled (mypyc) build, made in benchmarks/out/"
    )
    ap.add_argument("--repeat", type=int, default=3, help="rounds of floor, validate and parallel runs")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.compiled:
        args.python = compiled_python()
    log = args.log or HERE / "out" / f"bench-{args.exchanges}-{args.seed}.jsonl"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        make_log(log, args.exchanges, args.seed)
    size_mb = log.stat().st_size / 1e6
    results: dict[str, list[dict[str, Any]]] = {}
    # Machines like this one change speed by 20% and more from one minute to the next, so the
    # modes run in rounds, each a floor then the validator in one and in two processes, back to
    # back: each round's ratios compare runs made under the same conditions, and the verdict is
    # their median. (The floor runs twice per round, the faster kept: its short run is the
    # noisiest.) The table shows each mode's fastest run.
    for n in range(args.repeat):
        for mode in ("floor", "floor", "validate", "parallel"):
            print(f"\r  round {n + 1}/{args.repeat}: {mode}    ", end="", file=sys.stderr, flush=True)
            results.setdefault(mode, []).append(run_child(args.python, __file__, mode, log))
    print(file=sys.stderr)
    rounds = [
        (min(results["floor"][2 * n]["seconds"], results["floor"][2 * n + 1]["seconds"]), n)
        for n in range(args.repeat)
    ]
    ratios = {
        m: sorted(results[m][n]["seconds"] / floor_s for floor_s, n in rounds)
        for m in ("validate", "parallel")
    }
    floor, val, par = (min(results[m], key=lambda r: r["seconds"]) for m in ("floor", "validate", "parallel"))
    spread = {m: ", ".join(f"{r['seconds']:.2f}" for r in results[m]) for m in results}
    print(
        f"# voucher-fsm validate benchmark  python {sys.version.split()[0]}  orjson {orjson.__version__}  "
        f"build: {val['build']}"
    )
    print(
        f"log: {log}  {floor['count']:,} exchanges  {size_mb:.1f} MB  "
        f"{size_mb * 1e6 / floor['count']:.0f} B/line"
    )
    print("| mode     | seconds | exchanges/s |   MB/s | µs/exchange | peak RSS MB |")
    print("|:---------|--------:|------------:|-------:|------------:|------------:|")
    for name, r in (("floor", floor), ("validate", val), ("parallel", par)):
        print(
            f"| {name:<8} | {r['seconds']:7.2f} | {r['count'] / r['seconds']:11,.0f} | "
            f"{size_mb / r['seconds']:6.1f} | {r['seconds'] / r['count'] * 1e6:11.2f} | "
            f"{r['peak_mb']:11.1f} |"
        )
    print(f"runs (s): floor {spread['floor']}; validate {spread['validate']}; parallel {spread['parallel']}")
    for name, r in (("validate", val), ("parallel", par)):
        each = ratios[name]
        median = statistics.median(each)
        fastest = r["seconds"] / floor["seconds"]
        print(
            f"{name}/floor: {median:.1f}x, the median of {len(each)} rounds "
            f"({', '.join(f'{x:.1f}' for x in each)}; fastest/fastest {fastest:.1f}x) "
            f"(target <= 5x)   peak: {r['peak_mb']:.0f} MB (target < 300 MB at 1M)"
        )
    verdicts = {k: (r["errors"], r["warnings"], r["info"]) for k, r in (("validate", val), ("parallel", par))}
    if verdicts["validate"] != verdicts["parallel"]:
        sys.exit(f"the two runs disagree: {verdicts}")
    print(
        f"verdict on generated traffic: {val['errors']} errors, {val['warnings']} warnings, "
        f"{val['info']} info"
    )


if __name__ == "__main__":
    main()
