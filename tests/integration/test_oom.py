"""PID 1 and the OOM killer (docs/design.md): where permitted (CAP_SYS_RESOURCE), ignity runs at
oom_score_adj -1000 and every child starts with the value ignity started with; where not, both
keep that value and ignity says why at verbosity 2. Checked from outside in /proc, and under a
real memory limit (a memory cgroup) where the machine allows both."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from .harness import BOOT_S, wait_for

CAP_SYS_RESOURCE = 24


def has_cap_sys_resource() -> bool:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> CAP_SYS_RESOURCE & 1)
    return False


def oom_score_adj(pid: int) -> int:
    return int(Path(f"/proc/{pid}/oom_score_adj").read_text())


def test_children_start_with_the_value_ignity_started_with(ct):
    # a container started at 300 (docker run --oom-score-adj 300): raising needs no privilege
    ct.service("svc", f"echo $$ >> {ct.out}/pids; exec sleep 1000")
    ct.start(wrapper='echo 300 > /proc/self/oom_score_adj && exec "$@"', env={"IGNITY_VERBOSITY": "2"})
    first = int(ct.wait_lines("pids", 1)[0])
    service = ct.proc_by_nspid(first)
    assert oom_score_adj(service.pid) == 300
    # a restart too: the value is put back around every spawn, not only at boot
    os.kill(service.pid, 9)
    second = int(ct.wait_lines("pids", 2)[1])
    assert oom_score_adj(ct.proc_by_nspid(second).pid) == 300
    if has_cap_sys_resource():
        assert oom_score_adj(ct.pid1) == -1000
        assert "oom_score_adj -1000 for ignity; children start at 300" in ct.stderr, ct.stderr
    else:
        assert oom_score_adj(ct.pid1) == 300
        assert "CAP_SYS_RESOURCE" in ct.stderr, ct.stderr
    assert ct.stop() == 0, ct.diag()


def _memory_cgroup() -> tuple[Path, str, str] | None:
    """A fresh memory cgroup (v2 or v1): its dir, the limit file, the OOM-kill counter's file."""
    name = f"ignity-it-{uuid.uuid4().hex[:8]}"
    v2 = Path("/sys/fs/cgroup")
    if "memory" in (v2 / "cgroup.controllers").read_text() if (v2 / "cgroup.controllers").exists() else False:
        return v2 / name, "memory.max", "memory.events"
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        return v1 / name, "memory.limit_in_bytes", "memory.oom_control"
    return None


@pytest.mark.skipif(not has_cap_sys_resource(), reason="lowering oom_score_adj needs CAP_SYS_RESOURCE")
def test_under_a_memory_limit_the_oom_killer_takes_a_worker_not_pid1(ct):
    """Workers each a bit smaller than ignity fill a 96 MiB limit: the kernel kills workers,
    ignity stays, supervises and exits 0 on SIGTERM (not 137)."""
    found = _memory_cgroup()
    if found is None:
        pytest.skip("no memory cgroup controller here")
    cg, limit_file, events_file = found
    try:
        cg.mkdir()
    except OSError as e:
        pytest.skip(f"cannot create a memory cgroup: {e}")
    try:
        (cg / limit_file).write_text(str(96 * 1024 * 1024))
        worker = ("import os, time\n"
                  "while True:\n"
                  "    if os.fork() == 0:\n"
                  "        x = bytearray(8 * 1024 * 1024); time.sleep(1000)\n"
                  "    time.sleep(0.05)\n")
        ct.service("hog", f"#!{sys.executable}\n{worker}")
        ct.start(wrapper=f'echo $$ > {cg}/cgroup.procs && exec "$@"')

        def oom_kills() -> int:
            text = (cg / events_file).read_text()
            return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill ")), 0)

        wait_for(lambda: oom_kills() >= 2, BOOT_S * 3, "the OOM killer to act", diag=ct.diag)
        assert ct.running, ct.diag()
        assert oom_score_adj(ct.pid1) == -1000
        assert ct.stop() == 0, ct.diag()
    finally:
        ct.close()
        try:
            cg.rmdir()
        except OSError:
            pass
