"""Secrets never leave the kit (D20): what a report quotes from traffic is allow-listed.

A value from traffic is quoted only when it has a shape the kit knows to be safe (ids, codes,
statuses, enum words, amounts, addresses, times, bounded numbers: ``fsm/protocol/redaction.json``)
and does not sit under a secret field; every other string is shown by a short stable fingerprint
(``str:3f2a9c``), which lets a reader tell two values apart without seeing either. Known secrets
(bearer tokens, JWTs, passwords) are also scrubbed from whatever text the kit writes.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import unquote_plus

import orjson

from fsm._resources import load_schemas, protocol_dir
from fsm._text import ELLIPSIS
from fsm.spec.loader import check_file

__all__ = [
    "SECRET_KEYS",
    "Scrubber",
    "StandIn",
    "bounded",
    "fingerprint",
    "is_secret_field",
    "quote",
    "redact",
    "redact_value",
    "scrub",
    "secrets_in",
    "shown",
    "shown_key",
    "shown_path",
    "shown_text",
    "template",
    "unsafe_strings",
    "without_secrets",
]

_POLICY = check_file(protocol_dir() / "redaction.json", "redaction")
SECRET_KEYS = frozenset(_POLICY["secretFields"]["names"])
_SECRET_WORDS = re.compile(_POLICY["secretWords"]["pattern"])
MAX_QUOTED: int = _POLICY["maxQuoted"]
"""Longest string a report quotes from traffic; a longer one is shown by its fingerprint."""
_SHAPES = tuple((shape["name"], re.compile(shape["pattern"])) for shape in _POLICY["shapes"])
_SEGMENT = re.compile(_POLICY["pathSegment"]["pattern"])
_MAX_ITEMS = 20  # items of a list or object a report shows; the rest are counted

_SCHEMES = (  # group 1 is the token: "Bearer <token>", the same URL-encoded in a path
    re.compile(r"(?i)\b(?:bearer|basic|digest)\s+([A-Za-z0-9._~+/=-]{8,})"),
    re.compile(r"(?i)\bbearer(?:%20|\+)([A-Za-z0-9._~+=-]{12,})"),  # in a path: up to the next "/"
)
_JWT = re.compile(r"(\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?)")  # group 1 too
_WORDS = _POLICY["secretWords"]["pattern"].removeprefix("(?i)")
# key=value (form bodies, query strings, cookies), "Key: value" (header lines) and "key": "value" in text
# that is not JSON (quotes of either kind, the closing one optional: the text may be cut short), for
# every name holding a secret word (access_token, X-Api-Key, client_secret, ...)
_IN_TEXT = re.compile(  # (a name starts where no name character precedes it: a scan stays linear)
    rf"""(?i)(?:(?<![\w.-])[\w.-]*(?:{_WORDS})[\w.-]*=([^&;\s]+))"""
    rf"""|(?:["'][\w.-]*(?:{_WORDS})[\w.-]*["']\s*:\s*["']((?:[^"'\\]|\\.)*))"""
    rf"""|(?:^|[\r\n])[ \t]*[\w-]*(?:{_WORDS})[\w-]*[ \t]*:[ \t]+(?:\w+[ \t]+)?([^\s;,]+)"""
)
# each pattern above and below needs one of these in the lowercased text (plain words, by the meta-schema)
_CUES = re.compile("|".join(("bearer", "basic", "digest", "eyj", _WORDS)))
_NAME = re.compile(r"^[A-Za-z_][A-Za-z_-]*$")
_MIN_SECRET = 3  # shorter values are not scrubbed from text (they would mangle every message)


@functools.cache
def _declared() -> frozenset[str]:
    """Every property name and enum/const string the shipped payload schemas declare."""
    words: set[str] = set()
    stack: list[Any] = [doc for rel, doc in load_schemas().items() if not rel.startswith("meta/")]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("properties")
            if isinstance(props, dict):
                words.update(props)
            for v in (node.get("const"), *(node.get("enum") or ())):
                if isinstance(v, str):
                    words.add(v)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(words - SECRET_KEYS)


def is_secret_field(key: str) -> bool:
    """True for a field whose value is never quoted: a secret field, or an undeclared one named like one."""
    return key in SECRET_KEYS or (key not in _declared() and _SECRET_WORDS.search(key) is not None)


def _safe_text(text: str) -> bool:
    if len(text) > MAX_QUOTED:
        return False
    if text in _declared():
        return True
    return any(pattern.match(text) for _, pattern in _SHAPES)


def _safe_key(key: str) -> bool:
    """A field name is shown when declared, or a plain name without digits (``accessToken``, ``api_key``)."""
    return key in _declared() or (len(key) <= 40 and _NAME.match(key) is not None)


def _hidden(text: str) -> str:
    return f"<{len(text)} characters, {fingerprint(text, 'str')}>"


def shown(value: Any, key: str | None = None, depth: int = 0) -> Any:
    """``value`` from traffic as a report may show it: safe values as they are, the rest fingerprinted.

    Strings under a secret field, and strings of no safe shape, become ``<N characters, str:3f2a9c>``;
    numbers beyond 15 digits, their digit count; lists and objects keep their first items.
    """
    if isinstance(value, str):
        if key is not None and is_secret_field(key):
            return fingerprint(value, "secret")
        return value if _safe_text(value) else _hidden(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(10**15) < value < 10**15 else f"<an integer of {len(str(abs(value)))} digits>"
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) < 1e15 else "<a number too large to show>"
    if isinstance(value, (dict, list, tuple)):
        return _capped(value, key, depth, shown, _shown_key)
    return f"<{type(value).__name__}>"


def _shown_key(k: Any) -> str:
    return k if isinstance(k, str) and _safe_key(k) else _hidden(str(k))


def _capped(
    value: dict[Any, Any] | list[Any] | tuple[Any, ...],
    key: str | None,
    depth: int,
    item: Callable[[Any, Any, int], Any],
    name: Callable[[Any], Any],
) -> Any:
    """A list or object with ``item`` applied to its first items (a list's items keep ``key``)."""
    if depth > 8:
        return "<nested too deeply to show>"
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i == _MAX_ITEMS:
                out["..."] = f"{len(value) - _MAX_ITEMS} more"
                break
            out[name(k)] = item(v, k if isinstance(k, str) else None, depth + 1)
        return out
    items = [item(v, key, depth + 1) for v in value[:_MAX_ITEMS]]
    if len(value) > _MAX_ITEMS:
        items.append(f"... {len(value) - _MAX_ITEMS} more")
    return items


def bounded(value: Any, limit: int | None = None, depth: int = 0) -> Any:
    """``value`` cut to a size every report can carry, whatever traffic put in it.

    With ``limit``, a string longer than that is cut there and says how much is left out (a
    message). Without it, a string longer than ``4 * MAX_QUOTED`` becomes its length and
    fingerprint, an integer beyond 15 digits its digit count, lists and objects keep their first
    items, and nesting deeper than 8 levels is named, not shown. Lone surrogates (which no
    encoding writes) are shown escaped.
    """
    if isinstance(value, str):
        if limit is not None and len(value) > limit:
            value = f"{value[:limit]}... ({len(value) - limit} characters more)"
        elif limit is None and len(value) > 4 * MAX_QUOTED:
            return _hidden(value)
        return value if value.isprintable() or _encodable(value) else _escaped(value)
    if value is None or isinstance(value, (bool, float)):
        return value
    if isinstance(value, int):
        return value if -(10**15) < value < 10**15 else f"<an integer of {len(str(abs(value)))} digits>"
    if isinstance(value, (dict, list, tuple)):
        return _capped(value, None, depth, lambda v, _k, d: bounded(v, None, d), _bounded_key)
    return value


def _bounded_key(k: Any) -> Any:
    return bounded(k, 80) if isinstance(k, str) else k


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escaped(text: str) -> str:
    r"""``text`` with each lone surrogate written as its escape (``\\ud800``)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def quote(value: Any, key: str | None = None) -> str:
    """``value`` from traffic as a message quotes it: ``repr`` when safe, else its fingerprint form."""
    safe = shown(value, key)
    if isinstance(value, str) and isinstance(safe, str) and safe == value:
        return repr(value)
    if isinstance(safe, str):
        return safe
    if isinstance(safe, (dict, list)):
        try:
            text = orjson.dumps(safe).decode()
        except (TypeError, orjson.JSONEncodeError):
            return "<a value that cannot be shown>"
        return text if len(text) <= MAX_QUOTED else f"<{type(value).__name__} of {len(value)} items>"
    return repr(safe)


_TOKEN = re.compile(r"[A-Za-z0-9_+~%-](?:[A-Za-z0-9_.+~%-]{6,}[A-Za-z0-9_+~%-])")
"""A run of 8 or more of the characters credentials are written with (a dot inside only: a JWT, not
the end of a sentence); ``/`` and ``=`` part words, as in paths, forms and ``key=value``."""


def shown_text(text: str) -> str:
    """Free text from traffic (a body that is not JSON) as a report may quote it (D20).

    The allow-list word by word: each run of credential characters of 8 or more that has no safe
    shape becomes its fingerprint, so what no pattern knows for a secret (a value past a line break,
    a secret cut in two, XML) is hidden too; the words around it, and fingerprints, are kept.
    """
    return _TOKEN.sub(lambda m: m[0] if _safe_text(m[0]) else fingerprint(m[0], "str"), text)


def shown_key(key: str) -> str:
    """An entity's key (``kind:id``, ``kind:code=CODE``) as reports show it (D20).

    The id (or code) as it is when it has a safe shape; else the fingerprint that the scrubbing
    of messages gives it too (``voucher:secret:3f2a9c``), so a key and the messages about its entity
    agree, and two entities are still told apart. Ids come from traffic like any value: a path
    ``/vouchers/<a secret>/redeem-voucher`` names an entity by it.
    """
    kind, sep, ident = key.partition(":")
    code = ident.startswith("code=")
    value = ident[5:] if code else ident
    if not sep or len(value) < _MIN_SECRET or _safe_text(value):
        return redact(key)
    return f"{kind}:{'code=' if code else ''}{fingerprint(value, 'secret')}"


def shown_path(path: str) -> str:
    """A request path as reports show it: a segment no route word nor safe value becomes ``{value}``."""
    if len(path) > 4 * MAX_QUOTED:
        return f"<a path of {len(path)} characters>"
    parts = path.split("/")
    out = [p if not p or _SEGMENT.match(p) or (_safe_text(p) and len(p) <= 80) else "{value}" for p in parts]
    return "/".join(out)


def template(path: str) -> str:
    """A path as a template: route words kept, every other segment replaced by its shape (D20, D25).

    ``/gateway/api/v1/vouchers/vch_1a2b/redeem-voucher`` -> ``/gateway/api/v1/vouchers/{id}/redeem-voucher``;
    a segment of no known shape becomes ``{value}``. Never a raw value from traffic.
    """
    if len(path) > 4 * MAX_QUOTED:
        return f"<a path of {len(path)} characters>"
    out = []
    for p in path.split("/")[:16]:
        if not p or _SEGMENT.match(p):
            out.append(p)
        else:
            out.append("{" + next((name for name, shape in _SHAPES if shape.match(p)), "value") + "}")
    return "/".join(out) + ("/..." if path.count("/") >= 16 else "")


def unsafe_strings(value: Any, found: set[str], depth: int = 0) -> None:
    """Add to ``found`` every string in ``value`` (field names too) that a report may not quote (D20).

    The allow-list at work: whatever has no safe shape, or sits under a secret field, is scrubbed
    from everything said of the exchange it came from, wherever a message quotes it.
    """
    if depth > 64:
        return
    if isinstance(value, str):
        if len(value) >= _MIN_SECRET and not _safe_text(value):
            found.add(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and len(k) >= _MIN_SECRET and not _safe_key(k):
                found.add(k)
            if isinstance(v, str) and isinstance(k, str) and is_secret_field(k):
                if len(v) >= _MIN_SECRET:
                    found.add(v)
            else:
                unsafe_strings(v, found, depth + 1)
    elif isinstance(value, list):
        for v in value:
            unsafe_strings(v, found, depth + 1)


def secrets_in(
    value: Any, *, every_string: bool = False, public: frozenset[str] = frozenset(), depth: int = 0
) -> set[str]:
    """The secret strings one payload holds: values of secret fields, and secrets in raw text.

    With ``every_string`` every string in it counts, field names too (a body meant to carry
    secrets that does not have the expected shape: a password may sit anywhere), except the
    ``public`` ones: the names and fixed values its schema declares.
    """
    found: set[str] = set()
    if depth > 64:
        return found
    if isinstance(value, dict):
        for k, v in value.items():
            if every_string and isinstance(k, str):
                found.add(k)
            if isinstance(v, str) and (every_string or k in SECRET_KEYS):
                found.add(v)
            elif isinstance(v, (dict, list)):  # under a secret field: every string in it is secret
                every = every_string or k in SECRET_KEYS
                found |= secrets_in(v, every_string=every, public=public, depth=depth + 1)
    elif isinstance(value, list):
        for v in value:
            found |= secrets_in(v, every_string=every_string, public=public, depth=depth + 1)
    elif isinstance(value, str):
        if every_string:
            found.add(value)
        if not value.isascii() or _CUES.search(value.lower()) is not None:  # (as redact looks first)
            found.update(next(g for g in groups if g) for groups in _IN_TEXT.findall(value) if any(groups))
    return {s for s in found if len(s) >= _MIN_SECRET and s not in public}


class Scrubber:
    """Replaces the given secrets by fingerprints wherever they appear in a value.

    A secret is found whole, as ``repr`` or JSON escapes it, or cut short at the end of a
    string (messages shorten long values: ``'hunter2hun...``).
    """

    def __init__(self, secrets: set[str] | frozenset[str]) -> None:
        pairs = {}
        for secret in secrets:
            for form in (secret, repr(secret)[1:-1], _json_form(secret)):
                pairs[form] = fingerprint(secret, "secret")
        self._pairs = sorted(pairs.items(), key=lambda p: len(p[0]), reverse=True)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def __call__(self, value: Any, depth: int = 0) -> Any:
        """``value`` (a string, or lists and dicts of them) with every secret fingerprinted."""
        if not self._pairs or depth > 64:
            return value
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, dict):
            return {k: self(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v, depth + 1) for v in value]
        return value

    def _text(self, text: str) -> str:
        for form, print_ in self._pairs:
            if form in text:
                text = text.replace(form, print_)
        for form, print_ in self._pairs:  # a secret cut short: before "..." or at the very end
            cuts = _cut_points(text)
            if not cuts:
                continue
            # a prefix cut short ends inside the text, so no longer than it: linear in the text's length
            ends = _prefix_ends(form[: len(text) + 1], text)
            for cut in reversed(cuts):
                k = ends[cut - 1] if cut > 0 else 0
                if _MIN_SECRET <= k < len(form):
                    text = text[: cut - k] + print_ + text[cut:]
        return text


def _cut_points(text: str) -> list[int]:
    """Where a shortened value may end: before each ellipsis, and at the end (closing quotes aside)."""
    cuts, i = [], text.find(ELLIPSIS)
    while i >= 0:
        cuts.append(i)
        i = text.find(ELLIPSIS, i + 1)
    cuts.append(len(text.rstrip("'\"")))
    return cuts


def _prefix_ends(form: str, text: str) -> list[int]:
    """For each position ``i`` of ``text``, the length of the longest prefix of ``form`` ending there.

    The Knuth-Morris-Pratt failure function of ``form``, run over ``text``: O(len(form) + len(text)).
    A prefix as long as ``form`` is the whole secret, replaced already (and not counted here).
    """
    fail = [0] * len(form)
    k = 0
    for i in range(1, len(form)):
        while k and form[i] != form[k]:
            k = fail[k - 1]
        if form[i] == form[k]:
            k += 1
        fail[i] = k
    ends = [0] * len(text)
    k = 0
    for i, ch in enumerate(text):
        while k and (k == len(form) or ch != form[k]):
            k = fail[k - 1]
        if k < len(form) and ch == form[k]:
            k += 1
        ends[i] = k
    return ends


def _json_form(secret: str) -> str:
    """The secret as it reads inside a JSON string (quotes and backslashes escaped)."""
    try:
        return orjson.dumps(secret).decode()[1:-1]
    except TypeError:  # a lone surrogate: JSON text cannot hold it, so it is never in one
        return secret


def scrub(value: Any, secrets: set[str] | frozenset[str]) -> Any:
    """``value`` with every occurrence of the given secrets fingerprinted (see :class:`Scrubber`)."""
    return Scrubber(secrets)(value)


def fingerprint(secret: str, kind: str = "tok") -> str:
    """A short stable stand-in for a secret: the same secret always gives the same one."""
    digest = hashlib.blake2s(secret.encode("utf-8", "surrogatepass"), digest_size=3).hexdigest()
    return f"{kind}:{digest}"


def redact(text: str) -> str:
    """``text`` with bearer and basic credentials, JWTs and ``secret_name=value`` pairs fingerprinted."""
    schemes = jwt = named = True
    if text.isascii():  # (a cheap first look, case-insensitive as the patterns are for ASCII text)
        low = text.lower()
        if _CUES.search(low) is None:  # (most texts: ids, paths, messages without a secret word)
            return text
        schemes = "bearer" in low or "basic" in low or "digest" in low
        jwt = "eyJ" in text
        named = "=" in text or '"' in text or "'" in text or ": " in text or ":\t" in text
    if schemes:
        for pattern in _SCHEMES:
            text = pattern.sub(_fingerprint_token, text)
    if jwt:  # (fingerprints add no "eyJ", no "=", no quote and no ": ": the looks above still hold)
        text = _JWT.sub(_fingerprint_token, text)
    return _IN_TEXT.sub(_fingerprint_groups, text) if named else text


def _fingerprint_token(m: re.Match[str]) -> str:
    return fingerprint(m.group(1))


def _fingerprint_groups(m: re.Match[str]) -> str:
    whole = m.group(0)
    for value in m.groups():
        if value and len(value) >= _MIN_SECRET and not value.startswith(("tok:", "secret:", "str:")):
            whole = whole.replace(value, fingerprint(value, "secret"))
    return whole


StandIn = Callable[[str, str], str]
"""Makes a recording's stand-in for a secret: ``stand_in(secret, kind)``, kind ``tok`` or ``secret``."""


def without_secrets(record: dict[str, Any], stand_in: StandIn) -> dict[str, Any]:
    """An exchange record as a recording keeps it (D29): every secret replaced by ``stand_in``'s form.

    One reading of ``redaction.json`` for every recording (the sandbox's, the middleware's exchange
    log): the Authorization header keeps its scheme (``Bearer <stand-in>``) and a ``token`` field the
    same stand-in, so a validator of the recording still tells callers apart and learns their roles;
    every other header, query parameter and body field named like a secret (``Cookie``,
    ``X-Auth-Token``, ``refresh_token``, ``apiKey``, the protocol's own secret fields) has its value
    replaced; a body that is not JSON, and every other string, is scrubbed of credentials in its text.
    """
    out = dict(record)
    for side in ("request", "response"):
        half = record.get(side)
        if not isinstance(half, dict):
            continue
        half = dict(half)
        headers = half.get("headers")
        if isinstance(headers, dict):
            half["headers"] = {k: _header_kept(k, v, stand_in) for k, v in headers.items()}
        query = half.get("query")
        if isinstance(query, dict):
            half["query"] = _kept(query, stand_in)
        path = half.get("path")
        if isinstance(path, str) and "?" in path:
            half["path"] = _path_kept(path, stand_in)
        if "body" in half:
            half["body"] = _kept(half["body"], stand_in)
        if isinstance(half.get("bodyText"), str):
            half["bodyText"] = redact(half["bodyText"])
        out[side] = half
    return out


def _header_kept(name: Any, value: Any, stand_in: StandIn) -> Any:
    if not isinstance(name, str) or not isinstance(value, str):
        return value
    if name.lower() == "authorization":
        scheme, _, credential = value.partition(" ")
        return f"{scheme} {stand_in(credential, 'tok')}" if credential else stand_in(value, "secret")
    return stand_in(value, "secret") if _SECRET_WORDS.search(name) is not None else value


def _kept(value: Any, stand_in: StandIn, key: str | None = None, depth: int = 0) -> Any:
    """``value`` with what sits under a secret field replaced (a list's items too), other text scrubbed."""
    if isinstance(value, str):
        if key is not None and is_secret_field(key):
            return stand_in(value, "tok" if key == "token" else "secret")
        return redact(value)
    if depth > 64:
        return None
    if isinstance(value, dict):
        return {k: _kept(v, stand_in, k if isinstance(k, str) else None, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_kept(v, stand_in, key, depth + 1) for v in value]
    if key is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
        return stand_in(str(value), "secret") if is_secret_field(key) else value
    return value


def _path_kept(path: str, stand_in: StandIn) -> str:
    """A path's query string with the values of parameters named like a secret replaced."""
    base, _, query = path.partition("?")
    pairs = []
    for pair in query.split("&"):
        name, eq, value = pair.partition("=")
        secret = eq and value and is_secret_field(unquote_plus(name))
        kept = url_quote(stand_in(unquote_plus(value), "secret"), safe=":") if secret else value
        pairs.append(f"{name}{eq}{kept}")
    return f"{base}?{'&'.join(pairs)}"


def redact_value(value: Any, key: str | None = None, depth: int = 0) -> Any:
    """A copy of ``value`` with secret fields fingerprinted and strings scrubbed."""
    if depth > 64:
        return "<nested too deeply to show>"
    if key is not None and key in SECRET_KEYS and isinstance(value, str):
        return fingerprint(value, "secret" if key != "token" else "tok")
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v, k, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_value(v, None, depth + 1) for v in value]
    return value
