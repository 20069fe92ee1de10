"""s6rc: s6-overlay's s6-rc source definitions translated into ignity service directories."""
import os

import pytest

from ignity import s6rc
from ignity.errors import ConfigError


def tree(base, files):
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if rel.endswith(("/run", "/finish")):
            path.chmod(0o755)
    return base


# s6-overlay's README: myapp | myapp-log, a oneshot preparing the log dir, a pipeline in the user bundle
README = {
    "s6-rc.d/myapp-log-prepare/type": "oneshot\n",
    "s6-rc.d/myapp-log-prepare/dependencies.d/base": "",
    "s6-rc.d/myapp-log-prepare/up": "if { mkdir -p /var/log/myapp }\nchmod 02755 /var/log/myapp\n",
    "s6-rc.d/myapp/type": "longrun\n",
    "s6-rc.d/myapp/dependencies.d/base": "",
    "s6-rc.d/myapp/run": "#!/bin/sh\nexec 2>&1\nexec mydaemon\n",
    "s6-rc.d/myapp/producer-for": "myapp-log\n",
    "s6-rc.d/myapp/notification-fd": "3\n",
    "s6-rc.d/myapp-log/type": "longrun\n",
    "s6-rc.d/myapp-log/dependencies.d/myapp-log-prepare": "",
    "s6-rc.d/myapp-log/run": "#!/bin/sh\nexec logutil-service /var/log/myapp\n",
    "s6-rc.d/myapp-log/consumer-for": "myapp\n",
    "s6-rc.d/myapp-log/pipeline-name": "myapp-pipeline\n",
    "s6-rc.d/late/type": "longrun\n",
    "s6-rc.d/late/run": "#!/bin/sh\nexec sleep 1000\n",
    "s6-rc.d/late/dependencies.d/legacy-services": "",
    "s6-rc.d/spare/type": "longrun\n",
    "s6-rc.d/spare/run": "#!/bin/sh\nexec sleep 1000\n",
    "s6-rc.d/unused-shot/type": "oneshot\n",
    "s6-rc.d/unused-shot/up": "true\n",
    "s6-rc.d/stack/type": "bundle\n",
    "s6-rc.d/stack/contents.d/myapp-pipeline": "",
    "user-bundles.d/user/type": "bundle\n",
    "user-bundles.d/user/contents.d/stack": "",
    "user-bundles.d/user2/type": "bundle\n",
    "user-bundles.d/user2/contents.d/late": "",
}


def generate(tmp_path, files, legacy=("old",), optional=True):
    base = tree(tmp_path / "etc", files)
    out = tmp_path / "out"
    out.mkdir()
    names = s6rc.generate(str(base / "s6-rc.d"), str(base / "user-bundles.d"), list(legacy), str(out),
                          "/opt/ignity/bin/ignity-s6", optional)
    return out, sorted(names)


def deps(out, name):
    return sorted(os.listdir(out / name / "dependencies.d")) if (out / name / "dependencies.d").is_dir() else []


def test_readme_example(tmp_path):
    out, names = generate(tmp_path, README)
    # the consumer is myapp's log/; unused-shot is left out
    assert names == ["late", "myapp", "myapp-log-prepare", "spare"]
    assert os.readlink(out / "myapp" / "run").endswith("s6-rc.d/myapp/run")
    assert os.readlink(out / "myapp" / "log" / "run").endswith("s6-rc.d/myapp-log/run")
    assert (out / "myapp" / "notification-fd").read_text() == "3\n"
    assert deps(out, "myapp") == ["myapp-log-prepare"]  # the logger's dependency, base dropped
    assert deps(out, "late") == ["old"]  # legacy-services: every /etc/services.d service
    shot = out / "myapp-log-prepare"
    assert (shot / "type").read_text() == "oneshot\n"
    assert os.readlink(shot / "up") == "/opt/ignity/bin/ignity-s6"
    assert (shot / "s6-rc-up").read_text().startswith("if { mkdir")
    assert (shot / "optional").exists() and not (shot / "down").exists()
    assert (out / "spare" / "down").exists() and not (out / "myapp" / "down").exists()


def test_oneshots_not_optional_with_behaviour_2(tmp_path):
    out, _ = generate(tmp_path, README, optional=False)
    assert not (out / "myapp-log-prepare" / "optional").exists()


def test_older_user_bundle_in_s6_rc_d(tmp_path):
    files = {k: v for k, v in README.items() if not k.startswith("user-bundles.d")}
    files["s6-rc.d/user/contents.d/myapp-pipeline"] = ""
    out, _ = generate(tmp_path, files)
    assert not (out / "myapp" / "down").exists() and (out / "late" / "down").exists()


@pytest.mark.parametrize("extra,words", [
    ({"s6-rc.d/x/type": "daemon\n"}, "not longrun"),
    ({"s6-rc.d/x/type": "longrun\n", "s6-rc.d/x/run": "", "s6-rc.d/x/dependencies.d/nope": ""}, "nope"),
    ({"s6-rc.d/x/type": "oneshot\n"}, "up file"),
    ({"s6-rc.d/x/type": "longrun\n"}, "run file"),
    ({"s6-rc.d/myapp-log/producer-for": "spare\n", "s6-rc.d/spare/consumer-for": "myapp-log\n"}, "more than two"),
    ({"s6-rc.d/b/type": "bundle\n", "s6-rc.d/b/contents.d/b": "", "user-bundles.d/user/contents.d/b": ""}, "itself"),
])
def test_refusals_name_the_file(tmp_path, extra, words):
    with pytest.raises(ConfigError, match=words):
        generate(tmp_path, {**README, **extra})
