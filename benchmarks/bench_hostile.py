"""Time and peak memory on the largest hostile inputs, against a baseline measured in the same run.

    python benchmarks/bench_hostile.py [--out benchmarks/out/hostile]

1. Scrubbing a secret cut short in a message (``fsm.secrets.Scrubber``), for secrets of 10 KB to
   5 MB, beside the floor of one ``str.find`` over the same text: the ratio stays flat when the
   scrubbing is linear (it was quadratic: 84 s for 800 KB).
2. ``voucher-fsm validate --format json`` on hostile files made here, each in a fresh process (peak
   RSS its own), beside the parse floor (orjson over the file's lines) of the same file:
   - ``planted``: every place a client puts a secret, with JWTs of 1 KB, 1 MB and 5 MB;
   - ``long-line``: a 70 MB JSONL line (beyond longest-record: skipped to its end) between good ones;
   - ``many-values``: a 60 MB line of ``[{},{},...]`` (beyond most-values: not parsed);
   - ``har-cut``: a HAR of 250,000 entries cut in the middle of one.

Prints wall and CPU seconds and peak RSS of each; the figures go in the hostile-input issue's note.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fsm.generate import generate, to_har  # noqa: E402
from fsm.secrets import Scrubber  # noqa: E402
from tests.hostile import plant  # noqa: E402

INPUTS = {
    "planted": "planted/planted.jsonl",
    "long-line": "long-line.jsonl",
    "many-values": "many-values.jsonl",
    "har-cut": "har-cut.har",
}
RECORD = {
    "request": {"method": "GET", "path": "/api/v1/vouchers/query-vouchers"},
    "response": {"status": 200},
}


def scrubbing() -> None:
    print("scrub a secret cut short        secret   scrub CPU s   scan CPU s   ratio")
    for size in (10_000, 100_000, 1_000_000, 5_000_000):
        secret = "eyJ" + "q7" * (size // 2)
        text = f"the token was '{secret[: size * 3 // 5]}..."
        start = time.process_time()
        Scrubber({secret})(text)
        scrub = time.process_time() - start
        start = time.process_time()
        for _ in range(10):
            text.count("\x00")  # one pass over the text: the floor of any scrubbing
        floor = (time.process_time() - start) / 10 or 1e-6
        print(f"{'':32}{size:>8,}   {scrub:>11.3f}   {floor:>10.5f}   {scrub / floor:>7.0f}")


def make_inputs(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    planted = out / "planted"
    plant.write(planted, jwt_sizes=(1_000, 1_000_000, 5_000_000))
    files["planted"] = planted / "planted.jsonl"
    good = json.dumps(RECORD).encode()
    long_line = out / "long-line.jsonl"
    with long_line.open("wb") as f:
        f.write(good + b"\n" + b'{"x": "' + b"a" * 70 * 2**20 + b'"}\n' + good + b"\n")
    files["long-line"] = long_line
    many = out / "many-values.jsonl"
    with many.open("wb") as f:
        f.write(good + b"\n[" + b"{}," * (20 * 2**20) + b"{}]\n" + good + b"\n")
    files["many-values"] = many
    har = out / "har-cut.har"
    entries = to_har(list(generate(2_000, seed=5)))["log"]["entries"]
    while len(entries) < 250_000:
        entries = entries + entries
    text = json.dumps({"log": {"version": "1.2", "entries": entries[:250_000]}}).encode()
    har.write_bytes(text[: len(text) // 2])
    files["har-cut"] = har
    return files


def measure(args: list[str]) -> tuple[float, float, float]:
    """Wall s, CPU s and peak RSS (MB) of one child process (its own, from wait4).

    The inputs are made in another process first, so the child forked from this small one
    starts small (a child's peak counts the pages it had at the fork).
    """
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(child.pid, 0)
    child.returncode = 0  # (reaped here: Popen must not wait for it again)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


FLOOR = """
import sys, orjson
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            pass
        n += 1
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "hostile")
    parser.add_argument("--make-only", action="store_true", help="Only write the inputs (used internally).")
    args = parser.parse_args()
    if args.make_only:
        make_inputs(args.out)
        return
    subprocess.run([sys.executable, __file__, "--make-only", "--out", str(args.out)], check=True)
    files = {name: args.out / rel for name, rel in INPUTS.items()}
    scrubbing()
    print()
    print(
        f"{'input':<14}{'MB':>7}  {'validate wall/CPU s':>20}  {'peak MB':>8}"
        f"  {'floor wall/CPU s':>17}  {'peak MB':>8}"
    )
    for name, path in files.items():
        run = measure([sys.executable, "-m", "fsm", "validate", "--format", "json", str(path)])
        floor = measure([sys.executable, "-c", FLOOR, str(path)])
        mb = path.stat().st_size / 2**20
        print(
            f"{name:<14}{mb:>7.1f}  {run[0]:>9.2f} / {run[1]:>7.2f}  {run[2]:>8.0f}"
            f"  {floor[0]:>7.2f} / {floor[1]:>6.2f}  {floor[2]:>8.0f}"
        )


if __name__ == "__main__":
    main()
