"""The monitor under the middleware and clients: settings, fail-open, snapshot/stats, sinks, the exchange log.

The middleware is called here in-process as its server would call it (ASGI messages, a WSGI environ);
tests/test_middleware.py runs it under real servers.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import itertools
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import fsm.monitor
from fsm import Prediction, Validator
from fsm.cli import cli
from fsm.errors import UsageError
from fsm.generate import TrafficBuilder, generate
from fsm.middleware import ASGIMiddleware, WSGIMiddleware
from fsm.monitor import Captured, Monitor
from fsm.sinks import Callback, ExchangeLog, JsonlFindings, LoggingSink, OpenTelemetrySink, recorded
from tests.embed_apps import moved

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "examples/session-two-payments.jsonl"
BROKEN = REPO / "examples/broken.jsonl"


def _records(path: Path) -> list[dict[str, Any]]:
    """The example's records, their times moved to now (the monitor stamps exchanges when fed)."""
    return moved([json.loads(line) for line in path.read_text().splitlines() if line.strip()])


def _replaying(records: list[dict[str, Any]]) -> tuple[Any, list[int]]:
    """A bare ASGI app answering each request with the next record's response; and its call count."""
    answers = iter(records)
    calls = [0]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls[0] += 1
        while (await receive()).get("more_body"):
            pass
        r = next(answers)["response"]
        body = json.dumps(r.get("body")).encode()
        await send(
            {"type": "http.response.start", "status": r["status"], "headers": [(b"content-type", b"json")]}
        )
        await send({"type": "http.response.body", "body": body})

    return app, calls


def _call(app: Any, record: dict[str, Any], path: str | None = None) -> tuple[int, bytes]:
    """One request through an ASGI app, as a server makes it; returns the status and body sent."""
    q = record["request"]
    body = json.dumps(q["body"]).encode() if "body" in q else b""
    raw, _, query = (path or q["path"]).partition("?")
    scope = {
        "type": "http",
        "method": q["method"],
        "path": raw,
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in q.get("headers", {}).items()],
    }
    sent: list[dict[str, Any]] = []
    chunks = [body[:7], body[7:]] if len(body) > 7 else [body]  # (a body in two messages)

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def _wsgi(app: Any, record: dict[str, Any]) -> tuple[str, bytes]:
    q = record["request"]
    body = json.dumps(q["body"]).encode() if "body" in q else b""
    environ = {
        "REQUEST_METHOD": q["method"],
        "PATH_INFO": q["path"],
        "QUERY_STRING": "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.input": io.BytesIO(body),
        **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in q.get("headers", {}).items()},
    }
    status: list[str] = []
    result = app(environ, lambda s, h, e=None: status.append(s))
    try:
        out = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
    return status[0], out


def _wsgi_replaying(records: list[dict[str, Any]]) -> Any:
    answers = iter(records)

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        environ["wsgi.input"].read()
        r = next(answers)["response"]
        start_response(f"{r['status']} X", [("Content-Type", "application/json")])
        return [json.dumps(r.get("body")).encode()]

    return app


# ------------------------------------------------------------------ observe, enforce, settings
def test_observe_hands_the_request_body_on_unchanged_and_reports_what_the_validator_reports() -> None:
    records = _records(BROKEN)
    seen: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.append(body)
        inner, _ = _replaying([records[len(seen) - 1]])
        await inner(scope, _again(body), send)

    mw = ASGIMiddleware(app)
    for r in records:
        status, _ = _call(mw, r)
        assert status == r["response"]["status"]
    assert seen == [
        json.dumps(r["request"]["body"]).encode() if "body" in r["request"] else b"" for r in records
    ]
    v = Validator()
    expected = [x.rule_id for r in records for x in v.feed(r) if x.rule_id != "time.backwards"]
    got = [x.rule_id for x in mw.monitor.snapshot().violations]
    assert sorted(got) == sorted(r for r in expected if not r.startswith("time."))


