"""SPEC §4 (environment, envdir, with-env) and §3 stage 1 (PATH, the runtime dir)."""

from __future__ import annotations

import os
import stat
import subprocess

from .harness import ENV_DUMP, STD_PATH, VENV_BIN, dumped_env, write_envdir


def test_precedence_container_over_later_file_over_earlier_file(ct):
    """§4: env files are read in lexical order, a later file wins over an earlier one, and the
    container's own environment wins over every file. `9-c` sorts after `10-b` (byte order, §2) and
    dot-files are ignored."""
    ct.envfile("10-b", """
        A=from-10
        B=from-10
        C=from-10
        D=from-10
    """)
    ct.envfile("9-c", """
        B=from-9
        C=from-9
    """)
    ct.envfile(".hidden", "D=from-hidden\n")
    ct.start(*ENV_DUMP, env={"C": "from-container"})
    assert ct.wait() == 0, ct.diag()
    env = dumped_env(ct.stdout)
    assert (env["A"], env["B"], env["C"], env["D"]) == ("from-10", "from-9", "from-container", "from-10")


def test_dotenv_syntax_and_interpolation(ct):
    """§4, §11.3: python-dotenv syntax (export, quotes, comments) and ${VAR} interpolation against
    the container's environment and the files read before."""
    ct.envfile("10-base", """
        # a comment
        export BASE=/srv
        QUOTED="two words"
        SINGLE='single # not a comment'
    """)
    ct.envfile("20-derived", """
        DATA=${BASE}/data
        FROM_CONTAINER=${OUTSIDE}-x
        MISSING=[${NOT_SET_ANYWHERE}]
    """)
    ct.start(*ENV_DUMP, env={"OUTSIDE": "out"})
    assert ct.wait() == 0, ct.diag()
    env = dumped_env(ct.stdout)
    assert env["BASE"] == "/srv"
    assert env["QUOTED"] == "two words"
    assert env["SINGLE"] == "single # not a comment"
    assert env["DATA"] == "/srv/data"
    assert env["FROM_CONTAINER"] == "out-x"
    assert env["MISSING"] == "[]"


def test_init_script_adds_and_changes_variables_for_what_follows(ct):
    """§4: an init script writing the envdir (`printf 'x\\n' > $IGNITY_RUN_DIR/envs/FOO`) adds or
    changes a variable for every later init script, service, finalize script and the CMD; an empty
    file unsets one."""
    ct.envfile("10", "CHANGED=before\nGONE=here\n")
    ct.init("10-set", """
        printf 'x\\n' > "$IGNITY_RUN_DIR/envs/FOO"
        printf 'after\\n' > "$IGNITY_RUN_DIR/envs/CHANGED"
        : > "$IGNITY_RUN_DIR/envs/GONE"
    """)
    ct.init("20-see", f'echo "$FOO $CHANGED ${{GONE-unset}}" > {ct.out}/init')
    ct.service("svc", f'echo "$FOO $CHANGED ${{GONE-unset}}" > {ct.out}/svc; exec sleep 1000')
    ct.finalize("10-see", f'echo "$FOO $CHANGED ${{GONE-unset}}" > {ct.out}/finalize')
    ct.start("/bin/sh", "-c", f"""
        until [ -s {ct.out}/svc ]; do sleep 0.02; done
        echo "$FOO $CHANGED ${{GONE-unset}}" > {ct.out}/cmd
    """)
    assert ct.wait() == 0, ct.diag()
    for who in ("init", "svc", "cmd", "finalize"):
        assert ct.read(who) == "x after unset\n", who


