"""The Dask engine (issue 19): a 2-worker LocalCluster reports what one process reports."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

pytest.importorskip("distributed", reason="the Dask engine needs the dask extra (pip install '.[dask]')")
pytest.importorskip("dask.dataframe", reason="the Dask engine needs the dask extra (pip install '.[dask]')")

from dask.distributed import Client, LocalCluster

from fsm._formats import REPORT_FORMATS
from fsm.config import Config
from fsm.distributed import validate_distributed
from fsm.generate import to_har
from fsm.pipeline import validate_log
from fsm.render import render
from fsm.shards import Plan
from tests.test_cli import run
from tests.test_shards import CORPUS, mutated_log


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    cluster = LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, memory_limit="1GiB"
    )
    c = Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def test_the_corpus_by_glob_and_file_url_is_reported_as_one_process_reports(client: Client) -> None:
    folder = CORPUS[0].parent.parent
    paths = [str(folder / "*" / "traffic.jsonl")] + ["file://" + str(p) for p in CORPUS if p.suffix == ".har"]
    plans: list[Plan] = []
    report = validate_distributed(paths, client=client, on_plan=plans.append)
    one = validate_log(
        [str(p) for p in CORPUS if p.suffix == ".jsonl"] + [str(p) for p in CORPUS if p.suffix == ".har"]
    )
    for fmt in REPORT_FORMATS:
        assert render(report, fmt) == render(one, fmt), fmt
    assert plans[0].shards == 4 and sum(plans[0].sizes) == one.totals.read


def test_a_mutated_log_over_gzip_and_har_with_few_kept_is_reported_as_one_process_reports(
    client: Client, tmp_path: Path
) -> None:
    log = mutated_log(21, sessions=20)
    half = len(log) // 2
    lines = [orjson.dumps(r) for r in log[:half]] + [b"not json"]
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    (tmp_path / "b.har").write_text(json.dumps(to_har(log[half:])))
    paths = [str(tmp_path / "a.jsonl.gz"), str(tmp_path / "b.har")]
    config = Config(kept_per_rule=3)
    plans: list[Plan] = []
    report = validate_distributed(paths, client=client, shards=3, config=config, on_plan=plans.append)
    one = validate_log(paths, config=config)
    for fmt in REPORT_FORMATS:
        assert render(report, fmt) == render(one, fmt), fmt
    assert report.untold and plans[0].skew >= 1.0 and len(plans[0].sizes) == 3


def test_validate_dask_prints_what_jobs_1_prints(client: Client) -> None:
    address: Any = client.scheduler.address
    paths = [str(p) for p in CORPUS[:6]]
    one = run("validate", "--jobs", "1", "-f", "json", *paths)
    dask = run("validate", "--dask", address, "-f", "json", *paths)
    assert one[0] == dask[0] and one[1] == dask[1] and one[1]
