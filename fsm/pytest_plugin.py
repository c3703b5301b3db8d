"""A pytest plugin: validate recorded traffic in your own tests.

Installed with voucher-fsm (entry point ``pytest11``). It gives two fixtures::

    def test_checkout_traffic(assert_valid_traffic):
        assert_valid_traffic("captures/checkout.har")          # a file, or a list of exchange dicts

    def test_step_by_step(voucher_validator):
        for record in my_recorder.exchanges:
            assert voucher_validator.feed(record) == []
        # the run is finished after the test: end-of-log rules (unfinished entities) count too

A third starts the sandbox (``voucher-fsm serve``, docs/sandbox.md) on a free port of 127.0.0.1 for
one test and yields its URL; the test controls it under ``{url}/_sandbox/``::

    def test_my_client_pays(voucher_sandbox):
        my_client.pay(base_url=voucher_sandbox + "/api/v1")

``@pytest.mark.voucher_sandbox(seed=..., faults=[...], record=..., real_clock=...)`` sets its options.

The first two read the settings the ``voucher-fsm`` command reads: the nearest ``voucher-fsm.toml`` or
``pyproject.toml`` with a ``[tool.voucher-fsm]`` table, searched from the working directory up.
A marker overrides them for one test (or a module, with ``pytestmark``)::

    @pytest.mark.voucher_fsm(severity={"style.hex-address": "off"}, require_complete=True)
    def test_capture(assert_valid_traffic): ...

and ``assert_valid_traffic(log, strict=..., require_complete=..., severity={...})`` overrides both
for one call. ``config="path/to/voucher-fsm.toml"`` in the marker reads that file instead of the
nearest one. To set them for a whole folder, override the ``voucher_fsm_config`` fixture in its
``conftest.py``. A failure shows the validator's text report.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fsm.config import Config
    from fsm.pipeline import Validator
    from fsm.report import Report

__all__ = ["assert_valid_traffic", "voucher_fsm_config", "voucher_sandbox", "voucher_validator"]

_MARK = "voucher_fsm"
_MARK_KEYS = ("config", "severity", "strict", "require_complete")
_VALIDATOR = pytest.StashKey["Validator"]()


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        "voucher_sandbox(seed=0, faults=(), record=None, real_clock=False): options of the voucher_sandbox "
        "fixture's server",
    )
    config.addinivalue_line(
        "markers",
        f"{_MARK}(config=None, severity=None, strict=None, require_complete=None): voucher-fsm settings "
        "for this test, over the project's voucher-fsm.toml or [tool.voucher-fsm]",
    )


def _overridden(config: Config, severity: Mapping[str, Any] | None, **flags: bool | None) -> Config:
    from fsm.config import parse_severity_overrides

    where = "voucher-fsm override"
    extra = parse_severity_overrides(dict(severity), where) if severity else {}
    return config.merged(severity={**config.severity, **extra}, **flags)


def settings_for(node: pytest.Item | None) -> Config:
    """The settings a test runs with: the project's config file, then its ``voucher_fsm`` markers."""
    from fsm.config import Config, find_config, load_config

    marks = list(node.iter_markers(_MARK)) if node is not None else []
    for mark in marks:
        if mark.args or set(mark.kwargs) - set(_MARK_KEYS):
            raise pytest.UsageError(
                f"{node.nodeid if node else ''}: @pytest.mark.{_MARK} takes keyword arguments "
                f"{', '.join(_MARK_KEYS)}; got {mark.args or ''} {sorted(set(mark.kwargs) - set(_MARK_KEYS))}"
            )
    given = next((m.kwargs["config"] for m in marks if "config" in m.kwargs), None)  # the closest wins
    found = Path(given) if given else find_config()
    config = load_config(found) if found else Config()
    for mark in reversed(marks):  # module, then class, then the test's own: the closest wins
        kw = mark.kwargs
        config = _overridden(
            config, kw.get("severity"), strict=kw.get("strict"), require_complete=kw.get("require_complete")
        )
    return config


