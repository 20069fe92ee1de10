"""templates/: Jinja2 templates rendered at boot (stage 2, before perms and init scripts) from the
merged environment to the same path under IGNITY_TEMPLATES_ROOT with .j2 removed; a mistake or a
read-only target stops the boot with 100, naming template:line or the path."""

from __future__ import annotations

import os
import stat


def test_rendered_before_perms_and_init_scripts(ct):
    """The CMD and init scripts see the rendered file; perms already applies to it (so rendering
    happens first); the envs/ files and the container's environment both reach the template."""
    root = ct.base / "root"
    ct.write("templates/etc/app/app.conf.j2", "port={{ PORT }}\nhost={{ HOST }}\n"
             "{% if DEBUG is defined %}debug=on\n{% endif %}")
    ct.envfile("00-app", "PORT=8080\n")
    ct.write("perms/00-app", f"{root}/etc/app/app.conf false 0:0 0600 0755\n")
    ct.init("10-read", f"cat {root}/etc/app/app.conf > {ct.out}/init")
    ct.start("/bin/sh", "-c", f"cat {root}/etc/app/app.conf", env={"IGNITY_TEMPLATES_ROOT": str(root), "HOST": "db"})
    assert ct.wait() == 0, ct.diag()
    assert ct.stdout == "port=8080\nhost=db\n"
    assert ct.read("init") == ct.stdout
    assert stat.S_IMODE(os.stat(root / "etc/app/app.conf").st_mode) == 0o600


def test_undefined_variable_stops_the_boot_naming_template_and_line(ct):
    ct.write("templates/etc/a.conf.j2", "a=1\nb={{ MISSING }}\n")
    ct.init("10", f"echo ran > {ct.out}/init")
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd", env={"IGNITY_TEMPLATES_ROOT": str(ct.base / "root")})
    assert ct.wait() == 100, ct.diag()
    assert "templates/etc/a.conf.j2:2: 'MISSING' is undefined" in ct.stderr
    assert (ct.read("init"), ct.read("cmd")) == ("", "")
    assert "Traceback" not in ct.stderr


def test_read_only_target_is_a_clear_error_naming_the_path(ct):
    """A target on a read-only file system (a bind mount remounted read-only inside the namespace):
    100, naming the path; the same tree already holding the rendered text boots."""
    root = ct.base / "root"
    (root / "etc").mkdir(parents=True)
    ct.write("templates/etc/a.conf.j2", "v={{ V }}\n")
    ro = f'mount --bind {root} {root} && mount -o remount,bind,ro {root} && exec "$@"'
    env = {"IGNITY_TEMPLATES_ROOT": str(root), "V": "1"}
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd", env=env, wrapper=ro)
    assert ct.wait() == 100, ct.diag()
    assert f"unable to write {root}/etc/a.conf: Read-only file system" in ct.stderr
    assert ct.read("cmd") == ""
    (root / "etc" / "a.conf").write_text("v=1\n")  # rendered at image build time
    ct.start("/bin/sh", "-c", f"echo ran > {ct.out}/cmd", env=env, wrapper=ro)
    assert ct.wait() == 0, ct.diag()
    assert ct.read("cmd") == "ran\n"
