"""Shards by payment context (issue 19): N processes report byte for byte what one process reports.

Each test of state that spans contexts first checks, on the plan, that the exchanges involved sit
in different shards (so the test would fail if that state were not handed over), then that the
sharded report equals the one-process report, and that the finding in question is there.
"""

from __future__ import annotations

import copy
import gc
import gzip
import json
import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from fsm._formats import REPORT_FORMATS
from fsm.config import Config
from fsm.generate import TrafficBuilder, generate, to_har
from fsm.pipeline import validate_log
from fsm.readers import read_jsonl
from fsm.readers._json import lenient_loads
from fsm.render import render
from fsm.report import Report
from fsm.shards import (
    Plan,
    ShardValidator,
    _packed,
    _parts,
    _scan_part,
    plan,
    planned_files,
    scan_file,
    validate_sharded,
)
from fsm.spec import load_spec
from tests.test_cli import run
from tests.test_mutations import OPERATORS

ROOT = Path(__file__).resolve().parent.parent
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*/traffic.*"))
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in {".jsonl", ".har"})


def same_report(
    paths: Sequence[Path | str], jobs: Sequence[int] = (2, 3), config: Config | None = None
) -> Report:
    """The one-process report, after checking every sharded run renders the same in every format."""
    names = [str(p) for p in paths]
    one = validate_log(names, config=config)
    for n in jobs:
        many = validate_sharded(names, jobs=n, config=config)
        for fmt in REPORT_FORMATS:
            assert render(many, fmt) == render(one, fmt), (n, fmt)
    return one


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def apart(p: Plan, *ordinals: int) -> bool:
    """The records (0-based, one file) sit in as many shards as there are of them."""
    return len({p.shard_of[o] for o in ordinals}) == len(ordinals)


