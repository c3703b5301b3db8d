"""Diagrams come from the spec: committed text formats never drift, pictures render."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from fsm.diagrams import diagram_texts, write_diagrams
from fsm.diagrams.render import DotMissing
from fsm.spec import Spec

REPO = Path(__file__).resolve().parents[1]
SNAPSHOTS = Path(__file__).parent / "snapshots"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")


def test_committed_dot_and_mermaid_are_exactly_what_the_command_writes(spec: Spec, tmp_path: Path) -> None:
    """diagrams/ matches a fresh run of `voucher-fsm diagrams --out diagrams --with-errors` (text formats)."""
    write_diagrams(spec, tmp_path, ("dot", "mermaid"), with_errors=True)
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in (REPO / "diagrams").iterdir() if p.suffix in (".dot", ".mmd"))
    assert fresh == committed
    for name in fresh:
        assert (tmp_path / name).read_text() == (REPO / "diagrams" / name).read_text(), (
            f"diagrams/{name} is stale: run `voucher-fsm diagrams --out diagrams --with-errors`"
        )


def test_every_committed_text_diagram_has_its_svg_and_png() -> None:
    """Each .dot in diagrams/ has its rendered .svg and .png beside it."""
    for dot in (REPO / "diagrams").glob("*.dot"):
        assert dot.with_suffix(".svg").is_file() and dot.with_suffix(".png").is_file(), dot.name


def test_dot_has_every_state_and_every_operation(spec: Spec) -> None:
    """Each machine's DOT names all its states and the operation of every transition."""
    texts = diagram_texts(spec)
    for name, m in spec.machines.items():
        dot = texts[name][0]
        for s in m.states:
            assert re.search(rf'"{s.name}" \[', dot), s.name
        for t in m.transitions:
            assert (t.operation or f"after {t.timed_attribute}") in dot, t.trigger
        for s in m.states:
            if s.final:
                assert re.search(rf'"{s.name}" \[[^]]*peripheries=2', dot), s.name


def test_mermaid_marks_creation_finals_and_sub_states(spec: Spec) -> None:
    """stateDiagram-v2: [*] into the first state, finals into [*], OPEN as a composite state."""
    session = diagram_texts(spec)["session"][1]
    assert session.splitlines()[3] == "stateDiagram-v2"
    assert "[*] --> WAITING_FOR_PAYER : session-open (payee)" in session
    assert "CLOSED --> [*]" in session
    assert 'state "OPEN" as OPEN {' in session


def test_with_errors_variants_name_every_documented_refusal_code(spec: Spec) -> None:
    """The refusal codes of the machine files appear in the with-errors diagrams (or as guards)."""
    texts = diagram_texts(spec)
    codes = {
        "already_redeemed",
        "not_redeemed",
        "already_resolved",
        "already_joined",
        "session_closed",
        "already_closed",
        "invalid_code",
    }
    found = "".join(texts[f"{m}-with-errors"][0] for m in spec.machines)
    assert all(code in found for code in codes)
    assert "[is_simple, same_network]" in texts["voucher"][0]  # not_simple / different_network guards


def test_flows_are_drawn_as_sequence_diagrams(spec: Spec) -> None:
    """Each declared flow has a Mermaid sequenceDiagram with its calls and answers."""
    texts = diagram_texts(spec)
    flow = texts["flow-two-payments"][1]
    assert "sequenceDiagram" in flow
    assert flow.count("payee->>server: POST /vouchers/{voucherId}/redeem-voucher") == 2
    assert "server-->>payee: 200꞉ session CLOSED" in flow


@pytest.mark.parametrize("name", ["voucher.dot", "voucher.mmd"])
def test_voucher_diagram_text_snapshot(spec: Spec, name: str) -> None:
    """Snapshot of the voucher diagram text (update: copy diagrams/<name> to tests/snapshots/)."""
    text = diagram_texts(spec)["voucher"][0 if name.endswith(".dot") else 1]
    assert text == (SNAPSHOTS / name).read_text()


