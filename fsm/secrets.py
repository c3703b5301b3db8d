"""Secrets never leave the kit (D20): they are replaced by short stable fingerprints.

A fingerprint (``tok:3f2a9c``) lets a reader tell two tokens apart without
seeing either. Applied to every message and value a violation carries.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

__all__ = ["SECRET_KEYS", "Scrubber", "fingerprint", "redact", "redact_value", "scrub", "secrets_in"]

SECRET_KEYS = frozenset(
    {
        "password",
        "token",
        "signature",
        "assertionToken",
        "authorization",
        "installationId",
        "clientSecret",
        "signingSecret",
    }
)
_PATTERNS = (  # group 1 is the token: "Bearer <token>", the same URL-encoded in a path, a JWT
    re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/=-]{12,})"),
    re.compile(r"(?i)\bbearer(?:%20|\+)([A-Za-z0-9._~+=-]{12,})"),  # in a path: up to the next "/"
    re.compile(r"(\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?)"),
)


_SECRET_NAMES = "|".join(sorted(SECRET_KEYS, key=len, reverse=True))
# key=value (form bodies, query strings) and "key": "value" in text that is not JSON (quotes of either
# kind, the closing one optional: the text may be cut short)
_IN_TEXT = re.compile(
    rf"""(?i)(?:\b(?:{_SECRET_NAMES})=([^&;\s]+))|(?:["'](?:{_SECRET_NAMES})["']\s*:\s*["']((?:[^"'\\]|\\.)*))"""
)
_MIN_SECRET = 3  # shorter values are not scrubbed from text (they would mangle every message)


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
        found.update(a or b for a, b in _IN_TEXT.findall(value))
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
            cuts = [i for i in range(len(text)) if text.startswith("...", i)] + [len(text.rstrip("'\""))]
            for cut in reversed(cuts):
                head = text[:cut]
                for k in range(len(form) - 1, _MIN_SECRET - 1, -1):
                    if head.endswith(form[:k]):
                        text = head[: cut - k] + print_ + text[cut:]
                        break
        return text


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
    """Replace bearer tokens and JWTs inside ``text`` by their fingerprints."""
    if "eyJ" not in text and "earer" not in text.lower():  # (BEARER, Bearer, bearer)
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: fingerprint(m.group(1)), text)
    return text


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
