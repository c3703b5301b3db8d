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
    assert '"DISCARDED" [label="DISCARDED", peripheries=2, fillcolor="#fafafa"' in dot
    mermaid = state_mermaid(overlays["voucher"])
    assert "class DISCARDED,EXPIRED unseen" in mermaid and "never seen" in mermaid
    assert rows[("voucher", "REDEEMED: redeem-voucher -> already_redeemed")] == 0  # operations, not triggers
