"""Renderers: a :class:`fsm.report.Report` as text, JSON, JUnit XML or SARIF 2.1.0."""

from fsm._formats import REPORT_FORMATS
from fsm.render.json import render_json, report_to_dict
from fsm.render.junit import render_junit
from fsm.render.sarif import render_sarif
from fsm.render.text import render_text

__all__ = [
    "FORMATS",
    "render",
    "render_json",
    "render_junit",
    "render_sarif",
    "render_text",
    "report_to_dict",
]

FORMATS = REPORT_FORMATS
_RENDERERS = {"text": render_text, "json": render_json, "junit": render_junit, "sarif": render_sarif}
assert tuple(_RENDERERS) == FORMATS, "one renderer per report format"


def render(report: object, fmt: str) -> str:
    """Render ``report`` in one of :data:`FORMATS`."""
    from fsm.report import Report

    assert isinstance(report, Report)
    return _RENDERERS[fmt](report)
