"""The s6-overlay compatibility layer (docs/migrating.md): s6-overlay's legacy directories under a
relocated root (IGNITY_S6_ROOT), S6_* settings, and the s6 commands against a live ignity."""

from __future__ import annotations

import os
import signal
import stat
import textwrap
from pathlib import Path

from .harness import STD_PATH, VENV_BIN, sh, wait_for

SHIMS = ("s6-svc", "s6-svwait", "s6-svstat", "s6-svscanctl", "s6-setuidgid", "s6-envuidgid", "printcontenv",
         "with-contenv", "execlineb", "s6-notifyoncheck", "logutil-service")


class S6Image:
    """An s6-overlay image's tree under ct.base/root, and the commands at root/command."""

    def __init__(self, ct):
        self.ct = ct
        self.root = ct.base / "root"
        command = self.root / "command"
        command.mkdir(parents=True)
        for name in SHIMS:
            (command / name).symlink_to(Path(VENV_BIN) / "ignity-s6")

    def file(self, rel: str, text: str = "", mode: int = 0o755) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text.startswith("#!") or mode & 0o111 == 0 else sh(text))
        path.chmod(mode)
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return {"IGNITY_S6_COMPAT": "1", **self._paths(), **extra}

    def _paths(self) -> dict[str, str]:
        return {"IGNITY_S6_ROOT": str(self.root), "PATH": f"{self.root}/command:{VENV_BIN}:{STD_PATH}"}

    def exec(self, *argv: str):
        """A command inside the container, finding the s6 commands first (as /command in an image)."""
        return self.ct.exec(*argv, env=self._paths())


def test_legacy_layout_runs_in_s6_overlay_order(ct):
    """fix-attrs.d (after perms/), cont-init.d (before init/), services.d (beside services/), the
    CMD, then cont-finish.d once the services are down; the CMD's status is the container's."""
    img = S6Image(ct)
    order = ct.out / "order"
    data = ct.out / "data"
    data.mkdir()
    (data / "f").write_text("x")
    img.file("etc/fix-attrs.d/01-data", f"{data} true 0:0 0600 0700\n", mode=0o644)
    img.file("etc/cont-init.d/10-a", f"echo cont-init-a >> {order}")
    img.file("etc/cont-init.d/20-b", f"#!/command/with-contenv sh\necho \"cont-init-b $FROM_ENVS\" >> {order}\n"
             .replace("/command", str(img.root / "command")))
    img.file("etc/cont-init.d/.hidden", f"echo hidden >> {order}")
    ct.envfile("00-x", "FROM_ENVS=yes\n")
    ct.init("10-own", f"echo ignity-init >> {order}")
    img.file("etc/services.d/app/run", f"echo app-up >> {order}; exec sleep 100")
    img.file("etc/services.d/app/finish", f"echo app-finish >> {order}")
    ct.finalize("10-own", f"echo ignity-finalize >> {order}")
    img.file("etc/cont-finish.d/10-z", f"pgrep -f 'sleep 100' >/dev/null && echo still-up >> {order}; "
                                        f"echo cont-finish >> {order}")
    wait_app = f"for i in $(seq 400); do grep -qx app-up {order} && break; sleep 0.05; done"
    ct.start("/bin/sh", "-c", f"{wait_app}; echo cmd >> {order}; exit 3", env=img.env())
    assert ct.wait() == 3, ct.diag()
    lines = ct.lines("order")
    assert lines[:5] == ["cont-init-a", "cont-init-b yes", "ignity-init", "app-up", "cmd"], ct.diag()
    assert lines[-1] == "cont-finish" and "still-up" not in lines, lines
    assert lines.index("app-finish") < lines.index("cont-finish")
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700 and stat.S_IMODE(os.stat(data / "f").st_mode) == 0o600


