"""spawn's OOM shield, where the kernel's file is stood in for by a plain file (lowering the real
one needs CAP_SYS_RESOURCE): ignity's value is -1000 except for the instant of each spawn, when
it is the original one, which the child is created with."""

from __future__ import annotations

import os

from ignity import spawn


def test_value_is_the_original_during_each_spawn_and_minus_1000_otherwise(tmp_path, monkeypatch):
    adj = tmp_path / "oom_score_adj"
    adj.write_text("300\n")
    monkeypatch.setattr(spawn, "OOM_SCORE_ADJ", str(adj))
    monkeypatch.setattr(spawn, "_oom", None)
    assert spawn.protect_from_oom() == "oom_score_adj -1000 for ignity; children start at 300"
    assert adj.read_bytes().endswith(b"-1000")
    seen = []
    real = spawn._posix_spawn

    def clone(*args):  # the value at the moment the child is created, which it inherits
        seen.append(adj.read_bytes()[-3:])
        return real(*args)

    monkeypatch.setattr(spawn, "_posix_spawn", clone)
    for _ in range(2):
        pid = spawn.spawn(["/bin/true"], {"PATH": "/usr/bin:/bin"})
        assert adj.read_bytes().endswith(b"-1000")  # lowered again as soon as the child exists
        os.waitpid(pid, 0)
    assert seen == [b"300", b"300"]
    os.close(spawn._oom.fd)