def _again(body: bytes) -> Any:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def test_a_body_the_app_never_reads_is_not_checked_but_a_request_without_one_is_whole() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # answers without reading the request
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b'{"code": "validation_failed"}'})

    mw = ASGIMiddleware(app)
    token = {"authorization": "Bearer abc.def.ghi"}
    _call(mw, {"request": {"method": "GET", "path": "/api/v1/vouchers/vch_1", "headers": token}})
    assert mw.monitor.stats()["bodies_not_checked"] == 0
    redeem = {"method": "POST", "path": "/api/v1/vouchers/vch_1/redeem-voucher", "headers": {
        **token, "content-length": "2"}, "body": {}}  # fmt: skip
    _call(mw, {"request": redeem})
    assert mw.monitor.stats()["bodies_not_checked"] == 1
    assert "input.body-not-checked" in mw.monitor.snapshot().by_rule


def test_enforce_answers_with_the_predicted_status_and_envelope_and_the_app_is_not_called() -> None:
    records = _records(SESSION)
    app, calls = _replaying(records)
    mw = ASGIMiddleware(app, mode="enforce")
    for r in records:
        _call(mw, r)
    resolve = next(r for r in records if r["request"]["path"].endswith("/resolve-voucher"))
    status, body = _call(mw, resolve)  # resolved already: the model predicts already_resolved
    assert calls[0] == len(records)
    assert status == 400
    assert json.loads(body) == {
        "code": "already_resolved",
        "message": json.loads(body)["message"],
    }
    assert "machine.illegal-transition" in json.loads(body)["message"]
    assert mw.monitor.stats()["enforced"] == 1


def test_enforce_refuses_a_call_without_a_token_with_401_unauthorized() -> None:
    app, calls = _replaying([])
    mw = ASGIMiddleware(app, mode="enforce")
    status, body = _call(mw, {"request": {"method": "GET", "path": "/api/v1/vouchers/vch_1"}})
    assert (status, json.loads(body)["code"], calls[0]) == (401, "unauthorized", 0)


def test_enforce_per_operation_lets_observed_operations_through() -> None:
    records = _records(SESSION)
    app, calls = _replaying([*records, records[-1]])
    mw = ASGIMiddleware(app, modes={"redeem-voucher": "enforce"})
    for r in records:
        _call(mw, r)
    status, _ = _call(mw, records[-1])  # a second context-close: observed (not enforced), reported
    assert status == 200 and calls[0] == len(records) + 1
    assert "machine.illegal-transition" in mw.monitor.snapshot().by_rule


def test_the_wsgi_middleware_observes_and_enforces() -> None:
    records = _records(SESSION)
    mw = WSGIMiddleware(_wsgi_replaying(records), mode="enforce")
    for r in records:
        status, _ = _wsgi(mw, r)
        assert status.startswith(str(r["response"]["status"]))
    resolve = next(r for r in records if r["request"]["path"].endswith("/resolve-voucher"))
    status, body = _wsgi(mw, resolve)
    assert status.startswith("400") and json.loads(body)["code"] == "already_resolved"
    assert mw.monitor.stats()["exchanges"] == len(records) + 1
    assert mw.monitor.stats()["enforced"] == 1


def test_an_api_prefix_routes_the_services_paths_and_other_paths_are_not_checked() -> None:
    records = _records(BROKEN)
    app, _ = _replaying([*records, {"response": {"status": 200, "body": {}}}])
    mw = ASGIMiddleware(app, api_prefix="/bleepay")
    for r in records:
        _call(mw, r, path=r["request"]["path"].replace("/api/v1", "/bleepay", 1))
    _call(mw, records[0], path="/health")
    assert mw.monitor.stats()["exchanges"] == len(records)
    assert "machine.illegal-transition" in mw.monitor.snapshot().by_rule


