"""The shards of :mod:`fsm.shards` on a Dask cluster (``pip install 'voucher-fsm[dask]'``).

1. The first pass runs on the workers, one task per input (local paths, globs, or fsspec URLs:
   ``s3://``, ``gs://``, ``file://``, with ``s3fs``/``gcsfs`` installed where the workers run);
   the client joins the scans (ids met in several files link their components) and packs shards.
2. Every record travels, with its shard as the key, through a Dask DataFrame ``shuffle`` on that
   key (never ``groupby().apply``); each partition is then sorted by (shard, position in the log)
   and each of its shards folded in order by the pipeline (:class:`fsm.shards.ShardValidator`).
3. The client merges the shards' parts (:func:`fsm.shards.merge`): the report is the one
   ``voucher-fsm validate --jobs 1`` makes.

A partition holds the records of its shards, so memory per worker is bounded by the largest
shard: more shards than workers keep them small; one enormous payment context cannot be split
(its exchanges are judged in order, by one model) and shows as the plan's ``largest`` and ``skew``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from fsm.config import Config
from fsm.errors import UsageError
from fsm.readers import RawItem, open_input
from fsm.report import Report
from fsm.shards import (
    Plan,
    PlannedFile,
    Scan,
    ShardResult,
    expand,
    merge,
    one_process,
    pack,
    planned_files,
    run_shard,
    scan_file,
)
from fsm.spec import Spec, load_spec


def _optional(name: str) -> ModuleType:
    """A package of the ``dask`` extra (dask, fsspec, pandas), imported when it is used.

    Imported by name so that no type checker needs it or its stubs: the compiled build
    type-checks the package in a build environment where the extra is absent.
    """
    return importlib.import_module(name)


__all__ = ["validate_distributed"]

_COLUMNS = ("shard", "ordinal", "file", "position", "payload", "error")


def _is_url(name: str) -> bool:
    return "://" in name


def expand_inputs(paths: Iterable[str | Path]) -> list[str]:
    """Local paths and globs (:func:`fsm.shards.expand`) and fsspec URLs, their globs expanded.

    A ``file://`` URL is its path (the report names it as ``--jobs 1`` does).
    """
    out: list[str] = []
    for given in paths:
        name = str(given)
        if name.startswith("file://"):
            name = name[len("file://") :]
        if not _is_url(name):
            out.extend(expand([name]))
            continue
        fsspec = _optional("fsspec")

        _, _, found = fsspec.core.get_fs_token_paths(name)
        if not found:
            raise UsageError(f"{name}: no file matches")
        protocol = name.split("://", 1)[0]
        out.extend(f"{protocol}://{p}" if not _is_url(p) else p for p in sorted(found))
    return out


@contextmanager
def _local(name: str) -> Iterator[str]:
    """A local path holding ``name`` (a URL is copied to a temporary file first)."""
    if not _is_url(name):
        yield name
        return
    fsspec = _optional("fsspec")

    fd, tmp = tempfile.mkstemp(prefix="voucher-fsm-", suffix="-" + os.path.basename(name))
    try:
        with os.fdopen(fd, "wb") as out, fsspec.open(name, "rb") as src:
            shutil.copyfileobj(src, out, 2**20)
        yield tmp
    finally:
        os.unlink(tmp)


def _scan(f: PlannedFile, spec: Spec, config: Config) -> Scan:
    with _local(f.path) as local:
        return scan_file(f, spec, config, local=local)


def _rows(p: Plan, file_no: int, config: Config) -> Any:
    """The records of one input as rows keyed by their shard (the record pickled: exactly as read)."""
    f = p.files[file_no]
    cols: dict[str, list[Any]] = {c: [] for c in _COLUMNS}
    with _local(f.path) as local:
        _, items = open_input(local, longest=config.longest_record, most_values=config.most_values)
        for position, record, error in items:
            o = p.ordinal(f, position)
            cols["shard"].append(p.shard_of[o])
            cols["ordinal"].append(o)
            cols["file"].append(file_no)
            cols["position"].append(-1 if position is None else position)
            cols["payload"].append(None if error is not None else pickle.dumps(record, 5))
            cols["error"].append(error)
    return _frame(cols)


def _frame(cols: dict[str, list[Any]]) -> Any:
    pd = _optional("pandas")

    return pd.DataFrame(
        {
            "shard": pd.Series(cols["shard"], dtype="int64"),
            "ordinal": pd.Series(cols["ordinal"], dtype="int64"),
            "file": pd.Series(cols["file"], dtype="int64"),
            "position": pd.Series(cols["position"], dtype="int64"),
            "payload": pd.Series(cols["payload"], dtype="object"),
            "error": pd.Series(cols["error"], dtype="object"),
        }
    )


def _fold(part: Any, p: Plan, spec: Spec, config: Config, engine: str) -> list[ShardResult]:
    """Sort one partition by (shard, log position) and fold each of its shards in order."""
    part = part.sort_values(["shard", "ordinal"], kind="stable")
    shards = part["shard"].to_numpy()
    out = []
    start = 0
    while start < len(part):
        shard = int(shards[start])
        end = start
        while end < len(part) and shards[end] == shard:
            end += 1
        rows = part.iloc[start:end]
        out.append(run_shard(p, shard, spec=spec, config=config, engine=engine, items=_ItemsFrom(rows)))
        start = end
    return out


class _ItemsFrom:
    """One shard's rows as the records of each input (:data:`fsm.shards.ItemSource`)."""

    def __init__(self, rows: Any) -> None:
        self.files = rows["file"].to_numpy()
        self.rows = rows

    def __call__(self, p: Plan, f: PlannedFile, shard: int) -> tuple[str, Iterator[RawItem]]:
        file_no = p.files.index(f)
        mine = self.rows[self.files == file_no]
        return f.format, self._items(mine)

    @staticmethod
    def _items(rows: Any) -> Iterator[RawItem]:
        for position, payload, error in zip(rows["position"], rows["payload"], rows["error"], strict=True):
            pos = None if position == -1 else int(position)
            # (a shuffle may turn None into NaN)
            record = pickle.loads(payload) if isinstance(payload, bytes) else None
            yield pos, record, error if isinstance(error, str) else None


