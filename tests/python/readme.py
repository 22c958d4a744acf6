"""Fenced code blocks of README.md, by section, so the tests run what readers copy."""

import re

from conftest import REPO


def code_blocks(section: str, language: str) -> list:
    """The ```language blocks under the `## section` heading, in order."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {section}' section"
    blocks = re.findall(rf"^```{language}\n(.*?)^```", match.group(1), re.M | re.S)
    assert blocks, f"README.md '## {section}' has no ```{language} block"
    return blocks