def test_envdir_written_with_private_modes(ct):
    """§4: the merged environment is written to $IGNITY_RUN_DIR/envs/ as an envdir: one file per
    variable holding the value and one newline; directory 0700, files 0600."""
    ct.envfile("10", 'GREETING="hello world"\nMULTI="a\\nb"\n')
    ct.start(*ENV_DUMP)
    assert ct.wait() == 0, ct.diag()
    envs = ct.run_dir / "envs"
    assert stat.S_IMODE(envs.stat().st_mode) == 0o700
    assert (envs / "GREETING").read_bytes() == b"hello world\n"
    assert (envs / "MULTI").read_bytes() == b"a\nb\n"
    assert (envs / "IGNITY_CONF_DIR").read_text() == f"{ct.conf}\n"  # the container's own, too
    modes = {stat.S_IMODE((envs / name).stat().st_mode) for name in os.listdir(envs)}
    assert modes == {0o600}


def test_envdir_shared_mode(ct):
    """§4: IGNITY_ENVS_MODE=shared makes the envdir 0755 and its files 0644."""
    ct.envfile("10", "GREETING=hi\n")
    ct.start("true", env={"IGNITY_ENVS_MODE": "shared"})
    assert ct.wait() == 0, ct.diag()
    envs = ct.run_dir / "envs"
    assert stat.S_IMODE(envs.stat().st_mode) == 0o755
    modes = {stat.S_IMODE((envs / name).stat().st_mode) for name in os.listdir(envs)}
    assert modes == {0o644}


def test_path_defaults_when_unset(ct):
    """§3 stage 1.1: PATH is set to the standard list when the container has none."""
    ct.start("/bin/sh", "-c", 'echo "PATH=$PATH"', env={"PATH": None})
    assert ct.wait() == 0, ct.diag()
    assert ct.stdout.splitlines()[-1] == f"PATH={STD_PATH}"


def test_path_kept_when_set(ct):
    """§3 stage 1.1: a PATH the container sets is kept as it is."""
    ct.start("/bin/sh", "-c", 'echo "PATH=$PATH"', env={"PATH": f"/opt/x:{VENV_BIN}:/usr/bin:/bin"})
    assert ct.wait() == 0, ct.diag()
    assert ct.stdout.splitlines()[-1] == f"PATH=/opt/x:{VENV_BIN}:/usr/bin:/bin"


def test_runtime_dir_emptied_at_boot(ct):
    """§3 stage 1.2: the runtime dir is emptied and recreated at boot: nothing of a previous run is
    left (a stale file, a stale directory tree, a stale envdir variable)."""
    (ct.run_dir / "stale-dir" / "deep").mkdir(parents=True)
    (ct.run_dir / "stale-dir" / "deep" / "file").write_text("old")
    (ct.run_dir / "stale-file").write_text("old")
    (ct.run_dir / "envs").mkdir()
    (ct.run_dir / "envs" / "STALE_VAR").write_text("old\n")
    ct.start("/bin/sh", "-c", 'echo "STALE_VAR=${STALE_VAR-unset}"; ls -A "$IGNITY_RUN_DIR"')
    assert ct.wait() == 0, ct.diag()
    out = ct.stdout.splitlines()
    assert out[0] == "STALE_VAR=unset"
    assert "stale-file" not in out and "stale-dir" not in out, out


