"""The compiled (mypyc) wheel, built in a child process while the rest of the suite runs.

The build is minutes of one core's C compiling, and most of the suite keeps only one core busy,
so ``tests/conftest.py`` starts it as soon as the test that needs it is collected, and
``tests/test_packaging.py`` waits for it. A child process, not a thread: tests that fork a worker
process refuse to in a process with more than one thread (``fsm.worker.available``).

Run as a script, it builds: ``python tests/compiled_build.py OUT`` copies the checkout to
``OUT/src`` (mypyc leaves its build products where it builds: never in the checkout), then
builds the wheel into ``OUT/dist`` in a new virtual environment ``OUT/build-venv``, as a user's
``HATCH_BUILD_HOOK_ENABLE_MYPYC=1 pip install .`` builds: the hook must bring what it needs.
Its output goes to ``OUT/build.log``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "test_the_compiled_build_gives_the_same_reports_as_pure_python"
LIMIT_S = 1800  # the build took 2-11 minutes on 2 shared cores


def can_build() -> bool:
    """True when this machine can make the compiled build: a C compiler and hatch-mypyc."""
    have_cc = shutil.which("cc") is not None or shutil.which("gcc") is not None
    return have_cc and importlib.util.find_spec("hatch_mypyc") is not None


def not_built_from(root: Path) -> Callable[[str, list[str]], set[str]]:
    """The benchmark's copy filter (benchmarks/bench_validate.py): both build the compiled wheel alike."""
    spec = importlib.util.spec_from_file_location("bench_validate", REPO / "benchmarks" / "bench_validate.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ignore: Callable[[str, list[str]], set[str]] = bench.not_built_from(root)
    return ignore


def build_wheel(src: Path, out: Path, *, isolated: bool = False, **env: str) -> Path:
    """``pip wheel`` of ``src`` into ``out`` (run inside ``src``), with extra environment variables.

    ``isolated``: as a user's ``pip install`` builds in a new virtual environment: pip's own
    build environment, from a venv that has none of this one's packages (mypy, run by the
    compiled build, would otherwise find this environment's type stubs). Slower: it installs
    the build requirements.
    """
    python = sys.executable
    if isolated:
        builder = out.parent / "build-venv"
        venv.create(builder, with_pip=True)
        python = str(builder / "bin" / "python")
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            *(() if isolated else ("--no-build-isolation",)),
            "-q",
            "-w",
            str(out),
            ".",
        ],
        cwd=src,
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    [whl] = out.glob("voucher_fsm-*.whl")
    return whl


def start(out: Path) -> subprocess.Popen[bytes]:
    """Start building the compiled wheel into ``out`` in a child process (see the module's doc)."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "build.log", "wb") as log:
        return subprocess.Popen([sys.executable, __file__, str(out)], stdout=log, stderr=subprocess.STDOUT)


def wait(build: subprocess.Popen[bytes], out: Path) -> Path:
    """The wheel ``start`` builds, once its process has ended; an AssertionError with its log if it failed."""
    try:
        code = build.wait(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        build.kill()
        build.wait()
        raise AssertionError(f"the compiled build took over {LIMIT_S} s; killed") from None
    log = (out / "build.log").read_text(errors="replace")
    assert code == 0, f"the compiled build failed (exit {code}):\n{log[-4000:]}"
    [whl] = (out / "dist").glob("voucher_fsm-*.whl")
    return whl


def _main(out: Path) -> None:
    src = out / "src"
    shutil.copytree(REPO, src, ignore=not_built_from(REPO))
    try:
        build_wheel(src, out / "dist", isolated=True, HATCH_BUILD_HOOK_ENABLE_MYPYC="1")
    except subprocess.CalledProcessError as e:
        sys.stdout.buffer.write(e.stdout or b"")
        sys.stdout.buffer.write(e.stderr or b"")
        sys.exit(e.returncode)


if __name__ == "__main__":
    _main(Path(sys.argv[1]))
