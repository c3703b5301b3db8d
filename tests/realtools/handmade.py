"""Write the hand-made HARs of tests/captures/: real traffic, reshaped as tools not installed here write it.

Each starts from a HAR Chromium really wrote of the replay server (``chromium-embed.har``, the clean
session; ``chromium-broken.har``, examples/broken.jsonl) and changes only what the named tool does
differently, as its public source or documentation shows (the ``source`` of each row in
``index.json``): time formats, header case, HTTP/2 pseudo-headers, base64 bodies, bodies left out,
cache markers, entry order, tunnels, sanitized headers. The verdict each must get is in
``index.json``, written by hand from the protocol. ``python -m tests.realtools.handmade``
rewrites them; a test holds the committed files to what this script writes.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from copy import deepcopy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parents[1] / "captures"
Doc = dict[str, Any]
Entry = dict[str, Any]


def _load(name: str) -> Doc:
    return dict(json.loads((HERE / name).read_text(encoding="utf-8")))


def _api(e: Entry) -> bool:
    return "/api/v1/" in e["request"]["url"]


def _moment(e: Entry) -> datetime:
    return datetime.fromisoformat(e["startedDateTime"].replace("Z", "+00:00"))


def _stamp(moment: datetime, hours: float, digits: int, zulu: bool = False) -> str:
    """``moment`` as a tool writes it: in a zone ``hours`` from UTC, with ``digits`` of fraction."""
    local = moment.astimezone(timezone(timedelta(hours=hours)))
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}".ljust(digits, "0")[:digits]
    return text + ("Z" if zulu else local.strftime("%z")[:3] + ":" + local.strftime("%z")[3:])


def _times(doc: Doc, hours: float, digits: int, zulu: bool = False) -> None:
    for e in doc["log"]["entries"]:
        e["startedDateTime"] = _stamp(_moment(e), hours, digits, zulu)
    for p in doc["log"].get("pages", []):
        p["startedDateTime"] = _stamp(
            datetime.fromisoformat(p["startedDateTime"].replace("Z", "+00:00")), hours, 3
        )


def _creator(doc: Doc, name: str, version: str, browser: tuple[str, str] | None = None) -> None:
    doc["log"]["creator"] = {"name": name, "version": version}
    doc["log"].pop("browser", None)
    _playwright_fields(doc)
    if browser:
        doc["log"]["browser"] = {"name": browser[0], "version": browser[1]}


def _playwright_fields(doc: Doc, pages: bool = True) -> None:
    """Drop what only Playwright and Chromium write here; the pages too if ``pages`` is False."""
    if not pages:
        doc["log"].pop("pages", None)
    for e in doc["log"]["entries"]:
        for name in _PLAYWRIGHT_ONLY:
            e.pop(name, None)
        if not pages:
            e.pop("pageref", None)


_PLAYWRIGHT_ONLY = ("_frameref", "_monotonicTime", "_securityDetails", "_resourceType")


def _preflights(doc: Doc, extra: Callable[[Entry], None] | None = None) -> None:
    """A CORS preflight before each cross-origin API call with a JSON body, as the browser sent it."""
    entries: list[Entry] = []
    for e in doc["log"]["entries"]:
        if _api(e) and e["request"].get("postData"):
            origin = next(h["value"] for h in e["request"]["headers"] if h["name"].lower() == "origin")
            pre = deepcopy(e)
            pre["startedDateTime"] = (
                (_moment(e) - timedelta(milliseconds=2)).isoformat().replace("+00:00", "Z")
            )
            pre["request"].update(method="OPTIONS", bodySize=0)
            pre["request"].pop("postData")
            pre["request"]["headers"] = [
                h
                for h in e["request"]["headers"]
                if h["name"].lower() not in ("content-type", "content-length")
            ] + [
                {"name": "Access-Control-Request-Method", "value": "POST"},
                {"name": "Access-Control-Request-Headers", "value": "authorization,content-type"},
            ]
            pre["request"]["headers"] = [
                h for h in pre["request"]["headers"] if h["name"].lower() != "authorization"
            ]
            pre["response"].update(status=204, statusText="No Content", bodySize=0)
            pre["response"]["headers"] = [
                {"name": "access-control-allow-origin", "value": origin},
                {"name": "access-control-allow-methods", "value": "GET, POST, OPTIONS"},
                {"name": "access-control-allow-headers", "value": "authorization, content-type"},
            ]
            pre["response"]["content"] = {"size": 0, "mimeType": "x-unknown"}
            if extra:
                extra(pre)
            entries.append(pre)
        entries.append(e)
    doc["log"]["entries"] = entries


def _h2(e: Entry, version: str, pseudo: bool) -> None:
    """HTTP/2 as a browser shows it: lower-case names, no Connection/Host, and maybe the pseudo-headers."""
    url = urlsplit(e["request"]["url"])
    drop = {"connection", "host", "keep-alive", "transfer-encoding"}
    headers = [{"name": h["name"].lower(), "value": h["value"]} for h in e["request"]["headers"]]
    headers = [h for h in headers if h["name"] not in drop]
    if pseudo:
        path = url.path + (f"?{url.query}" if url.query else "")
        headers = [
            {"name": ":authority", "value": url.netloc},
            {"name": ":method", "value": e["request"]["method"]},
            {"name": ":path", "value": path},
            {"name": ":scheme", "value": "https"},
            *headers,
        ]
    e["request"]["headers"] = headers
    e["request"]["url"] = e["request"]["url"].replace("http://", "https://", 1)
    e["response"]["headers"] = [
        {"name": h["name"].lower(), "value": h["value"]}
        for h in e["response"]["headers"]
        if h["name"].lower() not in drop
    ]
    e["request"]["httpVersion"] = e["response"]["httpVersion"] = version


def _base64(part: dict[str, Any]) -> None:
    if part.get("text"):
        part["text"] = base64.b64encode(part["text"].encode()).decode()
        part["encoding"] = "base64"


def _cached_copy(doc: Doc, fetch_type: tuple[str, str]) -> None:
    """The session looked up again after the close, answered by the cache: the stale OPEN of before."""
    entries = doc["log"]["entries"]
    look = next(
        (e for e in entries if e["request"]["method"] == "GET" and "/sessions/" in e["request"]["url"]), None
    )
    if look is None:  # (the broken flow looks no session up)
        return
    stale = deepcopy(look)
    stale["startedDateTime"] = (
        (_moment(entries[-1]) + timedelta(milliseconds=40)).isoformat().replace("+00:00", "Z")
    )
    stale[fetch_type[0]] = fetch_type[1]
    stale["response"]["bodySize"] = 0
    entries.append(stale)


# ----------------------------------------------------------------------------- the tools
def firefox(doc: Doc) -> Doc:
    """Firefox DevTools "Save All As HAR": local offsets, page_1, postData params, no compression field."""
    _creator(doc, "Firefox", "133.0", ("Firefox", "133.0"))
    for p in doc["log"].get("pages", []):
        p["id"] = "page_1"
    for e in doc["log"]["entries"]:
        e["pageref"] = "page_1"
        e["response"]["content"].pop("compression", None)
        e["connection"] = "443"
    _preflights(doc)
    _times(doc, 1, 3)
    return doc


def firefox_no_bodies(doc: Doc) -> Doc:
    """Firefox with devtools.netmonitor.har.includeResponseBodies false: a size, a comment, no text."""
    firefox(doc)
    for e in doc["log"]["entries"]:
        content = e["response"]["content"]
        if content.pop("text", None) is not None:
            content["comment"] = "Response bodies are not included."
    return doc


def safari(doc: Doc) -> Doc:
    """Safari Web Inspector (WebKit HARBuilder): _fetchType, _priority, _serverPort, x-unknown types.

    The session is looked up once more after the close and Safari answers from its disk cache.
    """
    _creator(doc, "WebKit Web Inspector", "20621.1.15.11.10")
    for e in doc["log"]["entries"]:
        e["_fetchType"] = "Network Load"
        e["_priority"] = "medium"
        e["_serverPort"] = int(urlsplit(e["request"]["url"]).port or 80)
        e["request"]["headersSize"] = e["request"]["bodySize"] = -1
        content = e["response"]["content"]
        content["compression"] = 0
        content["mimeType"] = content.get("mimeType") or "x-unknown"
    _cached_copy(doc, ("_fetchType", "Disk Cache"))
    _times(doc, 0, 3, zulu=True)
    return doc


def chrome_sanitized(doc: Doc) -> Doc:
    """Chrome DevTools "Export HAR (sanitized)" of HTTP/2 traffic: no Authorization or Cookie headers.

    h2 requests list the pseudo-headers; preflights are entries of _resourceType "preflight";
    the API's GETs come once more from the memory cache (_fromCache); two calls went over h3.
    """
    _creator(doc, "WebInspector", "537.36")

    def preflight(pre: Entry) -> None:
        pre["_resourceType"] = "preflight"

    _preflights(doc, preflight)
    for n, e in enumerate(doc["log"]["entries"]):
        _h2(e, "h3" if n in (5, 6) else "http/2.0", pseudo=True)
        e["request"]["headers"] = [
            h for h in e["request"]["headers"] if h["name"] not in ("authorization", "cookie")
        ]
        e["response"]["headers"] = [h for h in e["response"]["headers"] if h["name"] != "set-cookie"]
        e["request"]["cookies"] = e["response"]["cookies"] = []
        e.setdefault("_resourceType", "fetch" if _api(e) else "document")
        e["_priority"] = "High"
        e["_initiator"] = {"type": "script"}
        e["_connectionId"] = "1234"
        e["serverIPAddress"] = "127.0.0.1"
    _cached_copy(doc, ("_fromCache", "memory"))
    _times(doc, 0, 3, zulu=True)
    return doc


def charles(doc: Doc) -> Doc:
    """Charles Proxy's HTTP Archive export: base64 bodies, offsets, no pages, an unproxied tunnel."""
    _creator(doc, "Charles Proxy", "5.0.1")
    _playwright_fields(doc, pages=False)
    _preflights(doc)
    for e in doc["log"]["entries"]:
        _base64(e["response"]["content"])
        e["comment"] = ""
    first = doc["log"]["entries"][0]
    tunnel = deepcopy(first)
    tunnel["request"].update(method="CONNECT", url="https://fonts.example.net", headers=[], bodySize=0)
    tunnel["response"].update(status=200, statusText="Connection established", headers=[])
    tunnel["response"]["content"] = {"size": 0, "mimeType": ""}
    doc["log"]["entries"].insert(1, tunnel)
    _times(doc, -5, 3)
    return doc


