"""The ``voucher-fsm`` command: a thin click layer over the library.

Exit codes: 0 clean (warnings allowed), 1 violations at error level (or
warnings with ``--strict``), 2 usage, configuration, spec or unreadable input.
No traceback is ever shown; an unexpected failure prints one line and exit 3.
"""

from __future__ import annotations

import io
import json
import os
import stat
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar, cast

import click
import orjson

from fsm._formats import REPORT_FORMATS
from fsm._version import __version__
from fsm.errors import FsmError, LogFormatError, UsageError

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

_PARALLEL_FROM = 4 << 20  # bytes: below this a second process costs more than it saves

_EXIT_CODES = """\b
Exit codes:
  0  no error-level violation (warnings allowed, unless --strict)
  1  violations at error level (or warnings with --strict)
  2  the input, the options or the settings could not be used
     (a missing or unreadable file, a log with nothing readable or no exchange
     of the protocol in it, a bad option or config file)
  3  an internal error (please report it)"""  # (click's \b keeps the lines as written)


def _on_terminal() -> bool:
    """True when standard output is a terminal (rich tables and colour; plain text when piped)."""
    return sys.stdout.isatty()


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"voucher-fsm: {message}", err=True)
    sys.exit(code)


def _check_inputs(files: Sequence[str], output: str | None) -> None:
    """Fail fast, before judging anything: a missing file, stdin twice, a report written over an input."""
    if list(files).count("-") > 1:
        raise UsageError("- (standard input) can be read once; give it once")
    for f in files:
        if f != "-" and not Path(f).exists():
            raise UsageError(f"{f}: no such file")
        if output and output != "-" and Path(output).exists() and _same_file(f, output):
            raise UsageError(f"--output {output} is one of the inputs: writing there would destroy it")


def _same_file(given: str, output: str) -> bool:
    """True when input ``given`` (``-``: whatever standard input reads) is the regular file ``output``."""
    try:
        here = os.fstat(sys.stdin.fileno()) if given == "-" else os.stat(given)
        there = os.stat(output)
        return stat.S_ISREG(there.st_mode) and os.path.samestat(here, there)  # (not /dev/null)
    except (OSError, ValueError, AttributeError):  # no file behind stdin (a test's; closed: None)
        return False


def _write(text: str, output: str | None) -> None:
    if output and output != "-":
        try:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            Path(output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


def _write_report(writer: Callable[[TextIO], None], output: str | None) -> None:
    """Stream a report to ``output`` (a file, or standard output for None or ``-``)."""
    if output and output != "-":
        try:
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            with open(output, "w", encoding="utf-8", newline="") as fh:
                writer(fh)
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        click.echo(f"wrote {output}", err=True)
    else:
        writer(cast(TextIO, _Echo()))


class _Echo:
    """Standard output as a file for :func:`_write_report`: each piece goes through ``click.echo``."""

    def write(self, text: str) -> int:
        click.echo(text, nl=False)
        return len(text)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="voucher-fsm")
def cli() -> None:
    """Specify and check the Bleepay voucher protocol.

    \b
    Examples:
      voucher-fsm validate traffic.har           check captured traffic (JSONL or HAR)
      voucher-fsm rules                          list the rules it checks
      voucher-fsm check-payload POST /api/v1/vouchers/vch_1/redeem-voucher request body.json
      voucher-fsm spec lint                      lint the spec itself
      voucher-fsm diagrams --out diagrams        draw the machines and flows
    """  # noqa: D301 (click's \b keeps the lines as written)


