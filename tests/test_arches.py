"""More architectures: arm64 and i386 (HIGHMEM) guests, cross-built, imaged and booted.

The image test downloads Debian's arm64 and i386 packages (apt, the package registry) and reads
the image back with the host's cpio. The slow tests cross-build the base kernel for each arch
on Debian's 6.1 (one shared build per arch, kept in cache/test-builds/<arch>), boot it under
TCG and run the boot suite; on i386 they check that zram's data really lived in highmem
zspages. The cross builds are marked too_slow_for_ci: `ci/test --run-too-slow` runs them, and
bench/bench_arches.py measures arm64 4K/64K and i386 on 6.1 and 6.12; CI itself runs the foreign
image test (Debian's arm64/i386 userland, cross-built guest tools, no kernel build).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import run_zstest
from fixtures_build import build_fixture_key, build_is_reusable
from zstest.arch import arch_spec
from zstest.cache import cache_dir, file_lock
from zstest.sysroot import elf_deps, is_foreign

# readelf -h's "Machine:" for each arch
MACHINE = {"arm64": "AArch64", "i386": "Intel 80386"}


def _machine(path: Path) -> str:
    out = subprocess.run(["readelf", "-hW", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                if line.strip().startswith("Machine:"))


def _unpack(image: Path, into: Path) -> Path:
    into.mkdir()
    with open(image, "rb") as fh:
        subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"], stdin=fh,
                       cwd=into, check=True)
    return into


def _guest_file(root: Path, guest_path: str) -> Path:
    """A guest path inside the unpacked image, its symlinks resolved inside the image."""
    path = Path(guest_path)
    current = root
    for part in path.parts[1:]:
        current = current / part
        for _ in range(16):
            if not current.is_symlink():
                break
            target = current.readlink()
            current = (root / str(target).lstrip("/")) if target.is_absolute() \
                else current.parent / target
    return current


@pytest.mark.parametrize("arch", ["arm64", "i386"])
def test_a_foreign_image_holds_that_arch_programs_and_libraries(arch, tmp_path):
    from zstest.guest_tools import build_guest_tools
    from zstest.image import ImageRequest, build_image
    spec = arch_spec(arch)
    assert is_foreign(spec)
    image = build_image(ImageRequest(arch=arch, extra_files=build_guest_tools(spec)))
    root = _unpack(image.path, tmp_path / "root")
    for prog in ("/usr/sbin/dropbear", "/usr/bin/busybox", "/usr/bin/zsfill", "/usr/bin/memtouch",
                 "/sbin/mkfs.ext4"):
        found = _guest_file(root, prog)
        assert found.is_file(), prog
        assert _machine(found) == MACHINE[arch], prog
    # dropbear is dynamic: its loader and every library it names are in the image, same arch
    interp, needed = elf_deps(_guest_file(root, "/usr/sbin/dropbear"))
    assert interp and _guest_file(root, interp).is_file(), interp
    assert _machine(_guest_file(root, interp)) == MACHINE[arch]
    libdir = f"/usr/lib/{spec.debian_multiarch}"
    for soname in needed:
        lib = _guest_file(root, f"{libdir}/{soname}")
        assert lib.is_file(), soname
        assert _machine(lib) == MACHINE[arch], soname
    # busybox's applets are links to it; /bin/sh is what /init runs with
    assert _guest_file(root, "/bin/sh").resolve() == _guest_file(root, "/usr/bin/busybox").resolve()
    # the same inputs: the cache's image, found without dpkg or readelf
    again = build_image(ImageRequest(arch=arch, extra_files=build_guest_tools(spec)))
    assert again.path == image.path and not again.built and again.duration_s < 2


def arch_build(arch: str, page_size: str | None = None) -> Path:
    """One real `zstest build --arch ARCH` (base profile, Debian 6.1) per arch, shared across
    tests and sessions like the x86_64 `kernel_build` fixture."""
    label = arch if page_size is None else f"{arch}-{page_size}"
    build_dir = cache_dir("test-builds", label)
    key = build_fixture_key() + label
    with file_lock(cache_dir("locks") / f"test-build-{label}.lock"):
        if build_is_reusable(build_dir, key):
            return build_dir
        key_file = build_dir / "fixture-key"
        if key_file.exists():
            key_file.unlink()
        argv = ["build", "--arch", arch, "--out", build_dir]
        if page_size:
            argv += ["--page-size", page_size]
        proc = run_zstest(*argv, timeout=3 * 3600)
        if proc.returncode != 0:
            pytest.fail(f"zstest build --arch {arch} failed ({proc.returncode}):\n"
                        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        key_file.write_text(key + "\n")
    return build_dir


# Each arch's cold cross build costs more than CI's time budget has left (2026-12-02, two
# workers: i386's cold build held both cores for ~17 minutes of a 55-minute cold run): the boot
# tests run with `ci/test --run-too-slow` and are measured in bench/bench_arches.py. CI keeps the
# foreign image test above and the per-arch config checks (test_kconfig_profiles.py).
def too_slow(arch: str):
    return pytest.param(arch, marks=pytest.mark.too_slow_for_ci(
        bench=f"bench/bench_arches.py --arch {arch}"))


@pytest.mark.slow
@pytest.mark.parametrize("arch", [too_slow("arm64"), too_slow("i386")])
def test_boot_suite_passes_on_the_arch(arch, tmp_path):
    build = arch_build(arch)
    manifest = json.loads((build / "build.json").read_text())
    assert manifest["arch"] == {"name": arch, "page_size": 4096}
    assert _machine(build / "vmlinux") == MACHINE[arch]
    for ko in manifest["artifacts"]["kmod"]["modules"]:
        assert _machine(build / ko) == MACHINE[arch], ko
    out = tmp_path / "results"
    proc = run_zstest("boot-and-run", "--build", build, "--suite", "boot", "--out", out,
                      timeout=1800)
    results = json.loads((out / "results.json").read_text())
    assert proc.returncode == 0, (proc.stderr[-3000:], results.get("message"))
    assert results["status"] == "passed" and results["tests"]
    assert all(t["status"] in ("passed", "skipped") for t in results["tests"])
    assert results["kernel"]["arch"] == arch and results["kernel"]["page_size"] == 4096
    assert results["accel"]["name"] == "tcg"
    console = (out / "console.log").read_text(errors="replace")
    if arch == "arm64":
        assert "Booting Linux on physical CPU" in console and "ttyAMA0" in console
        assert "arm64 guests cannot use KVM" in results["accel"]["reason"]
    else:
        assert "HighMem" in console      # the i386 kernel's zone list: it has highmem


@pytest.mark.slow
@pytest.mark.too_slow_for_ci(bench="bench/bench_arches.py --arch i386 (the default suite's highmem test)")
def test_on_i386_zram_data_lives_in_highmem_zspages(tmp_path):
    build = arch_build("i386")
    out = tmp_path / "results"
    proc = run_zstest("boot-and-run", "--build", build, "--suite", "default",
                      "-k", "highmem or lifecycle", "--out", out, timeout=1800)
    results = json.loads((out / "results.json").read_text())
    assert proc.returncode == 0, (proc.stderr[-3000:], results.get("message"))
    (test,) = [t for t in results["tests"] if "highmem" in t["name"]]
    assert test["status"] == "passed", test
    metrics = test.get("metrics") or {}
    flat = json.dumps(metrics)
    assert "zspages_in_highmem" in flat
    created = _find(metrics, "zspages_created")
    high = _find(metrics, "zspages_in_highmem")
    assert created > 0 and high >= created / 2, metrics
    # the guest had more RAM than lowmem: the arch's floor, not the suite's 512 MB
    console = (out / "console.log").read_text(errors="replace")
    total_kb = [int(m) for m in re.findall(r"Memory: \d+K/(\d+)K available", console)]
    assert total_kb and min(total_kb) > 1_900_000, total_kb


def _find(obj, key):
    """The first value of key anywhere in a nested dict/list."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for item in obj:
            found = _find(item, key)
            if found is not None:
                return found
    return None