def test_enforce_under_an_api_prefix_refuses_as_predicted_and_logs_the_services_own_paths(
    tmp_path: Path,
) -> None:
    """D25: the validator routes under the prefix; the exchange log re-validates with --api-prefix."""
    records = _records(SESSION)
    app, calls = _replaying(records)
    monitor = Monitor(mode="enforce", api_prefix="/bleepay/v2")
    assert monitor.validator.config.api_prefix == "/bleepay/v2"
    with ExchangeLog(tmp_path / "exchanges.jsonl", monitor):
        mw = ASGIMiddleware(app, monitor=monitor)
        paths = [r["request"]["path"].replace("/api/v1", "/bleepay/v2", 1) for r in records]
        for r, path in zip(records, paths, strict=True):
            assert _call(mw, r, path=path)[0] == r["response"]["status"]
        resolve = next(p for p in paths if p.endswith("/resolve-voucher"))
        status, body = _call(
            mw, next(r for r in records if r["request"]["path"].endswith("/resolve-voucher")), resolve
        )
    assert (status, json.loads(body)["code"], calls[0]) == (400, "already_resolved", len(records))
    logged = [
        json.loads(line)["request"]["path"]
        for line in (tmp_path / "exchanges.jsonl").read_text().splitlines()
    ]
    assert logged == [*paths, resolve]
    args = ["validate", str(tmp_path / "exchanges.jsonl"), "--api-prefix", "/bleepay/v2", "--format", "json"]
    report = json.loads(CliRunner().invoke(cli, args).stdout)
    assert [v["rule"] for v in report["violations"]] == [v.rule_id for v in monitor.snapshot().violations]
    with pytest.raises(UsageError, match="give it to the Validator"):
        Monitor(api_prefix="/bleepay/v2", validator=Validator())


def test_skipped_paths_and_operations_are_not_checked() -> None:
    records = _records(BROKEN)
    app, _ = _replaying(records * 2)
    by_path = ASGIMiddleware(app, skip_paths=["/api/v1/vouchers/*"])
    by_op = ASGIMiddleware(app, skip_operations=["redeem-voucher"])
    for r in records:
        _call(by_path, r)
        _call(by_op, r)
    vouchers = sum(r["request"]["path"].startswith("/api/v1/vouchers/") for r in records)
    redeems = sum(r["request"]["path"].endswith("/redeem-voucher") for r in records)
    assert by_path.monitor.stats()["exchanges"] == len(records) - vouchers
    assert by_op.monitor.stats()["skipped"] == redeems
    assert by_op.monitor.stats()["exchanges"] == len(records) - redeems


def test_severities_come_from_the_settings_or_a_config_file(tmp_path: Path) -> None:
    (tmp_path / "voucher-fsm.toml").write_text('[severity]\n"machine.illegal-transition" = "off"\n')
    for mw in (
        ASGIMiddleware(_replaying(_records(BROKEN))[0], severity={"machine.illegal-transition": "off"}),
        ASGIMiddleware(_replaying(_records(BROKEN))[0], config=tmp_path / "voucher-fsm.toml"),
    ):
        for r in _records(BROKEN):
            _call(mw, r)
        by_rule = mw.monitor.snapshot().by_rule
        assert "machine.illegal-transition" not in by_rule and "actor.wrong-role" in by_rule


def test_a_body_past_the_bound_passes_on_whole_and_is_reported_not_checked() -> None:
    records = _records(SESSION)
    app, _ = _replaying(records)
    mw = ASGIMiddleware(app, body_limit=64)
    for r in records:
        _call(mw, r)
    snap = mw.monitor.snapshot()
    assert snap.by_rule.get("input.body-not-checked", 0) > 0
    assert "schema.response" not in snap.by_rule and "schema.request" not in snap.by_rule
    assert mw.monitor.stats()["bodies_not_checked"] > 0


