"""The README documents the protocol schema the code validates (no drift)."""

from __future__ import annotations

from pathlib import Path

from maillage_session_signalling.signalling.schema import render

README = Path(__file__).parents[1] / "README.md"
BEGIN, END = "<!-- schema:begin -->\n```json\n", "\n```\n<!-- schema:end -->"


def test_readme_embeds_the_current_protocol_schema() -> None:
    text = README.read_text()
    embedded = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    assert embedded == render(), "run: python -m maillage_session_signalling.signalling.schema"
