"""supervisor: the event queue and the record's timer, with a real loop and real exec errors but no
process started (``run`` and ``finish`` here can never be executed)."""
import os
import signal
import time

import pytest

from ignity.loop import Loop
from ignity.service import RESTART_THROTTLE_S, Event, State
from ignity.settings import Settings
from ignity.supervisor import Supervisor

NOT_A_CHILD = 2 ** 22 + 1  # beyond any pid_max default: never one of ours


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def supervisor(tmp_path, loop, files):
    conf, run = tmp_path / "conf", tmp_path / "run"
    for rel, (text, mode) in files.items():
        path = conf / "services" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)
    sup = Supervisor(loop, Settings(conf_dir=str(conf), run_dir=str(run)), lambda: dict(os.environ),
                     on_halt=lambda code: None)
    sup.load(str(conf / "services"))
    return sup


def test_event_raised_by_an_effect_waits_for_the_effect_list(tmp_path, loop, capfd):
    """run exits, finish cannot start: the FINISH_EXITED it raises is handled after the whole
    effect list of RUN_EXITED (StartFinish, SetDeadline(timeout-finish)), so the restart is armed
    for 1 s after the last start, not for timeout-finish."""
    sup = supervisor(tmp_path, loop, {"a/run": ("#!/bin/sh\n", 0o755), "a/finish": ("#!/bin/sh\n", 0o644)})
    svc = sup.services["a"]
    sup.feed(svc, Event.SPAWNED, NOT_A_CHILD)  # as if run had started
    sup.feed(svc, Event.RUN_EXITED, 1 << 8)
    assert svc.state is State.BACKOFF
    assert svc.deadline == svc.started_at + RESTART_THROTTLE_S
    assert svc.timer is not None and svc.timer.when == svc.deadline and not svc.timer.cancelled
    assert "finish: Permission denied" in capfd.readouterr().err


def test_run_that_cannot_start_is_a_failed_start_with_its_timer(tmp_path, loop, capfd):
    sup = supervisor(tmp_path, loop, {"a/run": ("#!/bin/sh\n", 0o644)})
    svc = sup.services["a"]
    before = time.monotonic()
    sup.start_all()
    assert svc.state is State.BACKOFF and svc.failed
    assert svc.timer is not None and svc.timer.when >= before + RESTART_THROTTLE_S
    assert sup.status(["a"])[0]["state"] == "failed"


def test_logger_and_service_share_one_record_pair(tmp_path, loop):
    sup = supervisor(tmp_path, loop, {"a/run": ("#!/bin/sh\n", 0o644), "a/log/run": ("#!/bin/sh\n", 0o644)})
    svc, logger = sup.services["a"], sup.services["a/log"]
    assert svc.logger is logger and logger.main is svc and svc.main is None and logger.logger is None
    assert logger.is_logger and not svc.is_logger and logger.main_name == "a"


def test_dependencies_survive_a_start_that_reads_the_knobs_again(tmp_path, loop, capfd):
    # a start reads every knob again, without a last value when none was read yet; the
    # dependencies, read once from services/ when b was added (its live copy has none), stay
    sup = supervisor(tmp_path, loop, {"a/run": ("#!/bin/sh\n", 0o644), "b/run": ("#!/bin/sh\n", 0o644),
                                      "b/dependencies.d/a": ("", 0o644)})
    knob = tmp_path / "run" / "services-state" / "b" / "timeout-kill"
    knob.symlink_to(knob.name)  # ELOOP: no open(2) can read it, even as root
    b = sup.services["b"]
    b.spec_ok = False  # as after a first read that found it
    assert not sup._read_spec(b)  # what a start does first: a failed start, the knob named
    assert "timeout-kill" in capfd.readouterr().err
    assert sup.graph()["b"] == ["a"]
