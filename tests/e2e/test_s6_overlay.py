"""An image configured as s6-overlay v3's README shows, with ignity installed in its place
(`install.sh --s6-compat`): the same order, readiness, logs, exit status and a graceful stop."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from e2e_support import PREFIX

# the configuration, file by file, as s6-overlay's README writes it (mode 0755 for programs)
TREE = {
    "etc/cont-init.d/01-contenv-example": "#!/command/with-contenv sh\necho \"cont-init: GREETING=$GREETING\"\n",
    "etc/cont-init.d/02-myapp-log-prepare": (
        "#!/bin/sh -e\nmkdir -p /var/log/myapp\nchown nobody:nogroup /var/log/myapp\nchmod 02755 /var/log/myapp\n"),
    "etc/services.d/myapp/run": "#!/bin/sh\nexec 2>&1\necho \"myapp: started\"\nexec sleep 1000\n",
    "etc/services.d/myapp/log/run": "#!/bin/sh\nexec logutil-service /var/log/myapp\n",
    "etc/services.d/ready/run": "#!/command/execlineb -P\ns6-notifyoncheck -w 100 sleep 1000\n",
    "etc/services.d/ready/notification-fd": "3\n",
    # not ready at the first check, ready at the second
    "etc/services.d/ready/data/check": "#!/bin/sh\ntest -e /tmp/checked && exit 0\ntouch /tmp/checked\nexit 1\n",
    "etc/fix-attrs.d/01-data": "/data true nobody,32768:32768 0600 0700\n",
    "etc/cont-finish.d/01-bye": "#!/bin/sh\necho \"cont-finish: bye\"\n",
    "data/file": "secret\n",
    # the s6-rc way, as the README rewrites the same service: a oneshot, a pipeline, the user bundle
    "etc/s6-overlay/s6-rc.d/rcapp-log-prepare/type": "oneshot\n",
    "etc/s6-overlay/s6-rc.d/rcapp-log-prepare/dependencies.d/base": "",
    "etc/s6-overlay/s6-rc.d/rcapp-log-prepare/up": (
        "if { mkdir -p /var/log/rcapp }\nif { chown nobody:nogroup /var/log/rcapp }\nchmod 02755 /var/log/rcapp\n"),
    "etc/s6-overlay/s6-rc.d/rcapp/type": "longrun\n",
    "etc/s6-overlay/s6-rc.d/rcapp/dependencies.d/base": "",
    "etc/s6-overlay/s6-rc.d/rcapp/run": "#!/bin/sh\nexec 2>&1\necho \"rcapp: started\"\nexec sleep 1000\n",
    "etc/s6-overlay/s6-rc.d/rcapp/producer-for": "rcapp-log\n",
    "etc/s6-overlay/s6-rc.d/rcapp-log/type": "longrun\n",
    "etc/s6-overlay/s6-rc.d/rcapp-log/dependencies.d/rcapp-log-prepare": "",
    "etc/s6-overlay/s6-rc.d/rcapp-log/run": "#!/bin/sh\nexec logutil-service /var/log/rcapp\n",
    "etc/s6-overlay/s6-rc.d/rcapp-log/consumer-for": "rcapp\n",
    "etc/s6-overlay/s6-rc.d/rcapp-log/pipeline-name": "rcapp-pipeline\n",
    "etc/s6-overlay/user-bundles.d/user/contents.d/rcapp-pipeline": "",
}
DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN --mount=type=bind,source=.,target=/tmp/ignity sh /tmp/ignity/install.sh --s6-compat
COPY rootfs/ /
ENV GREETING=hello S6_VERBOSITY=1 S6_KILL_GRACETIME=1000 S6_CMD_WAIT_FOR_SERVICES=1
ENTRYPOINT ["/init"]
"""


@pytest.fixture(scope="module")
def s6_image(podman_session, package_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    ctx = tmp_path_factory.mktemp("s6-overlay") / "ctx"
    shutil.copytree(package_dir, ctx)
    for rel, text in TREE.items():
        path = ctx / "rootfs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755 if text.startswith("#!") else 0o644)
    return podman_session.build(f"{PREFIX}-s6-overlay", ctx, DOCKERFILE)


def test_boot_order_readiness_logs_and_cmd_status(podman, s6_image):
    # S6_CMD_WAIT_FOR_SERVICES: the CMD starts once `ready` is (s6-notifyoncheck, run through the
    # single-command execlineb), then looks around
    cmd = ("s6-svstat -o ready /run/service/ready && s6-svstat /run/service/myapp"
           " && sleep 0.5 && cat /var/log/myapp/current && stat -c '%U %a' /data /data/file"
           " && printcontenv GREETING && s6-svwait -u -t 5000 /run/service/rcapp && sleep 0.5"
           " && cat /var/log/rcapp/current && stat -c '%U %a' /var/log/rcapp; exit 3")
    proc = podman.run(s6_image, "sh", "-c", cmd, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    lines = proc.stdout.splitlines()
    assert lines[0] == "cont-init: GREETING=hello" and lines[1] == "true", out  # ready before the CMD
    assert lines[2].startswith("up (pid "), out
    assert "Z myapp: started" in proc.stdout, out  # logutil-service's ISO stamps (S6_LOGGING_SCRIPT's T)
    assert "nobody 700\nnobody 600\n" in proc.stdout, out
    assert "hello\n" in proc.stdout
    assert "Z rcapp: started" in proc.stdout and "nobody 2755" in proc.stdout, out  # the s6-rc pipeline
    assert lines[-1] == "cont-finish: bye", out


def test_graceful_stop_is_fast(podman, s6_image):
    name = podman.start(s6_image, opts=("-e", "S6_CMD_WAIT_FOR_SERVICES=0"))
    # `podman exec` has the image's PATH, without /command: as with s6-overlay, name the path
    podman.wait_until(name, "/command/s6-svwait", "-u", "-t", "5000", "/run/service/myapp")
    started = time.monotonic()
    podman("stop", "-t", "10", name, timeout=30, check=True)
    elapsed = time.monotonic() - started
    assert podman.exit_code(name) == 0, podman.logs(name)
    assert "cont-finish: bye" in podman.logs(name)
    assert elapsed < 3.0, elapsed  # s6-overlay sleeps S6_KILL_GRACETIME in full; ignity ends when all is gone
