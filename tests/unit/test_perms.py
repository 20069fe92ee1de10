"""perms: Jinja2 rendering, both line formats, accounts by name or number, applying only what
differs (SPEC §6, §11.7). Runs as root in temporary trees (chown to any id there is harmless);
tests that need root or another uid are skipped without them."""
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ignity import perms
from ignity.errors import ConfigError

SRC = str(Path(perms.__file__).resolve().parents[1])
root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown to other ids)")


def python_works_as(uid: int) -> bool:
    """Whether this interpreter can still import after dropping to uid (a pyenv under /root, 0700,
    cannot): tests that drop privileges in a Python child skip otherwise."""
    code = f"import os; os.setgroups([]); os.setgid({uid}); os.setuid({uid}); import __future__, ignity.errors"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC},
                          capture_output=True, cwd="/").returncode == 0


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def owner_mode(path):
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.fixture
def tree(tmp_path):
    """data/ with a file, a sub dir with a file, and a symlink pointing out of the tree."""
    data = tmp_path / "data"
    write(data / "a.txt", "a")
    write(data / "sub" / "b.txt", "b")
    outside = write(tmp_path / "outside.txt", "o")
    os.chmod(outside, 0o600)
    os.symlink(outside, data / "link")
    return data


# ---- parsing ------------------------------------------------------------------------------------

def test_four_fields_are_recursive():
    rule = perms.parse_line("/data 1000:1001 0644 0755", "here")
    assert rule == perms.Rule("/data", True, 1000, 1001, 0o644, 0o755, "here")


@pytest.mark.parametrize("word, recursive", [("true", True), ("false", False), ("TRUE", True)])
def test_five_fields_recurse_word(word, recursive):
    rule = perms.parse_line(f"/data/ {word} 5:6 600 0o700", "here")
    assert (rule.path, rule.recursive, rule.uid, rule.gid, rule.fmode, rule.dmode) == \
        ("/data", recursive, 5, 6, 0o600, 0o700)


@pytest.mark.parametrize("line", ["", "   ", "# a comment", "  #/data 0:0 0644 0755"])
def test_blank_and_comment_lines(line):
    assert perms.parse_line(line, "here") is None


def test_names_are_resolved():
    assert perms.parse_line("/x root:root 0644 0755", "here")[2:4] == (0, 0)
    assert perms.parse_line("/x nobody:0 0644 0755", "here")[2:4] == (65534, 0)


def test_name_with_fallback_id():
    # s6-overlay fix-attrs: `name,id` uses the id when the name is unknown
    rule = perms.parse_line("/x no-such-user-x,1234:root,99 0644 0755", "here")
    assert (rule.uid, rule.gid) == (1234, 0)


@pytest.mark.parametrize("line, says", [
    ("/data 0:0 0644", "a field is missing: expected 4 fields 'path account fmode dmode' or 5 fields "
                       "'path recurse account fmode dmode', got 3 ('/data 0:0 0644')"),
    ("/data true 0:0 0644 0755 extra", "too many fields: expected 4 fields"),
    ("/data yes 0:0 0644 0755", "recurse must be true or false"),
    ("/data 0 0644 0755", "account must be uid:gid or user:group"),
    ("/data :0 0644 0755", "account must be"),
    ("/data no-such-user-x:0 0644 0755", "unknown user 'no-such-user-x'"),
    ("/data 0:no-such-group-x 0644 0755", "unknown group 'no-such-group-x'"),
    ("/data 0:0 0648 0755", "fmode must be an octal mode"),
    ("/data 0:0 0644 17777", "dmode must be an octal mode"),
    ("/data 0:0 rw-r--r-- 0755", "fmode must be"),
    ("data 0:0 0644 0755", "must be absolute"),
    ("/data 4294967295:0 0644 0755", "out of range"),
])
def test_malformed_lines(line, says):
    with pytest.raises(ConfigError) as e:
        perms.parse_line(line, "perms file /p/10-x line 7")
    assert str(e.value).startswith("perms file /p/10-x line 7: ")
    assert says in str(e.value)


# ---- rendering and files ------------------------------------------------------------------------