# ---------------------------------------------------------------- validate
@cli.command(short_help="Check recorded traffic against the protocol.", epilog=_EXIT_CODES)
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(REPORT_FORMATS),
    default=None,
    help="Report format (default: text, or the config file's).",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write the report here instead of stdout."
)
@click.option(
    "--strict/--no-strict",
    default=None,
    help="Warnings fail the run too (default: the config file's, else no).",
)
@click.option(
    "--require-complete/--no-require-complete",
    default=None,
    help="Entities not final at the end of the log are warnings, not info (D18; default: the config "
    "file's, else no).",
)
@click.option(
    "--clock-skew",
    type=click.FloatRange(0, max_open=False),
    default=None,
    metavar="SECONDS",
    help="Within SECONDS around a voucher's expiresAt it may or may not have expired: the server's "
    "clock may run behind or ahead (D24; default: the config file's clock-skew, else 5).",
)
@click.option(
    "--view",
    type=click.Choice(["all", "payee", "payer"]),
    default=None,
    help="Whose calls the traffic holds (D28): all, or one party's; then a change the other party's "
    "unseen calls explain is info (observe.unseen-call), not an error (default: the config file's, "
    "else all).",
)
@click.option(
    "--severity",
    "severities",
    multiple=True,
    metavar="RULE=LEVEL",
    help="Override a rule's severity: error, warning, info or off. Repeatable.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Settings file (default: nearest voucher-fsm.toml or pyproject.toml [tool.voucher-fsm]).",
)
@click.option(
    "--engine",
    type=click.Choice(["table", "transitions"]),
    default="table",
    show_default=True,
    help="table: compiled fast path; transitions: the reference Machine and jsonschema only.",
)
@click.option("--progress/--no-progress", default=None, help="Progress on stderr (default: on a terminal).")
@click.option(
    "--parallel/--no-parallel",
    default=None,
    help="Read, parse and schema-check in a second process while this one steps the machines "
    "(same report, faster on two cores; Linux only; not for standard input). "
    f"Default: for files over {_PARALLEL_FROM >> 20} MB. Only with --jobs 1: shards replace it.",
)
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(1),
    default=None,
    help="Judge on N processes, the log split by payment context (the same report as one process; "
    "Linux; not for standard input). --jobs 1: one process. "
    f"Default: the cores available for inputs over {_PARALLEL_FROM >> 20} MB in all, else 1.",
)
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    default=None,
    help="Judge the shards on a Dask cluster (tcp://scheduler:8786; needs the dask extra). Inputs "
    "may be fsspec URLs (s3://, gs://, file://) the workers can read.",
)
@click.option(
    "--max-per-rule",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="Text format: spell out at most N violations of each rule (0: all). Totals count all.",
)
@click.option(
    "--api-prefix",
    metavar="PATH",
    default=None,
    help="Where the API lives, e.g. /gateway/api/v1 (default: the config file's, else /api/v1).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST",
    help="The API's host (name or name:port); exchanges with other hosts are not judged. Repeatable "
    "(default: the config file's, else any host).",
)
@click.option(
    "--max-live",
    type=click.IntRange(0),
    default=None,
    metavar="N",
    help="Live (unfinished) entities kept in memory (default: the config's max-live, else 200,000; "
    "0: no cap). Past it the longest idle are forgotten: a later call on one is adopted as first "
    "met (D18), and one entity.forgotten info counts them (D27). Finished entities are never "
    "forgotten here: past a number they move to a temporary file.",
)
def validate(
    files: Sequence[str],
    fmt: str | None,
    output: str | None,
    strict: bool | None,
    require_complete: bool | None,
    clock_skew: float | None,
    view: str | None,
    severities: Sequence[str],
    config_path: str | None,
    engine: str,
    progress: bool | None,
    parallel: bool | None,
    jobs: int | None,
    dask_address: str | None,
    max_per_rule: int,
    api_prefix: str | None,
    hosts: Sequence[str],
    max_live: int | None,
) -> None:
    """Check recorded traffic (JSONL, JSONL.gz or HAR; - for stdin) against the protocol.

    Every exchange is routed to its operation, its bodies checked against the
    schemas, and the entities it names stepped through their state machines.
    """
    from fsm.config import Config, find_config, load_config, parse_severity_overrides
    from fsm.render import write
    from fsm.render.text import render_text, summary_line

    found = Path(config_path) if config_path else find_config()
    config = load_config(found) if found else Config()
    if found:  # found by searching parent folders: say which one applies
        click.echo(f"voucher-fsm: settings from {found}", err=True)
    overrides = parse_severity_overrides(list(severities), "--severity")
    if api_prefix is not None and not api_prefix.startswith("/"):
        raise UsageError(
            f"--api-prefix must be a path starting with /, e.g. /gateway/api/v1, not {api_prefix!r}"
        )
    for host in hosts:
        if not host or "/" in host or " " in host:
            raise UsageError(f"--host takes a host name (name or name:port), not {host!r}")
    config = config.merged(
        strict=strict,
        require_complete=require_complete,
        clock_skew=clock_skew,
        view=view,
        format=fmt,
        severity={**config.severity, **overrides},
        api_prefix=api_prefix,
        hosts=tuple(hosts) or None,
        max_live=max_live,
    )
    from fsm.shards import expand

    files = expand(files) if dask_address is None else list(files)
    if dask_address is None:
        _check_inputs(files, output)
    if jobs is not None and jobs > 1 and parallel:
        raise UsageError("--parallel splits one process's work in two; with --jobs N (N > 1), shards do")
    if dask_address is not None or (jobs is None and parallel is None and _shard_by_default(files)):
        jobs = jobs if jobs is not None else _cores()
    report = (
        _validate_shards(files, jobs, dask_address, config, engine)
        if dask_address is not None or (jobs or 1) > 1
        else _validate_one(files, config, engine, parallel, progress)
    )
    if config.format == "text" and not output and sys.stdout.isatty():
        _print_colour(render_text(report, max_per_rule))
    else:  # (streamed: a report of millions of entities is never held whole, D27)
        _write_report(lambda out: write(report, config.format, out, max_per_rule=max_per_rule), output)
        if output or config.format != "text":
            click.echo(summary_line(report), err=True)
    for i in report.inputs:  # input that cannot be read at all is not a verdict on traffic
        if not i.judged:
            why = f"none of its {i.records:,} records could be read" if i.records else "it holds no records"
            click.echo(f"voucher-fsm: {i.label}: {why}; nothing in it was checked", err=True)
    if report.nothing_judged:  # no verdict on traffic (D25)
        click.echo(f"voucher-fsm: {report.nothing_judged_line()}", err=True)
    sys.exit(report.exit_code)