def test_without_dot_images_fail_with_the_install_command(
    spec: Spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SVG without Graphviz: a DotMissing naming apt-get install -y graphviz; DOT still works."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert write_diagrams(spec, tmp_path, ("dot", "mermaid"))
    with pytest.raises(DotMissing, match="apt-get install -y graphviz"):
        write_diagrams(spec, tmp_path, ("svg",))


@needs_dot
def test_svg_and_png_render_with_dot(spec: Spec, tmp_path: Path) -> None:
    """With dot installed, every diagram renders to SVG and PNG."""
    paths = write_diagrams(spec, tmp_path, ("svg", "png"), ("voucher",))
    assert {p.suffix for p in paths} == {".svg", ".png"}
    assert (tmp_path / "voucher.svg").read_text().lstrip().startswith(("<?xml", "<svg", "<!DOCTYPE"))
    assert (tmp_path / "voucher.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trace_draws_a_session_with_its_vouchers_and_highlights_broken_rules() -> None:
    """trace: every exchange of the session and its vouchers, rule ids on the violating ones."""
    from fsm.diagrams.mermaid import sequence_mermaid
    from fsm.diagrams.trace import trace_of

    log = REPO / "examples" / "broken.jsonl"
    session = re.search(r"ses_[a-z0-9]+", log.read_text())
    assert session is not None
    diagram, report = trace_of([str(log)], session=session.group(0))
    text = sequence_mermaid(diagram)
    assert len(diagram.messages) == 2 * 10  # lines 4-13: session-open .. the last GET, not the sign-ins
    assert "broke machine.illegal-transition" in text
    bands = text.count("    rect rgba(214, 39, 40, 0.15)\n")
    assert bands == sum(1 for m in diagram.messages if m.highlight) == text.count("\n    end\n") > 0
    assert "payee->>server: POST /api/v1/vouchers/vch_853933c76f/resolve-voucher" in text  # the payee's token
    assert report.errors > 0


def test_trace_without_an_id_reads_the_log_once_and_draws_what_the_id_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No --session: the only session is found in the same pass, and the picture is the same."""
    from fsm.diagrams.trace import trace_of
    from fsm.pipeline import Validator

    log = str(REPO / "examples" / "broken.jsonl")
    session = re.search(r"ses_[a-z0-9]+", Path(log).read_text())
    assert session is not None
    named, _ = trace_of([log], session=session.group(0))
    reads: list[str] = []
    real = Validator.feed_file
    monkeypatch.setattr(Validator, "feed_file", lambda self, p, **kw: reads.append(p) or real(self, p, **kw))
    found, _ = trace_of([log])
    assert reads == [log]
    assert found == named


def test_trace_refuses_an_entity_the_log_never_names() -> None:
    """An unknown id is a usage error, not an empty picture."""
    from fsm.diagrams.trace import trace_of
    from fsm.errors import UsageError

    with pytest.raises(UsageError, match="no exchange"):
        trace_of([str(REPO / "examples" / "broken.jsonl")], voucher="vch_nope")


def test_coverage_counts_what_the_logs_exercised_and_greys_the_rest() -> None:
    """coverage: taken transitions counted, never-seen ones at 0 and dotted grey in the overlay."""
    from fsm.diagrams.dot import state_dot
    from fsm.diagrams.mermaid import state_mermaid
    from fsm.diagrams.trace import coverage_of

    table, overlays = coverage_of([str(REPO / "examples" / "session-two-payments.jsonl")])
    rows = {(r["machine"], r["item"]): r["count"] for r in table.rows}
    assert rows[("voucher", "RESERVED -redeem-voucher-> REDEEMED")] == 2
    assert rows[("voucher", "REDEEMED -resolve-voucher-> RESOLVED")] == 2
    assert rows[("voucher", "RESERVED -discard-voucher-> DISCARDED")] == 0
    assert table.summary()["voucher"]["transition"][0] < table.summary()["voucher"]["transition"][1]
    dot = state_dot(overlays["voucher"])
    assert "style=dotted" in dot and "x2" in dot and "never seen" in dot
    for line in dot.splitlines():  # one colour, one style per element
        assert line.count(" color=") + line.count("[color=") <= 1 and line.count("style=") <= 1, line
    assert '"DISCARDED" [peripheries=2, fillcolor="#fafafa"' in dot
    mermaid = state_mermaid(overlays["voucher"])
    assert "class DISCARDED,EXPIRED unseen" in mermaid and "never seen" in mermaid
    assert rows[("voucher", "REDEEMED: redeem-voucher -> already_redeemed")] == 0  # operations, not triggers


# --- Legends, straight sequence arrows, self-loops inside their state, style as data (issue 20) ---

_EDGE = re.compile(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\];$')
_NODE = re.compile(r'^\s*"([^"]+)" \[(.*)\];$')


def _attr(attrs: str, name: str) -> str | None:
    found = re.search(rf'(?:^|, ){name}=("(?:[^"\\]|\\.)*"|[^,\]]+)', attrs)
    return None if found is None else found.group(1).strip('"')


def _legend(dot: str) -> str:
    """The graph label (title and legend) of a DOT text."""
    graph = next(line for line in dot.splitlines() if line.startswith("  graph [label=<"))
    return graph[graph.index("<") : graph.rindex(">>") + 2]


def _edges(dot: str) -> list[tuple[str, str, str]]:
    return [m.groups() for line in dot.splitlines() if (m := _EDGE.match(line))]  # type: ignore[misc]


def _nodes(dot: str) -> dict[str, str]:
    out = {}
    for line in dot.splitlines():
        for part in line.split("; "):
            if (m := _NODE.match(part.strip().rstrip(";") + ";")) and " -> " not in part:
                out[m.group(1)] = m.group(2)
    return out


def _all_texts(spec: Spec) -> dict[str, tuple[str, str]]:
    """The committed diagrams plus a trace (broken calls) and a coverage overlay (never seen)."""
    from fsm.diagrams.dot import sequence_dot, state_dot
    from fsm.diagrams.mermaid import sequence_mermaid, state_mermaid
    from fsm.diagrams.trace import coverage_of, trace_of

    texts = dict(diagram_texts(spec))
    trace, _ = trace_of([str(REPO / "examples" / "broken.jsonl")])
    texts["trace"] = (sequence_dot(trace), sequence_mermaid(trace))
    _, overlays = coverage_of([str(REPO / "examples" / "session-two-payments.jsonl")])
    texts["coverage"] = (state_dot(overlays["voucher"]), state_mermaid(overlays["voucher"]))
    return texts


def test_every_colour_and_line_style_a_dot_diagram_draws_is_in_its_legend(spec: Spec) -> None:
    """Each (colour, style) of an edge has a legend sample of that colour and style, with its text."""
    from fsm.diagrams.style import load_style

    style = load_style()
    texts = _all_texts(spec)
    for name, (dot, _) in texts.items():
        legend = _legend(dot)
        assert "legend:" in legend, name
        samples = set(re.findall(r'SIDES="B" COLOR="(#[0-9a-f]{6})"(?: STYLE="(\w+)")?', legend))
        lifeline = style.participants["lifeline"]
        for _, _, attrs in _edges(dot):
            colour, line = _attr(attrs, "color"), _attr(attrs, "style") or "solid"
            if colour == lifeline or line == "invis":
                continue
            if line == "dashed" and name.startswith(("flow-", "trace")):  # answers: one "answer" sample
                assert (style.mark("reply").colour, "dashed") in samples, name
                continue
            assert (colour, "" if line in ("solid", "bold") else line) in samples, (name, colour, line)
    for mark, needle in (("broken", "trace"), ("unseen", "coverage")):
        assert style.mark(mark).legend in _legend(texts[needle][0]), mark
        assert style.mark(mark).legend not in _legend(texts["voucher"][0]), mark  # only what is drawn
    assert style.states["refusals_legend"] in _legend(texts["voucher-with-errors"][0])
    assert style.states["refusals_legend"] not in _legend(texts["voucher"][0])


def test_every_mermaid_diagram_ends_with_a_legend_of_what_it_marks(spec: Spec) -> None:
    """stateDiagram: a legend box (callers, deadlines, finals, refusals, never seen); sequence: a note."""
    from fsm.diagrams.style import load_style

    style = load_style()
    texts = _all_texts(spec)
    for name, (_, mermaid) in texts.items():
        if mermaid.splitlines()[3] == "sequenceDiagram":
            (note,) = [line for line in mermaid.splitlines() if "Note over payer,payee: legend:" in line]
            assert "-->>" in note and ("red band" in note) == (name == "trace"), name
        else:
            legend = [
                line.split(" : ", 1)[1] for line in mermaid.splitlines() if line.startswith("    legend : ")
            ]
            assert 'state "legend" as legend' in mermaid and legend, name
            assert any("final state" in item for item in legend), name
            for actor in ("payer", "payee"):
                assert any(f"({actor})" in item for item in legend) == (
                    f"({actor})" in mermaid.split("legend")[0]
                )
            assert any("after ..." in item for item in legend) == ("after expiresAt" in mermaid), name
            assert any(item.startswith("refuses") for item in legend) == ("with-errors" in name), name
    assert style.mark("unseen").legend in texts["coverage"][1].split('state "legend"')[1]


def test_sequence_arrows_are_level_and_straight_with_their_text_centred_above(spec: Spec) -> None:
    """Pinned layout: a message's ends share one y, no edge label bends it, its text sits at the middle."""
    from fsm.diagrams.dot import text_width
    from fsm.diagrams.style import load_style

    style = load_style()
    texts = _all_texts(spec)
    for name in [n for n in texts if n.startswith("flow-")] + ["trace"]:
        dot = texts[name][0]
        graph = dot.splitlines()[1]
        assert "layout=neato" in graph and "splines=false" in graph, name
        nodes = _nodes(dot)
        pos = {}
        for node, attrs in nodes.items():
            at = _attr(attrs, "pos")
            assert at is not None and at.endswith("!"), (name, node)  # every node pinned
            x, y = at.rstrip("!").split(",")
            pos[node] = (float(x), float(y))
        messages = [(a, b, attrs) for a, b, attrs in _edges(dot) if a.startswith("m")]
        assert messages, name
        for a, b, attrs in messages:
            assert "label=" not in attrs, (name, attrs)  # a label would be laid out as a node
            (ax, ay), (bx, by) = pos[a], pos[b]
            assert ay == by and ax != bx, (name, a, b)
            text = a.removesuffix("_from") + "_text"
            tx, ty = pos[text]
            assert abs(tx - (ax + bx) / 2) <= 1 and ty > ay, (name, text)
            label = _attr(nodes[text], "label") or ""
            assert text_width(label.replace("\\n", "\n"), style.edge_size) < abs(bx - ax), (name, label)
        heads = sorted((pos[n][0], n) for n in nodes if n.startswith("h_"))
        assert [n for _, n in heads] == [f"h_{p}" for p in style.participant_order], name


def test_sequence_lifelines_carry_no_marks_and_keep_the_participants_order(spec: Spec) -> None:
    """Row points are invisible and zero-sized (no stray ticks); only headers and message texts are drawn."""
    texts = _all_texts(spec)
    for name in [n for n in texts if n.startswith("flow-")] + ["trace"]:
        dot = texts[name][0]
        default = next(line for line in dot.splitlines() if line.startswith("  node ["))
        assert "shape=point, style=invis, width=0, height=0" in default, name
        for node, attrs in _nodes(dot).items():
            if node.startswith("h_"):
                assert "shape=box" in attrs, node
            elif node.endswith("_text"):
                assert "shape=plaintext" in attrs and "style=solid" in attrs, node
            else:  # row ends and lifeline ends: inherit the invisible default
                assert "shape=" not in attrs and "style=" not in attrs, (name, node, attrs)
        flow = texts[name][1]
        order = [line.split()[1] for line in flow.splitlines() if line.startswith("    participant ")]
        assert order == ["payer", "server", "payee"], name


def test_self_loops_are_listed_inside_their_state_so_their_text_stays_in_the_cluster(spec: Spec) -> None:
    """No state diagram draws a self-loop edge; each loop's call is a row of its state's own label."""
    texts = _all_texts(spec)
    loops = 0
    for name, (dot, _) in texts.items():
        if name.startswith(("flow-", "trace")):
            continue
        assert all(a != b for a, b, _ in _edges(dot)), name
        m = next(
            m
            for key, m in spec.machines.items()
            if name.startswith(key) or (name == "coverage" and key == "voucher")
        )
        nodes = _nodes(dot)
        for t in m.transitions:
            for source in t.source:
                if t.dest_for(source) == source and t.operation:
                    loops += 1
                    assert f"↻ {t.operation} ({t.actor})" in nodes[source], (name, source, t.operation)
    assert loops >= 10
    session = texts["session"][0]
    cluster = session[session.index('subgraph "cluster_OPEN"') :]
    cluster = cluster[: cluster.index("\n  }")]
    assert "↻ session-reserve-voucher (payee)" in cluster  # WAITING_FOR_PAYER's and JOINED's, in OPEN


def test_diagram_style_is_data_checked_against_its_meta_schema(tmp_path: Path) -> None:
    """The renderers hold no colours; a changed style file changes the DOT; a broken one is a SpecError."""
    import json

    from fsm.diagrams.dot import state_dot
    from fsm.diagrams.extract import state_diagram
    from fsm.diagrams.style import load_style
    from fsm.errors import SpecError
    from fsm.spec import load_spec

    for module in ("dot.py", "mermaid.py", "extract.py", "ir.py"):
        assert not re.search(r"#[0-9a-fA-F]{6}\b", (REPO / "fsm" / "diagrams" / module).read_text()), module
    doc = json.loads((REPO / "fsm" / "protocol" / "diagram-style.json").read_text())
    doc["marks"]["payer"]["colour"] = "#123456"
    doc["marks"]["payer"]["legend"] = "the wallet calls"
    (tmp_path / "style.json").write_text(json.dumps(doc))
    dot = state_dot(state_diagram(load_spec().machines["session"]), load_style(tmp_path / "style.json"))
    assert 'color="#123456"' in dot and "the wallet calls" in dot
    doc["marks"]["payer"]["colour"] = "blue"
    del doc["marks"]["broken"]
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(SpecError) as caught:
        load_style(tmp_path / "bad.json")
    findings = "\n".join(caught.value.findings)
    assert "bad.json#/marks/payer/colour" in findings and "'broken' is a required property" in findings