def test_malformed_line_names_file_and_line(tmp_path):
    bad = write(tmp_path / "perms" / "10-bad", "# comment\n\n/data 0:0 0644\n")
    with pytest.raises(ConfigError) as e:
        perms.load_dir(tmp_path / "perms", {})
    assert str(e.value).startswith(f"perms file {bad} line 3: a field is missing: expected 4 fields")


def test_usermap_substitution(tmp_path):
    write(tmp_path / "perms" / "10-app", "{{DIR}}/x {{USERMAP_UID}}:{{ USERMAP_GID }} 0640 0750\n")
    rules = perms.load_dir(tmp_path / "perms", {"DIR": "/srv", "USERMAP_UID": "1000", "USERMAP_GID": "1001"})
    assert [(r.path, r.uid, r.gid) for r in rules] == [("/srv/x", 1000, 1001)]


def test_undefined_variable_names_file_and_line(tmp_path):
    bad = write(tmp_path / "perms" / "10-app", "# c\n/a 0:0 0644 0755\n{{APP_DIR}} 0:0 0644 0755\n")
    with pytest.raises(ConfigError) as e:
        perms.load_dir(tmp_path / "perms", {"OTHER": "1"})
    assert str(e.value).startswith(f"perms file {bad} line 3: 'APP_DIR' is undefined")


def test_undefined_variable_inside_a_block(tmp_path):
    bad = write(tmp_path / "perms" / "10-app", "{% if A %}\n/a 0:0 0644 0755\n/b {{B}}:0 0644 0755\n{% endif %}\n")
    with pytest.raises(ConfigError) as e:
        perms.load_dir(tmp_path / "perms", {"A": "1"})
    assert f"perms file {bad} line 3: 'B' is undefined" in str(e.value)


def test_template_syntax_error_names_file_and_line(tmp_path):
    bad = write(tmp_path / "perms" / "10-app", "/a 0:0 0644 0755\n/b {{ X 0:0 0644 0755\n")
    with pytest.raises(ConfigError) as e:
        perms.load_dir(tmp_path / "perms", {"X": "1"})
    assert str(e.value).startswith(f"perms file {bad} line 2: template error")


def test_blocks_that_move_lines_say_rendered_line(tmp_path):
    write(tmp_path / "perms" / "10-app", "{% for d in ['a', 'b'] %}\n/{{d}} 0:0 0644\n{% endfor %}\n")
    with pytest.raises(ConfigError) as e:
        perms.load_dir(tmp_path / "perms", {})
    assert "rendered line 2:" in str(e.value) and "'/a 0:0 0644'" in str(e.value)


def test_files_in_byte_order_dot_files_ignored(tmp_path):
    d = tmp_path / "perms"
    write(d / "9-c", "/c 0:0 0644 0755\n")
    write(d / "10-b", "/b 0:0 0644 0755\n")
    write(d / "00-a", "/a 0:0 0644 0755\n")
    write(d / ".hidden", "this is not a perms line\n")
    assert [r.path for r in perms.load_dir(d, {})] == ["/a", "/b", "/c"]


