"""resources: the process tree of a service, read from /proc without reaping anything."""
import os
import subprocess
import sys
import time

from ignity import resources


def wait_children(pid, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tree = resources.of_trees({"svc": [pid]})["svc"]
        if tree.processes >= n:
            return tree
        time.sleep(0.02)
    raise AssertionError(f"tree of {pid} never had {n} processes: {tree}")


def test_a_tree_counts_its_session_and_its_descendants():
    # a session leader with two children, one of which makes its own session (still a descendant)
    code = ("import os, subprocess, time\n"
            "a = subprocess.Popen(['sleep', '30'])\n"
            "b = subprocess.Popen(['sleep', '30'], start_new_session=True)\n"
            "time.sleep(30)\n")
    leader = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    try:
        tree = wait_children(leader.pid, 3)
        assert tree.processes == 3
        assert tree.threads >= 3
        assert tree.rss_bytes > 1_000_000
        assert tree.open_fds >= 3
        assert tree.cpu_user_seconds >= 0 and tree.cpu_system_seconds >= 0
    finally:
        os.killpg(leader.pid, 9)
        leader.wait()


def test_unrelated_processes_and_ignity_itself_are_not_counted():
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    mine = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        usage = resources.of_trees({"a": [mine.pid], "none": []})
        assert usage["a"].processes == 1
        assert usage["none"] == resources.NOTHING
    finally:
        for p in (other, mine):
            p.kill()
            p.wait()


def test_no_roots_reads_nothing():
    assert resources.of_trees({}) == {}


def test_reading_never_reaps():
    child = subprocess.Popen(["true"], start_new_session=True)
    time.sleep(0.2)  # a zombie now
    resources.of_trees({"z": [child.pid]})
    resources.of_ignity()
    pid, status = os.waitpid(child.pid, 0)  # still ours to reap
    assert pid == child.pid and os.waitstatus_to_exitcode(status) == 0


def test_ignity_itself():
    me = resources.of_ignity()
    assert me.processes == 1 and me.threads >= 1 and me.rss_bytes > 1_000_000 and me.open_fds >= 3
    assert set(me.as_dict()) == {"rss_bytes", "cpu_user_seconds", "cpu_system_seconds", "open_fds",
                                 "threads", "processes"}


def test_usage_adds_up():
    a = resources.Usage(rss_bytes=1, cpu_user_seconds=0.5, cpu_system_seconds=0.25, open_fds=3, threads=1,
                        processes=1)
    assert (a + a).as_dict() == {"rss_bytes": 2, "cpu_user_seconds": 1.0, "cpu_system_seconds": 0.5,
                                 "open_fds": 6, "threads": 2, "processes": 2}