# ------------------------------------------------------------------ fails open
class _Failing(Validator):
    def feed(self, record: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom inside the kit")

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom inside the kit")


def test_an_error_inside_the_kit_never_breaks_a_request_and_is_logged_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = _records(SESSION)
    app, calls = _replaying(records * 2)
    asgi = ASGIMiddleware(app, monitor=Monitor(mode="enforce", validator=_Failing()))
    wsgi = WSGIMiddleware(_wsgi_replaying(records), monitor=Monitor(mode="enforce", validator=_Failing()))
    with caplog.at_level(logging.ERROR, logger="fsm.monitor"):
        for r in records:
            assert _call(asgi, r)[0] == r["response"]["status"]
            assert _wsgi(wsgi, r)[0].startswith(str(r["response"]["status"]))
    assert calls[0] == len(records)
    assert asgi.monitor.stats()["internal_errors"] == 2 * len(records)  # each predict and each feed
    logged = [rec for rec in caplog.records if rec.name == "fsm.monitor"]
    assert len(logged) == 4  # once per place (predict, feed), per monitor
    assert all(rec.exc_info and "boom inside the kit" in str(rec.exc_info[1]) for rec in logged)


def test_a_failing_sink_is_counted_and_the_other_sinks_still_get_the_findings() -> None:
    got: list[str] = []

    def broken(violations: Any, exchange: Any) -> None:
        raise ValueError("sink down")

    mw = ASGIMiddleware(
        _replaying(_records(BROKEN))[0], sinks=[broken, Callback(lambda v: got.append(v.rule_id))]
    )
    for r in _records(BROKEN):
        _call(mw, r)
    assert got and mw.monitor.stats()["internal_errors"] > 0


# ------------------------------------------------------------------ snapshot, stats, finish
def test_snapshot_and_stats_count_without_finishing_and_finish_still_reports() -> None:
    monitor = Monitor(kept=3)
    records = _records(BROKEN)
    for n, r in enumerate(records, 1):
        q, a = r["request"], r["response"]
        captured = Captured(
            q["method"], q["path"], q.get("headers", {}), r["time"], json.dumps(q.get("body")).encode()
        )
        captured.status, captured.resp_body = a["status"], json.dumps(a.get("body")).encode()
        monitor.feed(captured)
        assert monitor.stats()["exchanges"] == n
    snap = monitor.snapshot()
    assert len(snap.violations) == 3 and sum(snap.by_rule.values()) == monitor.stats()["findings"] > 3
    assert snap.by_severity["error"] >= 1
    report = monitor.finish()
    assert report.totals.judged == len(records)


def test_validator_options_reach_the_validator_the_monitor_makes() -> None:
    monitor = Monitor(validator_options={"engine": "transitions", "coverage": True})
    assert monitor.validator.coverage is not None
    with pytest.raises(TypeError):
        Monitor(validator_options={"no_such_option": 1})


def _fed_for_long(**options: Any) -> tuple[Monitor, list[tuple[int, int]]]:
    """A monitor fed generated sessions; (live, retired) entities every 500 exchanges."""
    monitor = Monitor(validator_options=options)
    store = monitor.validator._stepper.store
    held = []
    for n, r in enumerate(generate(300, seed=9, partial=False), 1):
        q, a = r["request"], r["response"]
        body = json.dumps(q["body"]).encode() if "body" in q else b""
        captured = Captured(q["method"], q["path"], q.get("headers", {}), r["time"], body)
        captured.status, captured.resp_body = a["status"], json.dumps(a.get("body")).encode()
        monitor.feed(captured)
        if n % 500 == 0:
            retired = sum(len(d) for d in (*store.finished.values(), *store.finished_codes.values()))
            held.append((store.live, retired))
    return monitor, held


def test_the_memory_bounds_in_validator_options_bound_what_a_monitor_holds() -> None:
    """max_live caps its live entities, retain_finished forgets finished ones: flat, where unbounded grows."""
    # (the monitor stamps exchanges with the wall clock: retention 0 forgets them as the clock moves on)
    bounded, held = _fed_for_long(max_live=5, retain_finished=0)
    _, unbounded = _fed_for_long()
    assert len(held) > 8 and max(live for live, _ in held) <= 5 < max(live for live, _ in unbounded)
    assert max(r for _, r in held) < unbounded[-1][1] / 10
    store = bounded.validator._stepper.store
    assert store.evicted > 0 and store.expired > 0
    report = bounded.finish()
    [info] = [v for v in report.violations if v.rule_id == "entity.forgotten"]
    assert info.actual == store.evicted + store.expired and "max-live" in info.message


def _captured(r: dict[str, Any]) -> Captured:
    q, a = r["request"], r["response"]
    captured = Captured(q["method"], q["path"], q.get("headers", {}), "", json.dumps(q.get("body")).encode())
    captured.status, captured.resp_body = a["status"], json.dumps(a.get("body")).encode()
    return captured


def _weeks_on_disk(
    monkeypatch: pytest.MonkeyPatch, retain: float | None
) -> tuple[Monitor, list[Any], list[Any]]:
    """A voucher resolved, then 3,000 exchanges of other flows (a second each by the monitor's clock),
    then the voucher redeemed again; 20 finished entities a kind in RAM, the rest on disk.

    Returns the monitor, the findings of the second redeem, and (rows, bytes) of its spill file
    every 250 exchanges.
    """
    clock = itertools.count()
    monkeypatch.setattr(fsm.monitor, "now_iso", lambda: _at(next(clock)))
    b = TrafficBuilder(12)
    o = b.open_session()
    voucher, reserved = b.session_reserve(o.payee, o.session)
    first = [
        *o.records,
        reserved,
        b.redeem_simple(o.payee, voucher, "EURC", "5"),
        b.resolve(o.payer, voucher),
    ]
    again = b.redeem_simple(o.payee, voucher, "EURC", "5")
    monitor = Monitor(validator_options={"retain_finished": retain, "finished_in_ram": 20})
    for r in first:
        monitor.feed(_captured(r))
    spill = monitor.validator._stepper.store.spill
    assert spill is not None
    sizes = []
    for n, r in enumerate(itertools.islice(generate(400, seed=5, partial=False), 3000), 1):
        monitor.feed(_captured(r))
        if n % 250 == 0:
            sizes.append((spill.rows, spill.file_bytes()))
    return monitor, monitor.feed(_captured(again)), sizes


def _at(second: int) -> str:
    return f"2026-06-09T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}.000Z"


def test_a_monitor_forgets_finished_entities_on_disk_after_its_retention_and_its_file_stops_growing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a retention time, rows on disk stay bounded and a call on a forgotten voucher is adopted (D27).

    Without one, every finished entity stays on disk and the second redeem is an illegal transition.
    """
    kept, blamed, growing = _weeks_on_disk(monkeypatch, None)
    assert [v.rule_id for v in blamed] == ["machine.illegal-transition"]
    assert growing[-1][0] > 3 * growing[2][0] and growing[-1][1] > 2 * growing[2][1]
    assert "entity.forgotten" not in kept.finish().by_rule()

    forgetting, found, bounded = _weeks_on_disk(monkeypatch, 600.0)
    assert found == []  # (the voucher, on disk since, was forgotten: adopted as first met, D18)
    assert max(rows for rows, _ in bounded) < growing[-1][0] / 3
    assert bounded[-1][1] == bounded[len(bounded) // 2][1]  # (the file's pages are reused)
    store = forgetting.validator._stepper.store
    assert store.spill is not None and store.spill.keys <= 2 * store.spill.rows + 20  # (the filter rebuilt)
    report = forgetting.finish()
    assert report.errors == 0
    [info] = [v for v in report.violations if v.rule_id == "entity.forgotten"]
    assert info.actual == store.expired > 1000 and "retention time of 600 s" in info.message


def _odd_captures() -> list[Captured]:
    """Captures that do not plainly fit the record shape, or whose bodies and headers are unusual."""
    t = "2026-06-09T12:00:00.000Z"
    pay = "/api/v1/vouchers/vch_1/redeem-voucher"
    odd = [
        Captured("POST", pay, {"Content-Type": "application/json"}, t, b"not json"),
        Captured("post", pay, {"host": "API.Example:443", "authorization": "Bearer x"}, t, b"null"),
        Captured("POST", pay + "?a=1&b=", {":authority": "h"}, t, None),
        Captured("GET", "https://api.example/api/v1/vouchers/vch_1", {}, t, b""),
        Captured("", pay, {}, t),
        Captured("POST", pay, {"x": 1}, t),  # type: ignore[dict-item]
        Captured("POST", pay, {}, "yesterday", b"[1, 2]"),
        Captured("POST", pay, {}, ""),
    ]
    answers: list[tuple[int, bytes | None, dict[str, str]]] = [
        (200, b'{"id": "vch_1"}', {"Content-Type": "application/json"}),
        (409, b"oops", {}),
        (200, None, {}),
        (600, b"{}", {}),
        (200, b"null", {}),
        (0, b"", {}),
        (404, b'{"code": "not_found", "message": "no"}', {"x": "y"}),
        (200, b"", {}),
    ]
    for c, (status, body, headers) in zip(odd, answers, strict=True):
        c.status, c.resp_body, c.resp_headers = status, body, headers
    return odd


def test_the_monitors_stamp_hands_over_exactly_the_seconds_its_text_reads_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``now_iso`` leaves its text and the very float ``parse_timestamp`` reads from it, every millisecond.

    The validator takes the stamped seconds unparsed; a stamp off by one unit in the last place
    would judge expiry against another time than the record the exchange log writes.
    """
    import random
    import time

    from fsm.exchange import format_timestamp, parse_timestamp

    rng = random.Random(18)
    moments = [0, 999_999, 1_000_000, 1_765_152_000_999_999_999, 253_402_300_799_999_999_999]
    moments += [rng.randrange(0, 253_402_300_800 * 10**9) for _ in range(3000)]
    moments += [1_765_152_000 * 10**9 + ms * 10**6 + rng.randrange(10**6) for ms in range(1000)]
    for ns in moments:
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        text = fsm.monitor.now_iso()
        assert fsm.monitor._stamped == (text, parse_timestamp(text)), ns
        assert text == format_timestamp(ns // 1000), ns


def test_a_prediction_made_by_its_own_init_is_the_frozen_dataclass_it_declares() -> None:
    """``Prediction.__init__`` sets each slot directly (faster than the generated one): the same values.

    Every field keeps the value given for it, by position and by name, defaults included; the
    instance stays frozen, equal and hashable as a generated frozen dataclass.
    """
    import dataclasses
    import inspect

    from fsm import Prediction

    fields = dataclasses.fields(Prediction)
    params = list(inspect.signature(Prediction).parameters.values())
    assert [(p.name, p.default) for p in params] == [
        (f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default) for f in fields
    ]
    values = ["op", False, "voucher:v1", ("reserved",), 409, "conflict", "machine.x", "m.json#/t", "why"]
    by_name = {f.name: v for f, v in zip(fields, values, strict=True)}
    for given in (Prediction(*values), Prediction(**by_name)):
        assert [getattr(given, f.name) for f in fields] == values
        assert given == Prediction(*values) and hash(given) == hash(Prediction(*values))
        with pytest.raises(dataclasses.FrozenInstanceError):
            given.reason = "changed"  # type: ignore[misc]
    bare = Prediction("op", None)
    assert [getattr(bare, f.name) for f in fields] == ["op", None, None, (), None, None, None, "", ""]


def test_a_captures_parts_are_typed_and_judged_exactly_as_the_record_they_make() -> None:
    """The typed path (``Validator.feed(parts)``) makes the exchange ``build_exchange`` makes of the record.

    Two validators, one fed the parts and one the records, report the same violations.
    """
    from fsm.exchange import Exchange, build_exchange

    mix = [_captured(r) for r in itertools.islice(generate(30, seed=8), 400)]
    for c in mix:
        c.resp_headers = {"content-type": "application/json", "content-length": "12"}
    fed_parts, fed_records = Validator(), Validator()
    for n, c in enumerate([*mix, *_odd_captures()]):
        text = fsm.monitor.now_iso() if n % 2 else c.time
        parts = c.parts(text, fsm.monitor._stamped[1] if n % 2 else None)
        typed = parts.exchange(n, "f", n, False)
        built = build_exchange(parts.record(), n, "f", n, False)
        if isinstance(built, Exchange):
            assert isinstance(typed, Exchange) and typed.args() == built.args(), n
        else:
            assert typed == built, n
        assert fed_parts.feed(parts, source="f") == fed_records.feed(parts.record(), source="f"), n
    assert fed_parts.finish().violations == fed_records.finish().violations


def test_a_monitor_remembers_finished_entities_for_a_day_unless_told_otherwise() -> None:
    """The default retention is RETAIN_FINISHED (a day); None keeps them all; a Validator keeps them all."""
    assert fsm.monitor.RETAIN_FINISHED == 86_400
    assert Monitor().validator._stepper.store.retain == 86_400
    assert Monitor(validator_options={"retain_finished": None}).validator._stepper.store.retain is None
    assert Monitor(validator_options={"retain_finished": 5}).validator._stepper.store.retain == 5
    assert Validator()._stepper.store.retain is None


# ------------------------------------------------------------------ sinks
def test_the_logging_sink_writes_one_structured_record_per_finding(caplog: pytest.LogCaptureFixture) -> None:
    mw = ASGIMiddleware(_replaying(_records(BROKEN))[0], sinks=[LoggingSink()])
    with caplog.at_level(logging.INFO, logger="fsm.findings"):
        for r in _records(BROKEN):
            _call(mw, r)
    records = [rec for rec in caplog.records if rec.name == "fsm.findings"]
    assert len(records) == mw.monitor.stats()["findings"]
    first = records[0].voucher_fsm  # type: ignore[attr-defined]
    assert {"rule", "severity", "message", "method", "status"} <= set(first)
    assert records[0].getMessage() == f"{first['rule']}: {first['message']}"
    assert {rec.levelname for rec in records} >= {"ERROR", "WARNING"}


def test_the_jsonl_findings_file_holds_one_line_per_finding(tmp_path: Path) -> None:
    with JsonlFindings(tmp_path / "findings.jsonl") as sink:
        mw = ASGIMiddleware(_replaying(_records(BROKEN))[0], sinks=[sink])
        for r in _records(BROKEN):
            _call(mw, r)
    lines = [json.loads(line) for line in (tmp_path / "findings.jsonl").read_text().splitlines()]
    assert len(lines) == mw.monitor.stats()["findings"]
    assert [x["rule"] for x in lines] == [v.rule_id for v in mw.monitor.snapshot().violations][-len(lines) :]


def test_the_exchange_log_keeps_no_secret_and_voucher_fsm_validate_finds_the_same(tmp_path: Path) -> None:
    monitor = Monitor()
    with ExchangeLog(tmp_path / "exchanges.jsonl", monitor):
        mw = ASGIMiddleware(_replaying(_records(BROKEN))[0], monitor=monitor)
        for r in _records(BROKEN):
            _call(mw, r)
    text = (tmp_path / "exchanges.jsonl").read_text()
    for r in _records(BROKEN):  # no token, password or signature as it was
        for secret in _secrets(r):
            assert secret not in text
    assert "Bearer tok:" in text
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "exchanges.jsonl"), "--format", "json"])
    report = json.loads(result.stdout)
    rules = sorted(v["rule"] for v in report["violations"] if v["rule"] != "entity.incomplete")
    assert rules == sorted(v.rule_id for v in monitor.snapshot().violations)
    assert "actor.wrong-role" in rules  # roles learned from the fingerprinted sign-ins


