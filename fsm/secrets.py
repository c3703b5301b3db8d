"""Secrets never leave the kit (D20): they are replaced by short stable fingerprints.

A fingerprint (``tok:3f2a9c``) lets a reader tell two tokens apart without
seeing either. Applied to every message and value a violation carries.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

__all__ = ["SECRET_KEYS", "fingerprint", "redact", "redact_value"]

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
_PATTERNS = (
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?"),
)


def fingerprint(secret: str, kind: str = "tok") -> str:
    """A short stable stand-in for a secret: the same secret always gives the same one."""
    digest = hashlib.blake2s(secret.encode("utf-8", "surrogatepass"), digest_size=3).hexdigest()
    return f"{kind}:{digest}"


def redact(text: str) -> str:
    """Replace bearer tokens and JWTs inside ``text`` by their fingerprints."""
    if "eyJ" not in text and "earer" not in text:
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: fingerprint(m.group(0).split()[-1]), text)
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
