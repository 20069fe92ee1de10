"""The documentation stands on its own: no link or section number pointing outside the
repository, and every example in README.md and docs/ is run by a test (see docs_support.MARKER).
These need no container: they run in `task test`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_support import DOCS, ROOT, all_blocks, marker

TESTS = ROOT / "tests"
# what users read: the docs, and the files the docs send them to
READ = [*DOCS, ROOT / "Dockerfile.example", ROOT / "install.sh", ROOT / "bench" / "README.md",
        *[p for p in (ROOT / "examples").rglob("*") if p.is_file()]]
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", READ, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(doc: Path):
    text = doc.read_text(encoding="utf-8", errors="replace")
    for bad in ("SPEC", "§", "../shared", "issue tracker"):
        assert bad not in text, f"{doc.relative_to(ROOT)} mentions {bad!r}: the docs here are the reference"
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor of the same page
        path = (doc.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), f"{doc.relative_to(ROOT)}: dead link {target}"


@pytest.mark.parametrize("block", all_blocks(), ids=lambda b: b.where)
def test_every_example_is_run_by_a_test(block):
    if block.lang == "text":
        return
    assert block.lang, f"{block.where}: a fenced block needs a language (`text` for what is not an example)"
    m = marker(block)
    assert m, f"{block.where}: an example needs a marker line before it: <!-- example: file|part|build|run|... -->"
    kind, arg = m
    if kind == "file":
        assert (ROOT / arg).read_text() == block.text, f"{block.where} differs from {arg}"
    elif kind == "part":
        assert block.text in (ROOT / arg).read_text(), f"{block.where} is not a part of {arg}"
    elif kind == "covered-by":
        assert any(f"def {arg}(" in p.read_text() for p in TESTS.rglob("test_*.py")), f"{block.where}: no test {arg}"


def test_every_setting_is_in_the_reference():
    """Every IGNITY_* variable the code reads has its row in docs/reference.md's settings."""
    names = set()
    for path in (ROOT / "src" / "ignity").rglob("*.py"):
        names |= set(re.findall(r"\bIGNITY_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    reference = (ROOT / "docs" / "reference.md").read_text()
    missing = sorted(n for n in names if f"| `{n}`" not in reference and f"`{n}`," not in reference)
    assert not missing, f"settings without a row in docs/reference.md: {missing}"
