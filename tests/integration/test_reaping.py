"""SPEC §1 and §3 (ignity reaps every zombie, as PID 1 or as a child subreaper), §10 row 3 (SIGCHLD)."""

from __future__ import annotations

from .harness import BOOT_S, py, wait_for


def test_hundred_orphans_are_reaped_no_zombie_left(ct):
    """§1 "reaps every zombie": 100 orphans (double-forked by the CMD) exit at random times within a
    second; ignity reaps them all while the CMD keeps running, and the CMD's status is unchanged."""
    cmd = ct.write("orphans.py", py(f"""
        import os, random, time
        for i in range(100):
            if os.fork() == 0:
                if os.fork() == 0:               # the grandchild: an orphan once its parent exits
                    time.sleep(random.random())
                    os._exit(random.randint(0, 255))
                os._exit(0)
        for i in range(100):
            os.wait()                            # the CMD reaps its own children only
        open("{ct.out}/spawned", "w").write("1")
        while not os.path.exists("{ct.out}/stop"):
            time.sleep(0.02)
        raise SystemExit(3)
        """), mode=0o755)
    ct.start(str(cmd))
    ct.wait_file("spawned")

    def settled():
        procs = ct.procs()
        return len(procs) == 2 and not any(p.state == "Z" for p in procs)  # ignity and the CMD

    wait_for(settled, BOOT_S, "only ignity and the CMD left, no zombie",
             diag=lambda: "\n".join(f"{p.nspid} {p.state} {p.cmdline}" for p in ct.procs()))
    (ct.out / "stop").write_text("")
    assert ct.wait() == 3, ct.diag()


def test_orphan_status_does_not_change_the_cmds(ct):
    """§5 row 1, §10 row 3: an orphan exiting 5 is reaped by ignity and does not change the CMD's 3.
    The CMD exits only once the orphan is gone (reaped, not a zombie: kill -0 fails only then)."""
    ct.start("/bin/sh", "-c", f"""
        (sh -c 'echo $$ > {ct.out}/orphan; sleep 0.2; exit 5' &)
        until [ -s {ct.out}/orphan ]; do sleep 0.01; done
        opid=$(cat {ct.out}/orphan)
        while kill -0 "$opid" 2>/dev/null; do sleep 0.02; done
        exit 3
    """)
    assert ct.wait() == 3, ct.diag()


def test_zombie_left_by_a_service_is_reaped(ct):
    """§1: a service that leaves an orphan behind (it double-forks a short-lived child) leaves no
    zombie in the container."""
    ct.service("leaky", f"""
        (sh -c 'echo $$ > {ct.out}/orphan; exit 7' &)
        exec sleep 1000
    """)
    ct.start()
    ct.wait_file("orphan")
    wait_for(lambda: not ct.zombies(), BOOT_S, "no zombie",
             diag=lambda: "\n".join(f"{p.nspid} {p.state} {p.cmdline}" for p in ct.procs()))
    assert ct.stop() == 0, ct.diag()


def test_not_pid_1_registers_as_subreaper(ct):
    """§1: when ignity is not PID 1 (here a shell is PID 1 and ignity its child), it registers as a
    child subreaper: an orphan of the CMD is reparented to ignity, not to PID 1, and reaped by it;
    the CMD's status is still the exit status."""
    cmd = ct.write("orphan.py", py(f"""
        import os, time
        ignity = os.getppid()
        r, w = os.pipe()
        if os.fork() == 0:
            if os.fork() == 0:                       # the orphan-to-be
                os.close(r)
                time.sleep(0.3)                      # outlive its parent
                with open("/proc/self/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                os.write(w, f"{{ppid}}\\n".encode())
                os._exit(0)
            os._exit(0)
        os.close(w)
        os.wait()
        line = os.read(r, 100).decode().strip()
        with open("{ct.out}/result", "w") as f:
            f.write(f"{{ignity}} {{line}} {{os.getpid()}}")
        while not os.path.exists("{ct.out}/stop"):
            time.sleep(0.02)
        raise SystemExit(4)
        """), mode=0o755)
    ct.start(str(cmd), wrapper='"$@"; exit $?')
    ct.wait_file("result")
    ignity, orphan_ppid, _ = wait_for(lambda: ct.read("result").split(), BOOT_S, "the result")
    assert ignity != "1", "ignity ran as PID 1: the wrapper did not work"
    assert orphan_ppid == ignity, f"the orphan was reparented to {orphan_ppid}, ignity is {ignity}"

    def settled():
        procs = ct.procs()
        return len(procs) == 3 and not any(p.state == "Z" for p in procs)  # sh, ignity, the CMD

    wait_for(settled, BOOT_S, "the orphan reaped by ignity",
             diag=lambda: "\n".join(f"{p.nspid} {p.state} {p.cmdline}" for p in ct.procs()))
    (ct.out / "stop").write_text("")
    assert ct.wait() == 4, ct.diag()
