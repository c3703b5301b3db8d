"""Bounded memory (D27): finished entities spilled to disk judge the same, live ones past max-live and
finished ones past a retention time are forgotten with one ``entity.forgotten`` info, and reports of
any size are written a batch of entities at a time. (How much memory: benchmarks/bench_memory.py.)
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

import fsm._spill
import fsm.pipeline
import fsm.stepper.entities
from fsm._spill import Spill
from fsm.cli import cli
from fsm.config import Config, load_config
from fsm.errors import UsageError
from fsm.generate import TrafficBuilder, generate
from fsm.pipeline import Validator, validate_log
from fsm.render import FORMATS, render, write
from fsm.report import Report

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"


def _one_session(seed: int, vouchers: int) -> tuple[TrafficBuilder, str, str, list[Any], list[Any]]:
    """A session joined, ``vouchers`` reserved: (builder, payer, payee, records, vouchers)."""
    b = TrafficBuilder(seed)
    o = b.open_session()
    records = o.records
    made = []
    for _ in range(vouchers):
        v, rec = b.session_reserve(o.payee, o.session)
        records.append(rec)
        made.append(v)
    return b, o.payer, o.payee, records, made


def _report(records: list[dict[str, Any]], **kwargs: Any) -> tuple[Report, Validator]:
    v = Validator(**kwargs)
    for n, r in enumerate(records, 1):
        v.feed(r, source="log.jsonl", line=n)
    return v.finish(), v


def _all_formats(report: Report) -> dict[str, str]:
    return {fmt: render(report, fmt) for fmt in FORMATS}


# ------------------------------------------------------------------ spilling
def test_every_golden_input_reports_its_golden_with_one_finished_entity_a_kind_in_ram(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The goldens hold byte for byte when every finished entity but the last goes to disk, and
    every live entity is packed after each exchange."""
    monkeypatch.setattr(fsm.pipeline, "FINISHED_IN_RAM", 1)
    monkeypatch.setattr(fsm.stepper.entities, "WINDOW", 1)
    from tests.test_golden import MAKER as maker

    spilled = 0
    real = Spill.add

    def counting(self: Spill, table: int, rows: Any) -> None:
        nonlocal spilled
        rows = list(rows)
        spilled += len(rows)
        real(self, table, rows)

    monkeypatch.setattr(Spill, "add", counting)
    for name, rel in maker.cases():
        for ext, text in maker.reports(rel).items():
            assert text == (GOLDEN / f"{name}.{ext}").read_text(), f"{name}.{ext} differs with spilling"
    assert spilled > 500  # (the bound did force them out: 682 rows)


@pytest.mark.parametrize("seed", [1, 5])
def test_spilled_and_unspilled_runs_write_the_same_report_in_every_format(seed: int) -> None:
    """Reused ids, retired entities named again, wrong calls: the same text, JSON, JUnit and SARIF."""
    records = list(itertools.islice(generate(60, seed=seed), 2000))
    for r in records[::37]:  # a call on a finished voucher, later: it comes back from disk
        records.append(r)
    in_ram, _ = _report(records, finished_in_ram=0)
    on_disk, v = _report(records, finished_in_ram=1)
    assert v._stepper.store.spill is not None and v._stepper.store.spill.rows > 100
    assert v._stepper.actors.tokens.on_disk > 10  # (tokens' roles spill too)
    assert _all_formats(on_disk) == _all_formats(in_ram)
    assert on_disk.entities == in_ram.entities and len(on_disk.entities) == len(in_ram.entities)


def test_a_finished_entity_on_disk_is_known_to_state_of_and_comes_back_when_named() -> None:
    """state_of reads the disk; a later call brings the entity back in its final state."""
    b, _, payee, records, vouchers = _one_session(3, 4)
    records += [b.discard(payee, v) for v in vouchers]
    validator = Validator(finished_in_ram=1)
    for r in records:
        validator.feed(r)
    store = validator._stepper.store
    assert store.finished["voucher"].on_disk >= 3
    assert validator.state_of(f"voucher:{vouchers[0].id}") == ("DISCARDED",)
    assert validator.feed(b.discard(payee, vouchers[0]))  # discarding twice is still judged wrong
    assert store.finished["voucher"].on_disk >= 2


