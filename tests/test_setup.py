"""tools/setup.sh: mqtt_as pinned to a commit, and a clear message when it cannot be had."""
import os
import subprocess

import pytest

from tools.host.hostenv import ROOT


def setup(tmp_path, **env):
    e = dict(os.environ, MICROPY_LIB=str(tmp_path / "lib"))
    e.pop("MQTT_AS_SRC", None)
    e.update(env)
    return subprocess.run(["bash", "tools/setup.sh"], cwd=ROOT, env=e, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)


def pinned():
    with open(os.path.join(ROOT, "tools", "deps.env")) as f:
        return dict(ln.split("=", 1) for ln in f.read().split("\n") if "=" in ln and ln[0] != "#")


def test_missing_mqtt_as_says_what_to_do(tmp_path):
    p = setup(tmp_path, MQTT_AS_SRC=str(tmp_path / "nothing-here"))
    assert p.returncode != 0
    assert "MQTT_AS_SRC=%s has neither commit" % (tmp_path / "nothing-here") in p.stdout


def test_a_copy_that_is_not_the_pinned_commit_is_named(tmp_path):
    d = tmp_path / "lib" / "mqtt_as"
    d.mkdir(parents=True)
    (d / "__init__.py").write_text("# some other mqtt_as\n")
    p = setup(tmp_path)
    # without GitHub, mip cannot replace it: setup goes on with it but says so
    replaced = "# some other" not in (d / "__init__.py").read_text()
    assert replaced or "is not the pinned commit" in p.stdout


def test_install_from_a_local_repository_at_the_pinned_commit(tmp_path):
    src = os.getenv("MQTT_AS_SRC")
    if not src:
        pytest.skip("no local mqtt_as repository (set MQTT_AS_SRC to a clone)")
    p = setup(tmp_path, MQTT_AS_SRC=src)
    assert p.returncode == 0, p.stdout
    commit = pinned()["MQTT_AS_COMMIT"]
    assert "mqtt_as @ %s" % commit[:10] in p.stdout
    assert (tmp_path / "lib" / "mqtt_as" / "__init__.py").exists()
    again = setup(tmp_path, MQTT_AS_SRC=src)            # idempotent, nothing reinstalled
    assert again.returncode == 0 and "installing" not in again.stdout
