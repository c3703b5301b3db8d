"""A second process for the stages before the stepper, so a large input uses two cores.

The child runs reader -> exchange -> match -> schema check over one input and sends
what each record became to the parent in small batches; the parent steps the machines
and reports, record by record in file order, exactly as one process would (a test
compares the reports). The stepper needs the whole log's history, so it stays in one
process; everything before it is stateless per record (the matcher's "reported once"
set is handed back at the end).

Used only where that is safe: the ``fork`` start method on Linux, from a process with a
single thread (forking a threaded process can deadlock the child). Elsewhere
:func:`available` is False and callers run the stages in their own process.
"""

from __future__ import annotations

import base64
import contextlib
import marshal
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson

from fsm.errors import FsmError
from fsm.exchange import Exchange, for_stepping, parse_time
from fsm.matcher import Match, Transport
from fsm.spec.model import OperationSpec
from fsm.violation import Finding

__all__ = ["TIME_IN_WORKER", "ChildStream", "Prepared", "WorkerError", "available"]

Prepared = tuple[
    "int | None", "str | Finding | Exchange", "Match | Transport | Finding | None", "list[Finding]"
]
"""One record after the stages before the stepper: (position, what it became, route, schema findings).

What it became: the reason it could not be read (str), the ``input.bad-record`` finding,
or the exchange. Route: a match, HTTP mechanics (D22), a routing finding, or None (not
routed, or a path already reported).
"""

TIME_IN_WORKER = __file__.endswith(".py")
"""Whether the worker parses timestamps (about 4k instructions each) or leaves them to the parent.

The less busy process does it. Callgrind, 50k generated exchanges, instructions per exchange,
worker / stepping process: the compiled build with timestamps in the parent 60.9k / 54.4k; pure
Python with timestamps in the worker 93.4k / 95.2k (in the parent: 90.6k / 100.9k, measured
before exchanges travelled slim).
"""

_FINDING = "\0finding:"  # marks a pickled finding; a reader's error text never starts with NUL
_BATCH = 64  # records per message: small batches stay in the CPU cache (measured: 64 beats 1000 by 3x)
# a message's first byte says what it is; a JSON batch needs no tag (it is a JSON array, and
# copying 40 kB to put a byte before it cost more than the test)
_JSON, _MARSHAL, _PICKLE, _END, _FAILED = b"[", b"M", b"P", b"E", b"X"


class WorkerError(FsmError):
    """The worker process stopped without finishing its input (a bug: please report it)."""

    exit_code = 3  # like any internal error: not a verdict on traffic, not a usage mistake


def available() -> bool:
    """True where a worker process can be forked safely: Linux, and this process has one thread.

    Threads are counted by the kernel (``/proc/self/task``), so threads started by native
    code or ``_thread`` count too.
    """
    if not sys.platform.startswith("linux") or "fork" not in multiprocessing.get_all_start_methods():
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: trust only what Python knows of
        return threading.active_count() == 1