def _secrets(record: dict[str, Any]) -> list[str]:
    out = []
    auth = record["request"].get("headers", {}).get("authorization", "")
    if auth:
        out.append(auth.partition(" ")[2])
    for side in ("request", "response"):
        stack = [record[side].get("body")]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                for k, v in node.items():
                    if k in {"password", "token", "signature", "installationId"} and isinstance(v, str):
                        out.append(v)
                    stack.append(v)
            elif isinstance(node, list):
                stack.extend(node)
    return [s for s in out if len(s) >= 8]


def test_recorded_stand_ins_are_stable_keep_their_length_and_tell_secrets_apart() -> None:
    one = {"request": {"headers": {"Authorization": "Bearer abcdefghijkl"}, "body": {"password": "p" * 40}}}
    two = {"request": {"headers": {"Authorization": "Bearer zyxwvutsrqpo"}, "body": {"password": "p" * 40}}}
    a, b = recorded(one), recorded(two)
    assert a == recorded(one)
    assert a["request"]["headers"]["Authorization"] != b["request"]["headers"]["Authorization"]
    assert len(a["request"]["body"]["password"]) == 40 and "p" * 8 not in a["request"]["body"]["password"]


def test_keeping_raw_secrets_in_the_exchange_log_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="fsm.monitor"):
        ExchangeLog(tmp_path / "raw.jsonl", Monitor(), keep_secrets=True).close()
    assert "keeps raw tokens" in caplog.text