def test_the_spill_keeps_rows_in_order_and_the_filter_answers_for_keys_never_added() -> None:
    """Rows come back in the order added; update keeps a row's place; pop deletes; close removes the file."""
    spill = Spill()
    assert not spill.maybe(0, "a") and spill.get(0, "a") is None
    spill.add(0, [("a", "X", 1), ("b", "Y", 2)])
    spill.add(1, [("a", "Z", 0)])
    spill.add(0, [("c", "W", 3)])
    assert spill.get(0, "b") == ("Y", 2) and spill.get(1, "a") == ("Z", 0)
    assert spill.update(0, "a", "Q", 5) and not spill.update(0, "zz", "Q", 5)
    assert list(spill.items(0)) == [("a", "Q", 5), ("b", "Y", 2), ("c", "W", 3)]
    assert spill.pop(0, "b") == ("Y", 2) and spill.get(0, "b") is None and spill.count(0) == 2
    misses = sum(spill.maybe(0, f"never-{n}") for n in range(10_000))
    assert misses < 100  # a Bloom filter: almost every unknown key is answered without the disk
    folder = spill._folder
    assert os.path.isdir(folder)
    spill.close()
    assert not os.path.exists(folder)


def test_the_filter_grows_and_still_finds_every_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past its bits per key the filter grows, rebuilt from the disk: no key is lost."""
    monkeypatch.setattr(fsm._spill, "_FIRST_BITS", 1 << 12)  # (room for 409 keys)
    spill = Spill()
    spill.add(0, [(f"k{n}", "S", n) for n in range(3)])
    size = len(spill._bits)
    for start in range(3, 20_000, 1000):
        spill.add(0, [(f"k{n}", "S", n) for n in range(start, start + 1000)])
    assert len(spill._bits) > size
    assert all(spill.get(0, f"k{n}") == ("S", n) for n in range(20_003))
    assert sum(spill.maybe(0, f"never-{n}") for n in range(10_000)) < 200
    spill.close()


def test_a_timed_spill_hides_rows_past_its_cutoff_at_once_and_its_sweep_deletes_them_and_rebuilds_the_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rows retired before the cutoff are gone for every lookup; the sweep deletes them, counted by table."""
    monkeypatch.setattr(fsm._spill, "_FIRST_BITS", 1 << 12)
    spill = Spill(timed=True)
    spill.add(0, [(f"k{n}", "S", n, float(n)) for n in range(1000)])
    spill.add(1, [("a", "X", 0, 5.0), ("b", "Y", 0, None)])  # (None: no known time, never forgotten)
    spill.cutoff = 900.0
    assert spill.get(0, "k899") is None and spill.pop(0, "k1") is None and spill.get(0, "k900") == ("S", 900)
    assert not spill.update(0, "k5", "T", 1, 950.0) and spill.update(0, "k950", "T", 1, 10.0)
    assert spill.count(0) == 99 and [k for k, _, _ in spill.items(1)] == ["b"]
    assert spill.rows == 1002  # (hidden, not yet deleted)
    size = len(spill._bits)
    assert spill.sweep() == {0: 901, 1: 1}  # (k950 was retired again at 10.0: past the cutoff)
    assert spill.rows == 100 == spill.keys and len(spill._bits) < size
    assert spill.get(1, "b") == ("Y", 0) and spill.get(0, "k999") == ("S", 999)
    assert sum(spill.maybe(0, f"k{n}") for n in range(900)) < 50  # (forgotten keys left the filter)
    spill.add(0, [("k1", "again", 0, 1000.0)])  # (a key forgotten and retired again)
    assert spill.get(0, "k1") == ("again", 0)
    spill.close()


