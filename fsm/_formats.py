"""The report formats, in a module that imports nothing: the CLI's option list reads it at start-up."""

from __future__ import annotations

__all__ = ["REPORT_FORMATS"]

REPORT_FORMATS = ("text", "json", "junit", "sarif")  # fsm.render has one renderer for each