def _cores() -> int:
    from fsm.shards import cores

    return cores()


def _shard_by_default(files: Sequence[str]) -> bool:
    """Files (no standard input) over the size a second process pays for, on more than one core."""
    if "-" in files or _cores() < 2:
        return False
    return sum(Path(f).stat().st_size for f in files) >= _PARALLEL_FROM


def _validate_shards(
    files: Sequence[str], jobs: int | None, dask_address: str | None, config: Any, engine: str
) -> Any:
    from fsm.shards import validate_sharded

    if dask_address is None:
        return validate_sharded(files, jobs=jobs, config=config, engine=engine)
    from fsm.distributed import validate_distributed

    return validate_distributed(files, address=dask_address, shards=jobs, config=config, engine=engine)


def _validate_one(
    files: Sequence[str], config: Any, engine: str, parallel: bool | None, progress: bool | None
) -> Any:
    from fsm.pipeline import Validator

    validator = Validator(config=config, engine=engine)

    def two_processes(f: str) -> bool:
        if parallel is not None:
            return parallel
        return f != "-" and Path(f).stat().st_size >= _PARALLEL_FROM

    show = sys.stderr.isatty() if progress is None else progress
    if show:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[records]:,} records"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
            auto_refresh=False,  # no refresh thread: a worker process is forked only from one thread
        ) as bar:
            for f in files:
                task = bar.add_task(f"validating {Path(f).name}", total=None, records=0)

                def advance(n: int, fraction: float | None, task: Any = task) -> None:
                    if fraction is None:  # standard input: no size to measure against
                        bar.update(task, records=n, refresh=True)
                    else:
                        bar.update(task, total=1.0, completed=fraction, records=n, refresh=True)

                bar.refresh()
                validator.feed_file(f, on_progress=advance, parallel=two_processes(f))
    else:
        for f in files:
            validator.feed_file(f, parallel=two_processes(f))
    return validator.finish()


def _print_colour(text: str) -> None:
    from rich.console import Console
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=True)
    for line in text.splitlines():
        t = Text(line)
        t.highlight_regex(r"^  error\b", "bold red")
        t.highlight_regex(r"^  warning\b", "yellow")
        t.highlight_regex(r"^  info\b", "cyan")
        t.highlight_regex(r"PASSED", "bold green")
        t.highlight_regex(r"FAILED", "bold red")
        t.highlight_regex(r"^[a-z]+:\S+", "bold")
        console.print(t)


