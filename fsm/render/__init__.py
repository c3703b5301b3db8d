"""Renderers: a :class:`fsm.report.Report` as text, JSON, JUnit XML or SARIF 2.1.0.

:func:`write` streams a report to a file (a run's entities are read once, a batch at a time, never
all held: D27); :func:`render` returns the same text as one string.
"""

from typing import TextIO

from fsm._formats import REPORT_FORMATS
from fsm.render.json import render_json, report_to_dict, write_json
from fsm.render.junit import render_junit, write_junit
from fsm.render.sarif import render_sarif, write_sarif
from fsm.render.text import render_text, write_text

__all__ = [
    "FORMATS",
    "render",
    "render_json",
    "render_junit",
    "render_sarif",
    "render_text",
    "report_to_dict",
    "write",
]

FORMATS = REPORT_FORMATS
_RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit, "sarif": render_sarif}
assert tuple(_RENDERERS) == FORMATS, "one renderer per report format"
_WRITERS = {"text": write_text, "json": write_json, "junit": write_junit, "sarif": write_sarif}
assert tuple(_WRITERS) == FORMATS, "one writer per report format"


def render(report: object, fmt: str) -> str:
    """Render ``report`` in one of :data:`FORMATS`."""
    from fsm.report import Report

    assert isinstance(report, Report)
    return _RENDERERS[fmt](report)


def write(report: object, fmt: str, out: TextIO, *, max_per_rule: int = 50) -> None:
    """Write ``report`` in one of :data:`FORMATS` to ``out`` (``max_per_rule``: the text format's)."""
    from fsm.report import Report

    assert isinstance(report, Report)
    if fmt == "text":
        write_text(report, out, max_per_rule)
    else:
        _WRITERS[fmt](report, out)