def mutated_log(seed: int, sessions: int = 40) -> list[dict[str, Any]]:
    """Two generated logs interleaved (ids drawn by two generators), broken by every mutation operator."""
    rng = random.Random(seed)
    a = list(generate(sessions, seed=seed, partial=True))
    b = list(generate(sessions // 2, seed=seed + 1, partial=True))
    log: list[dict[str, Any]] = []
    while a or b:
        log.append((a if a and (not b or rng.random() < 0.6) else b).pop(0))
    for operator in OPERATORS.values():
        for _ in range(2):
            m = operator(log, rng.randint(0, 40))
            if m is not None:
                log = m[0]
    return log


# ---------------------------------------------------------------- byte for byte
def test_the_corpus_in_one_run_is_reported_the_same_on_two_and_three_processes() -> None:
    report = same_report(CORPUS)
    assert report.violations and report.totals.read > 300


def test_a_cap_on_live_entities_that_could_bite_runs_in_one_process_and_reports_the_same() -> None:
    """Shards would forget other entities than one process (D27): such a run is not split."""
    plans: list[Plan] = []
    report = validate_sharded(
        [str(p) for p in CORPUS], jobs=2, config=Config(max_live=3), on_plan=plans.append
    )
    assert report.by_rule()["entity.forgotten"] == 1 and plans[0].capped(Config(max_live=3))
    assert not plans[0].capped(Config(max_live=plans[0].named)) and not plans[0].capped(Config(max_live=0))
    same_report(CORPUS, jobs=(2,), config=Config(max_live=3))


CAPTURES = ROOT / "tests" / "captures"


def test_the_real_tools_captures_are_reported_the_same_with_and_without_an_api_prefix() -> None:
    """HAR, .zhar and .zip from mitmproxy and Chromium: transport (D22), sanitized HARs, D25's advice."""
    listed = json.loads((CAPTURES / "index.json").read_text())["captures"]
    paths = [CAPTURES / c["file"] for c in listed]
    same_report(paths, jobs=(2,))
    same_report(paths, jobs=(3,), config=Config(api_prefix="/gateway/api/v1"))
    nothing = same_report([CAPTURES / "chromium-no-api.har"], jobs=(2,))
    assert nothing.nothing_judged and nothing.paths_seen


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_each_example_is_reported_the_same_on_two_processes(example: Path) -> None:
    same_report([example], jobs=(2,))


def test_mutated_generated_logs_over_gzip_jsonl_and_har_are_reported_the_same(tmp_path: Path) -> None:
    log = mutated_log(7)
    third = len(log) // 3
    lines = [orjson.dumps(r) for r in log[:third]]
    lines[3:3] = [b"not json", b"", b'{"request": 1}']  # unreadable, blank, a bad record
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    write(tmp_path / "b.jsonl", log[third : 2 * third])
    (tmp_path / "c.har").write_text(json.dumps(to_har(log[2 * third :])))
    paths = [tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl", tmp_path / "c.har"]
    report = same_report(paths, jobs=(2, 3), config=Config(kept_per_rule=3))
    assert report.untold and len(report.by_rule()) > 8  # many rules, some counted beyond the three kept


def test_entities_each_shard_retired_to_disk_are_listed_in_one_process_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finished entities past one in RAM move to disk: where each was first retired still orders them."""
    monkeypatch.setattr("fsm.pipeline.FINISHED_IN_RAM", 1)
    path = write(tmp_path / "spilled.jsonl", mutated_log(9))
    report = same_report([path], jobs=(2, 3))
    assert sum(1 for e in report.entities if e.final) > 50


def test_a_shard_reads_its_own_lines_of_a_file_and_stops_at_the_last(tmp_path: Path) -> None:
    """Only its lines are parsed, in order; the lines after its last (blank ones too) are not even read."""
    path = tmp_path / "own.jsonl"
    lines = [orjson.dumps(r) for r in generate(12, seed=21, partial=True)]
    lines[5:5] = [b"", b"not json"]
    path.write_bytes(b"\n".join(lines) + b"\n\n\n")
    p = plan([str(path)], 3)
    [f] = p.files
    lasts = []
    for shard in range(3):
        v = ShardValidator(load_spec(), config=Config(), engine="table")
        v._own = own = p.own(f, shard)
        fmt, items = v._read_own(p, f, shard)
        assert fmt == "jsonl"
        assert [item[0] for item in items] == [f.positions[o - f.base] for o in own]
        lasts.append(f.positions[own[-1] - f.base])
    assert len(set(lasts)) == 3 and min(lasts) < f.positions[-1]


def test_a_shard_with_no_record_in_one_of_the_files_is_reported_the_same(tmp_path: Path) -> None:
    b = TrafficBuilder(5)
    alone = b.open_session().records  # one context: one shard has it all
    a = write(tmp_path / "a.jsonl", alone)
    c = write(tmp_path / "c.jsonl", list(generate(10, seed=22, partial=True)))
    p = plan([str(a), str(c)], 3)
    assert any(not p.own(p.files[0], shard) for shard in range(3))
    same_report([a, c], jobs=(3,))


def test_shards_of_very_different_sizes_are_reported_the_same(tmp_path: Path) -> None:
    b = TrafficBuilder(3)
    o = b.open_session()  # one enormous context: one session, 150 vouchers
    records = o.records
    for _ in range(150):
        v, rec = b.session_reserve(o.payee, o.session)
        records += [rec, b.redeem_simple(o.payee, v)]
    records += list(generate(10, seed=4, partial=True, tour=False))  # and small ones
    p = plan([str(write(tmp_path / "skew.jsonl", records))], 3)
    assert max(p.sizes) > 3 * min(p.sizes) and p.largest >= 300
    same_report([tmp_path / "skew.jsonl"], jobs=(3,))


# ---------------------------------------------------------------- state across contexts
def _opaque(records: list[dict[str, Any]], token: str, name: str) -> None:
    """Every use of ``token`` becomes ``name``, with no JWT claims: only its sign-in tells its role."""
    for r in records:
        auth = r["request"]["headers"].get("authorization")
        if auth == f"Bearer {token}":
            r["request"]["headers"]["authorization"] = f"Bearer {name}"
        body = r["response"].get("body")
        if isinstance(body, dict) and body.get("authorization", {}).get("token") == token:
            body["authorization"]["token"] = name


def test_the_token_table_reaches_every_shard_from_the_sign_in_on(tmp_path: Path) -> None:
    """A payee's opaque resource token, issued in one shard, used on another context in another (D10)."""
    records = list(generate(12, seed=5, partial=False))
    signins = [i for i, r in enumerate(records) if (r["request"].get("body") or {}).get("type") == "resource"]
    first, later = signins[0], signins[-1]
    token = records[first]["response"]["body"]["authorization"]["token"]
    _opaque(records, token, "opaque-payee-token")
    opens = [i for i, r in enumerate(records) if r["request"]["path"].endswith("/session-open") and i > later]
    records[opens[0]]["request"]["headers"]["authorization"] = "Bearer opaque-payee-token"
    path = write(tmp_path / "tokens.jsonl", records)
    p = plan([str(path)], 3)
    assert apart(p, first, opens[0]) and first in p.replay_to[p.shard_of[opens[0]]]
    assert set(p.replays) == {o for some in p.replay_to for o in some}  # (only those travel with the plan)
    report = same_report([path], jobs=(3,))
    assert "actor.wrong-context" in report.by_rule()


def test_a_sign_in_is_replayed_only_in_the_shards_whose_exchanges_present_its_token(tmp_path: Path) -> None:
    """The token table is looked up by the tokens a shard's exchanges present: no other sign-in matters."""
    records = list(generate(30, seed=21, partial=False))
    issued = {}  # line (0-based) of each sign-in -> the token it issues
    for i, r in enumerate(records):
        body = r["response"].get("body")
        if isinstance(body, dict) and isinstance(body.get("authorization"), dict):
            issued[i] = body["authorization"]["token"]
    path = write(tmp_path / "signins.jsonl", records)
    p = plan([str(path)], 3)
    presented: list[set[str]] = [set() for _ in range(3)]
    for i, r in enumerate(records):
        auth = r["request"]["headers"].get("authorization", "")
        presented[p.shard_of[i]].add(auth.removeprefix("Bearer "))
    assert len(issued) > 20 and set(issued) <= set(p.learned)
    for shard in range(3):
        wanted = [o for o in p.learned if p.shard_of[o] != shard and issued[o] in presented[shard]]
        assert list(p.replay_to[shard]) == wanted
    assert sum(map(len, p.replay_to)) < len(p.learned)  # (each shard of three would replay two thirds)
    same_report([path], jobs=(3,))


def test_a_sign_in_alone_in_its_component_is_packed_with_the_exchanges_that_present_its_token(
    tmp_path: Path,
) -> None:
    """So it is judged where its token is used, and replayed nowhere (in this log, one context a token)."""
    records = list(generate(30, seed=22, partial=False))
    path = write(tmp_path / "follow.jsonl", records)
    p = plan([str(path)], 3)
    signins = [i for i, r in enumerate(records) if "authorization" in (r["response"].get("body") or {})]
    assert len(signins) > 20 and set(signins) <= set(p.learned)
    for i in signins:
        token = records[i]["response"]["body"]["authorization"]["token"]
        users = {
            p.shard_of[j]
            for j, r in enumerate(records)
            if r["request"]["headers"].get("authorization") == f"Bearer {token}"
        }
        assert users == {p.shard_of[i]}
    assert not any(p.replay_to) and max(p.sizes) - min(p.sizes) <= p.largest
    same_report([path], jobs=(3,))


def test_the_currency_registry_applies_from_the_log_position_it_was_learnt_at(tmp_path: Path) -> None:
    """A token learnt from /finance/currencies is known after that answer in every shard, not before (D14)."""
    b = TrafficBuilder(6)
    records = list(generate(12, seed=6, partial=False, tour=False))
    redeems = [i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher")]
    new = {"network": "polygon", "currency": "ZZTOP", "currencyAddress": "0x" + "ab" * 20}
    for i in (redeems[1], redeems[-1]):
        for where in (records[i]["request"]["body"], records[i]["response"].get("body") or {}):
            if "expectedPayment" in where:
                where["expectedPayment"].update(new)
    learnt = {"symbol": "ZZTOP", "network": "polygon", "address": "0x" + "AB" * 20, "decimals": 6}
    at = (redeems[1] + redeems[-1]) // 2
    records.insert(at, b.record("GET", "/finance/currencies", response=[learnt]))
    path = write(tmp_path / "currencies.jsonl", records)
    p = plan([str(path)], 3)
    assert apart(p, at, redeems[-1] + 1) and apart(p, at, redeems[1])
    assert all(at in p.replay_to[k] for k in range(3) if k != p.shard_of[at])  # (every shard: D14)
    report = same_report([path], jobs=(3,))
    unknown = [v for v in report.violations if v.rule_id == "network.unknown-currency"]
    assert [v.location.line for v in unknown] == [redeems[1] + 1]  # before the answer only


def test_once_per_path_infos_are_told_once_whichever_shard_their_exchanges_fall_in(tmp_path: Path) -> None:
    b = TrafficBuilder(8)
    records = list(generate(10, seed=8, partial=True))
    for i in range(5, len(records), len(records) // 6):
        records.insert(i, b.record("GET", "/widgets/w1/config", response={}))
        outside = b.record("GET", "/x", response={})
        outside["request"]["path"] = "/elsewhere/x"
        records.insert(i, outside)
    report = same_report([write(tmp_path / "outside.jsonl", records)])
    counts = report.by_rule()
    assert counts["route.out-of-scope"] == 1 and counts["route.outside-api"] == 1


def test_the_first_n_violations_of_a_rule_are_the_first_in_the_log_across_shards(tmp_path: Path) -> None:
    records = list(generate(12, seed=9, partial=True))  # unfinished entities in many contexts
    path = write(tmp_path / "many.jsonl", records)
    config = Config(kept_per_rule=2)
    report = same_report([path], jobs=(2, 3), config=config)
    everything = validate_log([str(path)])
    incomplete = [v for v in everything.violations if v.rule_id == "entity.incomplete"]
    kept = [v for v in report.violations if v.rule_id == "entity.incomplete"]
    assert len(incomplete) > 2 and len(kept) == 2 and all(v in incomplete for v in kept)
    assert report.by_rule()["entity.incomplete"] == len(incomplete)


def test_a_har_with_a_token_in_one_shard_only_is_not_taken_for_a_sanitized_export(tmp_path: Path) -> None:
    """Whether a HAR has Authorization anywhere is the whole file's, whichever shard holds it."""
    records = list(generate(12, seed=16, partial=False, tour=False))
    with_token = [i for i, r in enumerate(records) if "authorization" in r["request"]["headers"]]
    keep = with_token[0]
    for i in with_token[1:]:
        del records[i]["request"]["headers"]["authorization"]
    path = tmp_path / "one-token.har"
    path.write_text(json.dumps(to_har(records)))
    p = plan([str(path)], 3)
    assert apart(p, keep, with_token[-1])
    report = same_report([path], jobs=(3,))
    assert "input.sanitized" not in report.by_rule() and report.by_rule()["actor.unauthenticated"] > 10


def test_an_id_reused_by_two_contexts_puts_both_in_one_shard(tmp_path: Path) -> None:
    records = list(generate(12, seed=10, partial=False, tour=False))
    reserves = [i for i, r in enumerate(records) if r["request"]["path"].endswith("/reserve-voucher")]
    first, last = reserves[0], reserves[-1]
    old = records[last]["response"]["body"]["id"]
    reused = records[first]["response"]["body"]["id"]
    text = orjson.dumps(records[last:]).decode().replace(old, reused)
    records[last:] = orjson.loads(text)
    path = write(tmp_path / "reused.jsonl", records)
    p = plan([str(path)], 3)
    assert not apart(p, first, last)
    report = same_report([path], jobs=(3,))
    assert report.errors or report.warnings


def test_each_files_clock_runs_across_shards(tmp_path: Path) -> None:
    """Backwards time, the first exchange without a time, without an offset: per file, in any shard (D19)."""
    records = list(generate(12, seed=11, partial=False))
    path = write(tmp_path / "clock.jsonl", records)
    p = plan([str(path)], 3)
    r = next(i for i in range(len(records) // 4, len(records)) if apart(p, i - 1, i) and apart(p, i - 2, i))
    earlier = datetime.fromisoformat(records[r - 1]["time"]) - timedelta(milliseconds=100)
    records[r]["time"] = (
        earlier.isoformat()
    )  # before the one before, in another shard, not before its own shard's
    step = len(records) // 4
    del records[2 * step]["time"]
    del records[2 * step + 5]["time"]
    records[3 * step]["time"] = records[3 * step]["time"].rstrip("Z")
    records[3 * step + 7]["time"] = records[3 * step + 7]["time"].rstrip("Z")
    report = same_report([write(tmp_path / "clock.jsonl", records)], jobs=(3,))
    counts = report.by_rule()
    assert [v.location.line for v in report.violations if v.rule_id == "time.backwards"] == [r + 1]
    assert counts["time.missing"] == 1 and counts["time.no-offset"] == 1


def test_a_har_with_another_document_after_its_entries_is_reported_the_same(tmp_path: Path) -> None:
    """A problem with no position after a HAR's entries (two HARs in one file) is a shard's last record."""
    log = mutated_log(5, sessions=6)
    har = json.dumps(to_har(log)).encode()
    (tmp_path / "two.har").write_bytes(har + b"\n" + har)
    report = same_report([tmp_path / "two.har"], jobs=(2, 3))
    assert report.totals.unreadable == 1 and report.totals.read == len(log) + 1


def test_the_totals_add_up_over_shards(tmp_path: Path) -> None:
    log = mutated_log(12, sessions=12)
    lines = [orjson.dumps(r) for r in log] + [b"{broken", b'{"time": 1}']
    path = tmp_path / "totals.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    report = validate_sharded([str(path)], jobs=3)
    assert report.totals == validate_log([str(path)]).totals
    assert report.totals.adds_up and report.totals.unreadable == 2 and report.totals.read == len(lines)


# ---------------------------------------------------------------- the command
def test_validate_jobs_on_a_glob_of_gzip_files_prints_what_jobs_1_prints(tmp_path: Path) -> None:
    log = mutated_log(13, sessions=12)
    half = len(log) // 2
    for name, part in (("x1.jsonl.gz", log[:half]), ("x2.jsonl.gz", log[half:])):
        (tmp_path / name).write_bytes(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in part)))
    pattern = str(tmp_path / "x*.jsonl.gz")
    for fmt in REPORT_FORMATS:
        one = run("validate", "--jobs", "1", "-f", fmt, pattern)
        two = run("validate", "--jobs", "2", "-f", fmt, pattern)
        assert one[0] == two[0] == 1 and one[1] == two[1] and one[1]


def test_validate_refuses_jobs_with_parallel_and_a_glob_that_matches_nothing(tmp_path: Path) -> None:
    code, _, err = run("validate", "--jobs", "2", "--parallel", str(EXAMPLES[0]))
    assert code == 2 and "--parallel" in err
    code, _, err = run("validate", str(tmp_path / "*.jsonl"))
    assert code == 2 and "no file matches" in err


def test_a_plan_packs_components_largest_first_into_the_least_loaded_shard(tmp_path: Path) -> None:
    path = write(tmp_path / "p.jsonl", copy.deepcopy(list(generate(30, seed=14, partial=False))))
    p = plan([str(path)], 2)
    assert sum(p.sizes) == p.shard_of.__len__() and p.components > 30
    assert max(p.sizes) - min(p.sizes) <= p.largest and p.skew < 1.2


def test_a_plain_file_read_in_parts_by_the_first_pass_plans_what_one_pass_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each part's clock, once-per-file flags, line numbers, exchange numbers and ids carry on."""
    records = list(generate(20, seed=15, partial=True))
    for i in range(len(records) // 2, len(records)):
        del records[i]["time"]  # the file's first untimed exchange lies in a later part
    records[3]["time"] = records[3]["time"].rstrip("Z")
    lines = [orjson.dumps(r) for r in records]
    lines[40:40] = [b"", b"not json"]
    path = tmp_path / "parts.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr("fsm.shards._PART_FROM", 0)
    whole, parts = plan([str(path)], 3), plan([str(path)], 3, processes=3)
    assert parts.files[0].positions == whole.files[0].positions and len(parts.files) == 1
    for name in ("shard_of", "index", "first", "learned", "replay_to", "sizes", "components", "largest"):
        assert getattr(parts, name) == getattr(whole, name), name
    assert [str(t) for t in parts.previous] == [str(t) for t in whole.previous]
    same_report([path], jobs=(3,))


def test_the_first_pass_over_a_part_parses_each_record_as_the_scan_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One at a time, under the scan's rarer collections (not all at once before it, as a list)."""
    path = write(tmp_path / "part.jsonl", list(generate(10, seed=20, partial=False)))
    thresholds: list[int] = []  # the collector's young threshold as each record is parsed

    def spy(*args: Any, **kwargs: Any) -> Any:
        for item in read_jsonl(*args, **kwargs):
            thresholds.append(gc.get_threshold()[0])
            yield item

    monkeypatch.setattr("fsm.shards.read_jsonl", spy)
    [f] = planned_files([str(path)])
    start, end, lines = _parts(str(path), 2)[1]
    before = gc.get_threshold()
    gc.set_threshold(700, *before[1:])
    try:
        scan = _scan_part((f, start, end, lines, load_spec(), Config()))
    finally:
        gc.set_threshold(*before)
    assert len(thresholds) == len(scan.files[0].positions) > 10
    assert scan.files[0].positions[0] == lines + 1
    assert min(thresholds) >= 50_000


@pytest.mark.parametrize("parts", [2, 4])
def test_a_plain_file_cut_mid_line_inside_components_plans_and_reports_what_one_pass_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parts: int
) -> None:
    """Each cut falls inside a line and inside components: the parts' ids are joined in the parent."""
    path = write(tmp_path / "cut.jsonl", list(generate(60, seed=19, partial=True)))
    data, size = path.read_bytes(), path.stat().st_size
    monkeypatch.setattr("fsm.shards._PART_FROM", 0)
    cuts = [start for start, _, _ in _parts(str(path), parts)][1:]
    assert len(cuts) == parts - 1
    for k, cut in enumerate(cuts, 1):
        assert data[size * k // parts - 1] != ord("\n")  # the cut falls inside a line ...
        assert data[cut - 1] == ord("\n")  # ... and moves to the start of the next
    scan = scan_file(planned_files([str(path)])[0], load_spec(), Config())
    roots = [scan.uf.find(c) for c in scan.comp]
    for cut in cuts:
        n = data.count(b"\n", 0, cut)  # records before the cut
        assert set(roots[:n]) & set(roots[n:]) - {scan.uf.find(0)}, "no component straddles the cut"
    whole, split = plan([str(path)], 3), plan([str(path)], 3, processes=parts)
    names = ("shard_of", "index", "first", "learned", "replay_to", "sizes", "components", "largest", "named")
    for name in names:
        assert getattr(split, name) == getattr(whole, name), name
    assert split.files[0].positions == whole.files[0].positions
    same_report([path], jobs=(parts,))


def test_a_record_kept_for_replay_reads_back_as_itself_whatever_its_numbers() -> None:
    """Replayed records travel between processes as JSON text only where it reads back the same."""
    plain = {"a": [1, 2.5, -0.0, "é"], "b": {"c": True}}
    odd = [{"n": lenient_loads(b"1e400")}, {"n": 10**30}, {"s": "\ud800"}, {"n": None}]
    assert isinstance(_packed(plain), bytes) and orjson.loads(_packed(plain)) == plain
    for record in odd:
        kept = _packed(record)
        assert (orjson.loads(kept) if isinstance(kept, bytes) else kept) == record


# ---------------------------------------------------------------- links by code
def _voucher_codes(doc: Any, codes: Sequence[str]) -> None:
    """Every voucher the bodies show (an id and a code) given one of ``codes``, always the same for one id."""
    if isinstance(doc, list):
        for x in doc:
            _voucher_codes(x, codes)
    elif isinstance(doc, dict):
        if str(doc.get("id", "")).startswith("vch_") and "code" in doc:
            doc["code"] = codes[int(doc["id"][4:], 16) % len(codes)]
        for x in doc.values():
            _voucher_codes(x, codes)


def test_contexts_whose_vouchers_reuse_codes_never_looked_up_are_components_apart(tmp_path: Path) -> None:
    """A code given with an id is an attribute of the entity: no exchange finds a voucher by code alone."""
    records = list(generate(40, seed=23, partial=True, tour=False))
    for r in records:
        _voucher_codes(r["response"].get("body"), ("111111", "222222", "333333"))
    shown = {r["response"]["body"]["code"] for r in records if "reserve-voucher" in r["request"]["path"]}
    assert shown == {"111111", "222222", "333333"}  # every voucher of the 40 contexts shares one of three
    path = write(tmp_path / "codes.jsonl", records)
    p = plan([str(path)], 4)
    assert p.components > 40 and p.largest < len(records) // 10 and p.skew < 1.5
    same_report([path], jobs=(2, 4))


def test_a_code_looked_up_without_an_id_joins_every_entity_that_carried_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A session opened by a context's code finds whichever context the store holds under it (D18).

    Context code ``C1`` is looked up (a session opened with it) long before a context is opened with
    it; context code ``C2`` is given to a context that closes, long before a session is opened with
    it (refused: the code names the closed context). Each pair lies in one shard, the first pass
    read whole or in parts, and the report is the one-process report.
    """
    b = TrafficBuilder(21)
    c1, c2 = "LOOKUP", "CLOSED"
    payee1, in1 = b.sign_in_payee(c1)
    _, open_early = b.session_open(payee1, c1)  # no context with C1 yet: adopted by its code
    payer_b, in_b = b.sign_in_payer()
    ctx_b, open_b = b.context_open(payer_b)
    ctx_b["code"] = open_b["response"]["body"]["code"] = c2
    head = [in1, open_early, in_b, open_b, b.context_close(payer_b, ctx_b)]
    middle = list(generate(8, seed=22, partial=True, tour=False, start=b.now))
    b.now = datetime.fromisoformat(middle[-1]["time"])
    payer_a, in_a = b.sign_in_payer()
    ctx_a, open_a = b.context_open(payer_a)
    ctx_a["code"] = open_a["response"]["body"]["code"] = c1
    payee2, in2 = b.sign_in_payee(c2)
    late, open_late = b.session_open(payee2, c2)
    v, reserve = b.session_reserve(payee2, late)
    tail = [in_a, open_a, in2, open_late, b.session_join(payer_a, late), reserve, b.redeem_simple(payee2, v)]
    records = head + middle + tail
    path = write(tmp_path / "lookups.jsonl", records)
    n = len(head) + len(middle)
    pairs = ((1, n + 1), (3, n + 3), (4, n + 3))  # (C1 looked up, carried), (C2 carried, looked up)
    monkeypatch.setattr("fsm.shards._PART_FROM", 0)  # (the first pass in parts too: each pair straddles)
    whole = plan([str(path)], 4)
    for parts in (1, 2, 4):
        p = plan([str(path)], 4, processes=parts)
        assert all(p.shard_of[a] == p.shard_of[b] for a, b in pairs), parts
        assert p.shard_of == whole.shard_of and p.components == whole.components, parts
    report = same_report([path], jobs=(2, 4))
    refused = [v for v in report.violations if v.rule_id == "machine.illegal-transition"]
    assert [v.location.line for v in refused] == [n + 4] and ctx_b["id"] in refused[0].message
    # (the context adopted by C1 alone left the store's code table when the context opened with C1 came)
    assert f"code={c1}" not in render(report, "text") and ctx_a["id"] in render(report, "text")
