"""ignity as PID 1 of real containers (podman + runc), installed by install.sh."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from e2e_support import BASE, FIGURES, median_ms

pytestmark = pytest.mark.skipif(os.environ.get("IGNITY_E2E") != "1",
                                reason="end-to-end tests in containers: set IGNITY_E2E=1 (task e2e)")


def service_dir(tmp_path: Path, name: str, run: str, **files: str) -> Path:
    """A service directory to bind-mount at /etc/ignity/services/NAME (readable by any uid)."""
    d = tmp_path / name
    d.mkdir()
    (d / "run").write_text(run)
    (d / "run").chmod(0o755)
    for fname, content in files.items():
        (d / fname.replace("_", "-")).write_text(content)
    tmp_path.chmod(0o755)
    return d


def mount(d: Path, name: str) -> tuple[str, ...]:
    return ("-v", f"{d}:/etc/ignity/services/{name}:ro")


# ---- exit status, PID 1 --------------------------------------------------------------------------

def test_exit_status_of_the_cmd(podman, installed_image):
    assert podman.run(installed_image, "sh", "-c", "exit 7").returncode == 7


def test_cmd_killed_by_a_signal(podman, installed_image):
    assert podman.run(installed_image, "sh", "-c", "kill -TERM $$").returncode == 128 + 15


def test_cmd_not_found(podman, installed_image):
    proc = podman.run(installed_image, "/no/such/program")
    assert proc.returncode == 127
    assert "/no/such/program" in proc.stderr


def test_init_is_pid_1(podman, installed_image):
    proc = podman.run(installed_image, "sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$")
    assert proc.returncode == 0, proc.stderr
    cmdline, sh_pid = proc.stdout.splitlines()
    assert "/init" in cmdline.split()
    assert int(sh_pid) != 1


def test_orphans_are_reaped(podman, installed_image):
    # a grandchild whose parent exits becomes PID 1's: no zombie stays
    script = "sh -c 'sleep 0.2 & exit 0'; sleep 0.6; grep -l '^State:.*Z' /proc/[0-9]*/status | wc -l"
    proc = podman.run(installed_image, "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0"


# ---- stopping -------------------------------------------------------------------------------------

def test_stop_without_cmd_is_fast_and_clean(podman, package_image):
    name = podman.start(package_image)
    podman.wait_until(name, "test", "-S", "/run/ignity/control")
    elapsed = podman.stop_timed(name)
    FIGURES["podman stop, no CMD"] = f"{elapsed:.2f} s"
    assert podman.exit_code(name) == 0
    assert elapsed < 2.0


def test_stop_with_a_service_that_ignores_term(podman, package_image, tmp_path):
    run = "#!/bin/sh\ntrap '' TERM\necho stubborn up\nwhile :; do sleep 1; done\n"
    svc = service_dir(tmp_path, "stubborn", run)
    name = podman.start(package_image, opts=mount(svc, "stubborn"))
    podman.wait_until(name, "ignity", "wait", "-u", "-t", "5000", "stubborn")
    elapsed = podman.stop_timed(name, timeout=10)
    FIGURES["podman stop, service ignoring TERM (default graces 5 s + 3 s)"] = f"{elapsed:.2f} s"
    # SIGKILL from ignity after IGNITY_SERVICES_GRACETIME (5 s), well before podman's own at 10 s
    assert podman.exit_code(name) == 0, podman.logs(name)
    assert 4.5 < elapsed < 9.0


def test_stop_grace_times_are_settings(podman, package_image, tmp_path):
    run = "#!/bin/sh\ntrap '' TERM\nwhile :; do sleep 1; done\n"
    svc = service_dir(tmp_path, "stubborn", run)
    # and an orphan that ignores TERM too: only the final SIGKILL (IGNITY_KILL_GRACETIME) ends it
    opts = (*mount(svc, "stubborn"), "-e", "IGNITY_SERVICES_GRACETIME=500", "-e", "IGNITY_KILL_GRACETIME=500")
    name = podman.start(package_image, "sh", "-c", "(trap '' TERM; exec sleep 1000) & exec sleep 1000",
                        opts=opts)
    podman.wait_until(name, "ignity", "wait", "-u", "-t", "5000", "stubborn")
    elapsed = podman.stop_timed(name, timeout=10)
    assert podman.exit_code(name) == 128 + 15  # the CMD (sleep) died of podman's SIGTERM
    assert elapsed < 3.0, podman.logs(name)


# ---- signals --------------------------------------------------------------------------------------

def test_kill_usr1_reaches_the_cmd(podman, installed_image):
    script = "trap 'echo got USR1; exit 42' USR1; echo waiting; while :; do sleep 0.1; done"
    name = podman.start(installed_image, "sh", "-c", script)
    podman.wait_for_log(name, "waiting")
    podman("kill", "-s", "USR1", name, check=True)
    assert podman.exit_code(name) == 42
    assert "got USR1" in podman.logs(name)


# ---- the example image (Dockerfile.example) ---------------------------------------------------------

def test_example_image_runs_its_service_and_logger(podman, example_image):
    name = podman.start(example_image)
    ready = podman.exec(name, "ignity", "wait", "-U", "-t", "10000", "app")
    assert ready.returncode == 0, ready.stderr + podman.logs(name)
    logs = podman.wait_for_log(name, "cmd: the app answers: hello from ignity")
    assert "init: /var/lib/app is writable by uid 1000" in logs
    assert "[app] app: listening on port 8080" in logs           # the service, through its logger
    assert "[app] app: GET / from 127.0.0.1" in logs

    status = json.loads(podman.exec(name, "ignity", "status", "--json").stdout)
    (app,) = [s for s in status["services"] if s["name"] == "app"]
    assert app["state"] == "up" and app["ready"], status
    assert podman.exec(name, "id", "-u").stdout.strip() == "1000"  # USER from preboot
    booted = podman.exec(name, "with-env", "sh", "-c", "echo $APP_BOOTED_AT").stdout.strip()
    assert booted.startswith("20"), booted                         # set by the init script
    assert podman.exec(name, "stat", "-c", "%u:%g %a", "/var/lib/app").stdout.strip() == "1000:1000 750"

    podman("kill", "-s", "USR1", name, check=True)
    podman.wait_for_log(name, "cmd: USR1 received")

    elapsed = podman.stop_timed(name)
    assert podman.exit_code(name) == 0
    logs = podman.logs(name)
    assert "cmd: TERM received, exiting" in logs
    assert "[app] app: SIGTERM received, stopping" in logs
    assert "[app] app: bye" in logs                                 # the logger outlives its service
    assert elapsed < 2.0


def _read_only_non_root(podman, image, *tmpfs):
    opts = ("--user", "1000:1000", "--read-only", *tmpfs)
    proc = podman.run(image, "sh", "-c", "ignity status && id -u", opts=opts)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "init: /var/lib/app is not writable" in proc.stdout
    assert "1000" in proc.stdout.splitlines()
    assert "app" in proc.stdout and "up" in proc.stdout


def test_example_image_read_only_non_root(podman, example_image):
    # Docker's semantics (no tmpfs on /run besides ours): preboot's /run/ignity is mode 1777, and
    # runc gives that mode to the tmpfs mounted on it
    _read_only_non_root(podman, example_image, "--read-only-tmpfs=false", "--tmpfs", "/run/ignity")


def test_example_image_read_only_non_root_podman(podman, example_image):
    # podman's --read-only mounts a tmpfs on /run with a copy of the image's /run: /run/ignity is
    # there, still the user's; a tmpfs of ours on top would be root's 1755 (the copy drops the
    # write bits), unless podman chowns it (:U)
    _read_only_non_root(podman, example_image)
    _read_only_non_root(podman, example_image, "--tmpfs", "/run/ignity:U")


def test_example_image_cmd_status(podman, example_image):
    # the CMD runs after the app is ready (IGNITY_CMD_WAIT_FOR_SERVICES=1): it can use it at once
    script = "python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:8080/\")' && exit 7"
    proc = podman.run(example_image, "sh", "-c", script)
    assert proc.returncode == 7, proc.stdout + proc.stderr


def test_runtime_dir_not_writable(podman, package_image):
    proc = podman.run(package_image, "true", opts=("--user", "1000:1000"))
    assert proc.returncode == 100
    assert "/run/ignity" in proc.stderr


def test_non_root_with_a_tmpfs(podman, package_image):
    proc = podman.run(package_image, "sh", "-c", "id -u",
                      opts=("--user", "1000:1000", "--read-only", "--tmpfs", "/run/ignity"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1000"


def test_service_on_a_noexec_tmpfs(podman, package_image, tmp_path):
    # Docker's --tmpfs is noexec by default (podman's is not): the services still have to start
    svc = service_dir(tmp_path, "hello", "#!/bin/sh\necho hello up\nexec sleep 1000\n")
    opts = (*mount(svc, "hello"), "--read-only", "--tmpfs", "/run/ignity:rw,noexec,nosuid,nodev")
    proc = podman.run(package_image, "ignity", "wait", "-u", "-t", "3000", "hello", opts=opts)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_with_contenv_as_a_shebang(podman, installed_image):
    # a script with `#!/usr/bin/with-contenv sh` (a launcher that is itself a script) sees the envdir
    script = ("printf '#!/usr/bin/with-contenv sh\\necho FOO=$FOO\\n' > /tmp/s && chmod +x /tmp/s "
              "&& printf 'bar\\n' > /run/ignity/envs/FOO && /tmp/s")
    proc = podman.run(installed_image, "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "FOO=bar"


# ---- isolation and timing ---------------------------------------------------------------------------

def test_isolated_from_the_images_python(podman, package_image):
    # the image's python does not see ignity's packages ...
    proc = podman.run(package_image, "python3", "-c", "import jinja2")
    assert proc.returncode == 1 and "No module named 'jinja2'" in proc.stderr
    # ... and ignity does not see the image's: a broken psutil on PYTHONPATH changes nothing
    script = ("mkdir -p /tmp/evil && echo 'raise SystemExit(99)' > /tmp/evil/psutil.py "
              "&& PYTHONPATH=/tmp/evil /init sh -c 'exit 5'")
    assert podman.run(package_image, "sh", "-c", script).returncode == 5


def test_install_leaves_nothing_behind(podman, package_image):
    # what install.sh changed in the image: its own files and nothing else (no caches, no pip)
    diff = podman("diff", BASE, package_image, check=True).stdout.split("\n")
    expected = ("/opt", "/opt/ignity", "/init", "/etc", "/etc/ignity", "/usr", "/usr/bin",
                *(f"/usr/bin/{n}" for n in ("ignity", "with-env", "with-contenv", "preboot", "ignity-s6")))
    changed = {line.split(" ", 1)[1] for line in diff if line.strip()}
    assert {p for p in changed if not p.startswith(("/opt/ignity/", "/etc/ignity/"))} <= set(expected)
    proc = podman.run(package_image, "sh", "-c", "find /opt/ignity -name 'pip*' -o -name RECORD -o -name tests; "
                      "ls -A /etc/ignity /etc/ignity/services")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["/etc/ignity:", "README", "envs", "finalize", "init", "perms", "services",
                                   "/etc/ignity/services:", ".keep"]


def test_init_true_time(podman, package_image):
    script = """
