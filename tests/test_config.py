"""Settings from pyproject.toml, voucher-fsm.toml and flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from fsm.config import Config, find_config, load_config, parse_severity_overrides
from fsm.errors import UsageError
from fsm.spec import Spec
from fsm.violation import Severity


def test_pyproject_tool_table_is_found_from_a_subfolder(tmp_path: Path) -> None:
    """The nearest pyproject.toml with [tool.voucher-fsm] is used."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.voucher-fsm]\nstrict = true\n[tool.voucher-fsm.severity]\n"style.hex-address" = "off"\n'
    )
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    found = find_config(sub)
    assert found == tmp_path / "pyproject.toml"
    cfg = load_config(found)
    assert cfg.strict and cfg.severity == {"style.hex-address": None}


def test_voucher_fsm_toml_wins_over_pyproject_in_the_same_folder(tmp_path: Path) -> None:
    """A dedicated voucher-fsm.toml is preferred."""
    (tmp_path / "pyproject.toml").write_text("[tool.voucher-fsm]\nstrict = true\n")
    (tmp_path / "voucher-fsm.toml").write_text("require-complete = true\n")
    cfg = load_config(find_config(tmp_path) or Path())
    assert cfg.require_complete and not cfg.strict


def test_a_pyproject_without_our_table_is_ignored(tmp_path: Path) -> None:
    """Other projects' pyproject.toml files are not config files."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert find_config(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("strict = 'yes'\n", "strict must be true or false"),
        ("colour = true\n", "unknown key"),
        ("[severity]\n'style.hex-address' = 'loud'\n", "unknown severity"),
        ("format = 'xml'\n", "format must be one of"),
        ("strict = \n", "not valid TOML"),
    ],
)
def test_bad_config_is_a_usage_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    """Every config mistake says which file and what is wrong."""
    path = tmp_path / "voucher-fsm.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_unknown_rule_ids_are_refused(spec: Spec) -> None:
    """A typo in a rule id is an error, with the command that lists them."""
    with pytest.raises(UsageError, match="voucher-fsm rules"):
        Config(severity={"style.hex-adress": None}).effective(spec.rules)


def test_flags_parse_rule_level_pairs() -> None:
    """--severity RULE=LEVEL accepts error, warning, info and off."""
    assert parse_severity_overrides(["a.b=error", "c.d=off"], "--severity") == {
        "a.b": Severity.ERROR,
        "c.d": None,
    }
    with pytest.raises(UsageError, match="RULE=LEVEL"):
        parse_severity_overrides(["a.b"], "--severity")


def test_require_complete_raises_incomplete_entities_to_warning(spec: Spec) -> None:
    """entity.incomplete is info by default and a warning with require_complete (D18)."""
    assert Config().effective(spec.rules)["entity.incomplete"] is Severity.INFO
    assert Config(require_complete=True).effective(spec.rules)["entity.incomplete"] is Severity.WARNING


def test_a_broken_pyproject_with_our_table_is_reported_not_skipped(tmp_path: Path) -> None:
    """Found on the way up, a pyproject.toml that names [tool.voucher-fsm] but is not TOML is an error."""
    (tmp_path / "pyproject.toml").write_text("[tool.voucher-fsm]\nstrict = [\n")
    found = find_config(tmp_path)
    assert found == tmp_path / "pyproject.toml"
    with pytest.raises(UsageError, match="not valid TOML"):
        load_config(found)
    (tmp_path / "pyproject.toml").write_text("[project]\nname = [\n")  # someone else's, broken
    assert find_config(tmp_path) is None


def test_a_config_file_that_is_not_text_is_a_usage_error(tmp_path: Path) -> None:
    """Binary bytes in a config file: a usage error naming it, not a UnicodeDecodeError."""
    path = tmp_path / "voucher-fsm.toml"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(UsageError, match="not a TOML text file") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_levels_given_to_config_as_words_are_read_at_once(spec: Spec) -> None:
    """Config(severity={"rule": "off"}) works as in a config file; a bad level fails when made."""
    cfg = Config(
        severity={
            "style.hex-address": "off",
            "schema.request": "warning",
            "actor.unauthenticated": Severity.INFO,
        }
    )
    assert cfg.severity == {
        "style.hex-address": None,
        "schema.request": Severity.WARNING,
        "actor.unauthenticated": Severity.INFO,
    }
    assert cfg.effective(spec.rules)["schema.request"] is Severity.WARNING
    with pytest.raises(UsageError, match="loud"):
        Config(severity={"schema.request": "loud"})
    with pytest.raises(UsageError, match="must be a string"):
        Config(severity={"schema.request": 3})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "header",
    [
        '[tool."voucher-fsm"]',
        "[ tool.voucher-fsm ]",
        "[tool.voucher-fsm.severity]",
        '[ "tool" . "voucher-fsm" ]',
    ],
)
def test_a_broken_pyproject_is_ours_however_the_table_is_spelt(header: str, tmp_path: Path) -> None:
    """Every TOML spelling of the table header counts; a comment or another tool's table does not."""
    (tmp_path / "pyproject.toml").write_text(f"{header}\nstrict = [\n")
    assert find_config(tmp_path) == tmp_path / "pyproject.toml"
    (tmp_path / "pyproject.toml").write_text("# [tool.voucher-fsm]\n[tool.voucher-fsm-x]\nstrict = [\n")
    assert find_config(tmp_path) is None
