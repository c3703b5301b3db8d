"""The only module that wires the stages: reader -> exchange -> match -> schema -> step -> report.

Records stream through one at a time; memory grows with the number of live
entities, not with the length of the log, and is bounded (D27): finished entities past a number
move to disk, live ones past ``max-live`` are forgotten.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

from fsm import worker
from fsm._collector import fewer_collections
from fsm.config import Config
from fsm.errors import UsageError
from fsm.exchange import Exchange, Parts, build_exchange, has_no_offset, request_exchange
from fsm.machines import engines_for
from fsm.matcher import Match, Matcher, Router, Transport
from fsm.readers import input_uri, open_input, printable
from fsm.report import EntityOutcome, EntityOutcomes, InputSummary, Report, Totals, sort_violations
from fsm.schemacheck import SchemaChecker
from fsm.secrets import Scrubber, bounded, redact, redact_value, shown, shown_key, template, unsafe_strings
from fsm.spec import Spec, load_spec
from fsm.stepper import Coverage, Prediction, Stepper, history_location
from fsm.stepper.entities import FINISHED_IN_RAM, EntityStore
from fsm.violation import Finding, RelatedExchange, Severity, SourceLocation, Violation

__all__ = ["ExchangeCallback", "Validator", "distinct_label", "make_matcher", "validate_log"]

Progress = Callable[[int, float | None], None]
"""Called now and then during feed_file with (records read so far, fraction of the file read or None)."""

ExchangeCallback = Callable[[Exchange, Match, list[Violation], tuple[str, ...]], None]
"""``Validator(on_exchange=...)``: called after each exchange routed to an operation is judged, with
the :class:`fsm.Exchange`, its :class:`fsm.Match` (operation and path parameters), the violations it
caused and the keys of the entities it named (``("session:ses_1", "voucher:vch_1")``)."""


class Validator:
    """Judges exchanges one at a time against the spec; :meth:`finish` returns the report.

    Arguments:
        spec: the protocol (default: the shipped one).
        config: severities and switches (default: the catalogue's).
        engine: ``table`` (compiled, fast) or ``transitions`` (the reference Machine and
            the Python jsonschema validator only).
        coverage: count the states, transitions and refusals the run exercised (:attr:`coverage`).
        on_exchange: called after each judged exchange with it, its route, its violations and the
            keys of the entities it named.
        stepper: the model's class (a :class:`fsm.stepper.Stepper` or a subclass, e.g. a model made
            wrong on purpose to prove that property tests catch it).
        clock_skew: seconds around a voucher's ``expiresAt`` within which it may or may not have
            expired (D24: the server's clock may run behind or ahead; default: the config's, 5 s).
        api_prefix: where the API lives (D25), e.g. ``/gateway/api/v1`` (default: the config's,
            else ``/api/v1``).
        hosts: the API's hosts (D25); exchanges with other hosts are not judged (default: the
            config's, else any host).
        max_live: live entities kept (default: the config's ``max-live``; 0: no cap). Past it the
            longest idle are forgotten: a later call on one is adopted as first met (D18), and the
            report says how many with one ``entity.forgotten`` info (D27).
        retain_finished: seconds, by the log's clock, that a finished entity is remembered (None:
            the whole run). For a validator that never finishes (a monitor; ``fsm.monitor.Monitor``
            sets a day): its memory and its file on disk stay flat, as finished entities are
            forgotten wherever they wait; a call on an entity forgotten so is adopted (D18) and
            counted in ``entity.forgotten``.
        finished_in_ram: finished entities of a kind kept in RAM; past that they move to a temporary
            file on disk, read back when named again (0: all in RAM). Verdicts do not change (D27).

    Example::

        v = Validator()
        for record in records:              # dicts in the exchange record format
            problems = v.feed(record)       # violations this exchange caused
        report = v.finish()

    Thread-safe: ``feed``, ``feed_file`` and ``finish`` hold one lock, so threads that share a
    validator are judged one record at a time, as if fed in turn (the order is theirs to keep:
    the protocol is judged in the order records arrive, D19).
    """

    def __init__(
        self,
        spec: Spec | None = None,
        *,
        config: Config | None = None,
        engine: str = "table",
        coverage: bool = False,
        on_exchange: ExchangeCallback | None = None,
        stepper: type[Stepper] = Stepper,
        clock_skew: float | None = None,
        api_prefix: str | None = None,
        hosts: Iterable[str] | None = None,
        max_live: int | None = None,
        retain_finished: float | None = None,
        finished_in_ram: int | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self.spec = spec if spec is not None else load_spec()
        config = (config if config is not None else Config()).merged(clock_skew=clock_skew)
        if api_prefix is not None or hosts is not None:
            config = replace(
                config,
                api_prefix=config.api_prefix if api_prefix is None else api_prefix,
                hosts=config.hosts if hosts is None else tuple(hosts),
            )
        self.config = config
        if max_live is None:
            max_live = self.config.max_live
        if type(max_live) is not int or max_live < 0:
            raise UsageError(f"Validator(max_live=...) must be a whole number (0: no cap), not {max_live!r}")
        if retain_finished is not None and (
            type(retain_finished) not in (int, float) or not 0 <= retain_finished < float("inf")
        ):
            raise UsageError(
                f"Validator(retain_finished=...) must be a number of seconds, not {retain_finished!r}"
            )
        if finished_in_ram is None:
            finished_in_ram = FINISHED_IN_RAM
        if type(finished_in_ram) is not int or finished_in_ram < 0:
            raise UsageError(
                "Validator(finished_in_ram=...) must be a whole number (0: never spill), "
                f"not {finished_in_ram!r}"
            )
        self._severity = self.config.effective(self.spec.rules)
        self._keep = self.config.kept_per_rule or 2**63
        self._matcher = make_matcher(self.spec, self.config)
        self._forecasts = make_matcher(self.spec, self.config)  # (predict's: asking reports nothing)
        # the route of the last request predicted, (method, path, host, match): the exchange fed next
        # is that request, answered, most often (an enforcing middleware), and routes the same
        self._predicted: tuple[str, str, str | None, Match] | None = None
        router = self._matcher.router
        self._schemas = SchemaChecker.shared(self.spec, fast=engine == "table")  # compiled once a spec
        stepping = engines_for(self.spec, engine)
        bounds: dict[str, Any] = {
            "clock_skew": self.config.clock_skew,
            "max_live": max_live,
            "finished_in_ram": finished_in_ram,
            "retain_finished": None if retain_finished is None else float(retain_finished),
        }
        if self.config.view != "all":  # (a Stepper subclass of an older signature still fits)
            bounds["view"] = self.config.view
        self._stepper = stepper(self.spec, stepping, coverage=coverage, **bounds)
        self._on_exchange = on_exchange
        self._violations: list[Violation] = []
        self._read = self._judged = self._unreadable = self._transport = 0
        self._routed = 0  # exchanges judged against the protocol (D25)
        self._paths: Counter[str] = Counter()  # templates of the paths not judged against it
        self._told: set[tuple[str, str]] = set()  # (file, transport kind) said once (D22)
        self._authorized: set[str] = set()  # files with an Authorization header somewhere
        self._index = 0
        self._operations = {op.id: op for op in self.spec.operations}
        # The report's own words: what a message says from the spec and the settings (the prefix, the
        # methods and path templates of the operation table) is never a secret of the traffic (D20),
        # even when an exchange happens to hold the same text in a field that has no safe shape.
        self._own_words = frozenset(
            {router.prefix, self.spec.prefix}
            | {op.method for op in self.spec.operations}
            | {op.path for op in self.spec.operations}
        )
        self._inputs: list[InputSummary] = []
        self._untimed: set[str] = set()
        self._offsetless: set[str] = set()  # files already told their times have no offset
        self._source = ("<api>", printable("<api>"))  # the last source fed, and as reports show it
        self._kept: Counter[str] = Counter()  # violations kept per rule
        self._untold: Counter[tuple[str, Severity]] = Counter()  # counted beyond kept_per_rule
        self._untold_by_file: Counter[str] = Counter()  # of actor.unauthenticated, per file
        self._finished: Report | None = None
        self._in_worker_run = False
        self._labels: dict[str, str] = {}  # label shown -> path it stands for

    # ------------------------------------------------------------------ input
    def feed(
        self, record: Mapping[str, Any] | Any, *, source: str = "<api>", line: int | None = None
    ) -> list[Violation]:
        """Judge one exchange record (a dict, an ExchangeRecord, or a live capture's Parts).

        A :class:`fsm.exchange.Parts` is judged as the record it is (:meth:`fsm.exchange.Parts.record`).
        ``source`` and ``line`` locate it in the report (``source:line``); a source with control
        characters or lone surrogates is shown escaped, as file names are. ``line`` is a whole
        number from 1 to 2**53 (what every report format carries exactly); anything else is a
        :class:`UsageError`.
        """
        if line is not None and (type(line) is not int or not 1 <= line <= _MAX_LINE):
            raise UsageError(
                f"feed(line=...) must be a whole number from 1 to 2**53, not {type(line).__name__}"
            )
        if type(record) is not dict and type(record) is not Parts and hasattr(record, "model_dump"):
            record = record.model_dump(mode="json", by_alias=True, exclude_none=True)
        if source != self._source[0]:  # (the same source, fed record after record: made printable once)
            self._source = (source, printable(source))
        source = self._source[1]  # (shown in every report: no control characters, valid UTF-8)
        with self._lock:
            self._check_open()
            position = line if line is not None else self._read + 1
            return self._judge(self._front((position, record, None), source, False), source, False)

    def feed_file(
        self,
        path: str,
        *,
        stdin: BinaryIO | None = None,
        on_progress: Progress | None = None,
        parallel: bool = False,
    ) -> None:
        """Judge every record of one input file (``-`` for standard input).

        ``parallel``: read, parse, route and schema-check in a second process while this
        one steps the machines (same report, about 1.5x the throughput on two cores). Used
        for files only, where forking is safe (Linux, a process with one thread); elsewhere
        ignored.
        """
        with self._lock, fewer_collections():
            self._check_open()
            self._feed_file(path, stdin, on_progress, parallel)

    def _feed_file(
        self, path: str, stdin: BinaryIO | None, on_progress: Progress | None, parallel: bool
    ) -> None:
        bounds = self.config
        info, items = open_input(path, stdin, longest=bounds.longest_record, most_values=bounds.most_values)
        before, judged_before, transport_before = self._read, self._judged, self._transport
        label = self._distinct(info.label, path)
        is_entry = info.positions_are_entries
        first = len(self._violations)
        judge = self._judge
        if parallel and path != "-" and worker.available():  # (a forked child gets no standard input)
            stream = worker.ChildStream(
                items,
                lambda item: self._front(item, label, is_entry, parse_time=worker.TIME_IN_WORKER),
                self._operations,
                fraction=info.fraction,
                final_state=self._matcher.state,
                json_only=info.format == "jsonl",  # every value came from orjson
                # an exchange passed to on_exchange is whole; otherwise only what is read here travels
                stepping=(label, is_entry) if self._on_exchange is None else None,
            )
            self._in_worker_run = True  # the worker numbers exchanges from a copy of this state
            try:
                for n, prepared in enumerate(stream, 1):
                    judge(prepared, label, is_entry)
                    if on_progress is not None and not n & 0xFFF:
                        on_progress(n, stream.fraction())
            finally:
                self._in_worker_run = False
                info.close()  # this process's copy of the input, never read here
            self._matcher.take(stream.final_state)
        else:
            front = self._front
            for n, item in enumerate(items, 1):
                judge(front(item, label, is_entry), label, is_entry)
                if on_progress is not None and not n & 0xFFF:
                    on_progress(n, info.fraction())
        if info.format == "har":
            self._sanitized(label, first)
        self._inputs.append(
            InputSummary(
                label,
                info.format,
                self._read - before,
                self._judged - judged_before,
                input_uri(path),
                self._transport - transport_before,
            )
        )

    def _sanitized(self, label: str, first: int) -> None:
        """A HAR with no Authorization header and no cookie anywhere: one info, not a warning a call.

        Browsers export such HARs "sanitized" (Chrome drops Authorization and cookies): who
        called what cannot be judged, so the file's ``actor.unauthenticated`` findings are
        withdrawn and counted in one ``input.sanitized`` info.
        """
        rule = "actor.unauthenticated"
        severity = self._severity.get(rule)
        if severity is None or label in self._authorized or label in self._matcher.cookies:
            return
        kept = [v for v in self._violations[first:] if v.rule_id == rule and v.location.file == label]
        untold = self._untold_by_file.pop(label, 0)
        if not kept and not untold:
            return
        self._violations[first:] = [
            v for v in self._violations[first:] if not (v.rule_id == rule and v.location.file == label)
        ]
        self._kept[rule] -= len(kept)
        self._untold[(rule, severity)] -= untold
        if not self._untold[(rule, severity)]:
            del self._untold[(rule, severity)]
        n = len(kept) + untold
        finding = Finding(
            "input.sanitized",
            f"{label} has no Authorization header and no cookie in any exchange (a sanitized export?): "
            f"who called what cannot be judged; {n:,} call{'s' if n != 1 else ''} that need a token "
            f"{'were' if n != 1 else 'was'} not judged for {'their' if n != 1 else 'its'} caller",
        )
        self._emit([finding], SourceLocation(label), -1, None)

    def _distinct(self, label: str, path: str) -> str:
        """``label``, or ``label (2)`` when another input of this run already reads the same.

        Each input has its own clock (D19), keyed by its label: two files must not share one.
        """
        return distinct_label(self._labels, label, path)

    def _check_open(self) -> None:
        if self._finished is not None:
            raise UsageError("this Validator has finished its run; make a new one for more traffic")
        if self._in_worker_run:
            raise UsageError(
                "this Validator is judging a file with parallel=True; feed it more traffic after "
                "feed_file returns (or use parallel=False to feed from an on_exchange callback)"
            )

    # ------------------------------------------------------------------ stages
    def _front(
        self, item: tuple[int | None, Any, str | None], file: str, is_entry: bool, *, parse_time: bool = True
    ) -> worker.Prepared:
        """The stages before the stepper, stateless per record (they may run in another process).

        ``parse_time=False`` (in the worker, see :data:`fsm.worker.TIME_IN_WORKER`): the
        timestamp, which only the stepper reads, is parsed by the process that steps.
        """
        position, record, error = item
        if error is not None:
            return position, error, None, []
        try:
            return self._front_stages(position, record, file, is_entry, parse_time)
        except Exception as exc:  # a bug of the kit's on this record: reported there, the run goes on
            return position, _kit_failed(exc), None, []

    def _front_stages(
        self, position: int | None, record: Any, file: str, is_entry: bool, parse_time: bool
    ) -> worker.Prepared:
        if type(record) is Parts:  # (a live capture's, typed already: no dict to build and check)
            built = record.exchange(self._index, file, position, is_entry, parse_time=parse_time)
        else:
            built = build_exchange(record, self._index, file, position, is_entry, parse_time=parse_time)
        if isinstance(built, Finding):
            return position, built, None, []
        self._index += 1
        mechanics = self._matcher.transport(built, _from_cache(record))
        if mechanics is not None:  # HTTP mechanics, not a call (D22)
            return position, built, mechanics, []
        if built.status == 0:  # no response: routed only to tell an API call from a page's blocked asset
            return position, built, self._matcher.match(built), []
        predicted = self._predicted
        if (
            predicted is not None
            and predicted[1] == built.path
            and predicted[0] == built.method
            and predicted[2] == built.host
        ):
            routed: Match | Finding | None = predicted[3]  # (routed as predict routed it: the same matcher)
        else:
            routed = self._matcher.match(built)
        self._predicted = None
        if isinstance(routed, Match):
            lost = self._matcher.body_lost(built)
            unkept = _not_kept(record)  # a body the capture did not keep: not checked, said so (D21)
            schema = self._schemas.check(
                built,
                routed,
                request=not lost and "request" not in unkept,
                response="response" not in unkept,
            )
            if lost:
                schema.append(
                    Finding(
                        self.spec.body_lost_rule,
                        f"{routed.operation.id} followed a redirect that keeps the body (307/308), and "
                        "was recorded without one (a capture artefact); its request body is not checked",
                        instance_path="/request/body",
                    )
                )
            if unkept:  # (a request body lost after a redirect is said so above, once)
                schema.extend(_unkept_finding(side) for side in unkept if not (lost and side == "request"))
            if schema:  # scrubbed here, where the whole exchange is at hand (the stepping side gets less)
                scrub = self._scrubber(built, routed, schema, whole=True)
                schema = [_scrubbed(scrub, f) for f in schema]
            return position, built, routed, schema
        if routed is not None:
            routed = _scrubbed(self._scrubber(built, None, [], whole=True), routed)
        return position, built, routed, []

    def _judge(self, prepared: worker.Prepared, file: str, is_entry: bool) -> list[Violation]:
        """The stepper and the report: one prepared record, in input order."""
        self._read += 1
        position, what, routed, schema = prepared
        if isinstance(what, Exchange):
            if isinstance(routed, Transport):
                return self._mechanics(what, routed, file)
            judged, count = self._judged, len(self._violations)
            try:
                out = self._step(what, routed, schema, file)
            except Exception as exc:  # a bug of the kit's on this record: reported there, the run goes on
                self._judged = judged
                del self._violations[count:]
                what = _kit_failed(exc)
            else:
                if (
                    self._on_exchange is not None and isinstance(routed, Match) and what.status
                ):  # (its own errors are its own; a call with no answer stepped nothing)
                    self._on_exchange(what, routed, out, self._stepper.last_touched)
                return out
        self._unreadable += 1
        loc = SourceLocation(file, entry=position) if is_entry else SourceLocation(file, line=position)
        finding = what if isinstance(what, Finding) else Finding("input.unreadable", what)
        return self._emit([finding], loc, -1, None)

    def _mechanics(self, ex: Exchange, transport: Transport, file: str) -> list[Violation]:
        """HTTP mechanics (D22): counted apart, said once per kind per file, never stepped."""
        self._index = ex.index + 1
        self._transport += 1
        kind = transport.kind
        if (file, kind.id) in self._told:
            return []
        self._told.add((file, kind.id))
        finding = Finding(
            kind.rule,
            f"{transport.said} -> {ex.status} is {kind.name}: HTTP mechanics, not a protocol call; "
            f"such exchanges are counted as transport, not judged (said once for {file})",
            actual=ex.status,
        )
        return self._emit([finding], ex.location, ex.index, None)

    def _step(
        self, ex: Exchange, routed: Match | Finding | None, schema: list[Finding], file: str
    ) -> list[Violation]:
        self._index = ex.index + 1  # (the front may have run in another process)
        self._judged += 1
        if "authorization" in ex.headers:
            self._authorized.add(file)
        if isinstance(routed, Match):
            if ex.status:  # (a call with no answer is not judged against the protocol: D25)
                self._routed += 1
        else:
            shape = template(ex.path)
            if shape in self._paths or len(self._paths) < _PATHS_KEPT:
                self._paths[shape] += 1
        findings: list[Finding] = []
        if ex.time is None and file not in self._untimed:
            self._untimed.add(file)
            shown = _time_shown(ex.time_text)
            bad = f" (first unusable value: {shown})" if ex.time_text else ""
            findings.append(
                Finding(
                    "time.missing",
                    f"{file} has exchanges without a usable timestamp{bad}; expiry is not inferred for them",
                    instance_path="/time",
                    actual=shown if ex.time_text else None,
                )
            )
        elif ex.time is not None and file not in self._offsetless and has_no_offset(ex.time_text or ""):
            self._offsetless.add(file)
            findings.append(
                Finding(
                    "time.no-offset",
                    f"{file} has timestamps without a UTC offset (first: {_time_shown(ex.time_text)}); "
                    "they are read as UTC",
                    instance_path="/time",
                )
            )
        late = self._stepper.clock(ex)
        if late is not None:
            findings.append(late)
        if ex.status == 0:  # (an aborted or blocked request off the API is said as any outside path is)
            if isinstance(routed, Match):
                findings.append(
                    Finding("input.no-response", f"{ex.method} {ex.path} has no response recorded")
                )
            elif routed is not None:
                findings.append(routed)
            if not findings:
                return []
            return self._emit(findings, ex.location, ex.index, None, lambda: self._scrubber(ex, None, []))
        if not isinstance(routed, Match):
            if routed is not None:
                findings.append(routed)
            if not findings:
                return []
            return self._emit(findings, ex.location, ex.index, None, lambda: self._scrubber(ex, None, []))
        broken = bool(schema) and any(f.rule_id in _BREAKS_REQUEST for f in schema)  # predicted refused (D26)
        findings.extend(self._stepper.step(ex, routed, request_broken=broken))
        if schema:  # a payload problem belongs to the entity the exchange is about, if any
            about = self._stepper.last_touched[-1] if self._stepper.last_touched else None
            findings.extend(replace(f, entity=f.entity or about) for f in schema)
        return (
            self._emit(
                findings,
                ex.location,
                ex.index,
                routed.operation.id,
                lambda: self._scrubber(ex, routed, findings),
            )
            if findings
            else []
        )

    def _scrubber(
        self, ex: Exchange, match: Match | None, findings: list[Finding], *, whole: bool = False
    ) -> Scrubber:
        """What may not be quoted from this exchange, to be scrubbed from what its violations say (D20).

        Its secrets (see :meth:`SchemaChecker.secrets`), its bearer token, and every string it
        holds that has no safe shape (the allow-list of ``fsm/protocol/redaction.json``), the ids
        of the entities it touched among them: keys show those by the same fingerprint (``shown_key``).
        """
        found = self._schemas.secrets(ex, match.operation, findings) if match is not None else set()
        if ex.token:
            found.add(ex.token)
        for part in (ex.req_body, ex.resp_body, ex.path.split("/"), ex.method, ex.time_text):
            unsafe_strings(part, found)
        for text in (ex.req_text, ex.resp_text):
            if text:
                found.add(text)
        if whole:  # (the query and headers do not travel to the stepping process: see Exchange.stepping_args)
            unsafe_strings(ex.query, found)
            unsafe_strings(ex.headers, found)
            unsafe_strings(ex.resp_headers, found)
        found -= self._own_words
        # ids shown in keys and paths stay as they are in messages, even among a body's secrets; ids of
        # no safe shape are scrubbed, to the fingerprint their keys show too (shown_key)
        if match is not None:
            found.difference_update(v for v in match.params.values() if shown(v) == v)
        if not whole:
            found -= {key.partition(":")[2] for key in self._stepper.last_touched if shown_key(key) == key}
        return Scrubber(found)

    def _emit(
        self,
        findings: Iterable[Finding],
        loc: SourceLocation,
        index: int,
        op: str | None,
        secrets: Callable[[], Scrubber] | None = None,
    ) -> list[Violation]:
        out = []
        scrubber = _NO_SECRETS
        for f in findings:
            severity = self._severity.get(f.rule_id, Severity.ERROR)
            if severity is None:
                continue
            if secrets is not None:  # only for what is reported, once per exchange
                scrubber, secrets = secrets(), None
            v = _violation(f, severity, loc, index, op, self._severity, scrubber)
            out.append(v)
            if self._kept[v.rule_id] < self._keep:
                self._kept[v.rule_id] += 1
                self._violations.append(v)
            else:  # counted, its details not kept (memory stays bounded: D27)
                self._untold[(v.rule_id, severity)] += 1
                if v.rule_id == "actor.unauthenticated":  # (withdrawn for a sanitized HAR)
                    self._untold_by_file[loc.file] += 1
        return out

    def state_of(self, entity: str, *, at: str | None = None) -> tuple[str, ...] | None:
        """The model's state(s) for ``kind:id`` (e.g. ``voucher:vch_1``), or None if never met.

        One state normally; several for an entity adopted mid-flow whose past is unknown (D18), or
        within the clock skew of its expiry (D24). ``at`` (ISO 8601): the states at that time, once
        due timed transitions fire (expiry, D2); the model is not changed.
        """
        kind, _, ident = entity.partition(":")
        with self._lock:
            return self._stepper.state_of(kind, ident, at)

    def predict(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
        *,
        at: str | None = None,
    ) -> Prediction:
        """What the model predicts for a request now (accepted into a state, or refused with a code).

        The model does not change: a sandbox answering as the protocol says, or a middleware that
        enforces it, asks this before each call and feeds the exchange afterwards.

        Arguments:
            method: the request method.
            path: the request path as the traffic has it, under the run's API prefix (D25; a query
                string may follow, and a full URL gives the host the run's ``hosts`` are asked about).
            headers: the request headers (the bearer token tells the caller, D10).
            body: the decoded JSON body (None: no body).
            at: the request's time (ISO 8601), for timed transitions (expiry, D2).

        The request is routed as :meth:`feed` routes it (by a matcher with the run's API prefix and
        hosts, :func:`make_matcher`). One the protocol does not own (another prefix or host, an
        unknown path) is predicted with ``operation`` None and ``accepted`` None, ``reason`` saying
        why. The lifecycle is then asked of :meth:`fsm.stepper.Stepper.predict`, the one prediction
        seam.
        """
        ex = request_exchange(method, path, headers, body, "<predict>")
        if not isinstance(ex, Exchange):
            return Prediction(None, None, reason=ex.message)
        with self._lock:
            routed = self._forecasts.match(ex)
            if not isinstance(routed, Match):
                return Prediction(None, None, reason=routed.message if routed is not None else "not checked")
            self._predicted = (ex.method, ex.path, ex.host, routed)
            return self._stepper.predict(ex, routed, at=at)

    @property
    def coverage(self) -> Coverage | None:
        """What the run exercised (when made with ``coverage=True``)."""
        return self._stepper.coverage

    def caller_role(self, token: str | None) -> str | None:
        """``payee`` for a resource token, ``user`` for a registered user's, None when unknown (D10)."""
        if token is None:
            return None
        return self._stepper.caller_role(token)

    # ----------------------------------------------------------------- output
    def finish(self) -> Report:
        """Close the run: report unfinished entities (D18) and return the report."""
        with self._lock:
            if self._finished is None:
                with fewer_collections():  # one record per entity met: hundreds of thousands of objects
                    self._finished = self._report()
            return self._finished

    def _report(self) -> Report:
        end = SourceLocation(self._inputs[-1].label if self._inputs else "<end of log>")
        for e, m in self._stepper.unfinished():
            finding = Finding(
                "entity.incomplete",
                f"{shown_key(e.key)} ends the log {e.state_text()}, "
                f"not final ({', '.join(sorted(m.finals))})",
                entity=e.key,
                expected=sorted(m.finals),
                actual=list(e.states),
                related=self._stepper.related(e),
                state=e.state_text(),
            )
            if e.history:  # located at the entity's last exchange
                self._emit([finding], history_location(e.history[-1]), e.history[-1].exchange_index, None)
            else:
                self._emit([finding], end, -1, None)
        store = self._stepper.store
        store.sweep()  # (finished entities on disk past the retention time are counted once deleted)
        if store.forgotten:
            self._emit([_forgotten(store)], end, -1, None)
        outcomes = self._stepper.outcomes

        def entities() -> Iterator[EntityOutcome]:  # (made again each time: those on disk read back)
            for key, kind, state, final, seen in outcomes():
                yield EntityOutcome(shown_key(key), kind, state, final, seen)  # ids come from traffic

        return Report(
            inputs=tuple(self._inputs),
            totals=Totals(self._read, self._judged, self._unreadable, self._transport),
            routed=self._routed,
            paths_seen=tuple(self._paths.most_common(5)) if not self._routed else (),
            advice="" if self._routed else _advice(self._paths, self._matcher),
            violations=sort_violations(self._violations),
            entities=EntityOutcomes(entities, store.count()),
            rules=self.spec.rules,
            strict=self.config.strict,
            untold=tuple(sorted(((rule, level, n) for (rule, level), n in self._untold.items()), key=str)),
        )


_NO_SECRETS = Scrubber(frozenset())
_PATHS_KEPT = 4096  # path templates counted for D25's message (more distinct ones are not counted)


def _advice(paths: Counter[str], matcher: Matcher) -> str:
    """What to change when no exchange was judged against the protocol (D25), from the paths seen.

    A prefix before which the paths would be the protocol's (``/gateway/api/v1`` before
    ``/vouchers/...``) is named as the ``--api-prefix`` to use; hosts that ``--host`` left out
    are named too.
    """
    router = matcher.router
    prefixes: Counter[str] = Counter()
    for shape, n in paths.items():
        segments = shape.split("/")
        for i in range(1, len(segments) - 1):
            rest = "/" + "/".join(segments[i + 1 :])
            if rest != "/" and router.route("GET", rest) is not None:
                prefixes["/".join(segments[: i + 1])] += n
                break
    others = sorted(key.removeprefix("host:") for key in matcher.reported if key.startswith("host:"))
    said = []
    if prefixes:
        best = prefixes.most_common(1)[0][0] or "/"
        if best != (router.prefix or "/"):
            said.append(f"the API seems to sit under {best}: use --api-prefix {best} (config: api-prefix)")
    if others:
        said.append(
            f"exchanges on {', '.join(others[:5])} were left out by --host: add the API's host "
            "with --host (config: hosts)"
        )
    if not said:
        said.append(
            f"none of these paths is an operation of the protocol under {router.prefix or '/'}: "
            "give the API's prefix with --api-prefix and its host with --host"
        )
    return "; ".join(said)


_MAX_LINE = 2**53  # the largest whole number JSON readers (JavaScript's among them) hold exactly
_LONGEST_MESSAGE = 2000  # characters: a message quoting more is cut (what it quotes is bounded already)


_BREAKS_REQUEST = frozenset({"schema.request", "schema.query"})
"""Findings that mean the request breaks its schema, so the model predicts a refusal (D26)."""


def _kit_failed(exc: Exception) -> Finding:
    """A record the kit failed on: counted unreadable (D21), said in the kit's words only (D20).

    With ``VOUCHER_FSM_DEBUG=1`` in the environment the error is raised instead, traceback and all.
    """
    if os.environ.get("VOUCHER_FSM_DEBUG") == "1":
        raise exc
    return Finding(
        "input.unreadable",
        f"voucher-fsm failed on this record ({type(exc).__name__}) and could not judge it; this is "
        "a bug in voucher-fsm: please report it with this record (secrets removed)",
    )


def _forgotten(store: EntityStore) -> Finding:
    """The one ``entity.forgotten`` info of a run: how many entities memory bounds forgot (D27)."""
    why = []
    if store.evicted:
        why.append(f"{store.evicted:,} live, idle longest, past the cap of {store.max_live:,} (max-live)")
    if store.expired:
        why.append(f"{store.expired:,} finished, past the retention time of {store.retain:g} s")
    n = store.forgotten
    return Finding(
        "entity.forgotten",
        f"{n:,} {'entity was' if n == 1 else 'entities were'} forgotten to bound memory ({'; '.join(why)}); "
        "a later call on one was adopted as if first met, its past unknown",
        actual=n,
    )


def _not_kept(record: Any) -> tuple[str, ...]:
    """The sides whose body the record says the capture did not keep (``bodyNotKept: true``)."""
    if type(record) is dict:  # (the usual record: two dicts, neither naming bodyNotKept)
        req, resp = record.get("request"), record.get("response")
        if (
            type(req) is dict
            and type(resp) is dict
            and "bodyNotKept" not in req
            and "bodyNotKept" not in resp
        ):
            return ()
    elif type(record) is Parts:
        return record.unkept
    if type(record) is not dict and not isinstance(record, Mapping):  # (a dict: no ABC check)
        return ()
    out: tuple[str, ...] = ()
    for side in ("request", "response"):
        half = record.get(side)
        if (type(half) is dict or isinstance(half, Mapping)) and half.get("bodyNotKept") is True:
            out += (side,)
    return out


def _from_cache(record: Any) -> bool:
    """True when the record says the client's cache gave the answer (``response.fromCache: true``)."""
    if type(record) is dict:
        resp = record.get("response")
        return type(resp) is dict and resp.get("fromCache") is True
    return (
        isinstance(record, Mapping)
        and isinstance(resp := record.get("response"), Mapping)
        and (resp.get("fromCache") is True)
    )


def _unkept_finding(side: str) -> Finding:
    return Finding(
        "input.body-not-checked",
        f"the {side} body was not kept by the capture (past its body limit, or left out of a HAR); it is "
        "not checked, the rest of the exchange is",
        instance_path=f"/{side}/body",
    )


def _scrubbed(scrub: Scrubber, f: Finding) -> Finding:
    """``f`` with what ``scrub`` knows of fingerprinted in everything it says (its context too)."""
    if not scrub:
        return f
    return replace(
        f,
        message=scrub(f.message),
        expected=scrub(f.expected),
        actual=scrub(f.actual),
        context=tuple(_scrubbed(scrub, c) for c in f.context),
    )


_TIME_LIKE = frozenset("0123456789-:.,+TZtz ")


def _time_shown(text: str | None) -> str:
    """An unusable timestamp as a message may quote it: itself if it looks like one, else its length.

    Whatever else sits in a ``time`` field may be anything, a token or a password among them (D20).
    """
    if text is not None and len(text) <= 40 and set(text) <= _TIME_LIKE:
        return repr(text)
    return f"{len(text or '')} characters that are no timestamp"


def _violation(
    f: Finding,
    severity: Severity,
    loc: SourceLocation,
    index: int,
    op: str | None,
    severities: Mapping[str, Severity | None],
    scrubber: Scrubber,
) -> Violation:
    return Violation(
        rule_id=f.rule_id,
        severity=severity,
        message=scrubber(redact(bounded(f.message, _LONGEST_MESSAGE))),
        location=loc,
        exchange_index=index,
        operation_id=op,
        # ids come from traffic too, and keys must stay the same in every violation: not scrubbed per
        # exchange (it would rename the entity) but shown as every key is, by the scrubbing's fingerprint
        entity=bounded(shown_key(f.entity), 200) if f.entity else None,
        instance_path=f.instance_path,
        spec_path=f.spec_path,
        expected=scrubber(redact_value(bounded(f.expected))),
        actual=scrubber(redact_value(bounded(f.actual))),
        related=_redacted(f.related),
        context=tuple(
            _violation(c, severities.get(c.rule_id) or severity, loc, index, op, severities, scrubber)
            for c in f.context
        ),
        state=f.state,
    )


def _redacted(related: tuple[RelatedExchange, ...]) -> tuple[RelatedExchange, ...]:
    """Related exchanges with tokens in their summaries (paths) redacted; the same objects if none."""
    out = []
    for r in related:
        summary = redact(r.summary)
        out.append(r if summary == r.summary else replace(r, summary=summary))
    return tuple(out)


def make_matcher(spec: Spec, config: Config) -> Matcher:
    """The matcher a run with these settings routes with (the API prefix and hosts, D25)."""
    return Matcher(Router.shared(spec, config.api_prefix), config.hosts, spec.transport, spec.body_kept)


def distinct_label(labels: dict[str, str], label: str, path: str) -> str:
    """``label``, or ``label (2)`` when ``labels`` (label shown -> path) holds it for another path."""
    n, shown = 1, label
    while labels.setdefault(shown, path) != path:
        n += 1
        shown = f"{label} ({n})"
    return shown


def validate_log(
    paths: str | Path | Iterable[str | Path],
    *,
    config: Config | None = None,
    spec: Spec | None = None,
    engine: str = "table",
    parallel: bool = False,
) -> Report:
    """Validate one or more log files (JSONL, JSONL.gz or HAR) and return the report.

    ``parallel``: a second process reads and checks payloads (see :meth:`Validator.feed_file`).
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    v = Validator(spec, config=config, engine=engine)
    for p in paths:
        v.feed_file(str(p), parallel=parallel)
    return v.finish()
