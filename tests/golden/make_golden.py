"""Write the golden reports: JSON and text reports of every corpus case, the examples, and a few
generated and mutated logs, so a restructuring can be checked byte for byte (issue 13).

Run from anywhere: ``python tests/golden/make_golden.py`` (``--check`` compares instead of writing).
Inputs are named by paths relative to the repository root, and the reports are made from there,
so the reports do not depend on where the checkout lives. The generated and mutated logs are
written once into ``tests/golden/inputs/`` (committed), so a change to the generator does not
move the goldens; ``--inputs`` writes them again.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent
INPUTS = GOLDEN / "inputs"
SEEDS = (1, 7, 42)


def _generated(seed: int) -> list[dict[str, Any]]:
    from fsm.generate import generate

    return list(generate(6, seed=seed))


def _mutations(log: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A few deterministic breaks of one clean log, each of a different rule family."""

    def last(suffix: str) -> int:
        return max(i for i, r in enumerate(log) if str(r["request"]["path"]).endswith(suffix))

    out = copy.deepcopy(log)
    i = last("/redeem-voucher")
    out.insert(i + 1, copy.deepcopy(out[i]))  # redeemed twice
    yield "double-redeem", out
    out = copy.deepcopy(log)
    del out[last("/session-join")]  # reserve before join
    yield "no-join", out
    out = copy.deepcopy(log)
    j = last("/reserve-voucher")
    out[j]["response"]["status"] = 500  # a refusal the model did not predict
    out[j]["response"]["body"] = {"code": "internal", "message": "boom"}
    yield "unexpected-refusal", out
    out = copy.deepcopy(log)
    out[5]["time"], out[6]["time"] = out[6]["time"], out[5]["time"]  # the clock goes back
    yield "time-backwards", out
    out = copy.deepcopy(log)
    for r in out:
        r["request"].get("headers", {}).pop("Authorization", None)  # nobody signed in
        r["request"].get("headers", {}).pop("authorization", None)
    yield "no-tokens", out


def write_inputs() -> None:
    INPUTS.mkdir(exist_ok=True)
    for seed in SEEDS:
        log = _generated(seed)
        (INPUTS / f"generated-{seed}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in log))
        if seed == SEEDS[0]:
            for name, mutated in _mutations(log):
                (INPUTS / f"mutated-{name}.jsonl").write_bytes(
                    b"".join(orjson.dumps(r) + b"\n" for r in mutated)
                )


def cases() -> list[tuple[str, str]]:
    """(golden name, input path relative to the repository root), in a fixed order."""
    import json

    out: list[tuple[str, str]] = []
    corpus = ROOT / "tests" / "corpus"
    for case in sorted(p.name for p in corpus.iterdir() if (p / "expected.json").is_file()):
        traffic = json.loads((corpus / case / "expected.json").read_text())["traffic"]
        out.append((f"corpus-{case}", f"tests/corpus/{case}/{traffic}"))
    for p in sorted((ROOT / "examples").iterdir()):
        if p.suffix in (".jsonl", ".har"):
            out.append((f"example-{p.name}", f"examples/{p.name}"))
    for p in sorted(INPUTS.iterdir()):
        out.append((f"input-{p.stem}", f"tests/golden/inputs/{p.name}"))
    return out


def reports(rel: str) -> dict[str, str]:
    """The text and JSON reports of one input, made from the repository root."""
    from fsm.pipeline import validate_log
    from fsm.render import render

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        report = validate_log(rel)
    finally:
        os.chdir(here)
    return {"txt": render(report, "text"), "json": render(report, "json")}


def coverage(rels: list[str]) -> str:
    """The coverage table of every input together (states, transitions, refusals the stepper counted)."""
    import json

    from fsm.diagrams.trace import coverage_of

    here = os.getcwd()
    os.chdir(ROOT)
    try:
        table, _ = coverage_of(rels)
    finally:
        os.chdir(here)
    table_json = {"read": table.read, "unreadable": table.unreadable, "rows": table.rows}
    return json.dumps(table_json, indent=2) + "\n"


def outputs() -> Iterator[tuple[str, str]]:
    """(golden file name, its text) for every golden."""
    all_cases = cases()
    for name, rel in all_cases:
        for ext, text in reports(rel).items():
            yield f"{name}.{ext}", text
    yield "coverage.json", coverage([rel for _, rel in all_cases])


def main(argv: list[str]) -> int:
    if "--inputs" in argv or not INPUTS.is_dir():
        write_inputs()
    check = "--check" in argv
    wrong = 0
    for fname, text in outputs():
        target = GOLDEN / fname
        if check:
            if not target.is_file() or target.read_text() != text:
                print(f"differs: {target.relative_to(ROOT)}")
                wrong += 1
        else:
            target.write_text(text)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main(sys.argv[1:]))