def _fail_on(report: Report, what: str) -> None:
    from fsm.render import render_text

    if report.unreadable_inputs or not report.totals.judged:  # nothing checked is no pass
        where = ", ".join(report.unreadable_inputs) or what
        pytest.fail(
            f"voucher-fsm could not read any record of {where}:\n" + render_text(report), pytrace=False
        )
    if report.nothing_judged:  # (D25)
        pytest.fail(f"voucher-fsm judged nothing in {what}:\n" + render_text(report), pytrace=False)
    if report.failed:
        pytest.fail("voucher-fsm found protocol violations:\n" + render_text(report), pytrace=False)


def check_traffic(
    source: str | Path | Iterable[Any],
    *,
    strict: bool | None = None,
    require_complete: bool | None = None,
    severity: Mapping[str, Any] | None = None,
    config: Config | None = None,
) -> Report:
    """Validate a log file or a list of exchange records; fail the test with the text report.

    ``config`` defaults to the project's config file (as ``voucher-fsm validate`` reads it); the
    keyword arguments override it (``severity`` maps rule ids to ``"error"``, ``"warning"``,
    ``"info"`` or ``"off"``).
    """
    from fsm.pipeline import Validator

    base = config if config is not None else settings_for(None)
    v = Validator(config=_overridden(base, severity, strict=strict, require_complete=require_complete))
    if isinstance(source, (str, Path)):
        v.feed_file(str(source))
    else:
        for record in source:
            v.feed(record)
    report = v.finish()
    _fail_on(report, "the traffic given")
    return report


@pytest.fixture
def voucher_fsm_config(request: pytest.FixtureRequest) -> Config:
    """The :class:`fsm.Config` of this test: the project's config file and the test's markers."""
    node = request.node if isinstance(request.node, pytest.Item) else None
    return settings_for(node)


@pytest.fixture
def voucher_validator(request: pytest.FixtureRequest, voucher_fsm_config: Config) -> Iterable[Validator]:
    """A fresh :class:`fsm.Validator` with this test's settings, fed one exchange at a time by the test.

    When the test's own body has passed, the run is finished (``finish()``: end-of-log rules such
    as unfinished entities are judged) and the test fails with the text report if it broke a rule.
    """
    from fsm.pipeline import Validator

    v = Validator(config=voucher_fsm_config)
    request.node.stash[_VALIDATOR] = v
    yield v
    v.finish()  # (a test that failed first still closes its run)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """After a passing test body, finish its ``voucher_validator`` run and fail the test on violations."""
    result = yield  # the test body; its own failure propagates from here unchanged
    v = item.stash.get(_VALIDATOR, None)
    if v is not None:
        report = v.finish()
        if report.totals.read:  # a validator the test never fed is not a verdict on traffic
            _fail_on(report, "the records fed to voucher_validator")
    return result


@pytest.fixture
def assert_valid_traffic(voucher_fsm_config: Config) -> Callable[..., Report]:
    """``assert_valid_traffic(log_or_records, strict=None, require_complete=None, severity=None)``.

    Fails the test with the report on violations; settings as ``voucher_fsm_config``, overridden
    by the keyword arguments.
    """

    def check(source: str | Path | Iterable[Any], **overrides: Any) -> Report:
        return check_traffic(source, config=voucher_fsm_config, **overrides)

    return check


@pytest.fixture
def voucher_sandbox(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a sandbox server (``voucher-fsm serve``) on a free port, stopped after the test.

    Options from the closest ``@pytest.mark.voucher_sandbox(seed=, faults=, record=, real_clock=)``.
    """
    from fsm.sandbox.serve import running

    mark = request.node.get_closest_marker("voucher_sandbox")
    options = dict(mark.kwargs) if mark is not None else {}
    with running(**options) as server:
        yield server.url