# ------------------------------------------------------------------ max-live
def _open_vouchers(sessions: int, per: int) -> list[dict[str, Any]]:
    """Sessions with vouchers reserved and never resolved: many live entities at once."""
    b = TrafficBuilder(11)
    out: list[dict[str, Any]] = []
    for _ in range(sessions):
        o = b.open_session()
        out += o.records
        for _ in range(per):
            out.append(b.session_reserve(o.payee, o.session)[1])
    return out


def test_max_live_caps_the_live_entities_and_one_info_counts_those_forgotten() -> None:
    """No more than max_live are ever live; one entity.forgotten info carries the count."""
    records = _open_vouchers(5, 6)  # 5 contexts, 5 sessions, 30 vouchers
    seen_live: list[int] = []
    v = Validator(max_live=10, on_exchange=lambda *_: seen_live.append(v._stepper.store.live))
    for r in records:
        v.feed(r)
    report = v.finish()
    assert max(seen_live) <= 10
    forgotten = [x for x in report.violations if x.rule_id == "entity.forgotten"]
    assert len(forgotten) == 1
    count = v._stepper.store.evicted
    assert count == 40 - v._stepper.store.live > 0
    assert forgotten[0].actual == count and f"{count:,} entities were forgotten" in forgotten[0].message
    assert forgotten[0].severity.value == "info" and report.exit_code == 0
    assert len(report.entities) == v._stepper.store.live
    incomplete = [x for x in report.violations if x.rule_id == "entity.incomplete"]
    assert len(incomplete) == v._stepper.store.live  # (the forgotten are not reported incomplete)


def test_a_call_on_a_forgotten_entity_is_adopted_not_blamed() -> None:
    """A voucher forgotten under the cap, redeemed later: adopted as first met (D18), no error."""
    b, payer, payee, records, vouchers = _one_session(12, 8)
    first = vouchers[0]
    records.append(b.redeem_simple(payee, first, "EURC", "5"))
    records.append(b.resolve(payer, first))
    capped, validator = _report(records, max_live=4)
    assert validator._stepper.store.evicted > 0
    assert capped.errors == 0 and capped.by_rule()["entity.forgotten"] == 1
    uncapped, _ = _report(records)
    assert uncapped.errors == 0 and "entity.forgotten" not in uncapped.by_rule()


def test_max_live_comes_from_the_cli_option_and_the_config_file(tmp_path: Path) -> None:
    """--max-live N, or max-live in the config; the JSON report then holds the one info."""
    log = tmp_path / "log.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in _open_vouchers(3, 4)))
    runner = CliRunner()
    result = runner.invoke(cli, ["validate", "--format", "json", "--max-live", "5", str(log)])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    forgotten = [x for x in doc["violations"] if x["rule"] == "entity.forgotten"]
    assert len(forgotten) == 1 and forgotten[0]["actual"] == 18 - len(doc["entities"])
    conf = tmp_path / "voucher-fsm.toml"
    conf.write_text("max-live = 5\n")
    assert load_config(conf).max_live == 5
    result = runner.invoke(cli, ["validate", "--format", "json", "--config", str(conf), str(log)])
    assert len([x for x in orjson.loads(result.stdout)["violations"] if x["rule"] == "entity.forgotten"]) == 1
    conf.write_text("max-live = -1\n")
    with pytest.raises(UsageError, match="max-live"):
        load_config(conf)
    result = runner.invoke(cli, ["validate", "--max-live", "-2", str(log)])
    assert result.exit_code == 2


def test_bad_memory_bounds_are_usage_errors() -> None:
    """max_live, retain_finished and finished_in_ram take whole numbers (seconds: any number)."""
    for kwargs in ({"max_live": -1}, {"max_live": 2.5}, {"retain_finished": -1}, {"finished_in_ram": "x"}):
        with pytest.raises(UsageError):
            Validator(**kwargs)
    with pytest.raises(UsageError):
        Config(max_live=-3)
    assert Config().max_live == 200_000