class ChildStream:
    """Runs ``front`` over ``items`` in a forked child; iterating gives the results here, in order.

    ``fraction`` (in the child) says how much of the input was read; ``final_state`` (in the
    child, at the end) returns what the parent must take over from the child's copy of the
    stages (e.g. paths already reported), available as :attr:`final_state` once the stream is
    exhausted. ``json_only``: every value in the records came from orjson (no NaN, no integer
    beyond 64 bits), so batches may travel as JSON, which is the fastest to write; otherwise
    marshal carries every value exactly. ``stepping``: (file label, is_entry) of the input when
    this process only steps and reports: an exchange then travels as the part of it they read
    (:meth:`Exchange.stepping_args`); without it, whole.
    """

    def __init__(
        self,
        items: Iterable[Any],
        front: Callable[[Any], Prepared],
        operations: Mapping[str, OperationSpec],
        *,
        fraction: Callable[[], float | None],
        final_state: Callable[[], Any],
        json_only: bool = False,
        stepping: tuple[str, bool] | None = None,
    ) -> None:
        self._pack = _pack_json if json_only else _pack
        self._stepping = stepping
        self._items = items
        self._front = front
        self._operations = operations
        self._fraction = fraction
        self._final = final_state
        self._read: float | None = None
        self.final_state: Any = None

    def fraction(self) -> float | None:
        """How much of the input the child had read when it sent the latest batch."""
        return self._read

    def __iter__(self) -> Iterator[Prepared]:
        ctx = multiprocessing.get_context("fork")
        receiver, sender = ctx.Pipe(duplex=False)
        child = ctx.Process(target=self._run, args=(sender, receiver), daemon=True, name="voucher-fsm-reader")
        operations, stepping = self._operations, self._stepping
        try:
            # ^C during the fork would land in the fork hooks, which swallow it: hold it until
            # the child exists (it ignores ^C; this process stops it)
            held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                child.start()
            finally:
                sender.close()
                signal.pthread_sigmask(signal.SIG_SETMASK, held)
            while True:
                try:
                    data = receiver.recv_bytes()
                except (EOFError, OSError):  # gone between messages, or in the middle of one
                    child.join()
                    raise WorkerError(
                        f"the worker process stopped unexpectedly (exit code {child.exitcode}); "
                        "run again with --no-parallel"
                    ) from None
                tag, body = data[:1], memoryview(data)[1:]
                if tag == _END:
                    self.final_state = pickle.loads(body)
                    return
                if tag == _FAILED:
                    raise WorkerError(
                        f"the worker process failed: {bytes(body).decode(errors='replace')} "
                        "(please report this with the input that caused it; --no-parallel runs "
                        "without the worker)"
                    )
                if tag == _JSON:
                    fraction, batch = orjson.loads(data)
                elif tag == _MARSHAL:
                    fraction, batch = marshal.loads(body)
                else:
                    fraction, batch = pickle.loads(body)
                self._read = fraction
                for item in batch:
                    yield _decode(item, operations, stepping)
        finally:
            receiver.close()
            if child.pid is not None:  # started
                if child.is_alive():
                    child.terminate()
                child.join()

    def _run(self, sender: Any, receiver: Any) -> None:  # in the child
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles ^C and stops the child
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # (blocked around the fork)
        receiver.close()  # the parent's end: with it closed here, the parent's death breaks the pipe
        send = sender.send_bytes
        try:
            front, fraction, pack = self._front, self._fraction, self._pack
            slim = self._stepping is not None
            batch: list[Any] = []
            for item in self._items:
                batch.append(_encode(front(item), slim))
                if len(batch) == _BATCH:
                    send(pack(fraction(), batch))
                    batch = []
            send(pack(fraction(), batch))
            send(_END + pickle.dumps(self._final(), pickle.HIGHEST_PROTOCOL))
        except BaseException as exc:  # whatever happens, the parent must hear of it
            with contextlib.suppress(OSError):  # unless it has gone
                send(_FAILED + "".join(traceback.format_exception_only(exc)).strip().encode())
        finally:
            sender.close()
            os._exit(0)  # no atexit handlers or buffers of the parent's run twice


def _pack(fraction: float | None, batch: list[Any]) -> bytes:
    try:
        return _MARSHAL + marshal.dumps((fraction, batch))
    except ValueError:  # a value marshal cannot carry (a subclass of a builtin type): pickle it
        return _PICKLE + pickle.dumps((fraction, batch), pickle.HIGHEST_PROTOCOL)


def _pack_json(fraction: float | None, batch: list[Any]) -> bytes:
    try:
        return orjson.dumps((fraction, batch))  # starts with "[", the tag of JSON
    except TypeError:  # e.g. a surrogate in a string: marshal carries it
        return _pack(fraction, batch)


def _encode(p: Prepared, slim: bool) -> tuple[Any, ...]:
    position, what, routed, schema = p
    findings = _pickled(schema) if schema else None
    if isinstance(what, Exchange):
        if isinstance(routed, Match):
            route: Any = [routed.operation.id, routed.params]
        elif routed is None:
            route = None
        else:
            route = _pickled(routed)
        return (position, what.stepping_args() if slim else what.args(), route, findings)
    if isinstance(what, Finding):
        return (position, _FINDING + _pickled(what), None, None)
    return (position, what, None, None)


def _pickled(value: Any) -> str:
    """Objects of the kit's own (rare: findings) travel pickled, as text that JSON can carry."""
    return base64.b85encode(pickle.dumps(value, pickle.HIGHEST_PROTOCOL)).decode()


def _unpickled(text: str) -> Any:
    return pickle.loads(base64.b85decode(text))


def _decode(
    item: Sequence[Any], operations: Mapping[str, OperationSpec], stepping: tuple[str, bool] | None
) -> Prepared:
    position, what, route, findings = item
    schema: list[Finding] = _unpickled(findings) if findings is not None else []
    if isinstance(what, (list, tuple)):  # an exchange's arguments
        routed: Match | Transport | Finding | None
        if route is None:
            routed = None
        elif isinstance(route, str):
            routed = _unpickled(route)
        else:
            routed = Match(operations[route[0]], route[1])
        ex = for_stepping(stepping[0], stepping[1], what) if stepping is not None else Exchange(*what)
        parse_time(ex)  # when the worker left it to this process (TIME_IN_WORKER); else nothing to do
        return (position, ex, routed, schema)
    if what.startswith(_FINDING):
        return (position, _unpickled(what[len(_FINDING) :]), None, schema)
    return (position, what, None, schema)
