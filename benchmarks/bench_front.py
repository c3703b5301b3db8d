"""The cost per exchange of the stages before the stepper, stage by stage; this checkout against a revision.

    python benchmarks/bench_front.py --exchanges 50000 --base main

Generates a log with fsm.generate (written as JSONL, as ``voucher-fsm generate`` writes it), then in a
fresh child process per run measures, in CPU microseconds per exchange:

- parse: ``orjson.loads`` of every line held in memory (the floor);
- read: :func:`fsm.readers.jsonl.read_jsonl` over the log file (parse included);
- build: read, then :func:`fsm.exchange.build_exchange` of every record;
- route: build, then ``Matcher.transport`` and ``Matcher.match`` of every exchange;
- schema: route, then ``SchemaChecker.check`` of every routed exchange;
- front: read, then a validator's stages before the stepper (``Validator._front``: build, route,
  schema and the glue between them);
- feed: a whole ``Validator.feed_file`` of the log in one process (front, stepper and report), and
  ``finish``.

Each stage streams record after record (nothing is kept), as the validator does; read, build, route
and schema are cumulative (each includes the ones before it).

Each figure is the least CPU time of ``--repeat`` runs; ``--base REV`` measures the sources of git
revision ``REV`` (exported to a temporary directory, first on ``PYTHONPATH``) in the same run, the two
sides alternating, so both are measured under the same load. The ratio is this checkout's figure over
the base's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STAGES = ("parse", "read", "build", "route", "schema", "front", "feed", "finish")


def child(log: str) -> None:
    """Measure in this process; print one JSON line."""
    import orjson

    from fsm.config import Config
    from fsm.exchange import Exchange, build_exchange
    from fsm.matcher import Match
    from fsm.pipeline import Validator, make_matcher
    from fsm.readers.jsonl import read_jsonl
    from fsm.schemacheck import SchemaChecker
    from fsm.spec import load_spec

    lines = Path(log).read_bytes().splitlines(keepends=True)
    n = len(lines)
    clock = time.process_time
    spec = load_spec()
    out: dict[str, float] = {}
    SchemaChecker.shared(spec)  # (compiled once a spec: not part of any stage's figure)

    def stages(upto: int) -> None:  # the first ``upto`` stages, record after record
        matcher = make_matcher(spec, Config())
        schemas = SchemaChecker.shared(spec)
        for i, (line, record, _) in enumerate(read_jsonl(Path(log).open("rb"))):  # noqa: SIM115 (it closes it)
            if upto < 2:
                continue
            ex = build_exchange(record, i, "bench.jsonl", line, False)
            if upto < 3 or not isinstance(ex, Exchange) or matcher.transport(ex) is not None:
                continue
            match = matcher.match(ex)
            if upto < 4 or not isinstance(match, Match):
                continue
            schemas.check(ex, match)

    t = clock()
    for line in lines:
        orjson.loads(line)
    out["parse"] = clock() - t
    for upto, name in enumerate(("read", "build", "route", "schema"), 1):
        t = clock()
        stages(upto)
        out[name] = clock() - t
    v = Validator(spec)
    front = v._front
    t = clock()
    for item in read_jsonl(Path(log).open("rb")):  # noqa: SIM115 (read_jsonl closes it)
        front(item, "bench.jsonl", False)
    out["front"] = clock() - t
    v = Validator(spec)
    t = clock()
    v.feed_file(log)
    out["feed"] = clock() - t
    t = clock()
    report = v.finish()
    out["finish"] = clock() - t
    print(
        json.dumps(
            {
                "exchanges": n,
                "violations": len(report.violations),
                **{k: s / n * 1e6 for k, s in out.items()},
                "fsm": sys.modules["fsm"].__file__,
            }
        )
    )


def run(pythonpath: str, log: str) -> dict[str, Any]:
    """One measurement in a fresh child process."""
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": pythonpath}
    out = subprocess.run(
        [sys.executable, __file__, "--child", log],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),  # (not the checkout: the exported sources must win)
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Parse arguments, measure, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base", default=None, help="a git revision to measure beside this checkout")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(HERE.parent))
    import orjson
    from bench_stepper import export  # (this folder: the same export of a revision's sources)

    from fsm.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "bench.jsonl"
        with log.open("wb") as fh:
            written = 0
            for record in generate(args.exchanges // 20 + 10, seed=args.seed):
                fh.write(orjson.dumps(record) + b"\n")
                written += 1
                if written >= args.exchanges:
                    break
        sides: dict[str, str] = {"this checkout": str(HERE.parent)}
        if args.base:
            sides = {f"base {args.base}": str(export(args.base, Path(tmp))), **sides}
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for n in range(args.repeat):
            for name, path in sides.items():
                print(f"\r  round {n + 1}/{args.repeat}: {name}    ", end="", file=sys.stderr, flush=True)
                results[name].append(run(path, str(log)))
        print(file=sys.stderr)
    best = {name: {k: min(r[k] for r in runs) for k in STAGES} for name, runs in results.items()}
    first = next(iter(best.values()))
    load = os.getloadavg()[0]
    print(
        f"# front benchmark  python {sys.version.split()[0]}  {written:,} generated exchanges"
        f"  load {load:.1f}"
    )
    print("| side | " + " | ".join(f"{s} µs" for s in STAGES) + " |")
    print("|:-----|" + "---:|" * len(STAGES))
    for name, figures in best.items():
        cells = []
        for s in STAGES:
            ratio = f" ({figures[s] / first[s]:.2f}x)" if name != next(iter(best)) and first[s] else ""
            cells.append(f"{figures[s]:.2f}{ratio}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    verdicts = {(r["exchanges"], r["violations"]) for runs in results.values() for r in runs}
    if len(verdicts) != 1:
        sys.exit(f"the sides disagree on the verdicts: {sorted(verdicts)}")


if __name__ == "__main__":
    main()
