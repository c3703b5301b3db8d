"""Coverage-guided fuzzing of the readers and the whole pipeline with atheris, for a bounded time.

    python tests/fuzz/fuzz_pipeline.py -max_total_time=60 [-dict=...] [CORPUS_DIR]

Each input is written as a JSONL, a HAR or a gzip file (its first byte chooses), read, judged and
rendered in every format; anything raised, a total that does not add up, or a report that cannot
be written as UTF-8 is a crash that atheris reports with the input that caused it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris  # type: ignore[import-not-found]

with atheris.instrument_imports():
    from fsm import Validator
    from fsm.render import render_json, render_junit, render_sarif, render_text

SUFFIXES = (".jsonl", ".har", ".jsonl.gz")
FOLDER = Path(tempfile.mkdtemp(prefix="voucher-fsm-fuzz-"))


def one_input(data: bytes) -> None:
    if not data:
        return
    log = FOLDER / f"input{SUFFIXES[data[0] % len(SUFFIXES)]}"
    log.write_bytes(data[1:])
    validator = Validator()
    validator.feed_file(str(log))
    report = validator.finish()
    if not report.totals.adds_up:
        raise AssertionError(f"totals do not add up: {report.totals}")
    for render in (render_text, render_json, render_junit, render_sarif):
        render(report).encode("utf-8")


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