def test_opentelemetry_gets_a_span_event_and_a_count_per_rule() -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the OpenTelemetry SDK is not installed")
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    sink = OpenTelemetrySink(meter_provider=MeterProvider(metric_readers=[reader]))
    mw = ASGIMiddleware(_replaying(_records(BROKEN))[0], sinks=[sink])
    tracer = tracer_provider.get_tracer("test")
    for r in _records(BROKEN):
        with tracer.start_as_current_span("request"):
            _call(mw, r)
    events = [e for span in exporter.get_finished_spans() for e in span.events]
    assert len(events) == mw.monitor.stats()["findings"]
    assert {e.attributes["rule"] for e in events} == set(mw.monitor.snapshot().by_rule)
    points = {
        p.attributes["rule"]: p.value
        for m in reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics
        if m.name == "voucher_fsm.findings"
        for p in m.data.data_points
    }
    assert points == mw.monitor.snapshot().by_rule


def test_an_enforcing_monitor_feeds_the_body_its_prediction_parsed_only_for_those_very_bytes() -> None:
    """The request body ``refusal`` parsed is handed to the feed of the same bytes, never to another body's.

    The record fed (``on_record``) holds the very object the prediction was given for the same
    bytes; a capture whose body is other bytes (equal or not) is parsed anew.
    """
    monitor = Monitor(mode="enforce")
    given: list[Any] = []
    monitor.validator.predict = lambda *a, **k: given.append(a[3]) or Prediction(None, None)  # type: ignore[method-assign]
    fed: list[dict[str, Any]] = []
    monitor.on_record(fed.append)
    body, other = b'{"amount": "5"}', b'{"amount": "6"}'
    for captured_body, same in ((body, True), (other, False), (bytes(bytearray(body)), False)):
        assert monitor.refusal("POST", "/api/v1/vouchers", {}, body) is None
        captured = Captured("POST", "/api/v1/vouchers", {}, "", captured_body)
        captured.status = 201
        monitor.feed(captured)
        assert fed[-1]["request"]["body"] == json.loads(captured_body)
        assert (fed[-1]["request"]["body"] is given[-1]) is same
    packed, gzipped = gzip.compress(body), {"content-encoding": "gzip"}  # (decoded each time: not kept)
    assert monitor.refusal("POST", "/api/v1/vouchers", gzipped, packed) is None
    captured = Captured("POST", "/api/v1/vouchers", gzipped, "", packed)
    captured.status = 201
    monitor.feed(captured)
    assert fed[-1]["request"]["body"] == given[-1] == json.loads(body)
    assert fed[-1]["request"]["body"] is not given[-1]
