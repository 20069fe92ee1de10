"""templates: files of templates/ rendered with the environment to the same path under a root,
a final .j2 removed, atomically, keeping an existing target's owner and mode; mistakes name
template and line."""
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ignity import templates
from ignity.errors import ConfigError

SRC = str(Path(__file__).resolve().parents[2] / "src")


def write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def test_rendered_to_the_same_path_without_j2(tmp_path):
    tdir, root = tmp_path / "templates", tmp_path / "root"
    write(tdir / "etc" / "nginx" / "conf.d" / "app.conf.j2", "listen {{PORT}};\n")
    write(tdir / "etc" / "plain.conf", "host={{ HOST | default('localhost') }}\n")
    assert templates.render_dir(str(tdir), str(root), {"PORT": "8080"}) == 2
    assert (root / "etc/nginx/conf.d/app.conf").read_text() == "listen 8080;\n"
    assert (root / "etc/plain.conf").read_text() == "host=localhost\n"


def test_dot_names_ignored_at_every_level(tmp_path):
    tdir = tmp_path / "templates"
    write(tdir / "etc" / ".hidden.j2", "{{ NOPE }}")
    write(tdir / ".git" / "config", "{{ NOPE }}")
    write(tdir / "etc" / "b.j2", "b")
    write(tdir / "etc" / "a.j2", "a")
    assert [rel for _, rel in templates.template_files(str(tdir))] == ["etc/a.j2", "etc/b.j2"]


def test_target_of():
    assert templates.target_of("etc/x.conf.j2", "/") == "/etc/x.conf"
    assert templates.target_of("etc/x.j2.j2", "/r") == "/r/etc/x.j2"
    assert templates.target_of("etc/.j2", "/") == "/etc/.j2"  # nothing left to name the target


def test_undefined_variable_names_template_and_line(tmp_path):
    t = write(tmp_path / "templates" / "etc" / "app.conf.j2", "# app\nport={{ PORT }}\n")
    with pytest.raises(ConfigError) as e:
        templates.render_dir(str(tmp_path / "templates"), str(tmp_path / "root"), {})
    assert str(e.value).startswith(f"template {t}:2: 'PORT' is undefined")


def test_syntax_error_names_template_and_line(tmp_path):
    t = write(tmp_path / "templates" / "x.j2", "a\nb\n{% if %}\n")
    with pytest.raises(ConfigError) as e:
        templates.render_file(str(t), {})
    assert str(e.value).startswith(f"template {t}:3: template error")


def test_one_bad_template_writes_nothing(tmp_path):
    tdir, root = tmp_path / "templates", tmp_path / "root"
    write(tdir / "a.j2", "fine\n")
    write(tdir / "b.j2", "{{ MISSING }}\n")
    with pytest.raises(ConfigError):
        templates.render_dir(str(tdir), str(root), {})
    assert not (root / "a").exists()


def test_existing_target_keeps_mode_and_owner(tmp_path):
    tdir, root = tmp_path / "templates", tmp_path / "root"
    write(tdir / "etc" / "x.j2", "new {{ V }}\n", mode=0o755)
    target = write(root / "etc" / "x", "old\n", mode=0o640)
    if os.geteuid() == 0:
        os.chown(target, 1234, 5678)
    before = target.stat().st_ino
    templates.render_dir(str(tdir), str(root), {"V": "1"})
    st = target.stat()
    assert target.read_text() == "new 1\n" and stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_ino != before  # replaced by rename, never rewritten in place
    if os.geteuid() == 0:
        assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert [p.name for p in (root / "etc").iterdir()] == ["x"]  # no temporary file left


def test_new_target_takes_the_template_mode(tmp_path):
    tdir, root = tmp_path / "templates", tmp_path / "root"
    write(tdir / "bin" / "start.sh.j2", "#!/bin/sh\n", mode=0o750)
    templates.render_dir(str(tdir), str(root), {})
    assert stat.S_IMODE((root / "bin" / "start.sh").stat().st_mode) == 0o750


def test_up_to_date_target_is_not_touched(tmp_path):
    tdir, root = tmp_path / "templates", tmp_path / "root"
    write(tdir / "x.j2", "same {{ V }}\n")
    target = write(root / "x", "same 1\n")
    before = target.stat()
    assert templates.render_dir(str(tdir), str(root), {"V": "1"}) == 0
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_symlink_target_is_written_where_it_points(tmp_path):
    tdir, root = tmp_path / "templates", tmp_path / "root"
    write(tdir / "etc" / "link.j2", "through\n")
    real = write(root / "real", "old\n")
    (root / "etc").mkdir()
    (root / "etc" / "link").symlink_to(real)
    templates.render_dir(str(tdir), str(root), {})
    assert (root / "etc" / "link").is_symlink() and real.read_text() == "through\n"


def test_unwritable_target_is_a_config_error_naming_it(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere; the read-only case is an integration test")
    tdir, root = tmp_path / "templates", tmp_path / "root"
    write(tdir / "d" / "x.j2", "x\n")
    (root / "d").mkdir(parents=True)
    (root / "d").chmod(0o555)
    with pytest.raises(ConfigError) as e:
        templates.render_dir(str(tdir), str(root), {})
    assert str(e.value).startswith(f"unable to write {root}/d/x: Permission denied")


def test_not_utf8_names_the_template(tmp_path):
    t = tmp_path / "bad.j2"
    t.write_bytes(b"\xff\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        templates.render_file(str(t), {})


def test_render_command_prints_and_fails_with_100(tmp_path):
    conf = tmp_path / "conf"
    write(conf / "templates" / "etc" / "a.conf.j2", "port={{ PORT }}\n")
    write(conf / "envs" / "00-app", "PORT=81\n")
    env = {**os.environ, "PYTHONPATH": SRC, "IGNITY_CONF_DIR": str(conf), "IGNITY_RUN_DIR": str(tmp_path / "run")}
    env.pop("PORT", None)
    run = [sys.executable, "-m", "ignity", "render", "etc/a.conf.j2"]
    out = subprocess.run(run, env=env, capture_output=True, text=True)
    assert (out.returncode, out.stdout) == (0, "port=81\n")
    write(conf / "templates" / "etc" / "a.conf.j2", "port={{ PORT }}\nhost={{ HOST }}\n")
    out = subprocess.run(run, env=env, capture_output=True, text=True)
    assert out.returncode == 100
    assert out.stderr.startswith(f"ignity: fatal: template {conf}/templates/etc/a.conf.j2:2: 'HOST' is undefined")


def test_no_templates_no_jinja2(tmp_path):
    code = ("import sys; from ignity import templates; "
            "print(templates.render_dir(sys.argv[1], sys.argv[1], {}), 'jinja2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none")], env={**os.environ, "PYTHONPATH": SRC},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "0 False"