import os, subprocess, sys, time
samples = []
for _ in range(20):
    t = time.perf_counter()
    subprocess.run(sys.argv[1:], check=True)
    samples.append(time.perf_counter() - t)
print(" ".join(f"{s:.4f}" for s in samples))
"""
    proc = podman.run(package_image, "python3", "-c", script, "/init", "true",
                      opts=("-e", "IGNITY_VERBOSITY=0"))
    assert proc.returncode == 0, proc.stderr
    samples = [float(s) for s in proc.stdout.split()]
    FIGURES["/init true inside the container (not PID 1)"] = median_ms(samples)

    for label, image, cmd in (("without ignity: podman run --rm BASE true", BASE, ("true",)),
                              ("with ignity: podman run --rm IMAGE true", package_image, ("true",))):
        runs = []
        for _ in range(7):
            t0 = time.monotonic()
            assert podman.run(image, *cmd).returncode == 0
            runs.append(time.monotonic() - t0)
        FIGURES[label] = median_ms(runs)


# ---- install.sh's errors ----------------------------------------------------------------------------

def test_install_without_python(podman, package_dir):
    proc = podman.run(BASE, "sh", "-c", "rm /usr/bin/python3* && /bin/sh /pkg/install.sh",
                      opts=("-v", f"{package_dir}:/pkg:ro"))
    assert proc.returncode == 1
    assert "no python3 found" in proc.stderr
    for hint in ("apt-get install", "apk add", "dnf install"):
        assert hint in proc.stderr


def test_install_with_a_too_old_python(podman, package_dir):
    fake = ("mkdir /tmp/old && printf '#!/bin/sh\\n[ \"$1\" = -V ] && echo Python 3.8.10 || exit 1\\n' "
            "> /tmp/old/python3 && chmod +x /tmp/old/python3")
    script = f"rm /usr/bin/python3* && {fake} && PATH=/tmp/old:$PATH /bin/sh /pkg/install.sh"
    proc = podman.run(BASE, "sh", "-c", script, opts=("-v", f"{package_dir}:/pkg:ro"))
    assert proc.returncode == 1
    assert "/tmp/old/python3 (Python 3.8.10), too old" in proc.stderr


def test_reinstall_keeps_the_configuration_and_uninstall_removes_ignity(podman, package_image, package_dir):
    script = """set -e
echo 'A=1' > /etc/ignity/envs/00-mine
sh /pkg/install.sh 2>/dev/null
/init sh -c 'test "$A" = 1 && exit 3' || echo "status $?"
sh /pkg/install.sh --uninstall
ls /init /usr/bin/ignity /opt/ignity 2>&1 | grep -c 'No such file'
cat /etc/ignity/envs/00-mine
"""
    proc = podman.run(package_image, "sh", "-c", script, opts=("-v", f"{package_dir}:/pkg:ro"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["status", "3", "3", "A=1"]


def test_preboot_without_useradd(podman, package_image):
    script = ("rm -f /usr/sbin/useradd /usr/sbin/groupadd /usr/sbin/adduser /usr/sbin/addgroup "
              "&& USER=bob USERMAP_UID=1234 USERMAP_GID=1234 preboot "
              "&& grep bob /etc/passwd /etc/group && stat -c '%u:%g' /run/ignity")
    proc = podman.run(package_image, "sh", "-c", script)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/etc/passwd:bob:x:1234:1234:" in proc.stdout
    assert "/etc/group:bob:x:1234:" in proc.stdout
    assert proc.stdout.split()[-1] == "1234:1234"
