"""kmod/ builds warning-free (W=1) against Debian's 6.1 and 6.12 trees.

Each tree gets a private object dir in the cache (defconfig + zsmalloc +
`make modules_prepare`, about a minute, reused across sessions); the trees
themselves are never written.  Without the kernel's Module.symvers, modpost
cannot resolve symbols, so its "undefined" notes are not compiler warnings and
are ignored (KBUILD_MODPOST_WARN=1); the real build stage has Module.symvers
(see test_kmod_in_zstest_build).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO))
from zstest.cache import cache_dir, default_kernel_tree, file_lock  # noqa: E402

KMOD = REPO / "kmod"
COMPILER_WARNING = re.compile(r"\b(warning|error):", re.IGNORECASE)
MODPOST_NOTE = re.compile(r"modpost: .*undefined|Module\.symvers|suppressed \d+ unresolved|"
                          r"Modules may not have|You may get|KBUILD_MODPOST_WARN|at your own risk")

# Prototypes of later zsmalloc APIs, to type-check the code paths no local tree has.
SHIM_616 = """\
#ifndef _ZS_MALLOC_H_
#define _ZS_MALLOC_H_
#include <linux/types.h>
struct zs_pool;
struct zs_pool *zs_create_pool(const char *name);
void zs_destroy_pool(struct zs_pool *pool);
unsigned long zs_malloc(struct zs_pool *pool, size_t size, gfp_t flags, const int nid);
void zs_free(struct zs_pool *pool, unsigned long obj);
size_t zs_huge_class_size(struct zs_pool *pool);
unsigned long zs_get_total_pages(struct zs_pool *pool);
unsigned long zs_compact(struct zs_pool *pool);
void *zs_obj_read_begin(struct zs_pool *pool, unsigned long handle, %(len)svoid *local_copy);
void zs_obj_read_end(struct zs_pool *pool, unsigned long handle, %(len)svoid *handle_mem);
void zs_obj_write(struct zs_pool *pool, unsigned long handle, void *handle_mem, size_t mem_len);
#endif
"""


def _make(args, timeout=1800) -> subprocess.CompletedProcess:
    return subprocess.run(["make", *args], capture_output=True, text=True, timeout=timeout)


def prepared_objdir(version: str) -> Path:
    """A modules_prepare'd object dir for Debian's tree of this version (built once)."""
    tree = default_kernel_tree(version)
    objdir = cache_dir("kmod-objs", f"linux-{version}")
    with file_lock(cache_dir("locks") / f"kmod-objdir-{version}.lock"):
        if (objdir / "prepared").is_file():
            return objdir
        steps = [["-C", str(tree), f"O={objdir}", "defconfig"],
                 ["-C", str(tree), f"O={objdir}", "olddefconfig"],
                 ["-C", str(tree), f"O={objdir}", "-j2", "modules_prepare"]]
        for i, step in enumerate(steps):
            proc = _make(step)
            assert proc.returncode == 0, f"make {' '.join(step)} failed:\n{proc.stderr[-3000:]}"
            if i == 0:
                subprocess.run([str(tree / "scripts" / "config"), "--file", str(objdir / ".config"),
                                "-e", "ZSMALLOC", "-e", "ZRAM", "-e", "MODULES"], check=True)
        (objdir / "prepared").write_text(version + "\n")
    return objdir


def build_kmod(objdir: Path, workdir: Path, extra_cflags: str = "") -> subprocess.CompletedProcess:
    src = workdir / "kmod"
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(KMOD, src)
    args = ["-C", str(objdir), f"M={src}", "W=1", "KBUILD_MODPOST_WARN=1", "modules"]
    if extra_cflags:
        args.insert(-1, f"KCFLAGS={extra_cflags}")
    return _make(args, timeout=600)


def compiler_warnings(output: str):
    return [ln for ln in output.splitlines()
            if COMPILER_WARNING.search(ln) and not MODPOST_NOTE.search(ln)]


@pytest.mark.slow
@pytest.mark.parametrize("version", ["6.1", "6.12"])
def test_kmod_builds_warning_free(version, tmp_path):
    objdir = prepared_objdir(version)
    proc = build_kmod(objdir, tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert (tmp_path / "kmod" / "zstorture.ko").is_file()
    assert compiler_warnings(output) == [], output[-4000:]
    modinfo = subprocess.run(["modinfo", "-F", "parm", str(tmp_path / "kmod" / "zstorture.ko")],
                             capture_output=True, text=True) if shutil.which("modinfo") else None
    if modinfo is not None and modinfo.returncode == 0:
        for parm in ("threads", "objects", "min_size", "max_size", "duration_s", "seed",
                     "pools", "compact_every", "corrupt_one"):
            assert re.search(rf"^{parm}:", modinfo.stdout, re.M), f"no parameter {parm}"


@pytest.mark.slow
@pytest.mark.parametrize("variant,defines", [
    ("6.16", "-DZST_OBJ_RW_API=1 -DZST_MALLOC_HAS_NID=1"),
    ("read-len", "-DZST_OBJ_RW_API=1 -DZST_MALLOC_HAS_NID=1 -DZST_READ_HAS_LEN"),
])
def test_kmod_later_api_paths_type_check(variant, defines, tmp_path):
    shim = tmp_path / "zsmalloc-shim.h"
    shim.write_text(SHIM_616 % {"len": "size_t mem_len, " if variant == "read-len" else ""})
    proc = build_kmod(prepared_objdir("6.12"), tmp_path, f"-include {shim} {defines}")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert compiler_warnings(output) == [], output[-4000:]


@pytest.mark.slow
def test_kmod_in_zstest_build(kernel_build, kernel_build_manifest):
    """The real build stage built kmod/ against its tree, with no warning, and kept the .ko."""
    kmod = kernel_build_manifest["artifacts"].get("kmod")
    assert kmod, "build.json artifacts.kmod is empty although kmod/ exists"
    assert "zstorture.ko" in kmod["modules"]
    assert (kernel_build / "zstorture.ko").is_file()
    assert kmod.get("warnings") == [], kmod.get("warnings")
