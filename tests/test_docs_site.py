"""The docs site as a reader meets it: built by mkdocs, served over HTTP, opened in Chromium.

The test builds the site, serves it with ``python -m http.server`` on 127.0.0.1 (a port the
server picks at run time, stopped by PID), and drives Debian's ``/usr/bin/chromium`` through
Playwright (``executable_path``; the test never downloads a browser). Screenshots of the home
page and the voucher reference page are written to ``build/docs-site/`` (or
``$VOUCHER_FSM_SCREENSHOTS``) for people to look at; nothing compares them.
"""

from __future__ import annotations

import os
import re
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1280
MIN_TEXT_PX = 11.0
TIMEOUT_S = 20

playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install -e '.[test]')"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="Debian's chromium is not installed (apt-get install -y chromium)"
)

# The smallest SVG text of every <img> diagram on the page, as drawn: font-size in the SVG's own
# units times the image's rendered width over its viewBox width.
_SVG_TEXT = """
async () => {
  const out = [];
  for (const img of Array.from(document.images)) {
    if (!img.currentSrc.endsWith('.svg')) continue;
    const svg = new DOMParser().parseFromString(await (await fetch(img.currentSrc)).text(), 'image/svg+xml');
    const box = svg.documentElement.viewBox.baseVal;
    const sizes = Array.from(svg.querySelectorAll('text')).map(t => parseFloat(t.getAttribute('font-size')));
    out.push({src: img.getAttribute('src'), texts: sizes.length,
              px: Math.min(...sizes) * img.width / box.width});
  }
  return out;
}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built by mkdocs (strict) from this checkout."""
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-q",
            "-f",
            str(REPO / "mkdocs.yml"),
            "-d",
            str(out),
        ],
        check=True,
        cwd=REPO,
        timeout=120,
    )
    return out


@pytest.fixture(scope="module")
def base_url(site: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT/`` serving the built site; the server is stopped by its PID."""
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(site)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        with selectors.DefaultSelector() as sel:  # the "Serving HTTP on ... port N" line, bounded in time
            sel.register(server.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=TIMEOUT_S):
                pytest.fail(f"python -m http.server did not start within {TIMEOUT_S} s")
        found = re.search(r"port (\d+)", server.stdout.readline())
        assert found, "python -m http.server did not say which port it took"
        yield f"http://127.0.0.1:{found.group(1)}/"
    finally:
        if server.stdout is not None:
            server.stdout.close()
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from Debian, driven by Playwright."""
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], timeout=TIMEOUT_S * 1000)
        try:
            yield b
        finally:
            b.close()


def _pages(site: Path) -> list[str]:
    """Every page of the site, as a path under its root."""
    pages = sorted(p.parent.relative_to(site).as_posix() for p in site.rglob("index.html"))
    return ["" if p == "." else p + "/" for p in pages]


def _failed(problems: list[str], request: Any) -> None:
    """A request that failed, unless the browser dropped it because the test moved to the next page."""
    if request.failure != "net::ERR_ABORTED":
        problems.append(f"request failed: {request.url} ({request.failure})")


def test_every_docs_page_loads_in_chromium_without_errors_broken_images_or_sideways_scrolling(
    site: Path, base_url: str, browser: Any
) -> None:
    """At 1280 px: no console error or failed request, every image loads, nothing wider than the window."""
    pages = _pages(site)
    assert {"", "guide/", "reference/voucher/", "reference/flows/"} <= set(pages)
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.set_default_timeout(TIMEOUT_S * 1000)
    problems: list[str] = []
    page.on(
        "console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: _failed(problems, r))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    diagrams: set[str] = set()
    for path in pages:
        problems.clear()
        page.goto(base_url + path, wait_until="load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"
        )
        broken = [src for src, ok in images if not ok]
        wide = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert not problems, (path, problems)
        assert not broken, (path, broken)
        assert wide[0] <= wide[1], f"/{path} scrolls sideways at {WIDTH} px: {wide[0]} px wide"
        diagrams.update(Path(src).name for src, _ in images if "assets/diagrams/" in src)
    referenced = {
        name
        for md in (REPO / "docs").rglob("*.md")
        for name in re.findall(r"assets/diagrams/([\w.-]+\.svg)", md.read_text(encoding="utf-8"))
    }
    assert referenced and diagrams == referenced
    page.close()


def test_home_page_diagram_text_is_readable_and_screenshots_are_written(base_url: str, browser: Any) -> None:
    """The home page's diagram draws its smallest text at least 11 px high; two screenshots are saved."""
    shots = Path(os.environ.get("VOUCHER_FSM_SCREENSHOTS", REPO / "build" / "docs-site"))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    page.set_default_timeout(TIMEOUT_S * 1000)
    page.goto(base_url, wait_until="load")
    svgs = page.evaluate(_SVG_TEXT)
    assert svgs, "the home page shows no SVG diagram"
    for svg in svgs:
        assert svg["texts"] > 10, svg
        assert svg["px"] >= MIN_TEXT_PX, f"{svg['src']}: smallest text drawn {svg['px']:.1f} px high"
    for old in (shots / "home.png", shots / "reference-voucher.png"):
        old.unlink(missing_ok=True)
    page.screenshot(path=str(shots / "home.png"), full_page=True)
    page.goto(base_url + "reference/voucher/", wait_until="load")
    page.locator("#calls-in-each-state").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "reference-voucher.png"))
    page.close()
    for name in ("home.png", "reference-voucher.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
