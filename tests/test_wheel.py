"""A non-editable wheel works from any directory: its data (kmod/, qemu-images/,
kernel-patches/, suites, guest C sources, config profiles) is package data.

Builds the wheel with pip, installs it into a fresh venv (dependencies from PyPI), and runs
the installed zstest from an unrelated directory. No image is built and nothing boots.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

from conftest import REPO

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


def test_wheel_installed_in_a_fresh_venv_finds_its_data(tmp_path):
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
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), ZSTEST_CACHE=str(tmp_path / "cache"))
    zstest = str(venv / "bin" / "zstest")

    def run(*args):
        proc = subprocess.run(args, cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    assert "boot-and-run" in run(zstest, "--help")
    help_text = " ".join(run(zstest, "boot-and-run", "--help").split())
    for suite in ("default", "boot", "migration"):
        assert suite in help_text, help_text
    assert "nonlru-migration" in run(zstest, "series", "list")
    assert run(str(venv / "bin" / "python"), "-c", CHECK).rstrip().endswith("ok")