def fiddler_classic(doc: Doc) -> Doc:
    """Fiddler Classic's HTTPArchive v1.2 export: .NET times (7 digits, offset), the session list's order.

    The list was sorted by URL when exported, so entries are not in time order; one response was
    longer than MaxTextBodyLength and went out without its text.
    """
    _creator(doc, "Fiddler", "5.0.20253.3311")
    doc["log"]["creator"]["comment"] = "http://www.telerik.com/fiddler"
    _playwright_fields(doc, pages=False)
    _preflights(doc)
    big = next(
        e
        for e in doc["log"]["entries"]
        if "session-open" in e["request"]["url"] and e["request"]["method"] == "POST"
    )
    big["response"]["content"].pop("text")
    big["response"]["content"]["comment"] = (
        "Body length exceeded fiddler.importexport.HTTPArchiveJSON.MaxTextBodyLength, so body was omitted."
    )
    _times(doc, 1, 7)
    doc["log"]["entries"].sort(key=lambda e: (e["request"]["url"], e["request"]["method"]))
    return doc


def fiddler_everywhere(doc: Doc) -> Doc:
    """Fiddler Everywhere's HAR of HTTP/2 traffic: HTTP/2 names lower case, no pseudo-headers, Z times."""
    _creator(doc, "Fiddler Everywhere", "5.17.0")
    _playwright_fields(doc, pages=False)
    for e in doc["log"]["entries"]:
        _h2(e, "HTTP/2", pseudo=False)
    _times(doc, 0, 7, zulu=True)
    return doc


