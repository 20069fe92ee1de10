"""SPEC §3 stage 2.5: with a terminal on stdin (`docker run -it`), the CMD's process group is the
terminal's foreground group, so Ctrl-C reaches the CMD directly (s6-overlay issues #399, #532)."""

from __future__ import annotations

import os
import pty
import select
import sys
import time

CMD = ("import os, signal, time; signal.signal(signal.SIGINT, signal.SIG_DFL); "
       "print('FG' if os.tcgetpgrp(0) == os.getpgrp() else 'BG', os.getpgrp() == os.getpid(), flush=True); "
       "time.sleep(30)")


def run_on_a_terminal(tmp_path, keys_after_fg: bytes, timeout: float = 15.0) -> tuple[str, int]:
    """ignity as PID 1 of a PID namespace on a new pseudo-terminal; type ``keys_after_fg`` once the
    CMD has reported; returns (what the terminal showed, exit status)."""
    env = dict(os.environ, IGNITY_CONF_DIR=str(tmp_path / "conf"), IGNITY_RUN_DIR=str(tmp_path / "run"))
    argv = ["unshare", "--fork", "--pid", "--mount-proc", "--kill-child",
            sys.executable, "-m", "ignity", "init", sys.executable, "-c", CMD]
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin/stdout/stderr and controlling tty
        try:
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    out, sent, deadline = b"", False, time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    break  # the other side is gone
                if not data:
                    break
                out += data
            if not sent and (b"FG" in out or b"BG" in out):
                time.sleep(0.2)
                os.write(fd, keys_after_fg)
                sent = True
        else:
            os.kill(pid, 9)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out.decode(errors="replace"), os.waitstatus_to_exitcode(status)


def test_cmd_is_the_foreground_group_and_ctrl_c_reaches_it(tmp_path):
    """The CMD leads its own group, that group owns the terminal, and ^C (SIGINT from the tty
    driver to the foreground group) ends it: the container exits 130."""
    (tmp_path / "conf").mkdir()
    shown, status = run_on_a_terminal(tmp_path, b"\x03")
    assert "FG True" in shown, shown
    assert status == 130, shown
    assert "Traceback" not in shown, shown
