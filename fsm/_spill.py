"""Rows that left RAM: finished entities on disk (SQLite, in a temporary folder) behind a Bloom filter.

The CLI over a log file keeps every finished entity (D27: its verdicts never depend on memory), but
not in RAM: past a bound, the entity store moves the oldest ones here. A lookup of a key never
spilled (most lookups: a new entity's id) is answered by the in-memory filter without touching the
disk; a key that is there costs one indexed read.

Only the standard library: :mod:`sqlite3` (no journal, no syncing: the file dies with the run).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Iterable, Iterator

__all__ = ["Spill"]

_FIRST_BITS = 1 << 23  # 1 MB of filter at first, room for ~800,000 keys at 1% false positives
_BITS_PER_KEY = 10  # grown (doubled, rebuilt from the disk) when fewer bits than this remain per key
_PROBES = 4


class Spill:
    """Rows ``(table, key) -> (state, seen)`` on disk, in the order they were added.

    ``table`` is a small number the caller gives each of its maps; ``seen`` a count. Made lazily:
    nothing is created on disk until the first :meth:`add`. :attr:`seconds` sums the time spent
    here (writing, reading back, rebuilding the filter), CPU seconds, for the benchmark's cost of spilling.
    """

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self._folder = ""
        self._bits = bytearray()
        self._mask = 0
        self.keys = 0  # keys added (deleted ones included: the filter cannot forget)
        self.rows = 0  # rows on disk now
        self.seconds = 0.0

    # ------------------------------------------------------------------ disk
    def _open(self) -> sqlite3.Connection:
        self._folder = tempfile.mkdtemp(prefix="voucher-fsm-spill-")
        db = sqlite3.connect(f"{self._folder}/finished.sqlite", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA temp_store=FILE")
        db.execute("PRAGMA cache_size=-8000")  # 8 MB of page cache, whatever the row count
        db.execute(
            "CREATE TABLE f (t INTEGER NOT NULL, k TEXT NOT NULL, s TEXT NOT NULL, n INTEGER NOT NULL,"
            " h INTEGER NOT NULL)"
        )
        # rows are appended in order; only the 8-byte hash of (table, key) is indexed, so the index
        # a random key lands in stays small enough for the page cache (an index of the text keys
        # made each insert read pages from disk: 21 s of a 55 s run at 1M exchanges)
        db.execute("CREATE INDEX fh ON f (h)")
        self._db = db
        self._resize(_FIRST_BITS)
        weakref.finalize(self, _remove, db, self._folder, os.getpid())
        return db

    def close(self) -> None:
        """Delete the file now (it is deleted anyway when this object is collected)."""
        if self._db is not None:
            _remove(self._db, self._folder, os.getpid())
            self._db = None
            self.rows = 0

    # ---------------------------------------------------------------- filter
    def _probe(self, table: int, key: str) -> Iterator[int]:
        h = hash((table, key)) & 0xFFFFFFFFFFFFFFFF
        step = (h >> 32) | 1
        for _ in range(_PROBES):
            yield h & self._mask
            h += step

    def _mark(self, table: int, key: str) -> None:
        bits = self._bits
        for p in self._probe(table, key):
            bits[p >> 3] |= 1 << (p & 7)

    def maybe(self, table: int, key: str) -> bool:
        """False when ``key`` was surely never spilled (no disk read); True when it may have been.

        (The probes of :meth:`_probe` written out: every new entity's id comes through here.)
        """
        if self._db is None:
            return False
        bits, mask = self._bits, self._mask
        h = hash((table, key)) & 0xFFFFFFFFFFFFFFFF
        step = (h >> 32) | 1
        for _ in range(_PROBES):
            p = h & mask
            if not bits[p >> 3] & (1 << (p & 7)):
                return False
            h += step
        return True

    def _resize(self, nbits: int) -> None:
        self._bits = bytearray(nbits >> 3)
        self._mask = nbits - 1
        if self._db is not None and self.rows:
            for table, key in self._db.execute("SELECT t, k FROM f"):
                self._mark(table, key)
            self.keys = self.rows

    # ------------------------------------------------------------------ rows
    def add(self, table: int, rows: Iterable[tuple[str, str, int]]) -> None:
        """Append ``(key, state, seen)`` rows to ``table`` (keys not already there)."""
        start = time.process_time()
        db = self._db if self._db is not None else self._open()
        batch = list(rows)
        db.execute("BEGIN")  # (one transaction: row by row, each insert commits, 75 µs a row)
        db.executemany(
            f"INSERT INTO f VALUES ({table}, ?, ?, ?, ?)", [(k, s, n, hash((table, k))) for k, s, n in batch]
        )
        db.execute("COMMIT")
        for key, _, _ in batch:
            self._mark(table, key)
        self.rows += len(batch)
        self.keys += len(batch)
        if self.keys * _BITS_PER_KEY > len(self._bits) * 8:
            self._resize(len(self._bits) * 16)
        self.seconds += time.process_time() - start

    def get(self, table: int, key: str) -> tuple[str, int] | None:
        """The row's ``(state, seen)``, or None."""
        if not self.maybe(table, key):
            return None
        assert self._db is not None
        start = time.process_time()
        row = self._db.execute(
            "SELECT s, n FROM f WHERE h = ? AND t = ? AND k = ?", (hash((table, key)), table, key)
        ).fetchone()
        self.seconds += time.process_time() - start
        return (str(row[0]), int(row[1])) if row is not None else None

    def pop(self, table: int, key: str) -> tuple[str, int] | None:
        """The row's ``(state, seen)``, deleted; or None."""
        found = self.get(table, key)
        if found is not None:
            assert self._db is not None
            start = time.process_time()
            self._db.execute(
                "DELETE FROM f WHERE h = ? AND t = ? AND k = ?", (hash((table, key)), table, key)
            )
            self.rows -= 1
            self.seconds += time.process_time() - start
        return found

    def update(self, table: int, key: str, state: str, seen: int) -> bool:
        """Change the row of ``key`` in place (its order kept); False when there is none."""
        if self.get(table, key) is None:
            return False
        assert self._db is not None
        where = (hash((table, key)), table, key)
        self._db.execute("UPDATE f SET s = ?, n = ? WHERE h = ? AND t = ? AND k = ?", (state, seen, *where))
        return True

    def count(self, table: int) -> int:
        """Rows of ``table`` on disk."""
        if self._db is None:
            return 0
        return int(self._db.execute("SELECT count(*) FROM f WHERE t = ?", (table,)).fetchone()[0])

    def items(self, table: int) -> Iterator[tuple[str, str, int]]:
        """``(key, state, seen)`` of ``table``, in the order added, read from disk a batch at a time."""
        if self._db is None:
            return
        cursor = self._db.execute("SELECT k, s, n FROM f WHERE t = ? ORDER BY rowid", (table,))
        while True:
            batch = cursor.fetchmany(4096)
            if not batch:
                return
            for key, state, seen in batch:
                yield str(key), str(state), int(seen)


def _remove(db: sqlite3.Connection, folder: str, owner: int) -> None:
    """Close and delete the spill, in the process that made it only (a forked worker leaves it)."""
    if os.getpid() == owner:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)
