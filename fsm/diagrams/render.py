"""DOT text -> SVG/PNG through the ``graphviz`` package and Graphviz's ``dot`` program."""

from __future__ import annotations

import shutil
from pathlib import Path

from fsm.errors import UsageError

__all__ = ["DotMissing", "render_image"]


class DotMissing(UsageError):
    """SVG/PNG were asked for but Graphviz (or the graphviz package) is not installed."""


def render_image(dot_text: str, path: Path, fmt: str, *, instead: str = "--format dot,mermaid") -> Path:
    """Render ``dot_text`` to ``path`` as ``svg`` or ``png``.

    Without Graphviz this fails naming the install command and ``instead``: the options of the
    calling command that write DOT or Mermaid, which need nothing extra.
    """
    try:
        import graphviz
    except ImportError:
        raise DotMissing(
            f"cannot write {path}: the graphviz Python package is missing (a dependency of voucher-fsm); "
            "pip install graphviz. DOT and Mermaid need nothing extra"
        ) from None
    if shutil.which("dot") is None:
        raise DotMissing(
            f"cannot write {path}: Graphviz's dot program is not installed; "
            "apt-get install -y graphviz (or brew install graphviz). DOT and Mermaid need nothing extra: "
            f"{instead}"
        )
    data = graphviz.Source(dot_text).pipe(format=fmt)
    path.write_bytes(data)
    return path