def test_runtime_paths_and_commands(ct):
    """/run/s6/container_environment, /run/service/NAME and the s6 commands at work."""
    img = S6Image(ct)
    img.file("etc/services.d/app/run", "exec sleep 100")
    img.file("etc/services.d/app/notification-fd", "3\n", mode=0o644)
    img.file("etc/services.d/app/data/check", "exit 0")
    # s6-notifyoncheck polls data/check and writes the readiness line on fd 3
    img.file("etc/services.d/app/run", "exec s6-notifyoncheck -w 50 sleep 100")
    img.file("etc/services.d/idle/run", "exec sleep 100")
    img.file("etc/services.d/idle/down", "", mode=0o644)
    ct.envfile("00-x", "GREETING=hello\n")
    ct.start(env=img.env())
    ct.wait_up("app", ready=True)
    envdir = img.root / "run/s6/container_environment"
    assert (envdir / "GREETING").read_text() == "hello\n"
    assert os.path.realpath(img.root / "run/service/app") == os.path.realpath(ct.state_dir("app"))
    svc = str(img.root / "run/service")
    r = img.exec("printcontenv", "GREETING")
    assert (r.returncode, r.stdout) == (0, "hello\n"), r
    assert img.exec("printcontenv", "NOPE").returncode == 1
    r = img.exec("s6-svstat", f"{svc}/app")
    assert r.returncode == 0 and r.stdout.startswith("up (pid ") and "ready" in r.stdout, r
    r = img.exec("s6-svstat", "-o", "up,ready,normallyup", f"{svc}/idle")
    assert r.stdout == "false false false\n", r
    # the original ignity's recipe: remove the down file, s6-svc -u on services-state/NAME
    r = img.exec("s6-svc", "-uwu", "-T", "5000", str(ct.state_dir("idle")))
    assert r.returncode == 0, r
    assert img.exec("s6-svwait", "-u", "-t", "5000", f"{svc}/idle").returncode == 0
    r = img.exec("s6-svc", "-d", f"{svc}/idle")
    assert r.returncode == 0, r
    assert img.exec("s6-svwait", "-D", "-t", "5000", f"{svc}/idle").returncode == 0
    # errors: an option ignity does not take is named; an unknown service is s6's 102
    r = img.exec("s6-svc", "-x", f"{svc}/app")
    assert r.returncode == 100 and "-x" in r.stderr, r
    r = img.exec("s6-svc", "-u", f"{svc}/nope")
    assert r.returncode == 102, r
    r = img.exec("s6-svwait", "-U", "-t", "100", f"{svc}/idle")
    assert r.returncode == 99, r
    # s6-svscanctl -t, as the original ignity's finish scripts do it: the container stops
    img.exec("s6-svscanctl", "-t", str(ct.run_dir / "services-state"))  # the shutdown may kill it first
    assert ct.wait() == 0, ct.diag()


def test_halt_takes_the_exitcode_file(ct):
    """s6-overlay's recipe: a finish script writes the status to the exitcode file and runs
    /run/s6/basedir/bin/halt; the container exits with it."""
    img = S6Image(ct)
    exitcode = img.root / "run/s6-linux-init-container-results/exitcode"
    halt = img.root / "run/s6/basedir/bin/halt"
    img.file("etc/services.d/main/run", "exit 7")
    img.file("etc/services.d/main/finish", f"""
        if test "$1" -eq 256; then e=$((128 + $2)); else e="$1"; fi
        echo "$e" > {exitcode}
        exec {halt}
    """)
    ct.start(env=img.env())
    assert ct.wait() == 7, ct.diag()


def test_docker_stop_takes_the_exitcode_file(ct):
    """No CMD, `docker stop`: the status a finish script wrote at shutdown is the container's."""
    img = S6Image(ct)
    exitcode = img.root / "run/s6-linux-init-container-results/exitcode"
    img.file("etc/services.d/main/run", "exec sleep 100")
    img.file("etc/services.d/main/finish", f"echo $((128 + $2)) > {exitcode}")
    ct.start(env=img.env())
    ct.wait_up("main")
    assert ct.stop() == 128 + signal.SIGTERM, ct.diag()


def test_cont_init_failure_follows_behaviour(ct):
    """S6_BEHAVIOUR_IF_STAGE2_FAILS: 0 goes on (every script runs, the CMD too); 2 runs every
    cont-init.d script, then stops the boot with 1."""
    img = S6Image(ct)
    order = ct.out / "order"
    img.file("etc/cont-init.d/10-fail", f"echo fail >> {order}; exit 5")
    img.file("etc/cont-init.d/20-next", f"echo next >> {order}")
    ct.start("/bin/sh", "-c", f"echo cmd >> {order}", env=img.env())
    assert ct.wait() == 0, ct.diag()
    assert ct.lines("order") == ["fail", "next", "cmd"]
    order.unlink()
    ct.start("/bin/sh", "-c", f"echo cmd >> {order}", env=img.env(S6_BEHAVIOUR_IF_STAGE2_FAILS="2"))
    assert ct.wait() == 1, ct.diag()
    assert ct.lines("order") == ["fail", "next"]
    assert "S6_BEHAVIOUR_IF_STAGE2_FAILS=2" in ct.stderr


