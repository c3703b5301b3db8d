"""Rows that left RAM: finished entities on disk (SQLite, in a temporary folder) behind a Bloom filter.

The CLI over a log file keeps every finished entity (D27: its verdicts never depend on memory), but
not in RAM: past a bound, the entity store moves the oldest ones here. A lookup of a key never
spilled (most lookups: a new entity's id) is answered by the in-memory filter without touching the
disk; a key that is there costs one indexed read.

An embedded validator with a retention time (D27) forgets finished entities on disk too: each row
records when it was retired, by the log's clock; a row older than :attr:`Spill.cutoff` is gone for
every lookup at once, and :meth:`Spill.sweep`, now and then, deletes such rows (their pages are
reused, so the file stops growing) and rebuilds the filter once most of the keys it marks are gone.

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
Row = tuple[str, str, int] | tuple[str, str, int, float | None]
"""``(key, state, seen)``, and when it was retired (by the log's clock) if known."""
_NEVER = float("-inf")  # (the cutoff of a spill without a retention time: every row is visible)
_VISIBLE = "(w IS NULL OR w >= ?)"  # a row not yet past the cutoff (NULL: retired at no known time)


class Spill:
    """Rows ``(table, key) -> (state, seen)`` on disk, in the order they were added.

    ``table`` is a small number the caller gives each of its maps; ``seen`` a count. Made lazily:
    nothing is created on disk until the first :meth:`add`. :attr:`seconds` sums the time spent
    here (writing, reading back, rebuilding the filter), CPU seconds, for the benchmark's cost of spilling.

    ``timed``: rows carry the time they were retired (a validator with a retention time, D27);
    rows older than :attr:`cutoff` are invisible to every method and deleted by :meth:`sweep`.
    """

    def __init__(self, timed: bool = False) -> None:
        self._db: sqlite3.Connection | None = None
        self._folder = ""
        self._bits = bytearray()
        self._mask = 0
        self.timed = timed
        self.cutoff = _NEVER  # rows retired before this (by the log's clock) are forgotten
        self.keys = 0  # keys marked in the filter (deleted ones included until it is rebuilt)
        self.rows = 0  # rows on disk now (invisible ones included until swept)
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
            " h INTEGER NOT NULL, w REAL)"
        )
        if self.timed:  # (what sweep deletes: a range of this index)
            db.execute("CREATE INDEX fw ON f (w)")
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
    def _mark(self, table: int, key: str) -> None:
        bits, mask = self._bits, self._mask  # (the same probes as :meth:`maybe`'s)
        h = hash((table, key)) & 0xFFFFFFFFFFFFFFFF
        step = (h >> 32) | 1
        for _ in range(_PROBES):
            p = h & mask
            bits[p >> 3] |= 1 << (p & 7)
            h += step

    def maybe(self, table: int, key: str) -> bool:
        """False when ``key`` was surely never spilled (no disk read); True when it may have been.

        (Every new entity's id comes through here: its probes are written out, as in :meth:`_mark`.)
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
    def add(self, table: int, rows: Iterable[Row]) -> None:
        """Append ``(key, state, seen)`` rows to ``table`` (keys not already there).

        A row may carry a fourth item, when it was retired (the log's clock; None or no fourth:
        no known time, never forgotten).
        """
        start = time.process_time()
        db = self._db if self._db is not None else self._open()
        batch = list(rows)
        db.execute("BEGIN")  # (one transaction: row by row, each insert commits, 75 µs a row)
        db.executemany(
            f"INSERT INTO f VALUES ({table}, ?, ?, ?, ?, ?)",
            [(r[0], r[1], r[2], hash((table, r[0])), r[3] if len(r) > 3 else None) for r in batch],
        )
        db.execute("COMMIT")
        for row in batch:
            self._mark(table, row[0])
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
            f"SELECT s, n FROM f WHERE h = ? AND t = ? AND k = ? AND {_VISIBLE}",
            (hash((table, key)), table, key, self.cutoff),
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
                f"DELETE FROM f WHERE h = ? AND t = ? AND k = ? AND {_VISIBLE}",
                (hash((table, key)), table, key, self.cutoff),
            )
            self.rows -= 1
            self.seconds += time.process_time() - start
        return found

    def update(self, table: int, key: str, state: str, seen: int, at: float | None = None) -> bool:
        """Change the row of ``key`` in place (its order kept; retired again ``at``); False if none."""
        if self.get(table, key) is None:
            return False
        assert self._db is not None
        where = (hash((table, key)), table, key, self.cutoff)
        self._db.execute(
            f"UPDATE f SET s = ?, n = ?, w = ? WHERE h = ? AND t = ? AND k = ? AND {_VISIBLE}",
            (state, seen, at, *where),
        )
        return True

    def count(self, table: int) -> int:
        """Rows of ``table`` on disk."""
        if self._db is None:
            return 0
        sql = f"SELECT count(*) FROM f WHERE t = ? AND {_VISIBLE}"
        return int(self._db.execute(sql, (table, self.cutoff)).fetchone()[0])

    def items(self, table: int) -> Iterator[tuple[str, str, int]]:
        """``(key, state, seen)`` of ``table``, in the order added, read from disk a batch at a time."""
        if self._db is None:
            return
        cursor = self._db.execute(
            f"SELECT k, s, n FROM f WHERE t = ? AND {_VISIBLE} ORDER BY rowid", (table, self.cutoff)
        )
        while True:
            batch = cursor.fetchmany(4096)
            if not batch:
                return
            for key, state, seen in batch:
                yield str(key), str(state), int(seen)

    def sweep(self) -> dict[int, int]:
        """Delete the rows past :attr:`cutoff` (already invisible); how many of each table.

        Their pages are reused by later rows, so a spill whose rows are forgotten as fast as they
        come stops growing. Once fewer than half the keys the filter marks are still on disk, it is
        rebuilt from the rows that are (sized for them), so forgotten keys stop costing disk reads.
        """
        if self._db is None or not self.timed:
            return {}
        start = time.process_time()
        db = self._db
        db.execute("BEGIN")
        gone = {
            int(t): int(n)
            for t, n in db.execute("SELECT t, count(*) FROM f WHERE w < ? GROUP BY t", (self.cutoff,))
        }
        if gone:
            db.execute("DELETE FROM f WHERE w < ?", (self.cutoff,))
        db.execute("COMMIT")
        self.rows -= sum(gone.values())
        if self.keys > 2 * self.rows:
            nbits = _FIRST_BITS
            while nbits < 2 * _BITS_PER_KEY * self.rows:
                nbits *= 2
            self._resize(nbits)
        self.seconds += time.process_time() - start
        return gone

    def file_bytes(self) -> int:
        """The size of the file on disk (0: not made yet)."""
        if self._db is None:
            return 0
        return os.path.getsize(f"{self._folder}/finished.sqlite")


def _remove(db: sqlite3.Connection, folder: str, owner: int) -> None:
    """Close and delete the spill, in the process that made it only (a forked worker leaves it)."""
    if os.getpid() == owner:
        db.close()
        shutil.rmtree(folder, ignore_errors=True)