def _with_env(tool: str, run_dir, extra_env: dict) -> dict:
    env = {"PATH": f"{VENV_BIN}:{STD_PATH}", "IGNITY_RUN_DIR": str(run_dir), **extra_env}
    r = subprocess.run([os.path.join(VENV_BIN, tool), *ENV_DUMP], env=env, capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return dumped_env(r.stdout)


def test_with_env_reads_an_envdir(ct):
    """§4 "Reading an envdir": the value is the file minus one trailing newline, an empty file unsets
    the variable, names that are not valid variable names are skipped; laid over the caller's
    environment; `with-contenv` is an alias."""
    write_envdir(ct.run_dir / "envs", {
        "PLAIN": b"value\n",
        "TWO_NEWLINES": b"value\n\n",
        "NO_NEWLINE": b"value",
        "SPACES": b"  spaced  \n",
        "EMPTY_LINE": b"\n",
        "UNSET_ME": b"",
        "OVERRIDE": b"from-envdir\n",
        "bad-name": b"x\n",
        "1BAD": b"x\n",
    })
    for tool in ("with-env", "with-contenv"):
        env = _with_env(tool, ct.run_dir, {"UNSET_ME": "inherited", "OVERRIDE": "inherited", "KEEP": "k"})
        assert env["PLAIN"] == "value"
        assert env["TWO_NEWLINES"] == "value\n"
        assert env["NO_NEWLINE"] == "value"
        assert env["SPACES"] == "  spaced  "
        assert env["EMPTY_LINE"] == ""
        assert "UNSET_ME" not in env
        assert env["OVERRIDE"] == "from-envdir"
        assert env["KEEP"] == "k"
        assert "bad-name" not in env and "1BAD" not in env


def test_with_env_inside_a_running_container(ct):
    """§4: `docker exec CONTAINER with-env PROG` sees the merged environment (files and init scripts),
    which a plain exec does not."""
    ct.envfile("10", "FROM_FILE=file\n")
    ct.init("10", 'printf "init\\n" > "$IGNITY_RUN_DIR/envs/FROM_INIT"')
    ct.start()
    ct.wait_socket()
    r = ct.exec("with-env", *ENV_DUMP)
    assert r.returncode == 0, r.stderr
    env = dumped_env(r.stdout)
    assert (env.get("FROM_FILE"), env.get("FROM_INIT")) == ("file", "init")
    plain = dumped_env(ct.exec(*ENV_DUMP).stdout)
    assert "FROM_FILE" not in plain
    assert ct.stop() == 0, ct.diag()


def test_with_env_shebang(ct):
    """§4: `#!/path/to/with-env sh` shebangs run the script with the envdir applied."""
    write_envdir(ct.run_dir / "envs", {"SHEBANG_VAR": b"seen\n"})
    script = ct.write("script", f"#!{VENV_BIN}/with-env /bin/sh\necho \"$SHEBANG_VAR\"\n", mode=0o755)
    r = subprocess.run([str(script)], env={"PATH": STD_PATH, "IGNITY_RUN_DIR": str(ct.run_dir)},
                       capture_output=True, text=True, timeout=20)
    assert (r.returncode, r.stdout) == (0, "seen\n"), r.stderr


def test_with_env_missing_program(ct):
    """§5 row 3 applied to with-env: PROG not found → 127 with the reason, no traceback."""
    write_envdir(ct.run_dir / "envs", {})
    r = subprocess.run([os.path.join(VENV_BIN, "with-env"), "ignity-no-such-prog"],
                       env={"PATH": STD_PATH, "IGNITY_RUN_DIR": str(ct.run_dir)},
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 127
    assert "ignity-no-such-prog" in r.stderr and "Traceback" not in r.stderr


def test_every_child_gets_the_envdir_over_ignitys_environment(ct):
    """§4: a service's logger and finish script get the merged environment too."""
    ct.envfile("10", "COLOUR=blue\n")
    ct.service("svc", "echo line; exec sleep 1000",
               finish=f'echo "$COLOUR" > {ct.out}/finish',
               log=f'echo "$COLOUR" > {ct.out}/log; exec cat > /dev/null')
    ct.start()
    ct.wait_file("log")
    ct.wait_up("svc")
    assert ct.ctl("svc", "-d", "svc").returncode == 0
    ct.wait_file("finish")
    assert ct.stop() == 0, ct.diag()
    assert ct.read("log") == "blue\n" and ct.read("finish") == "blue\n"



def test_e2big_names_the_variable_and_the_total(ct):
    """Issue 9.12 (docs/init.md): a value too big for exec ("Argument list too long") is named,
    with its size and the total, not just E2BIG."""
    ct.init("10-big", 'head -c 200000 /dev/zero | tr "\\0" x > "$IGNITY_RUN_DIR/envs/HUGE_VALUE"')
    ct.start("true")
    assert ct.wait() == 126, ct.diag()
    line = next(x for x in ct.stderr.splitlines() if "Argument list too long" in x)
    assert "variable HUGE_VALUE is 200012 bytes" in line and "total" in line, line