def test_not_utf8_is_an_error(tmp_path):
    write(tmp_path / "perms" / "10-x", "")
    (tmp_path / "perms" / "10-x").write_bytes(b"/a\xff 0:0 0644 0755\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        perms.load_dir(tmp_path / "perms", {})


def test_missing_or_empty_dir_does_not_import_jinja2(tmp_path):
    (tmp_path / "empty").mkdir()
    write(tmp_path / "dots" / ".x", "junk\n")
    dirs = ["/nonexistent", str(tmp_path / "empty"), str(tmp_path / "dots")]
    code = ("import sys; from pathlib import Path; from ignity import perms; "
            "n = [perms.apply_dir(Path(p), {}) for p in sys.argv[1:]]; print(n, 'jinja2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, *dirs], env={**os.environ, "PYTHONPATH": SRC},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[0, 0, 0] False"


# ---- applying -----------------------------------------------------------------------------------

@root_only
def test_recursive_apply_and_second_pass_changes_nothing(tmp_path, tree):
    write(tmp_path / "perms" / "10-data", f"{tree} {{{{USERMAP_UID}}}}:{{{{USERMAP_GID}}}} 0640 0750\n")
    env = {"USERMAP_UID": "1000", "USERMAP_GID": "1001"}
    changes = perms.apply_dir(tmp_path / "perms", env)
    for d in (tree, tree / "sub"):
        assert owner_mode(d) == (1000, 1001, 0o750)
    for f in (tree / "a.txt", tree / "sub" / "b.txt"):
        assert owner_mode(f) == (1000, 1001, 0o640)
    assert changes == 9  # 4 entries x chown + chmod, and the link's lchown
    assert perms.apply_dir(tmp_path / "perms", env) == 0


@root_only
def test_symlinks_are_not_followed(tmp_path, tree):
    write(tmp_path / "perms" / "10-data", f"{tree} 1000:1000 0644 0755\n")
    perms.apply_dir(tmp_path / "perms", {})
    assert owner_mode(tmp_path / "outside.txt") == (0, 0, 0o600)
    assert os.lstat(tree / "link")[stat.ST_UID] == 1000


@root_only
def test_non_recursive_line(tmp_path, tree):
    write(tmp_path / "perms" / "10-data", f"{tree} false 1000:1000 0600 0700\n")
    assert perms.apply_dir(tmp_path / "perms", {}) == 2
    assert owner_mode(tree) == (1000, 1000, 0o700)
    assert owner_mode(tree / "a.txt")[:2] == (0, 0)


@root_only
def test_only_what_differs_is_changed(tmp_path, tree):
    os.chown(tree / "a.txt", 7, 7)  # right owner, wrong mode
    os.chmod(tree / "a.txt", 0o644)
    os.chmod(tree / "sub" / "b.txt", 0o640)  # right mode, wrong owner
    ctime_dir = os.lstat(tree).st_ctime_ns
    write(tmp_path / "perms" / "10-x", f"{tree}/a.txt 7:7 0600 0700\n{tree}/sub/b.txt 7:7 0640 0700\n")
    assert perms.apply_dir(tmp_path / "perms", {}) == 2
    assert owner_mode(tree / "a.txt") == (7, 7, 0o600)
    assert owner_mode(tree / "sub" / "b.txt") == (7, 7, 0o640)
    assert os.lstat(tree).st_ctime_ns == ctime_dir


@root_only
def test_missing_path_is_reported_and_skipped(tmp_path, tree, capfd):
    f = write(tmp_path / "perms" / "10-x", f"/nonexistent/ignity-x 0:0 0644 0755\n{tree}/a.txt 5:5 0600 0700\n")
    assert perms.apply_dir(tmp_path / "perms", {}) == 2
    assert owner_mode(tree / "a.txt") == (5, 5, 0o600)
    err = capfd.readouterr().err
    assert f"ignity: warning: perms file {f} line 1: /nonexistent/ignity-x does not exist: skipped" in err


@root_only
def test_malformed_file_applies_nothing(tmp_path, tree):
    write(tmp_path / "perms" / "00-good", f"{tree} 1000:1000 0600 0700\n")
    write(tmp_path / "perms" / "10-bad", "/x 0:0 0644\n")
    with pytest.raises(ConfigError):
        perms.apply_dir(tmp_path / "perms", {})
    assert owner_mode(tree)[:2] == (0, 0)


@root_only
def test_later_rules_win_and_overlaps_settle(tmp_path, tree):
    # the common pattern: a tree for the app, then a tighter rule inside it
    write(tmp_path / "perms" / "10-app", f"{tree} 1000:1000 0644 0755\n")
    write(tmp_path / "perms" / "20-secret", f"{tree}/sub true 0:0 0600 0700\n{tree}/a.txt false 0:1000 0640 0750\n")
    perms.apply_dir(tmp_path / "perms", {})
    assert owner_mode(tree) == (1000, 1000, 0o755)
    assert owner_mode(tree / "a.txt") == (0, 1000, 0o640)
    assert owner_mode(tree / "sub") == (0, 0, 0o700)
    assert owner_mode(tree / "sub" / "b.txt") == (0, 0, 0o600)
    # a second pass does not flip files to 1000 and back (and never shows the secret to 1000)
    assert perms.apply_dir(tmp_path / "perms", {}) == 0


@root_only
def test_later_recursive_rule_above_wins(tmp_path, tree):
    write(tmp_path / "perms" / "10-x", f"{tree}/sub/b.txt 0:0 0600 0700\n{tree} 1000:1000 0644 0755\n")
    perms.apply_dir(tmp_path / "perms", {})
    assert owner_mode(tree / "sub" / "b.txt") == (1000, 1000, 0o644)
    assert perms.apply_dir(tmp_path / "perms", {}) == 0


@root_only
def test_setuid_bit_survives_chown(tmp_path, tree):
    # chown(2) clears S_ISUID: the mode is set again after it
    os.chmod(tree / "a.txt", 0o4755)
    write(tmp_path / "perms" / "10-x", f"{tree}/a.txt 1000:1000 4755 0755\n")
    perms.apply_dir(tmp_path / "perms", {})
    assert owner_mode(tree / "a.txt") == (1000, 1000, 0o4755)


@root_only
def test_not_root_skips_chown_with_one_line_and_still_chmods_own_files():
    if not python_works_as(1000):
        pytest.skip(f"uid 1000 cannot run {sys.executable} (use a venv made from /usr/bin/python3)")
    # a tree uid 1000 can reach (pytest's tmp_path is 0700 root)
    top = Path(tempfile.mkdtemp(prefix="ignity-perms-"))
    try:
        os.chmod(top, 0o755)
        data = top / "data"
        mine = write(data / "mine", "")
        theirs = write(data / "theirs", "")
        for p in (data, mine):
            os.chown(p, 1000, 1000)
        os.chmod(data, 0o755)
        os.chmod(mine, 0o644)
        write(top / "perms" / "10-x", f"{data} 1000:1000 0600 0700\n{top}/nope 0:0 0644 0755\n")
        os.chmod(top / "perms", 0o755)
        code = ("import os, sys; from pathlib import Path; os.setgroups([]); os.setgid(1000); os.setuid(1000); "
                "from ignity import perms; print(perms.apply_dir(Path(sys.argv[1]), {}))")
        done = subprocess.run([sys.executable, "-c", code, str(top / "perms")], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": SRC})
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "2"  # chmod of data and of mine
        assert owner_mode(mine) == (1000, 1000, 0o600)
        assert owner_mode(theirs)[:2] == (0, 0)
        warnings = [line for line in done.stderr.splitlines() if "not running as root" in line]
        assert warnings == ["ignity: warning: perms: not running as root (uid 1000): 2 ownership/mode changes "
                            "skipped (apply them at build time with preboot)"]
    finally:
        subprocess.run(["rm", "-rf", str(top)], check=True)


BIG_TREE = """
import json, os, sys, time
from pathlib import Path
from ignity import perms

top = Path(sys.argv[1]) / "big"
for d in range(100):
    for s in range(10):
        leaf = top / f"d{d:02}" / f"s{s}"
        leaf.mkdir(parents=True)
        for f in range(100):
            os.close(os.open(leaf / f"f{f}", os.O_CREAT | os.O_WRONLY, 0o644))
(top.parent / "perms").mkdir()
(top.parent / "perms" / "10-big").write_text(f"{top} {{{{U}}}}:{{{{U}}}} 0640 0750\\n")
env = {"U": "1234"}
first = perms.apply_dir(top.parent / "perms", env)
sample = (top, top / "d07", top / "d99" / "s9" / "f99")
before = [os.lstat(p).st_ctime_ns for p in sample]
started = time.monotonic()
second = perms.apply_dir(top.parent / "perms", env)
elapsed = time.monotonic() - started
print(json.dumps({"first": first, "second": second, "elapsed": elapsed,
                  "ctimes_kept": [os.lstat(p).st_ctime_ns for p in sample] == before}))
"""


@root_only
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare (util-linux) for a private tmpfs")
def test_second_pass_over_100k_files_is_fast_and_touches_nothing(tmp_path):
    """Issue 4: a second pass over 100 000 files that are already right makes no chown/chmod
    (no ctime moves) and takes under 2 s. The tree is built on a tmpfs in a private mount
    namespace: creating 100 000 files on a busy disk can take a minute, and the pass itself only
    reads the inode cache either way."""
    script = 'mount -t tmpfs tmpfs "$1" && exec "$2" -c "$3" "$1"'
    done = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(tmp_path), sys.executable, BIG_TREE],
                          env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["first"] > 200_000  # chown + chmod of every entry
    assert result["second"] == 0 and result["ctimes_kept"]
    assert result["elapsed"] < 2.0, f"second pass took {result['elapsed']:.2f} s"