def http_toolkit(doc: Doc) -> Doc:
    """HTTP Toolkit's HAR export (httptoolkit-ui har.ts): a request body over the limit is discarded.

    No postData, _requestBodyStatus "discarded:too-large" and a comment; httpVersion "HTTP/" and the
    version; headersSize -1; a response over the limit keeps its size and a comment, not its text.
    """
    _creator(doc, "HTTP Toolkit", "1.19.0")
    _playwright_fields(doc, pages=False)
    for e in doc["log"]["entries"]:
        e["request"]["headersSize"] = e["response"]["headersSize"] = -1
        e["request"]["cookies"] = e["response"]["cookies"] = []
        e["request"]["httpVersion"] = e["response"]["httpVersion"] = "HTTP/1.1"
    posts = [e for e in doc["log"]["entries"] if e["request"].get("postData", {}).get("text")]
    dropped = posts[2]["request"]
    del dropped["postData"]
    dropped["_requestBodyStatus"] = "discarded:too-large"
    dropped["comment"] = "Body discarded during HAR generation: longer than limit of 100 bytes"
    content = posts[3]["response"]["content"]
    del content["text"]
    content["comment"] = "Body discarded during HAR generation: longer than limit of 100 bytes"
    _times(doc, 0, 3, zulu=True)
    return doc


