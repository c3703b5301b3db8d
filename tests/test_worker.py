"""The two-process run (fsm.worker): the same verdicts as one process, and failures never silent."""

from __future__ import annotations

import gzip
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from fsm import Validator, worker
from fsm.generate import generate
from fsm.render import render
from fsm.render.json import report_to_dict
from tests.test_mutations import OPERATORS

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="the worker process is forked, which the kit does only on Linux",
)


def _inputs(tmp_path: Path) -> list[Path]:
    """Every example and corpus trace, a mutated generated log, and a file of junk between records."""
    log = list(generate(40, seed=11, vouchers_per_session=3))
    for n, op in enumerate(sorted(OPERATORS)):
        mutated = OPERATORS[op](log, n)
        if mutated:
            log = mutated[0]
    generated = tmp_path / "generated.jsonl"
    generated.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in log))
    junk = tmp_path / "junk.jsonl"
    lines = [orjson.dumps(r) for r in generate(3, seed=5)]
    lines[2:2] = [
        b"{not json",
        b"\xff\xfe binary",
        b'{"request": 1}',
        b"[]",
        b'{"request": {"method": "GET"}}',
    ]
    lines.append(b'{"request": {"method": "GET", "path": "/elsewhere"}, "response": {"status": 200}}')
    junk.write_bytes(b"\n".join(lines) + b"\n")
    packed = tmp_path / "generated.jsonl.gz"
    packed.write_bytes(gzip.compress(generated.read_bytes()))
    har = (REPO / "examples" / "session-two-payments.har").read_bytes()
    cut = tmp_path / "cut.har"
    cut.write_bytes(har[: len(har) * 2 // 3])  # salvaged from the break on
    files = [generated, junk, packed, cut]
    files += sorted((REPO / "examples").glob("*.jsonl")) + sorted((REPO / "examples").glob("*.har"))
    files += sorted((REPO / "tests" / "corpus").glob("*/traffic.*"))
    return files


def _report(files: list[Path], parallel: bool) -> Any:
    v = Validator(coverage=True)
    for f in files:
        v.feed_file(str(f), parallel=parallel)
    report = v.finish()
    return report, v.coverage


@pytest.mark.parametrize("time_in_worker", [True, False], ids=["times-in-worker", "times-in-parent"])
def test_the_two_process_run_gives_the_same_report_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, time_in_worker: bool
) -> None:
    """All inputs, fed one after another into one validator: every report format and the coverage agree.

    Whichever process parses the timestamps (the pure build's worker, the compiled build's parent).
    """
    assert worker.available(), "the test process should have a single thread"
    monkeypatch.setattr(worker, "TIME_IN_WORKER", time_in_worker)
    started = []
    real = worker.ChildStream
    monkeypatch.setattr(worker, "ChildStream", lambda *a, **k: started.append(1) or real(*a, **k))
    files = _inputs(tmp_path)
    one, one_cov = _report(files, parallel=False)
    assert not started
    two, two_cov = _report(files, parallel=True)
    assert len(started) == len(files) > 40  # every file went through a worker
    assert report_to_dict(two) == report_to_dict(one)
    for fmt in ("text", "junit", "sarif"):
        assert render(two, fmt) == render(one, fmt)
    assert two_cov == one_cov
    rules = {v.rule_id for v in one.violations}
    assert {"input.unreadable", "input.bad-record", "route.outside-api"} <= rules
    assert len(rules) > 20  # the inputs break many rules, not a few


def test_a_path_outside_the_api_is_reported_once_across_files_run_in_workers(tmp_path: Path) -> None:
    """What a worker learnt (paths already reported, D1) carries over to the next file."""
    record = {"request": {"method": "GET", "path": "/health"}, "response": {"status": 200}}
    files = []
    for name in ("a.jsonl", "b.jsonl"):
        f = tmp_path / name
        f.write_bytes(orjson.dumps(record) + b"\n")
        files.append(f)
    report, _ = _report(files, parallel=True)
    assert [str(v.location) for v in report.violations if v.rule_id == "route.outside-api"] == [
        f"{files[0]}:1"
    ]


def test_parallel_is_declined_where_forking_is_unsafe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a second thread running, feed_file runs every stage in its own process and says nothing."""
    calls = []
    monkeypatch.setattr(worker, "ChildStream", lambda *a, **k: calls.append(1))
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not worker.available()
        report, _ = _report([REPO / "examples" / "session-two-payments.jsonl"], parallel=True)
    finally:
        stop.set()
        thread.join()
    assert not calls
    assert report.totals.judged > 10 and report.errors == 0


class Note(str):
    """A value marshal cannot carry."""


def _items(n: int) -> list[tuple[int, None, str]]:
    return [(i, None, f"record {i}") for i in range(n)]


def test_a_failing_worker_is_an_error_that_says_why(tmp_path: Path) -> None:
    """An exception in the worker reaches the caller with the worker's traceback."""

    def front(item: Any) -> Any:
        if item[0] == 100:
            raise RuntimeError("stage broke at record 100")
        return item[0], item[2], None, []

    stream = worker.ChildStream(_items(200), front, {}, fraction=lambda: None, final_state=lambda: None)
    seen: list[Any] = []
    with pytest.raises(worker.WorkerError, match="stage broke at record 100"):
        seen.extend(p[0] for p in stream)
    assert seen == list(range(64))  # whole batches before the failure, none after


def test_a_worker_that_dies_is_an_error_never_a_silent_end(tmp_path: Path) -> None:
    """A worker killed mid-input (here: it exits) is reported with its exit code, not taken as the end."""

    def front(item: Any) -> Any:
        if item[0] == 10:
            os._exit(3)
        return item[0], item[2], None, []

    stream = worker.ChildStream(_items(50), front, {}, fraction=lambda: None, final_state=lambda: None)
    with pytest.raises(worker.WorkerError, match="exit code 3"):
        list(stream)


def test_progress_in_a_two_process_run_reports_the_share_read(tmp_path: Path) -> None:
    """The worker sends how much it has read with each batch; feed_file passes it on."""
    log = tmp_path / "big.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in generate(700, seed=9, partial=False)))
    calls: list[tuple[int, float | None]] = []
    Validator().feed_file(str(log), on_progress=lambda n, f: calls.append((n, f)), parallel=True)
    fractions = [f for _, f in calls]
    assert len(calls) >= 2 and all(f is not None and 0 < f <= 1 for f in fractions)
    assert fractions == sorted(fractions)


def test_the_cli_uses_a_worker_for_large_files_unless_told_not_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--parallel forces it, --no-parallel forbids it, and by default only large files get one."""
    from click.testing import CliRunner

    from fsm.cli import cli

    modes: list[bool] = []
    real = Validator.feed_file

    def spy(self: Validator, path: str, **kw: Any) -> None:
        modes.append(kw.get("parallel", False))
        real(self, path, **kw)

    monkeypatch.setattr(Validator, "feed_file", spy)
    example = str(REPO / "examples" / "session-two-payments.jsonl")
    for args in ([], ["--parallel"], ["--no-parallel"]):
        result = CliRunner().invoke(cli, ["validate", "--format", "json", *args, example])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["totals"]["judged"] > 10
    assert modes == [False, True, False]


def test_findings_cross_processes_intact() -> None:
    """Findings, their related exchanges and context pickle through their constructors (frozen, compiled)."""
    import pickle

    from fsm.violation import Finding, RelatedExchange, SourceLocation

    related = (RelatedExchange(3, SourceLocation("a.har", entry=2), "GET /x -> 200"),)
    inner = Finding("schema.request", "inner", instance_path="/a", expected=["x"], actual={"b": 1})
    f = Finding("schema.response", "outer", "/b", "spec#/x", 1, None, "voucher:v1", related, (inner,))
    assert pickle.loads(pickle.dumps(f)) == f


def test_values_marshal_cannot_carry_travel_pickled() -> None:
    """A batch marshal refuses (here a str subclass) is pickled instead: nothing is lost or changed."""

    def front(item: Any) -> Any:
        return item[0], Note(f"record {item[0]}"), None, []

    stream = worker.ChildStream(_items(70), front, {}, fraction=lambda: None, final_state=lambda: None)
    got = list(stream)
    assert [p[1] for p in got] == [f"record {i}" for i in range(70)]
    assert all(type(p[1]).__name__ == "Note" for p in got)


def test_standard_input_is_judged_in_this_process_even_when_parallel_is_asked() -> None:
    """A forked child has no standard input: --parallel on - reads it here, with the right report."""
    import subprocess

    data = (REPO / "examples" / "session-two-payments.jsonl").read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "fsm", "validate", "--parallel", "--format", "json", "-"],
        input=data,
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["totals"]["judged"] == data.count(b"\n")


def test_a_worker_killed_in_the_middle_of_a_message_is_a_worker_error() -> None:
    """The pipe ends half-way through a batch: WorkerError, not the transport's own OSError."""
    import multiprocessing
    import signal
    import time

    items = [(i, None, f"{i:06d}" + "x" * 200_000) for i in range(200)]  # about 13 MB a batch
    stream = worker.ChildStream(
        items, lambda it: (it[0], it[2], None, []), {}, fraction=lambda: None, final_state=lambda: None
    )
    seen: list[Any] = []

    def consume() -> None:
        for p in stream:
            seen.append(p)
            if len(seen) == 1:  # the child is now blocked half-way through writing the second batch
                time.sleep(0.5)
                [child] = multiprocessing.active_children()
                os.kill(child.pid or 0, signal.SIGKILL)

    with pytest.raises(worker.WorkerError, match="stopped unexpectedly"):
        consume()
    assert len(seen) == 64


def test_the_worker_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    """A parent killed outright (OOM killer, kill -9) leaves no worker blocked on a full pipe."""
    import signal
    import subprocess
    import time

    log = tmp_path / "big.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in generate(1500, seed=4, partial=False)))
    parent = subprocess.Popen(
        [sys.executable, "-m", "fsm", "validate", "--parallel", "--format", "json", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children = Path(f"/proc/{parent.pid}/task/{parent.pid}/children")
    deadline = time.monotonic() + 20
    kids: list[str] = []
    while not kids and time.monotonic() < deadline and parent.poll() is None:
        kids = children.read_text().split() if children.exists() else []
        time.sleep(0.01)
    assert kids, "the validator never started its worker"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    status = Path(f"/proc/{kids[0]}/status")
    deadline = time.monotonic() + 10
    while status.exists() and "State:\tZ" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not status.exists() or "State:\tZ" in status.read_text(), "the worker outlived its parent"


def test_feeding_from_a_callback_during_a_two_process_run_is_refused(tmp_path: Path) -> None:
    """The worker numbers exchanges from a copy of the validator: more traffic mid-run is a usage error."""
    from fsm.errors import UsageError

    v: Validator

    def callback(*_: Any) -> None:
        v.feed({"request": {"method": "GET", "path": "/api/v1/vouchers/vch_1"}, "response": {"status": 200}})

    v = Validator(on_exchange=callback)
    with pytest.raises(UsageError, match="parallel=False"):
        v.feed_file(str(REPO / "examples" / "session-two-payments.jsonl"), parallel=True)
    fine = Validator(on_exchange=lambda *_: None)
    fine.feed_file(str(REPO / "examples" / "session-two-payments.jsonl"), parallel=True)
    fine.feed({"request": {"method": "GET", "path": "/api/v1/vouchers/vch_1"}, "response": {"status": 200}})
    assert fine.finish().totals.read == 17


def test_a_callback_in_a_two_process_run_gets_whole_exchanges(tmp_path: Path) -> None:
    """With on_exchange, exchanges travel whole (headers, query): the callback sees them as in one process."""
    files = [f for f in _inputs(tmp_path) if f.name in ("junk.jsonl", "session-two-payments.har")]
    seen: dict[bool, list[tuple[Any, ...]]] = {False: [], True: []}
    for parallel in (False, True):
        v = Validator(on_exchange=lambda ex, *_: seen[parallel].append(ex.args()))  # noqa: B023
        for f in files:
            v.feed_file(str(f), parallel=parallel)
    assert seen[True] == seen[False]
    assert any(args[7].get("content-type") for args in seen[True])  # headers beyond authorization


def test_the_stepping_copy_of_an_exchange_keeps_all_but_headers_and_query() -> None:
    """What travels without a callback: every field the stepper and report read, the token among them."""
    from fsm.exchange import build_exchange, for_stepping

    record = {
        "time": "2026-06-09T12:00:08.621Z",
        "request": {
            "method": "post",
            "path": "/api/v1/vouchers/vch_1/redeem-voucher?x=1",
            "headers": {"Authorization": "Bearer abc.def.ghi", "Content-Type": "application/json"},
            "body": {"amount": "1"},
        },
        "response": {"status": 200, "headers": {"x-id": "1"}, "body": {"status": "REDEEMED"}},
    }
    ex = build_exchange(record, 7, "f.jsonl", 3, False)
    assert not isinstance(ex, worker.Finding)
    copy = for_stepping("f.jsonl", False, json.loads(json.dumps(ex.stepping_args())))
    whole, slim = ex.args(), copy.args()
    differs = {n for n, (a, b) in enumerate(zip(whole, slim, strict=True)) if a != b}
    assert differs == {6, 7, 17}  # query, headers, response headers
    assert copy.query == {} and copy.resp_headers == {}
    assert copy.headers == {"authorization": "Bearer abc.def.ghi"}
    assert copy.token == ex.token == "abc.def.ghi"
    assert copy.location == ex.location and copy.time == ex.time