# ------------------------------------------------------------------- rules
@cli.command(short_help="List every rule, its severity and source.")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option(
    "--explain",
    metavar="RULE",
    help="Print one rule in full: what it checks, severity, source, the rulings it cites, an example.",
)
def rules(fmt: str, explain: str | None) -> None:
    """List every rule: id, default severity, source, and what it checks."""
    from fsm.docs import explain_rule, explain_text, rules_markdown
    from fsm.spec import load_spec

    spec = load_spec()
    if explain is not None:
        if explain not in spec.rules:
            import difflib

            close = difflib.get_close_matches(explain, list(spec.rules), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `voucher-fsm rules` lists them"
            raise UsageError(f"--explain {explain}: no such rule{hint}")
        explained = explain_rule(spec, explain)
        if fmt == "json":
            click.echo(json.dumps(explained, indent=2, ensure_ascii=False))
        else:
            click.echo(explain_text(explained), nl=False)
        return
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "severity": r.severity.value,
                        "source": r.cite,
                        "title": r.title,
                        "hint": r.hint,
                    }
                    for r in spec.rules.values()
                ],
                indent=2,
            )
        )
    elif fmt == "markdown":
        click.echo(rules_markdown(spec), nl=False)
    else:
        header = ("rule", "severity", "source", "what it checks")
        rows = [(r.id, r.severity.value, r.cite, r.title) for r in spec.rules.values()]
        if _on_terminal():
            from rich.console import Console
            from rich.table import Table

            table = Table(box=None, header_style="bold", pad_edge=False)
            for i, name in enumerate(header):  # ids and severities whole; sources and what it checks wrap
                table.add_column(name, no_wrap=i < 2, min_width=30 if i == 3 else None)
            for row in rows:
                table.add_row(*row)
            Console(highlight=False).print(table)
        else:  # piped: plain columns, each as wide as its widest cell (the last one never cut)
            widths = [max(len(row[i]) for row in (header, *rows)) for i in range(3)]
            for row in (header, *rows):
                cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=False)]
                click.echo("  ".join([*cells, row[3]]))


# ----------------------------------------------------------- check-payload
@cli.command("check-payload", short_help="Check one JSON body against its schema.")
@click.argument("method")
@click.argument("path")
@click.argument("side", type=click.Choice(["request", "response"]))
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option(
    "--status",
    type=click.IntRange(100, 599),
    default=200,
    show_default=True,
    help="Response status (response side).",
)
def check_payload(method: str, path: str, side: str, file: str, status: int) -> None:
    """Validate one JSON body against the operation METHOD and PATH match.

    PATH is concrete, e.g. /api/v1/vouchers/vch_1/redeem-voucher (the /api/v1
    prefix is optional). Exit 0 valid (warnings are printed), 1 invalid, 2 no
    such operation or unreadable file.
    """
    from fsm.exchange import Exchange
    from fsm.matcher import Match, Router
    from fsm.schemacheck import SchemaChecker
    from fsm.secrets import Scrubber, redact
    from fsm.spec import load_spec

    spec = load_spec()
    try:
        raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise UsageError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        body = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))  # (a BOM, as Windows editors write)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise UsageError(f"{file}: not UTF-8 text (byte {bad.start}); give a JSON file") from None
        raise UsageError(f"{file}: not valid JSON: {exc}") from None
    router = Router(spec)
    rel = path.split("?", 1)[0]
    if rel.startswith(router.prefix + "/") or rel == router.prefix:
        rel = rel[len(router.prefix) :] or "/"
    routed = router.route(method.upper(), rel)
    if not isinstance(routed, Match):
        allowed = f"; {path} takes {', '.join(routed)}" if routed else ""
        raise UsageError(
            f"no operation matches {method.upper()} {path}{allowed}"
            " (`voucher-fsm openapi` lists every operation)"
        )
    op = routed.operation
    ex = Exchange(
        index=0,
        file=file,
        position=None,
        is_entry=False,
        method=method.upper(),
        path=path,
        query={},
        headers={},
        status=status if side == "response" else 0,
        req_body=body if side == "request" else None,
        req_has_body=side == "request",
        resp_body=body if side == "response" else None,
        resp_has_body=side == "response",
    )
    checker = SchemaChecker(spec)
    findings = checker.check(ex, routed, request=side == "request", response=side == "response")
    scrub = Scrubber(checker.secrets(ex, op, findings))  # the payload's secrets are never shown (D20)
    errors = 0
    for f in findings:
        severity = spec.rules[f.rule_id].severity.value
        details = f.context or (f,)
        if severity == "error":
            errors += len(details)
        for d in details:
            inner = d.instance_path.removeprefix(f"/{side}/body")
            message = d.message.removeprefix(f"{inner or '(body)'}: ")  # the pointer is printed once
            click.echo(f"{severity}: {d.rule_id}: {d.instance_path or '/'}: {scrub(redact(message))}")
    if errors:
        click.echo(f"{file}: INVALID {side} of {op.id} ({errors} error(s))", err=True)
        sys.exit(1)
    click.echo(
        f"{file}: valid {side} of {op.id}" + (f" ({len(findings)} warning(s))" if findings else ""), err=True
    )