def insomnia(doc: Doc) -> Doc:
    """Insomnia's "Export HAR" of a workspace: each request with its last response, in workspace order.

    No pages, headersSize and bodySize -1, the requests grouped by folder (auth, contexts,
    sessions, vouchers) rather than in time order.
    """
    _creator(doc, "Insomnia", "10.3.1")
    _playwright_fields(doc, pages=False)
    entries = [e for e in doc["log"]["entries"] if _api(e)]
    for e in entries:
        e["request"]["headersSize"] = e["request"]["bodySize"] = -1
        e["response"]["headersSize"] = e["response"]["bodySize"] = -1
        e["request"]["headers"] = [
            {"name": "User-Agent", "value": "insomnia/10.3.1"} if h["name"].lower() == "user-agent" else h
            for h in e["request"]["headers"]
            if not h["name"].lower().startswith("sec-")
        ]
    folder = ["/auth/", "/contexts/", "/sessions/", "/vouchers/"]
    entries.sort(key=lambda e: next(n for n, f in enumerate(folder) if f in e["request"]["url"]))
    doc["log"]["entries"] = entries
    _times(doc, 0, 3, zulu=True)
    return doc


def zap(doc: Doc) -> Doc:
    """OWASP ZAP's "Save Selected Entries as HAR": _zapMessageId/_zapMessageNote/_zapMessageType, +00:00."""
    _creator(doc, "ZAP", "2.16.0")
    _playwright_fields(doc, pages=False)
    _preflights(doc)
    for n, e in enumerate(doc["log"]["entries"], 1):
        e["_zapMessageId"] = n
        e["_zapMessageNote"] = ""
        e["_zapMessageType"] = 1
    _times(doc, 0, 3)
    return doc


TOOLS: dict[str, tuple[str, Callable[[Doc], Doc]]] = {
    "firefox-broken.har": ("chromium-broken.har", firefox),
    "firefox-no-bodies.har": ("chromium-embed.har", firefox_no_bodies),
    "safari.har": ("chromium-embed.har", safari),
    "chrome-sanitized-h2.har": ("chromium-embed.har", chrome_sanitized),
    "chrome-sanitized-h2-broken.har": ("chromium-broken.har", chrome_sanitized),
    "charles-broken.har": ("chromium-broken.har", charles),
    "fiddler-classic.har": ("chromium-embed.har", fiddler_classic),
    "fiddler-everywhere-broken.har": ("chromium-broken.har", fiddler_everywhere),
    "http-toolkit.har": ("chromium-embed.har", http_toolkit),
    "insomnia.har": ("chromium-embed.har", insomnia),
    "zap-broken.har": ("chromium-broken.har", zap),
}


def text(name: str) -> str:
    """The HAR ``name`` as this script writes it."""
    base, shape = TOOLS[name]
    return json.dumps(shape(_load(base))) + "\n"


def main() -> None:
    for name in TOOLS:
        (HERE / name).write_text(text(name), encoding="utf-8")
        print(f"wrote {name}")


if __name__ == "__main__":
    sys.exit(main())
