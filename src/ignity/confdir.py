"""What counts as an entry of a configuration directory (SPEC §2): names starting with '.' are
ignored everywhere, and "lexical order" is the byte order of the names (00-a < 10-b < 9-c).
The one place that rule is written; this module must not depend on any other.
"""

from __future__ import annotations

import os


def visible_names(directory: str | os.PathLike) -> list[str]:
    """Names in ``directory``, byte order, dot-names left out; none for a missing directory."""
    try:
        names = os.listdir(os.fsencode(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [os.fsdecode(n) for n in sorted(names) if not n.startswith(b".")]


def visible_entries(directory: str) -> list[str]:
    """Paths of the ``visible_names`` of ``directory``."""
    return [os.path.join(directory, name) for name in visible_names(directory)]


def visible_files(directory: str) -> list[str]:
    """``visible_entries`` that are files (or links to files): env files, scripts."""
    return [p for p in visible_entries(directory) if os.path.isfile(p)]


def visible_dirs(directory: str) -> list[str]:
    """``visible_names`` of ``directory`` that are directories (or links to ones): service dirs."""
    return [name for name in visible_names(directory) if os.path.isdir(os.path.join(directory, name))]
