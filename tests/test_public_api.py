"""The public surface: small, explicit, sorted and complete."""

from __future__ import annotations

import pytest

import fsm


def test_all_is_sorted_and_every_name_resolves() -> None:
    """__all__ is sorted and each name is importable from fsm."""
    assert list(fsm.__all__) == sorted(fsm.__all__)
    for name in fsm.__all__:
        assert getattr(fsm, name) is not None


def test_unknown_names_raise_attribute_error() -> None:
    """Only the listed names exist at the top level."""
    with pytest.raises(AttributeError, match="Nope"):
        fsm.Nope  # type: ignore[attr-defined]  # noqa: B018