# -------------------------------------------------------------------- spec
@cli.group(short_help="Inspect and check the spec itself.")
def spec() -> None:
    """Inspect and check the spec itself (machines, operations, schemas)."""


@spec.command("lint", short_help="Run the load-time checks of the spec.")
def spec_lint() -> None:
    """Run the load-time checks: reachability, traps, finals, cross-file names, schemas."""
    from fsm.spec.lint import LINT_CHECKS, lint_spec
    from fsm.spec.loader import load_spec

    findings = lint_spec(load_spec(lint=False))
    for f in findings:
        click.echo(str(f))
    s = load_spec(lint=False)
    states = sum(len(m.states) for m in s.machines.values())
    moves = sum(len(t.source) for m in s.machines.values() for t in m.transitions)
    click.echo(
        f"{len(LINT_CHECKS)} checks over {len(s.machines)} machines ({states} states, {moves} transitions), "
        f"{len(s.operations)} operations, {len(s.rules)} rules: "
        + (f"{len(findings)} finding(s)" if findings else "clean"),
        err=True,
    )
    sys.exit(1 if findings else 0)


@cli.command(short_help="Write the OpenAPI 3.1 document.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
def openapi(output: str | None) -> None:
    """Write an OpenAPI 3.1 document built from the operation table and the schemas."""
    from fsm.openapi import build_openapi
    from fsm.spec import load_spec

    _write(json.dumps(build_openapi(load_spec()), indent=2) + "\n", output)


# ---------------------------------------------------------------- diagrams
@cli.command(short_help="Draw the machines and the documented flows.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="diagrams",
    show_default=True,
    help="Folder to write into.",
)
@click.option(
    "--format",
    "formats",
    default="dot,svg,png,mermaid",
    show_default=True,
    help="Comma-separated: dot, svg, png, mermaid. svg/png need Graphviz's dot.",
)
@click.option("--machine", "machines", multiple=True, help="Only this machine (repeatable); skips flows.")
@click.option(
    "--with-errors",
    is_flag=True,
    help="Also draw each machine with the refusal codes of every state (<machine>-with-errors.*).",
)
def diagrams(out: str, formats: str, machines: Sequence[str], with_errors: bool) -> None:
    """Draw every machine (plain and with refusal codes) and the documented flows."""
    from fsm.diagrams import write_diagrams
    from fsm.spec import load_spec

    spec = load_spec()
    unknown = sorted(set(machines) - set(spec.machines))
    if unknown:
        raise UsageError(f"unknown machine(s) {', '.join(unknown)}; use {', '.join(spec.machines)}")
    chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
    for path in write_diagrams(spec, Path(out), chosen, tuple(machines), with_errors=with_errors):
        click.echo(f"wrote {path}", err=True)


@cli.command(short_help="Draw one session or voucher of a log.")
@click.argument("files", nargs=-1, required=True, metavar="LOG...")
@click.option("--session", help="Draw this session (with its vouchers); default: the log's only session.")
@click.option("--voucher", help="Draw this voucher.")
@click.option(
    "-o",
    "--out",
    "output",
    type=click.Path(dir_okay=False),
    help="File to write: .mmd (Mermaid), .dot, .svg or .png (default: Mermaid on stdout).",
)
def trace(files: Sequence[str], session: str | None, voucher: str | None, output: str | None) -> None:
    """Draw what happened to one session or voucher in recorded traffic; broken rules highlighted."""
    _check_inputs(files, output)
    from fsm.diagrams.dot import sequence_dot
    from fsm.diagrams.mermaid import sequence_mermaid
    from fsm.diagrams.render import render_image
    from fsm.diagrams.trace import trace_of

    diagram, report = trace_of(files, session=session, voucher=voucher)
    if output is None or output.endswith((".mmd", ".md")) or output == "-":
        _write(sequence_mermaid(diagram), output)
    elif output.endswith(".dot"):
        _write(sequence_dot(diagram), output)
    elif output.endswith((".svg", ".png")):
        stem = output.rsplit(".", 1)[0]
        instead = f"-o {stem}.mmd or -o {stem}.dot"
        render_image(sequence_dot(diagram), Path(output), output.rsplit(".", 1)[1], instead=instead)
        click.echo(f"wrote {output}", err=True)
    else:
        raise UsageError(f"{output}: use a .mmd, .dot, .svg or .png file name")
    click.echo(
        f"{len(diagram.messages) // 2} exchanges; {report.errors} errors, {report.warnings} warnings "
        "in the whole log",
        err=True,
    )


@cli.command(short_help="What the logs exercised, and what not.")
@click.argument("files", nargs=-1, required=True, metavar="LOG...")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Also write overlay diagrams (DOT, Mermaid; SVG/PNG when dot is installed) into this folder.",
)
def coverage(files: Sequence[str], fmt: str, out: str | None) -> None:
    """Which states, transitions and refusal codes the logs exercised (and which they never did)."""
    import shutil

    _check_inputs(files, None)

    from fsm.diagrams.dot import state_dot
    from fsm.diagrams.mermaid import state_mermaid
    from fsm.diagrams.render import render_image
    from fsm.diagrams.trace import coverage_of

    table, overlays = coverage_of(files)
    if table.read == table.unreadable:
        raise LogFormatError(
            f"no exchange could be read from {', '.join(files)}; `voucher-fsm validate` says why"
        )
    if table.unreadable:
        click.echo(
            f"warning: {table.unreadable} of {table.read} records could not be read and are not counted; "
            "`voucher-fsm validate` lists them",
            err=True,
        )
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "read": table.read,
                    "unreadable": table.unreadable,
                    "rows": table.rows,
                    "summary": {
                        m: {k: {"seen": s, "declared": t} for k, (s, t) in kinds.items()}
                        for m, kinds in table.summary().items()
                    },
                },
                indent=2,
            )
        )
    else:
        click.echo(table.text(), nl=False)
    if out:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        for name, d in overlays.items():
            dot = state_dot(d)
            (folder / f"{name}-coverage.dot").write_text(dot, encoding="utf-8")
            (folder / f"{name}-coverage.mmd").write_text(state_mermaid(d), encoding="utf-8")
            if shutil.which("dot"):
                for fmt_ in ("svg", "png"):
                    render_image(dot, folder / f"{name}-coverage.{fmt_}", fmt_)
        click.echo(f"wrote overlays to {folder}", err=True)


