"""A browser app on another origin pays against the sandbox: Debian's Chromium via Playwright, fetch().

The page is served by ``python -m http.server`` on one port of 127.0.0.1, the sandbox (real clock: a
browser's HAR has wall times) on another, so every call is cross-origin and the browser sends its own
CORS preflights (answered by the sandbox, counted under /_sandbox/). Playwright records the browser's
HAR, which the validator then judges; Playwright leaves the preflights out of it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fsm import validate_log
from fsm.sandbox.serve import RunningSandbox, free_port, running

CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT_S = 30

playwright_sync = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install -e '.[test]')"
)
pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="Debian's chromium is not installed (apt-get install -y chromium)"
)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pay</title></head><body><pre id="log"></pre>
<script>
const api = new URLSearchParams(location.search).get("api") + "/api/v1";
const log = (line) => { document.getElementById("log").textContent += line + "\\n"; };
async function call(method, path, body, token) {
  const headers = {"content-type": "application/json"};
  if (token) headers["authorization"] = "Bearer " + token;
  const init = {method, headers};
  if (body !== undefined) init.body = JSON.stringify(body);
  const r = await fetch(api + path, init);
  const out = await r.json();
  log(method + " " + path + " -> " + r.status);
  if (r.status !== 200) throw new Error(path + " answered " + r.status + " " + JSON.stringify(out));
  return out;
}
const pay = (currency, address) => ({network: "polygon", currency, currencyAddress: address, amount: "25",
                                      wallet: {address: "0x" + "4".repeat(40)}});
async function twoPayments() {
  const device = {installationId: "b".repeat(40), password: "c".repeat(40)};
  const signed = await call("POST", "/auth/sign-in", {type: "mobile-device", data: device});
  const payer = signed.authorization.token;
  const ctx = await call("POST", "/vouchers/contexts/context-open",
                         {format: "alphanum", payers: [{address: "0x" + "1".repeat(40)}]}, payer);
  const resource = {type: "resource", data: {resource: "voucher::context::code::" + ctx.code}};
  const payee = (await call("POST", "/auth/sign-in", resource)).authorization.token;
  const opened = {code: ctx.code, type: "SESSION_DEFAULT"};
  const s = await call("POST", "/vouchers/sessions/session-open", opened, payee);
  await call("POST", `/vouchers/sessions/${s.id}/session-join`, {}, payer);
  const ids = [];
  for (const [currency, address] of [["EURC", "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b"],
                                     ["USDC", "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174"]]) {
    const v = await call("POST", `/vouchers/sessions/${s.id}/reserve-voucher`, {}, payee);
    await call("POST", `/vouchers/${v.id}/redeem-voucher`, {expectedPayment: pay(currency, address)}, payee);
    ids.push(v.id);
  }
  const receipts = {receipts: [{paymentId: "pay_7"}]};
  for (const id of ids) await call("POST", `/vouchers/${id}/resolve-voucher`, receipts, payer);
  const closed = await call("POST", `/vouchers/sessions/${s.id}/session-close`, {}, payee);
  return closed.status + " " + closed.vouchers.map((v) => v.status).join(",");
}
twoPayments().then((r) => { document.title = "done: " + r; },
                   (e) => { document.title = "failed: " + e.message; });
</script></body></html>
"""


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving the payment page; stopped by its PID."""
    folder = tmp_path_factory.mktemp("app")
    (folder / "index.html").write_text(PAGE, encoding="utf-8")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(url + "/index.html", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                assert time.monotonic() < deadline, "python -m http.server did not start"
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def paid(
    page_origin: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path, RunningSandbox, int]]:
    """Chromium runs the two-payment flow from the page; (page title, its HAR, the sandbox, preflights)."""
    folder = tmp_path_factory.mktemp("browser")
    har = folder / "browser.har"
    with running(seed=11, record=folder / "sandbox.jsonl", real_clock=True) as sandbox:
        with playwright_sync.sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"], timeout=TIMEOUT_S * 1000
            )
            try:
                context: Any = browser.new_context(record_har_path=str(har), record_har_content="embed")
                page = context.new_page()
                page.goto(f"{page_origin}/index.html?api={sandbox.url}")
                page.wait_for_function("document.title !== 'pay'", timeout=TIMEOUT_S * 1000)
                title = page.title()
                context.close()  # (writes the HAR)
            finally:
                browser.close()
        preflights = httpx.get(sandbox.url + "/_sandbox/").json()["preflights"]
        yield title, har, sandbox, preflights


def test_chromium_on_another_origin_runs_the_two_payment_flow_with_fetch_and_its_har_validates_clean(
    paid: tuple[str, Path, RunningSandbox, int],
) -> None:
    title, har, sandbox, preflights = paid
    assert title == "done: CLOSED RESOLVED,RESOLVED"
    assert preflights >= 10  # the browser asked before each cross-origin call with a token or a JSON body
    assert sandbox.record is not None
    mine = validate_log(sandbox.record)  # the sandbox's own recording of what the browser did
    assert mine.totals.judged == 12 and not mine.failed, [v.rule_id for v in mine.violations]
    report = validate_log(har)  # the browser's HAR (Playwright's: its preflights are not in it)
    assert report.totals.judged == 13  # (the page itself, outside the API, and the 12 calls)
    problems = [
        f"{v.rule_id} {v.location}" for v in report.violations if v.severity.name in ("ERROR", "WARNING")
    ]
    assert problems == []
