"""What the documentation promises, read out of it: the README's Quickstart commands and the fenced
code blocks of README.md and docs/ (the tests that run or build them import this)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))


@dataclass(frozen=True)
class Block:
    """A fenced code block: its file, the line of its opening fence, its info string, its text."""

    doc: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


FENCE = re.compile(r"(?ms)^```([^\n`]*)\n(.*?)^```[ \t]*$")


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text(encoding="utf-8")
    return [Block(doc, text.count("\n", 0, m.start()) + 1, m.group(1).strip(), m.group(2))
            for m in FENCE.finditer(text)]


def all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in blocks(doc)]


def section(doc: Path, title: str) -> str:
    """The text of the `## title` section of doc, up to the next `## `."""
    text = doc.read_text(encoding="utf-8")
    m = re.search(rf"(?ms)^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text)
    if m is None:
        raise AssertionError(f"{doc.name} has no '## {title}' section")
    return m.group(1)


def shell_commands(text: str) -> list[str]:
    """The commands of a shell block: one a line, without `# comments` and blank lines."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    return out


def quickstart() -> dict[str, str]:
    """The README's Quickstart: exactly two commands in its first sh block, {"demo": ..., "test": ...}."""
    body = section(ROOT / "README.md", "Quickstart")
    m = FENCE.search(body)
    assert m is not None and m.group(1).strip() == "sh", "the Quickstart has no ```sh block"
    cmds = shell_commands(m.group(2))
    assert len(cmds) == 2, f"the Quickstart must give exactly two commands, not {cmds}"
    demo, test = cmds
    assert "demo" in demo and "test" in test, cmds
    return {"demo": demo, "test": test}


# An example in the docs is a fenced block with a language; the line just before its fence says
# how a test runs it (blocks of `text` are synopses, layouts and output, not examples):
#   <!-- example: file PATH -->      the block is the file PATH of the repository, verbatim
#   <!-- example: part PATH -->      the block's lines are consecutive lines of PATH
#   <!-- example: build -->          a Dockerfile, built by tests/e2e/test_docs_examples.py
#   <!-- example: run -->            shell commands, run in order by tests/e2e/test_docs_examples.py
#   <!-- example: covered-by TEST -->  what the test function TEST (in tests/) runs
MARKER = re.compile(r"<!-- example: (file|part|build|run|covered-by)(?: (\S+))? -->")


def marker(block: Block) -> tuple[str, str | None] | None:
    lines = block.doc.read_text(encoding="utf-8").splitlines()
    before = lines[block.line - 2] if block.line >= 2 else ""
    m = MARKER.fullmatch(before.strip())
    return (m.group(1), m.group(2)) if m else None


def examples(kind: str) -> list[Block]:
    return [b for b in all_blocks() if (marker(b) or ("",))[0] == kind]
