"""Assertions shared by the CLI tests."""

from __future__ import annotations

from typer.testing import Result


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Exit 1, nothing on stdout, exactly one ``error: ...`` line on stderr, no traceback."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
