"""Renderers: a :class:`fsm.report.Report` as text, JSON, JUnit XML or SARIF 2.1.0."""

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

FORMATS = ("text", "json", "junit", "sarif")


def render(report: object, fmt: str) -> str:
    """Render ``report`` in one of :data:`FORMATS`."""
    from fsm.report import Report

    assert isinstance(report, Report)
    return {"text": render_text, "json": render_json, "junit": render_junit, "sarif": render_sarif}[fmt](
        report
    )