# ----------------------------------------------------------------- retention
def test_retain_finished_forgets_finished_entities_by_the_logs_clock() -> None:
    """A monitor keeps finished entities for the retention time only: few in memory, one info."""
    records = list(itertools.islice(generate(200, seed=4, partial=False), 6000))
    report, v = _report(records, retain_finished=60.0, finished_in_ram=0)
    store = v._stepper.store
    kept = sum(len(done) for done in store.finished.values())
    everyone, _ = _report(records, finished_in_ram=0)
    total = sum(1 for e in everyone.entities if e.final)
    assert store.expired > 0 and kept + store.expired >= total > kept
    assert report.by_rule()["entity.forgotten"] == 1
    info = next(x for x in report.violations if x.rule_id == "entity.forgotten")
    assert info.actual == store.expired and "retention time of 60 s" in info.message
    # the latest finished are still known, the earliest forgotten
    finals = [e.key for e in everyone.entities if e.final and e.kind == "voucher"]
    assert v.state_of(finals[0]) is None and v.state_of(finals[-1]) is not None


def _held(retain: float | None) -> list[int]:
    """Entities and tokens a validator holds, every 500 exchanges of sessions fed one after another."""
    v = Validator(retain_finished=retain, finished_in_ram=0)
    store, tokens = v._stepper.store, v._stepper.actors.tokens
    held = []
    for n, r in enumerate(generate(300, seed=9, partial=False)):
        v.feed(r)
        if n % 500 == 499:
            retired = sum(len(d) for d in (*store.finished.values(), *store.finished_codes.values()))
            held.append(store.live + retired + len(tokens))
    return held


def test_a_monitor_fed_for_long_keeps_a_flat_number_of_entities_and_tokens() -> None:
    """Hours of log time: with a retention time what is held stays flat; without, it grows with the log."""
    flat, growing = _held(30.0), _held(None)
    assert len(flat) > 8
    assert growing[-1] > 3 * growing[len(growing) // 4]
    assert flat[-1] < 1.5 * flat[len(flat) // 4] and max(flat) < growing[-1] / 4


# ------------------------------------------------------------------- writing
def test_writing_a_report_gives_the_text_render_gives_in_every_format() -> None:
    """render() and write() agree, and write() hands the output over in pieces."""
    report = validate_log(ROOT / "examples" / "broken.jsonl")
    for fmt in FORMATS:
        out = io.StringIO()
        write(report, fmt, out)
        assert out.getvalue() == render(report, fmt)


def test_two_processes_with_spilled_entities_report_the_same_and_leave_the_spill_alone(
    tmp_path: Path,
) -> None:
    """A worker forked after the spill was made neither uses nor deletes it; the reports agree."""
    records = list(itertools.islice(generate(40, seed=2), 1500))
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records[:700]))
    second.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records[700:]))
    reports = []
    for parallel in (False, True):
        v = Validator(finished_in_ram=1)
        for f in (first, second):
            v.feed_file(str(f), parallel=parallel)
        spill = v._stepper.store.spill
        assert spill is not None and spill.rows > 50 and os.path.isdir(spill._folder)
        reports.append(_all_formats(v.finish()))
    assert reports[0] == reports[1]


def test_an_entity_retired_again_after_it_went_to_disk_keeps_its_one_row_and_its_place() -> None:
    """Retiring a key already on disk changes its row (put says it is not new); a new key gets a row."""
    from fsm.stepper.entities import Retired

    spill = Spill()
    retired = Retired(spill, 0, 2, timed=False)
    assert retired.put("a", "REDEEMED", 1, None) and retired.put("b", "CLOSED", 1, None)
    assert retired.put("c", "RESOLVED", 1, None)  # (past the limit: all three go to disk)
    assert retired.on_disk == 3 and not retired.ram
    assert not retired.put("a", "RESOLVED", 2, None, extra="kept")  # on disk: its row changes
    assert retired.put("d", "CLOSED", 1, None)  # new: in RAM
    assert list(retired.items()) == [
        ("a", "RESOLVED", 2),
        ("b", "CLOSED", 1),
        ("c", "RESOLVED", 1),
        ("d", "CLOSED", 1),
    ]
    assert retired.get_extra("a") == "kept" and len(retired) == 4
    spill.close()
