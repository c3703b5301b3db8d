"""Text as reports quote it: the one way the kit shortens a long value."""

from __future__ import annotations

__all__ = ["ELLIPSIS", "clip"]

ELLIPSIS = "..."
"""What stands for the cut part (the secret scrubber knows a secret may end at it)."""


def clip(text: str, width: int) -> str:
    """``text`` if it fits in ``width`` characters, else its start and :data:`ELLIPSIS`, ``width`` long."""
    return text if len(text) <= width else text[: width - len(ELLIPSIS)] + ELLIPSIS