def validate_distributed(
    paths: str | Path | Iterable[str | Path],
    *,
    client: Any = None,
    address: str | None = None,
    shards: int | None = None,
    config: Config | None = None,
    spec: Spec | None = None,
    engine: str = "table",
    on_plan: Any = None,
) -> Report:
    """Validate log files on a Dask cluster: ``client`` (a ``dask.distributed.Client``) or ``address``.

    ``shards``: how many (default: twice the cluster's worker threads). ``on_plan`` is called with
    the :class:`fsm.shards.Plan` (shard sizes, components, the largest one, skew). The report is
    the one one process makes (:func:`fsm.validate_log`).
    """
    try:
        dask = _optional("dask")
        dd = _optional("dask.dataframe")
        delayed = _optional("dask.delayed").delayed
        Client = _optional("dask.distributed").Client
    except ImportError:
        raise UsageError("the Dask engine needs the dask extra: pip install 'voucher-fsm[dask]'") from None
    names = expand_inputs([paths] if isinstance(paths, (str, Path)) else paths)
    spec = spec if spec is not None else load_spec()
    config = config if config is not None else Config()
    own = client is None
    if client is None:
        if address is None:
            raise UsageError("validate_distributed needs a client= or an address=")
        client = Client(address)
    try:
        files = planned_files(names)
        scans = client.gather(client.map(_scan, files, spec=spec, config=config, pure=False))
        scan = Scan()
        for s in scans:
            scan.extend(s)
        threads = sum(client.nthreads().values()) or 1
        p = pack(scan, shards if shards is not None else 2 * threads)
        if on_plan is not None:
            on_plan(p)
        if p.capped(config):  # (a cap on live entities would forget others in shards, D27)
            return one_process(names, spec, config, engine)
        [plan_future] = client.scatter([p], broadcast=True)
        with dask.config.set({"dataframe.convert-string": False}):
            meta = _frame({c: [] for c in _COLUMNS})
            frame = dd.from_delayed(
                [delayed(_rows)(plan_future, i, config) for i in range(len(p.files))],
                meta=meta,
                verify_meta=False,
            )
            shuffled = frame.shuffle("shard", npartitions=p.shards, shuffle_method="tasks")
            folds = [
                delayed(_fold)(part, plan_future, spec, config, engine) for part in shuffled.to_delayed()
            ]
            results = [r for part in client.gather(client.compute(folds)) for r in part]
    finally:
        if own:
            client.close()
    return merge(p, results, spec=spec, config=config)
