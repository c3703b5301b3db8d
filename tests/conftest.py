"""Shared fixtures and Hypothesis profiles.

Profiles: ``ci`` (the default: derandomized, quick) and ``thorough`` (many more
examples, for a longer local run): ``HYPOTHESIS_PROFILE=thorough python -m pytest``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from fsm.spec import Spec, load_spec

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
COMPILED_BUILD: pytest.StashKey[tuple[subprocess.Popen[bytes], Path]] = pytest.StashKey()


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to test a checkout where a compiled build left modules that shadow the sources."""
    shadows = sorted(str(p.relative_to(REPO)) for p in (REPO / "fsm").rglob("*.so"))
    if shadows:
        raise pytest.UsageError(
            f"compiled modules in the checkout shadow the sources ({', '.join(shadows[:3])}...): "
            "delete them with `find fsm -name '*.so' -delete` (build the compiled wheel from a copy, "
            "see docs/performance.md)"
        )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the compiled build in the background when its test is to run (tests/compiled_build.py)."""
    from tests import compiled_build

    if any(item.name == compiled_build.TEST for item in session.items) and compiled_build.can_build():
        out = Path(tempfile.mkdtemp(prefix="voucher-fsm-compiled-"))
        session.config.stash[COMPILED_BUILD] = (compiled_build.start(out), out)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop a compiled build still running (its test was interrupted or deselected) and remove it."""
    started = config.stash.get(COMPILED_BUILD, None)
    if started is not None:
        build, out = started
        if build.poll() is None:
            build.kill()
            build.wait()
        shutil.rmtree(out, ignore_errors=True)


settings.register_profile(
    "ci",
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def spec() -> Spec:
    """The shipped spec, loaded and linted."""
    return load_spec()


@pytest.fixture
def protocol_copy(tmp_path: Path) -> Path:
    """A writable copy of fsm/protocol, for tests that break the spec on purpose."""
    dest = tmp_path / "protocol"
    shutil.copytree(REPO / "fsm" / "protocol", dest)
    return dest


def have_dot() -> bool:
    """True when Graphviz's dot program is installed."""
    return shutil.which("dot") is not None


needs_dot = pytest.mark.skipif(
    not have_dot(), reason="Graphviz's dot is not installed (apt-get install -y graphviz)"
)
