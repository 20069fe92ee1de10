"""A servicedir's `user` (run, finish and a oneshot's up start as that user directly: groups, gid,
uid, HOME/USER/LOGNAME; as non-root only the current user) and `env` (an envdir or a dotenv file
laid over the container's environment for that service only)."""

from __future__ import annotations

import subprocess

import pytest

from .harness import PY

UID = 1000
# written to a temporary name, then renamed: a test that sees the file sees all of it
REPORT = ('grep -E "^(Uid|Gid|Groups):" /proc/self/status > {out}/.{name}.ids && '
          'mv {out}/.{name}.ids {out}/{name}.ids; env > {out}/.{name}.env && mv {out}/.{name}.env {out}/{name}.env')


def ids(ct, name):
    out = {}
    for line in ct.lines(f"{name}.ids"):
        key, _, values = line.partition(":")
        out[key] = values.split()
    return out


def env_of(ct, name):
    return dict(line.split("=", 1) for line in ct.lines(f"{name}.env") if "=" in line)


def test_run_finish_and_oneshot_start_as_the_user(ct):
    """As root: `user` = nobody's uid:gid, or a name with its groups; the pid in status is the
    service's own (no helper process)."""
    ct.service("svc", REPORT.format(out=ct.out, name="run") + "\nexec sleep 1000",
               finish=REPORT.format(out=ct.out, name="finish"), user="65534:65534")
    ct.write("services/shot/type", "oneshot\n")
    ct.script("services/shot/up", REPORT.format(out=ct.out, name="up"))
    ct.write("services/shot/user", "root\n")
    ct.out.chmod(0o777)  # nobody writes its reports there
    ct.start()
    ct.wait_up("svc")
    ct.wait_file("run.env")
    got = ids(ct, "run")
    assert got["Uid"] == ["65534"] * 4 and got["Gid"] == ["65534"] * 4 and got["Groups"] == [], got
    env = env_of(ct, "run")
    assert (env["USER"], env["LOGNAME"]) == (env["USER"], env["USER"]) and env["HOME"]
    st = ct.status()["svc"]
    assert st["user"] == "65534:65534"
    proc = ct.proc_by_nspid(st["pid"])
    assert proc is not None and proc.uid == 65534 and "sleep" in proc.cmdline, proc
    ct.ctl("svc", "-d", "svc")
    ct.wait_file("finish.ids")
    assert ids(ct, "finish")["Uid"] == ["65534"] * 4
    ct.wait_file("up.env")
    assert ids(ct, "up")["Uid"] == ["0"] * 4 and env_of(ct, "up")["USER"] == "root"
    assert ct.stop() == 0, ct.diag()


def _uid_can_run_ignity() -> bool:
    done = subprocess.run(["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", PY, "-c",
                           "import ignity"], capture_output=True, cwd="/")
    return done.returncode == 0


NON_ROOT = f'chown {UID}:{UID} "$IGNITY_RUN_DIR" && exec setpriv --reuid={UID} --regid={UID} --clear-groups "$@"'


def test_non_root_may_name_itself_not_another_user(ct):
    if not _uid_can_run_ignity():
        pytest.skip(f"uid {UID} cannot run this interpreter")
    ct.run_dir.mkdir()
    ct.service("me", REPORT.format(out=ct.out, name="me") + "\nexec sleep 1000", user=f"{UID}:{UID}")
    ct.out.chmod(0o777)
    ct.start("/bin/sh", "-c", "ignity wait -u -t 5000 me", wrapper=NON_ROOT, env={"HOME": "/"})
    assert ct.wait() == 0, ct.diag()
    assert ids(ct, "me")["Uid"] == [str(UID)] * 4
    ct.write("services/other/run", "#!/bin/sh\nexec sleep 1000\n", mode=0o755)
    ct.write("services/other/user", "0\n")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd", wrapper=NON_ROOT, env={"HOME": "/"})
    assert ct.wait() == 100, ct.diag()
    assert f"services-state/other/user: ignity runs as uid {UID}, not root" in ct.stderr, ct.diag()
    assert ct.read("cmd") == ""


def test_env_dir_and_env_file_are_the_services_own(ct):
    ct.envfile("00-all", "SHARED=from-envs\nPORT=80\n")
    ct.service("a", REPORT.format(out=ct.out, name="a") + "\nexec sleep 1000")
    ct.write("services/a/env/PORT", "8081\n")
    ct.write("services/a/env/SHARED", "")  # an empty file unsets it, for this service only
    ct.service("b", REPORT.format(out=ct.out, name="b") + "\nexec sleep 1000")
    ct.write("services/b/env", "PORT=8082\nURL=http://localhost:${PORT}/\n")
    ct.service("c", REPORT.format(out=ct.out, name="c") + "\nexec sleep 1000")
    ct.start()
    for name in "abc":
        ct.wait_file(f"{name}.env")
    a, b, c = env_of(ct, "a"), env_of(ct, "b"), env_of(ct, "c")
    assert a["PORT"] == "8081" and "SHARED" not in a
    assert b["PORT"] == "8082" and b["URL"] == "http://localhost:8082/" and b["SHARED"] == "from-envs"
    assert c["PORT"] == "80" and c["SHARED"] == "from-envs"
    assert ct.stop() == 0, ct.diag()


def test_bad_env_file_stops_the_boot_naming_file_and_line(ct):
    ct.service("a", "exec sleep 1000")
    ct.write("services/a/env", "GOOD=1\nthis is not valid\n")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd")
    assert ct.wait() == 100, ct.diag()
    assert "services-state/a/env line 2: cannot parse" in ct.stderr, ct.diag()
    assert ct.read("cmd") == ""
