"""The Dask engine (issue 19): a 2-worker LocalCluster reports what one process reports."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fsm._formats import REPORT_FORMATS
from fsm.config import Config
from fsm.generate import to_har
from fsm.pipeline import validate_log
from fsm.render import render
from tests.test_cli import run
from tests.test_shards import CORPUS, mutated_log

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("distributed") is None or importlib.util.find_spec("pandas") is None,
    reason="the Dask engine needs the dask extra (pip install '.[dask]')",
)


# The cluster and its clients run in processes of their own: a Dask client leaves threads behind,
# and the two-process mode's tests need this process to have one thread.
CLUSTER = """
import sys
from dask.distributed import LocalCluster
cluster = LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                       memory_limit="1GiB")
print(cluster.scheduler_address, flush=True)
sys.stdin.read()
cluster.close()
"""
CLIENT = """
import json, sys
from fsm.config import Config
from fsm.distributed import validate_distributed
from fsm.render import render
address, out, paths, shards, kept = json.loads(sys.argv[1])
plans = []
config = Config() if kept is None else Config(kept_per_rule=kept)
report = validate_distributed(paths, address=address, shards=shards, config=config,
                              on_plan=plans.append)
renders = {fmt: render(report, fmt) for fmt in ("text", "json", "junit", "sarif")}
plan = {"shards": plans[0].shards, "sizes": plans[0].sizes, "skew": plans[0].skew}
open(out, "w").write(json.dumps({"renders": renders, "plan": plan}))
"""


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    """A 2-worker LocalCluster's scheduler address, the cluster in a process of its own (stopped by PID)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.close()
        proc.stdout.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def distributed(
    address: str, tmp_path: Path, paths: list[str], shards: int | None = None, kept: int | None = None
) -> dict[str, Any]:
    out = tmp_path / "distributed.json"
    args = json.dumps([address, str(out), paths, shards, kept])
    subprocess.run([sys.executable, "-c", CLIENT, args], check=True, timeout=300)
    return dict(json.loads(out.read_text()))


def test_the_corpus_by_glob_and_file_url_is_reported_as_one_process_reports(
    address: str, tmp_path: Path
) -> None:
    folder = CORPUS[0].parent.parent
    paths = [str(folder / "*" / "traffic.jsonl")] + ["file://" + str(p) for p in CORPUS if p.suffix == ".har"]
    got = distributed(address, tmp_path, paths)
    one = validate_log(
        [str(p) for p in CORPUS if p.suffix == ".jsonl"] + [str(p) for p in CORPUS if p.suffix == ".har"]
    )
    for fmt in REPORT_FORMATS:
        assert got["renders"][fmt] == render(one, fmt), fmt
    assert got["plan"]["shards"] == 4 and sum(got["plan"]["sizes"]) == one.totals.read


def test_a_mutated_log_over_gzip_and_har_with_few_kept_is_reported_as_one_process_reports(
    address: str, tmp_path: Path
) -> None:
    log = mutated_log(21, sessions=20)
    half = len(log) // 2
    lines = [orjson.dumps(r) for r in log[:half]] + [b"not json"]
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    (tmp_path / "b.har").write_text(json.dumps(to_har(log[half:])))
    paths = [str(tmp_path / "a.jsonl.gz"), str(tmp_path / "b.har")]
    got = distributed(address, tmp_path, paths, shards=3, kept=3)
    one = validate_log(paths, config=Config(kept_per_rule=3))
    for fmt in REPORT_FORMATS:
        assert got["renders"][fmt] == render(one, fmt), fmt
    assert one.untold and got["plan"]["skew"] >= 1.0 and len(got["plan"]["sizes"]) == 3


def test_validate_dask_prints_what_jobs_1_prints(address: str) -> None:
    paths = [str(p) for p in CORPUS[:6]]
    one = run("validate", "--jobs", "1", "-f", "json", *paths)
    dask = subprocess.run(
        [sys.executable, "-m", "fsm", "validate", "--dask", address, "-f", "json", *paths],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert one[0] == dask.returncode and one[1] == dask.stdout and one[1]
