"""The sandbox's recording: the traffic it served, one exchange at a time, secrets fingerprinted (D29).

JSONL gets a line an exchange; a ``.har`` name gets a HAR 1.2 document that is whole after every
exchange (the closing brackets are written each time and overwritten by the next entry). Every
exchange is flushed to the operating system before its answer leaves, so a server stopped by a
signal, even SIGKILL, loses nothing it answered.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import orjson

from fsm import secrets
from fsm.generate import to_har
from fsm.secrets import fingerprint

__all__ = ["Recorder", "without_secrets"]

_HAR_HEAD = (
    b'{"log": {"version": "1.2", "creator": {"name": "voucher-fsm sandbox", "version": "1"}, "entries": [\n'
)
_HAR_TAIL = b"\n]}}\n"


def without_secrets(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with tokens, passwords and signatures replaced by stable fingerprints (D29).

    A bearer token becomes ``Bearer tok:…``, the same fingerprint the sign-in answer that issued it
    shows, so a validator of the recording still tells callers apart and learns their roles; what
    :func:`fsm.secrets.without_secrets` finds secret besides is ``secret:…`` padded with ``*`` to
    the length it had (its schema's lengths hold).
    """
    return secrets.without_secrets(record, _stand_in)


def _stand_in(secret: str, kind: str) -> str:
    shown = fingerprint(secret, kind)
    return shown if kind == "tok" else shown + "*" * (len(secret) - len(shown))


class Recorder:
    """Appends exchanges to ``path`` (JSONL, or HAR for a ``.har`` name); thread-safe."""

    def __init__(self, path: str | Path, *, keep_secrets: bool = False) -> None:
        self.path = Path(path)
        self.har = self.path.suffix.lower() == ".har"
        self.keep_secrets = keep_secrets
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")  # noqa: SIM115 (open for the server's life, closed by close())
        self._entries = 0
        if self.har:
            self._file.write(_HAR_HEAD + _HAR_TAIL)
            self._file.flush()

    def write(self, record: dict[str, Any]) -> None:
        """Append one exchange and flush it."""
        shown = record if self.keep_secrets else without_secrets(record)
        with self._lock:
            if self._file.closed:
                return
            if self.har:
                self._file.seek(-len(_HAR_TAIL), 2)
                sep = b",\n" if self._entries else b""
                self._file.write(sep + orjson.dumps(_har_entry(shown)) + _HAR_TAIL)
                self._file.truncate()
            else:
                self._file.write(orjson.dumps(shown) + b"\n")
            self._entries += 1
            self._file.flush()

    def content(self) -> bytes:
        """Everything recorded so far."""
        with self._lock:
            return self.path.read_bytes()

    def close(self) -> None:
        """Close the file (everything is on disk already)."""
        with self._lock:
            self._file.close()


def _har_entry(record: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = to_har([record], host="http://sandbox")["log"]["entries"][0]
    return entry
