"""Supervision under faults: what cannot be read, prepared or started is a failed start, reported
and retried at the restart pace; never a service left down while wanted up (SPEC §7 restart policy)."""

from __future__ import annotations

from .harness import sh

NOW = "date +%s.%N"  # wall-clock seconds with a fraction, written by the scripts


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in zip(times, times[1:])]


def test_restart_one_second_after_finish_cannot_start(ct):
    """`run` exits at once and `finish` is not executable: the next start comes 1 s after the last
    one (the restart throttle), not after timeout-finish (5 s): the failed finish's event is handled
    after the deadline of the finish it replaces."""
    ct.service("flappy", f"{NOW} >> {ct.out}/starts; exit 1")
    ct.write("services/flappy/finish", sh("exit 0"), 0o644)
    ct.start()
    starts = [float(x) for x in ct.wait_lines("starts", 3, timeout=8)]
    assert all(0.9 <= g < 2.0 for g in gaps(starts[:3])), gaps(starts)
    assert "finish: Permission denied" in ct.stderr, ct.diag()
    assert ct.stop() == 0, ct.diag()
