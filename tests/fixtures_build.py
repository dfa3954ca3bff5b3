"""Fixtures of the build stage (a pytest plugin loaded by conftest.py).

`kernel_build`: one real `zstest build` (defaults: base profile, Debian 6.1) per
session, kept in cache/test-builds/default and reused across sessions while its
key (profile files, kmod sources, build.py format) matches. Every other slow
test (VM, suites) uses it, so a CI run holds one cold kernel build.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from zstest import build as build_stage  # noqa: E402
from zstest.cache import cache_dir, file_lock  # noqa: E402


def build_fixture_key() -> str:
    """What the shared build depends on besides the (fixed) kernel tree."""
    h = hashlib.sha256()
    h.update(build_stage.BUILD_FORMAT_VERSION.encode())
    configs = REPO / "zstest" / "configs"
    for path in sorted(configs.rglob("*.config")):      # the profiles and the arch fragments
        h.update(str(path.relative_to(configs)).encode() + b"\0" + path.read_bytes())
    kmod = REPO / "kmod"
    if kmod.is_dir():
        for path in sorted(p for p in kmod.rglob("*") if p.is_file() and p.suffix in
                           (".c", ".h", "") and not p.name.startswith(".")):
            h.update(str(path.relative_to(kmod)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def build_is_reusable(build_dir: Path, key: str) -> bool:
    try:
        manifest = json.loads((build_dir / "build.json").read_text())
        stored = (build_dir / "fixture-key").read_text().strip()
    except (OSError, ValueError):
        return False
    # tests build modules against the build's object dir: it must still be there
    objdir = manifest.get("objdir")
    return (manifest.get("status") == "ok" and stored == key
            and (build_dir / "bzImage").is_file() and bool(objdir) and Path(objdir).is_dir())


@pytest.fixture(scope="session")
def kernel_build() -> Path:
    """Path of a build dir made by the real `zstest build` (base profile on 6.1)."""
    from conftest import run_zstest
    build_dir = cache_dir("test-builds", "default")
    key = build_fixture_key()
    with file_lock(cache_dir("locks") / "test-build-default.lock"):
        if build_is_reusable(build_dir, key):
            return build_dir
        key_file = build_dir / "fixture-key"
        if key_file.exists():
            key_file.unlink()
        proc = run_zstest("build", "--out", build_dir, timeout=3 * 3600)
        if proc.returncode != 0:
            pytest.fail(f"zstest build failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        key_file.write_text(key + "\n")
    return build_dir


@pytest.fixture(scope="session")
def kernel_build_manifest(kernel_build) -> dict:
    return json.loads((kernel_build / "build.json").read_text())