# ------------------------------------------------------------------- serve
@cli.command(short_help="Serve a stateful sandbox of the API (uvicorn).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port (0: any free one)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same ids, codes and tokens.")
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    help="Write the served traffic here, exchange by exchange (JSONL; HAR for a .har name), "
    "secrets fingerprinted.",
)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="NAME",
    help="Switch a fault on (repeatable; see --list-faults).",
)
@click.option(
    "--list-faults", is_flag=True, help="List the faults and the rule each must trigger, then exit."
)
@click.option(
    "--real-clock", is_flag=True, help="Use the wall clock (default: a fixed clock, 5 ms a request)."
)
@click.option("--keep-secrets", is_flag=True, help="Record tokens and passwords as they were (D29: warns).")
def serve(
    host: str,
    port: int,
    seed: int,
    record: str | None,
    faults: Sequence[str],
    list_faults: bool,
    real_clock: bool,
    keep_secrets: bool,
) -> None:
    """Answer the API as the protocol says, one state per context (docs/sandbox.md).

    Control it under /_sandbox/: inspect an entity, reset, move the clock, switch faults, download
    the recording.
    """
    from fsm.sandbox.core import FAULTS

    if list_faults:
        width = max(len(n) for n in FAULTS)
        for f in FAULTS.values():
            click.echo(f"{f.name:<{width}}  {f.rule:<28}  {f.description}")
        return
    unknown = [n for n in faults if n not in FAULTS]
    if unknown:
        _fail(f"unknown fault(s) {', '.join(unknown)}; `voucher-fsm serve --list-faults` lists them")
    try:
        import uvicorn
    except ImportError:
        _fail("serving needs uvicorn: pip install 'voucher-fsm[serve]'")
    import gc

    from fsm.sandbox import app
    from fsm.sandbox.serve import free_port

    if port == 0:  # (chosen here, so it can be said)
        port = free_port(host)

    # A server keeps one model a context: fewer full collections of a heap that only grows (about
    # 20% less CPU a request after some thousand sessions); objects made at start-up are never scanned.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    if keep_secrets and record:
        click.echo(
            f"warning: {record} will hold tokens and passwords in the clear (--keep-secrets)", err=True
        )
    asgi = app(
        seed=seed, record=record, faults=list(faults), real_clock=real_clock, keep_secrets=keep_secrets
    )
    click.echo(f"voucher-fsm sandbox on http://{host}:{port}  (control: /_sandbox/)", err=True)
    uvicorn.run(  # (no proxy-header middleware: the sandbox never reads the client's address)
        asgi, host=host, port=port, log_level="warning", access_log=False, lifespan="on", proxy_headers=False
    )


