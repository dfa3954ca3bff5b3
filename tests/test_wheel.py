"""A non-editable wheel works from any directory: its data (kmod/, qemu-images/,
kernel-patches/, suites, guest C sources, config profiles) is package data.

Builds the wheel with pip once per module, installs it into a fresh venv (dependencies from
PyPI), and runs the installed zstest from an unrelated directory: the fast test reads its data;
the slow one runs `zstest doctor`, `zstest image` and `zstest boot-and-run --suite boot` on the
shared test build, with an empty cache of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import json
import re
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from fixtures_vm import qemu_pids_for

CHECK = textwrap.dedent("""
    import sys, sysconfig
    from pathlib import Path
    import zstest
    from zstest import resources
    from zstest.image import DEFAULT_RECIPE, load_recipe
    from zstest.guest_tools import GUEST_SOURCES
    from zstest.kconfig import profile_names
    from zstest.series.manifest import load_manifests

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert Path(zstest.__file__).resolve().is_relative_to(site), zstest.__file__
    for name in resources.names():
        p = resources.path(name)
        assert p.is_dir() and p.resolve().is_relative_to(site), (name, p)
        print(name, p)
    kmod = resources.kmod_dir()
    assert (kmod / "Kbuild").is_file() and (kmod / "zstorture.c").is_file()
    recipe = load_recipe(DEFAULT_RECIPE)           # every [files] entry must exist
    assert recipe.files["/init"].stat().st_mode & 0o111, "init lost its exec bit"
    load_recipe(resources.images_dir() / "initramfs-fio.ini")
    assert sorted(p.name for p in GUEST_SOURCES.glob("*.c")) == ["memtouch.c", "zsfill.c"]
    assert "base" in profile_names() and "debug" in profile_names()
    assert any(m.name == "nonlru-migration" for m in load_manifests())
    print("ok")
""")


class Installed:
    """The installed wheel: its venv, and how to run it from an unrelated directory."""

    def __init__(self, venv: Path, elsewhere: Path, env: dict):
        self.venv, self.elsewhere, self.env = venv, elsewhere, env
        self.zstest = str(venv / "bin" / "zstest")

    def run(self, *args, timeout: float = 300, ok: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(a) for a in args], cwd=self.elsewhere, env=self.env,
                              capture_output=True, text=True, timeout=timeout)
        if ok:
            assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    tmp_path = tmp_path_factory.mktemp("wheel")
    # pip builds in the source dir (build/, *.egg-info): build from a copy of the checkout.
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".pytest_cache", "bench", "out",
        "results"))
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels),
                    str(src)], check=True, cwd=tmp_path, timeout=600)
    (wheel,) = wheels.glob("zstest-*.whl")
    venv = tmp_path / "venv"
    # A plain venv: nothing from the system's or the project's site-packages.
    subprocess.run(["python3", "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], check=True,
                   cwd=tmp_path, timeout=900)
    shutil.rmtree(src)   # nothing may come from the checkout any more
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), ZSTEST_CACHE=str(tmp_path / "cache"))
    return Installed(venv, elsewhere, env)


def test_wheel_installed_in_a_fresh_venv_finds_its_data(installed):
    run, zstest = installed.run, installed.zstest
    assert "boot-and-run" in run(zstest, "--help").stdout
    help_text = " ".join(run(zstest, "boot-and-run", "--help").stdout.split())
    for suite in ("default", "boot", "migration"):
        assert suite in help_text, help_text
    assert "nonlru-migration" in run(zstest, "series", "list").stdout
    assert run(str(installed.venv / "bin" / "python"), "-c", CHECK).stdout.rstrip().endswith("ok")


@pytest.mark.slow
def test_installed_wheel_checks_the_host_builds_an_image_and_boots_the_build(installed, vm_build):
    run, zstest = installed.run, installed.zstest
    doctor = run(zstest, "doctor", timeout=600)
    assert "All prerequisites found." in doctor.stdout
    assert re.search(r"accelerator\s+(kvm|tcg): ", doctor.stdout), doctor.stdout
    image = run(zstest, "image", "--build", vm_build, "--json", timeout=600)
    made = json.loads(image.stdout)
    cache = Path(installed.env["ZSTEST_CACHE"])
    assert Path(made["path"]).is_file() and Path(made["path"]).is_relative_to(cache)
    assert made["host_key_pub"].startswith("ssh-ed25519 ")
    out = installed.elsewhere / "results"
    proc = run(zstest, "boot-and-run", "--build", vm_build, "--suite", "boot", "--out", out,
               timeout=900)
    data = json.loads((out / "results.json").read_text())
    assert data["status"] == "passed", proc.stdout + proc.stderr
    assert data["tests"] and all(t["status"] == "passed" for t in data["tests"])
    assert data["command"] == ["zstest", "boot-and-run", "--build", str(vm_build), "--out",
                               str(out), "--suite", "boot"]
    # the guest booted an image this installation built into its own cache
    assert Path(data["image"]["path"]).is_relative_to(cache)
    assert qemu_pids_for(out) == []