def test_s6_settings(ct):
    """S6_CMD_ARG0 goes before the CMD; S6_LOGGING=1 is refused with one line (exit 100)."""
    img = S6Image(ct)
    ct.start("-c", f"echo arg0 > {ct.out}/arg0", env=img.env(S6_CMD_ARG0="/bin/sh"))
    assert ct.wait() == 0, ct.diag()
    assert ct.read("arg0") == "arg0\n"
    ct.start("true", env=img.env(S6_LOGGING="1"))
    assert ct.wait() == 100
    assert "S6_LOGGING" in ct.stderr and len(ct.stderr.splitlines()) == 1, ct.stderr


def test_without_compat_one_line_says_what_to_do(ct):
    img = S6Image(ct)
    img.file("etc/services.d/app/run", "exec sleep 100")
    img.file("etc/cont-init.d/10-a", "true")
    ct.start("true", env={"IGNITY_S6_ROOT": str(img.root)})
    assert ct.wait() == 0, ct.diag()
    lines = [line for line in ct.stderr.splitlines() if "s6-overlay" in line]
    assert len(lines) == 1 and "/etc/services.d" in lines[0] and "--s6-compat" in lines[0], ct.stderr


def test_execlineb_single_command_without_execline(tmp_path):
    """execlineb's single-command form runs without execline; more than that names the package."""
    import subprocess

    script = tmp_path / "run"
    script.write_text(textwrap.dedent(f"""\
        #!/command/execlineb -P
        # a comment
        /bin/sh -c "echo \\"$0 ran\\" > {tmp_path}/out" "the script"
    """))
    env = {"PATH": VENV_BIN}  # no execlineb there
    r = subprocess.run([f"{VENV_BIN}/ignity-s6", "execlineb", "-P", str(script)], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0, r
    assert (tmp_path / "out").read_text() == "the script ran\n"
    # s6-overlay's README writes oneshots as chains of `if` blocks: run without execline too
    script.write_text(f"if {{ /bin/mkdir -p {tmp_path}/made }}\n/bin/touch {tmp_path}/made/done\n")
    r = subprocess.run([f"{VENV_BIN}/ignity-s6", "execlineb", "-P", str(script)], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 0 and (tmp_path / "made" / "done").exists(), r
    script.write_text("background { /bin/true } /bin/true\n")
    r = subprocess.run([f"{VENV_BIN}/ignity-s6", "execlineb", "-P", str(script)], env=env, capture_output=True,
                       text=True)
    assert r.returncode == 126 and str(script) in r.stderr and "execline package" in r.stderr, r


def test_s6_rc_definition_that_cannot_be_mapped_stops_the_boot(ct):
    img = S6Image(ct)
    img.file("etc/s6-overlay/s6-rc.d/myapp/type", "longrun\n", mode=0o644)
    img.file("etc/s6-overlay/s6-rc.d/myapp/dependencies.d/nope", "", mode=0o644)
    img.file("etc/s6-overlay/s6-rc.d/myapp/run", "exec sleep 100")
    ct.start("true", env=img.env())
    assert ct.wait() == 100
    assert "myapp/dependencies.d" in ct.stderr and "nope" in ct.stderr, ct.stderr


def test_logutil_service_logs_as_nobody(ct):
    """s6-overlay's logger recipe: log/run is `exec logutil-service DIR`; the lines land in DIR/current
    with S6_LOGGING_SCRIPT's ISO timestamps, written as nobody."""
    img = S6Image(ct)
    logs = ct.out / "logs"
    logs.mkdir(mode=0o777)
    logs.chmod(0o777)
    img.file("etc/services.d/app/run", "echo hello from app; exec sleep 100")
    img.file("etc/services.d/app/log/run", f"exec logutil-service {logs}/app")
    ct.start(env=img.env())
    wait_for(lambda: "hello from app" in (logs / "app" / "current").read_text()
             if (logs / "app" / "current").exists() else False, 10, "the log line", diag=ct.diag)
    line = (logs / "app" / "current").read_text().splitlines()[0]
    assert line.endswith("Z hello from app") and line[:4].isdigit(), line
    assert (logs / "app" / "current").stat().st_uid == 65534


def test_services_not_ready_stop_the_boot_with_behaviour_2(ct):
    """S6_CMD_WAIT_FOR_SERVICES with a bound: a service never ready stops the boot (1) under
    S6_BEHAVIOUR_IF_STAGE2_FAILS=2; ignity's own rule (start the CMD anyway) otherwise."""
    img = S6Image(ct)
    img.file("etc/services.d/slow/run", "exec sleep 100")
    img.file("etc/services.d/slow/notification-fd", "3\n", mode=0o644)
    wait = {"S6_CMD_WAIT_FOR_SERVICES": "1", "S6_CMD_WAIT_FOR_SERVICES_MAXTIME": "300"}
    ct.start("/bin/sh", "-c", f"echo cmd > {ct.out}/cmd", env=img.env(**wait, S6_BEHAVIOUR_IF_STAGE2_FAILS="2"))
    assert ct.wait() == 1, ct.diag()
    assert ct.read("cmd") == ""
    ct.start("/bin/sh", "-c", f"echo cmd > {ct.out}/cmd", env=img.env(**wait))
    assert ct.wait() == 0, ct.diag()
    assert ct.read("cmd") == "cmd\n"


def test_s6_rc_layout(ct):
    """s6-overlay v3's s6-rc.d, as its README writes it: a oneshot preparing, a longrun and its
    logger (producer-for / consumer-for / pipeline-name) in the user bundle, a user2 longrun after
    the legacy services, a multi-command execline `up` (run by the machine's execlineb), a `down`
    at shutdown, a longrun in no bundle left down."""
    img = S6Image(ct)
    order = ct.out / "order"
    rc = "etc/s6-overlay/s6-rc.d"
    files = {
        f"{rc}/prepare/type": "oneshot\n",
        f"{rc}/prepare/dependencies.d/base": "",
        f"{rc}/prepare/up": f'/bin/sh -c "echo prepare >> {order}"\n',
        f"{rc}/prepare/down": f'/bin/sh -c "echo prepare-down >> {order}"\n',
        f"{rc}/mkdirs/type": "oneshot\n",
        f"{rc}/mkdirs/up": f"if {{ mkdir -p {ct.out}/made }}\ntouch {ct.out}/made/done\n",
        f"{rc}/myapp/type": "longrun\n",
        f"{rc}/myapp/dependencies.d/base": "",
        f"{rc}/myapp/producer-for": "myapp-log\n",
        f"{rc}/myapp-log/type": "longrun\n",
        f"{rc}/myapp-log/dependencies.d/prepare": "",
        f"{rc}/myapp-log/consumer-for": "myapp\n",
        f"{rc}/myapp-log/pipeline-name": "myapp-pipeline\n",
        f"{rc}/late/type": "longrun\n",
        f"{rc}/late/dependencies.d/legacy-services": "",
        f"{rc}/spare/type": "longrun\n",
        "etc/s6-overlay/user-bundles.d/user/contents.d/myapp-pipeline": "",
        "etc/s6-overlay/user-bundles.d/user/contents.d/mkdirs": "",
        "etc/s6-overlay/user-bundles.d/user2/contents.d/late": "",
    }
    for rel, text in files.items():
        img.file(rel, text, mode=0o644)
    img.file(f"{rc}/myapp/run", f"echo myapp >> {order}; echo hello; exec sleep 100")
    img.file(f"{rc}/myapp-log/run", f"while read -r line; do echo \"log: $line\" >> {ct.out}/log; done")
    img.file(f"{rc}/late/run", f"echo late >> {order}; exec sleep 100")
    img.file(f"{rc}/spare/run", f"echo spare >> {order}; exec sleep 100")
    img.file("etc/services.d/old/run", f"sleep 0.2; echo old >> {order}; echo >&3; exec sleep 100")
    img.file("etc/services.d/old/notification-fd", "3\n", mode=0o644)
    # the CMD ends once both have run (up is not enough: their first line may not be written yet)
    cmd = (f"for i in $(seq 400); do grep -qx late {order} && grep -q hello {ct.out}/log && exit 0; "
           "sleep 0.05; done; exit 1")
    ct.start("/bin/sh", "-c", cmd, env=img.env())
    assert ct.wait() == 0, ct.diag()
    lines = ct.lines("order")
    assert lines.index("prepare") < lines.index("myapp"), lines
    assert lines.index("old") < lines.index("late"), lines
    assert "spare" not in lines and lines[-1] == "prepare-down", lines
    assert ct.read("log") == "log: hello\n"
    assert (ct.out / "made" / "done").exists()


def test_stage2_hook_profile_and_hidden_fix_attrs(ct):
    """S6_STAGE2_HOOK runs before cont-init.d (its failure stops the boot under BEHAVIOUR 2);
    S6_RUNTIME_PROFILE reads /etc/cont-profile.d/NAME; S6_FIX_ATTRS_HIDDEN reads dot-files."""
    img = S6Image(ct)
    order = ct.out / "order"
    data = ct.out / "data"
    data.mkdir()
    img.file("etc/cont-profile.d/dev/cont-init.d/10-a", f"echo profile-init >> {order}")
    img.file("etc/cont-init.d/10-a", f"echo plain-init >> {order}")
    img.file("etc/cont-profile.d/dev/fix-attrs.d/.hidden", f"{data} false 0:0 0600 0750\n", mode=0o644)
    env = img.env(S6_STAGE2_HOOK=f"echo hook >> {order}", S6_RUNTIME_PROFILE="dev", S6_FIX_ATTRS_HIDDEN="1")
    ct.start("true", env=env)
    assert ct.wait() == 0, ct.diag()
    assert ct.lines("order") == ["hook", "profile-init"]
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o750
    order.unlink()
    ct.start("true", env=img.env(S6_STAGE2_HOOK="exit 6", S6_BEHAVIOUR_IF_STAGE2_FAILS="2"))
    assert ct.wait() == 6, ct.diag()
    assert ct.read("order") == ""


def test_cmd_receive_signals(ct):
    """S6_CMD_RECEIVE_SIGNALS=1: `docker stop`'s SIGTERM goes to the CMD only; the services keep
    running until the CMD has exited (here 2 s after the signal, on its own terms)."""
    img = S6Image(ct)
    img.file("etc/services.d/app/run", f"trap 'echo $(date +%s.%N) > {ct.out}/app-stopped; exit 0' TERM; "
                                       f"touch {ct.out}/app-ready; while :; do sleep 0.05; done")
    cmd = (f"trap 'sleep 1; echo $(date +%s.%N) > {ct.out}/cmd-done; exit 5' TERM; touch {ct.out}/cmd-ready; "
           "while :; do sleep 0.05; done")
    ct.start("/bin/sh", "-c", cmd, env=img.env(S6_CMD_RECEIVE_SIGNALS="1"))
    ct.wait_file("app-ready")
    ct.wait_file("cmd-ready")
    assert ct.stop() == 5, ct.diag()
    assert float(ct.read("cmd-done")) <= float(ct.read("app-stopped")), ct.diag()


def test_halt_during_the_cmd_takes_the_exitcode_file(ct):
    """As s6-overlay: a service's finish writes the exitcode file and halts while the CMD runs:
    the file's status is the container's, not the status of the CMD killed by the shutdown. A CMD
    that ends by itself keeps its own status."""
    img = S6Image(ct)
    exitcode = img.root / "run/s6-linux-init-container-results/exitcode"
    img.file("etc/services.d/main/run", f"until [ -e {ct.out}/go ]; do sleep 0.02; done; exit 9")
    img.file("etc/services.d/main/finish", f"echo \"$1\" > {exitcode}; exec {img.root}/run/s6/basedir/bin/halt")
    ct.start("/bin/sh", "-c", f"touch {ct.out}/go; exec sleep 100", env=img.env())
    assert ct.wait() == 9, ct.diag()
    (ct.out / "go").unlink()
    ct.start("/bin/sh", "-c", "exit 4", env=img.env())
    assert ct.wait() == 4, ct.diag()