# -------------------------------------------------------------------- docs
@cli.command(short_help="Write the generated reference pages.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="docs",
    show_default=True,
    help="Folder to write the generated pages into.",
)
@click.option("--check", is_flag=True, help="Do not write; exit 1 if the committed pages differ.")
def docs(out: str, check: bool) -> None:
    """Write the generated reference: rules.md and reference/<machine>.md, operations.md."""
    from fsm.docs import generated_docs, write_docs
    from fsm.spec import load_spec

    spec = load_spec()
    if check:
        wrong = 0
        for rel, text in generated_docs(spec).items():
            path = Path(out) / rel
            if not path.is_file():
                click.echo(f"missing: {path}")
            elif path.read_text(encoding="utf-8") != text:
                click.echo(f"stale: {path}")
            else:
                continue
            wrong += 1
        if wrong:
            click.echo("run `voucher-fsm docs` to regenerate", err=True)
            sys.exit(1)
        return
    for path in write_docs(spec, Path(out)):
        click.echo(f"wrote {path}", err=True)


# ---------------------------------------------------------------- generate
@cli.command(short_help="Write valid traffic for tests.")
@click.option("--sessions", type=click.IntRange(1), default=10, show_default=True, help="How many sessions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same traffic.")
@click.option(
    "--vouchers-per-session",
    type=click.IntRange(1, 8),
    default=None,
    help="Exactly K vouchers per session (default: 1-8 at random).",
)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "har"]), default="jsonl", show_default=True)
@click.option("--complete", is_flag=True, help="Finish every flow (no partial sessions at the end).")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False), required=True, help="File to write ('-': stdout)."
)
def generate(
    sessions: int, seed: int, vouchers_per_session: int | None, fmt: str, complete: bool, output: str
) -> None:
    """Write realistic, valid traffic generated from the machines and schemas."""
    from fsm.generate import generate as gen
    from fsm.generate import to_har

    records = gen(sessions, seed, vouchers_per_session, partial=not complete)
    if fmt == "har":
        _write(json.dumps(to_har(list(records)), indent=1) + "\n", output)
        return
    if output == "-":
        for r in records:
            sys.stdout.buffer.write(orjson.dumps(r) + b"\n")
        return
    n = 0
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)  # as every -o does
        with open(output, "wb") as fh:
            for r in records:
                fh.write(orjson.dumps(r) + b"\n")
                n += 1
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {n} exchanges to {output}", err=True)


class _NoStdout(io.TextIOBase):
    """Standard output when it is closed: what the command writes there fails as a usage error."""

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        raise UsageError("there is no standard output (it is closed): give --output FILE")

    @property
    def buffer(self) -> _NoStdout:  # (binary writes fail the same way)
        return self


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI, turning every known failure into a message and an exit code."""
    if sys.stdout is None:  # (file descriptor 1 closed: Python sets it so)
        sys.stdout = _NoStdout()
    if sys.stderr is None:  # nowhere to say anything: the exit code still tells
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (the process's own stream, closed at its end)
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="voucher-fsm", standalone_mode=False
        )
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", 130)
    except FsmError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)
    except OSError as exc:  # a folder or file that cannot be made, read or written
        where = exc.filename if exc.filename is not None else "a file"
        _fail(f"cannot use {where}: {exc.strerror or exc}", 2)
    except Exception as exc:
        if os.environ.get("VOUCHER_FSM_DEBUG"):
            raise
        _fail(
            # its text may quote traffic (D20): only its type, and where to report it
            f"internal error ({type(exc).__name__}); this is a bug in voucher-fsm: please report it "
            "with the command that caused it (run with VOUCHER_FSM_DEBUG=1 for the traceback)",
            3,
        )
