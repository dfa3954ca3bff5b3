#!/usr/bin/env python3
"""zstest vs virtme-ng, side by side on one machine: boot + one command, and (optionally) build.

    .venv/bin/python bench/bench_vs_virtme.py [--rounds 5] [--json FILE]
    .venv/bin/python bench/bench_vs_virtme.py --build [--dry-run]

Boot part (default), both under TCG, N rounds alternating which side goes first:
  virtme-ng: `vng --disable-kvm --force-9p --run <kernel> -- uname -r`, wall time from
             start to exit (its QEMU gone), run inside `unshare --net` (no network at all).
  zstest:    launch_guest (zstest.vm.guest) with the cached image, `uname -r` over SSH,
             teardown, wall time from start to QEMU gone.
Kernels: zstest's shared test build (base profile, 6.1); when virtme-ng cannot boot it
(no 9p/virtio-console), one attempt proves it and both sides are also measured on
Debian's packaged 6.1 kernel (linux-image-amd64, `apt-get download` + `dpkg-deb -x`
into ~/.cache/zstest/bench/, never installed).

Build part (--build): virtme-ng's default config + a zram fragment vs `zstest build`,
both cold (fresh object dirs, fresh zstest cache, CCACHE_DISABLE=1), -j<cores>.
--dry-run prints the commands instead (and runs vng's own --dry-run of its build).

virtme-ng lives in its own venv, bench/.venv-vng (created on first use, gitignored):
virtme-ng==1.42, or the newest 1.x when 1.42 is gone. It never gets the user's tree or
kernel file: a copy per round (boot) or a fresh O= object dir (build; the tree is checked
unchanged afterwards). Exit 0 when both sides did what they should, 1 with one sentence
naming the side that failed, 6 when a prerequisite is missing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from zstest import proc  # noqa: E402
from zstest.cache import cache_dir  # noqa: E402
from zstest.errors import ZstestError  # noqa: E402
from zstest.vm.qemu import qemu_pids_mentioning  # noqa: E402

VNG_VENV = REPO / "bench" / ".venv-vng"
VNG_VERSION = "1.42"
DEFAULT_BUILD = Path.home() / ".cache" / "zstest" / "test-builds" / "default"
DISTRO_PACKAGE = "linux-image-amd64"
# What `vng --force-9p` needs from a kernel: 9p root, virtio-pci, virtio-serial for the
# command's I/O and exit code, overlayfs for its writable /etc, /tmp, ... overlays.
VNG_NEEDS = ["NET_9P", "NET_9P_VIRTIO", "9P_FS", "VIRTIO_PCI", "VIRTIO_CONSOLE", "OVERLAY_FS"]
# The drivers zstest's guest init must modprobe on a modular (distribution) kernel.
ZSTEST_DISTRO_MODULES = ["virtio_pci", "virtio_net"]
# The zram/zsmalloc options the build part adds to virtme-ng's default config.
ZRAM_FRAGMENT = """CONFIG_SWAP=y
CONFIG_ZSMALLOC=y
CONFIG_ZSMALLOC_STAT=y
CONFIG_ZRAM=y
CONFIG_ZRAM_WRITEBACK=y
CONFIG_ZRAM_MEMORY_TRACKING=y
CONFIG_CRYPTO_LZO=y
CONFIG_CRYPTO_LZ4=y
CONFIG_CRYPTO_ZSTD=y
"""
PANIC_LINE = re.compile(r"Kernel panic - not syncing: .*")


class SideFailed(Exception):
    """One side of the benchmark did not do its job; the message is the one sentence shown."""


class Prereq(Exception):
    """Something the benchmark needs is missing on this host."""


@dataclass
class BenchKernel:
    label: str                  # "zstest base 6.1" / "Debian linux-image-6.1.0-56-amd64"
    image: Path                 # bzImage / vmlinuz, never handed to vng itself
    version: str                # what `uname -r` must print
    config: str                 # .config text
    build_dir: Path             # a zstest build dir (build.json) for the image
    lib_dir: Optional[Path] = None      # <root>/lib holding modules/<version> (modular kernel)
    cmdline_extra: str = ""     # zstest kernel options (zstest.modules=... on a modular kernel)


@dataclass
class Sample:
    side: str
    seconds: float
    order: int                  # 0: ran first in its round, 1: second


@dataclass
class KernelResult:
    kernel: BenchKernel
    vng_missing: List[str]
    vng_attempt: Optional[dict] = None          # the proof when vng cannot boot it
    vng_argv: Optional[List[str]] = None        # the last vng command line run
    vng_writes: Optional[dict] = None           # what the last vng run left behind
    samples: List[Sample] = field(default_factory=list)


# ---------------------------------------------------------------- virtme-ng venv

def ensure_vng(venv: Path = VNG_VENV) -> str:
    """Create the virtme-ng venv when missing; return the installed virtme-ng version."""
    vng = venv / "bin" / "vng"
    if not vng.exists():
        print(f"creating {venv} with virtme-ng {VNG_VERSION} ...", flush=True)
        proc.run(["python3", "-m", "venv", str(venv)], timeout=300)
        pip = [str(venv / "bin" / "pip"), "install", "-q"]
        res = proc.run(pip + [f"virtme-ng=={VNG_VERSION}"], timeout=600, check=False)
        if not res.ok:
            # 1.42 withdrawn: the newest 1.x keeps the same command line
            proc.run(pip + ["virtme-ng>=1,<2"], timeout=600)
    res = proc.run([str(venv / "bin" / "python"), "-c",
                    "import importlib.metadata as m; print(m.version('virtme-ng'))"], timeout=60)
    return res.stdout.strip()


def vng_env(venv: Path = VNG_VENV) -> dict:
    # vng calls virtme-run through PATH; ccache off so a build is a real cold build
    return {"PATH": f"{venv / 'bin'}:{os.environ.get('PATH', '')}", "CCACHE_DISABLE": "1"}


def check_host_for_vng() -> None:
    if not proc.which("qemu-system-x86_64"):
        raise Prereq("qemu-system-x86_64 is missing (apt-get install qemu-system-x86).")
    # without udevd no /dev/virtio-ports/*: vng loses the command's output and exit code
    if not any(Path(p).exists() for p in ("/lib/systemd/systemd-udevd",
                                          "/usr/lib/systemd/systemd-udevd")):
        raise Prereq("virtme-ng needs systemd-udevd on the host for its virtio-serial I/O "
                     "(apt-get install udev).")
    if not proc.which("unshare"):
        raise Prereq("unshare (util-linux) is missing: it keeps virtme-ng off the network.")


# ---------------------------------------------------------------- kernels

def config_value(config: str, option: str) -> Optional[str]:
    m = re.search(rf"^CONFIG_{re.escape(option)}=(.*)$", config, re.M)
    return m.group(1) if m else None


def vng_missing_options(kernel: BenchKernel) -> List[str]:
    """The VNG_NEEDS options the kernel has neither built in nor as a module it ships."""
    missing = []
    for option in VNG_NEEDS:
        value = config_value(kernel.config, option)
        if value == "y" or (value == "m" and kernel.lib_dir is not None):
            continue
        missing.append(f"CONFIG_{option}")
    return missing


def base_kernel(build_dir: Path) -> BenchKernel:
    manifest_path = build_dir / "build.json"
    if not manifest_path.is_file():
        raise Prereq(f"{build_dir} is not a zstest build directory (no build.json); "
                     f"run the test suite's shared build first or pass --build-dir.")
    manifest = json.loads(manifest_path.read_text())
    image = build_dir / (manifest.get("artifacts", {}).get("bzImage") or "bzImage")
    profiles = ",".join(manifest.get("config", {}).get("profiles") or ["?"])
    version = manifest["kernel"]["version"]
    return BenchKernel(label=f"zstest {profiles} profile {version}", image=image,
                       version=version, config=(build_dir / ".config").read_text(),
                       build_dir=build_dir)


def distro_kernel(root: Path) -> BenchKernel:
    """Debian's packaged kernel unpacked (never installed) under root, plus a zstest build dir."""
    debs = root / "debs"
    tree = root / "root"
    if not list(tree.glob("boot/vmlinuz-*")):
        debs.mkdir(parents=True, exist_ok=True)
        dep = proc.run(["apt-cache", "depends", DISTRO_PACKAGE], timeout=60, check=False).stdout
        m = re.search(r"Depends: (linux-image-\S+)", dep)
        if not m:
            raise Prereq(f"apt-cache knows no {DISTRO_PACKAGE} (run apt-get update).")
        proc.run(["apt-get", "download", m.group(1)], cwd=debs, timeout=600)
        (deb,) = sorted(debs.glob(f"{m.group(1)}_*.deb"))[-1:]
        shutil.rmtree(tree, ignore_errors=True)
        proc.run(["dpkg-deb", "-x", str(deb), str(tree)], timeout=600)
    image = sorted((tree / "boot").glob("vmlinuz-*"))[-1]
    version = image.name[len("vmlinuz-"):]
    moddir = tree / "lib" / "modules" / version
    if not (moddir / "modules.dep").exists():
        # done here so that vng's own depmod does not run inside a timed round
        proc.run(["depmod", "-b", str(tree), version], timeout=600)
    build_dir = root / "zstest-build"
    _distro_build_dir(build_dir, tree, image, version)
    return BenchKernel(label=f"Debian linux-image-{version}", image=image, version=version,
                       config=(tree / "boot" / f"config-{version}").read_text(),
                       build_dir=build_dir, lib_dir=tree / "lib",
                       cmdline_extra="zstest.modules=" + ",".join(ZSTEST_DISTRO_MODULES))


def module_closure(moddir: Path, names: List[str]) -> List[str]:
    """Paths (relative to moddir) of the named modules and everything they depend on."""
    deps = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        deps[mod] = rest.split()
    by_name = {Path(m).name.split(".ko")[0].replace("-", "_"): m for m in deps}
    todo = [by_name[n] for n in names]
    seen: List[str] = []
    while todo:
        mod = todo.pop()
        if mod not in seen:
            seen.append(mod)
            todo.extend(deps.get(mod, []))
    return sorted(seen)


def _distro_build_dir(build_dir: Path, tree: Path, image: Path, version: str) -> None:
    """A zstest build dir for the distro kernel: only the virtio modules its init loads."""
    if (build_dir / "build.json").exists():
        return
    moddir = tree / "lib" / "modules" / version
    staging = build_dir / "modules" / "lib" / "modules" / version
    for rel in module_closure(moddir, ZSTEST_DISTRO_MODULES):
        (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(moddir / rel, staging / rel)
    for extra in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
        if (moddir / extra).exists():
            shutil.copy2(moddir / extra, staging / extra)
    proc.run(["depmod", "-b", str(build_dir / "modules"), version], timeout=120)
    shutil.copy2(tree / "boot" / f"config-{version}", build_dir / ".config")
    (build_dir / "build.json").write_text(json.dumps({
        "status": "ok", "kernel": {"version": version, "tree": None, "base": None},
        "config": {"profiles": ["debian"]},
        "artifacts": {"bzImage": str(image), "modules": "modules", "config": ".config"},
        "note": "made by bench/bench_vs_virtme.py from Debian's packaged kernel"}, indent=2))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- one run of each side

def stage_kernel_for_vng(kernel: BenchKernel, workdir: Path) -> Path:
    """A private copy of the kernel image; lib/ beside it so vng finds the modules."""
    boot = workdir / "root" / "boot"
    boot.mkdir(parents=True)
    staged = boot / kernel.image.name
    shutil.copy2(kernel.image, staged)
    if kernel.lib_dir is not None:
        (workdir / "root" / "lib").symlink_to(kernel.lib_dir)
    return staged


def vng_argv(staged: Path, verbose: bool = False) -> List[str]:
    return ["unshare", "--net", str(VNG_VENV / "bin" / "vng"), "--disable-kvm", "--force-9p",
            *(["-v"] if verbose else []), "--run", str(staged), "--", "uname", "-r"]


def run_vng(kernel: BenchKernel, timeout: float, verbose: bool = False) -> dict:
    """One `vng --run`; returns seconds, exit code, output and what it left behind."""
    home_cache = Path.home() / ".cache" / "virtme-ng"
    had_cache = home_cache.exists()
    with tempfile.TemporaryDirectory(prefix="bench-vng-") as tmp:
        workdir = Path(tmp)
        staged = stage_kernel_for_vng(kernel, workdir)
        argv = vng_argv(staged, verbose)
        before = {p.name for p in Path(tempfile.gettempdir()).glob("virtme*")}
        start = time.monotonic()
        try:
            res = proc.run(argv, cwd=workdir, env=vng_env(), timeout=timeout, check=False)
            code, out = res.returncode, res.stdout + res.stderr
        except proc.CommandError as exc:
            code, out = None, exc.output
        seconds = time.monotonic() - start
        leftover = qemu_pids_mentioning(str(workdir))
        for pid in leftover:        # only QEMUs started from this round's private dir
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        written = sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*")
                         if p.name not in ("root", "boot", "lib", staged.name))
    after = {p.name for p in Path(tempfile.gettempdir()).glob("virtme*")}
    return {"seconds": seconds, "exit": code, "output": out, "argv": argv,
            "qemu_left": leftover, "wrote_in_workdir": written,
            "tmp_left": sorted(after - before),
            "created_home_cache": home_cache.exists() and not had_cache}


def run_zstest(kernel: BenchKernel, image, timeout: float) -> dict:
    from zstest.vm.guest import GuestSpec, launch_guest
    # kept when the run fails: the error names its console.log
    workdir = Path(tempfile.mkdtemp(prefix="bench-zstest-"))
    start = time.monotonic()
    pid = None
    with launch_guest(GuestSpec(kernel=kernel.image, image=image, accel="tcg",
                                workdir=workdir, boot_timeout=timeout,
                                cmdline_extra=kernel.cmdline_extra)) as guest:
        pid = guest.pid
        out = guest.run("uname -r", timeout=60).stdout.strip()
        boot_to_ssh = guest.boot_to_ssh_s
    while pid is not None and _alive(pid):     # start -> QEMU gone, not -> SSH closed
        time.sleep(0.01)
    seconds = time.monotonic() - start
    shutil.rmtree(workdir, ignore_errors=True)
    return {"seconds": seconds, "output": out, "boot_to_ssh_s": boot_to_ssh}


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def prove_vng_cannot_boot(kernel: BenchKernel, timeout: float) -> dict:
    """One verbose vng run on a kernel lacking VNG_NEEDS: how it ends, and why."""
    r = run_vng(kernel, timeout, verbose=True)
    panic = PANIC_LINE.search(r["output"])
    if panic:
        reason = panic.group(0).strip()
    elif r["exit"] is None:
        reason = f"timed out after {timeout:g} s"
    else:
        reason = r["output"].strip()[-200:]
    return {"exit": r["exit"], "seconds": round(r["seconds"], 2), "reason": reason,
            "printed_uname": kernel.version in r["output"].split()}


def check_vng(kernel: BenchKernel, r: dict) -> None:
    if r["qemu_left"]:
        raise SideFailed(f"virtme-ng side failed: its QEMU {r['qemu_left']} outlived vng on "
                         f"{kernel.label} (killed).")
    if r["exit"] != 0 or r["output"].strip().splitlines()[-1:] != [kernel.version]:
        last = r["output"].strip().splitlines()[-1:]
        got = repr(last[0]) if last else "nothing"
        how = "timed out" if r["exit"] is None else f"exited {r['exit']}"
        raise SideFailed(f"virtme-ng side failed on {kernel.label}: vng {how} and printed "
                         f"{got} instead of {kernel.version!r}.")


# ---------------------------------------------------------------- boot benchmark

def bench_boot(args) -> dict:
    check_host_for_vng()
    vng_version = ensure_vng()
    kernels = [base_kernel(args.build_dir)]
    started_load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    results = [KernelResult(k, vng_missing_options(k)) for k in kernels]
    if results[0].vng_missing and args.distro_kernel:
        dk = distro_kernel(cache_dir("bench", "debian-kernel"))
        results.append(KernelResult(dk, vng_missing_options(dk)))
        if results[-1].vng_missing:
            raise Prereq(f"{dk.label} lacks {', '.join(results[-1].vng_missing)} for virtme-ng.")
    from zstest.image import ImageRequest, build_image
    images = {}
    for kr in results:
        kernel_sha = sha256(kr.kernel.image)
        img = build_image(ImageRequest(build_dir=kr.kernel.build_dir))
        images[kr.kernel.label] = img
        if kr.vng_missing:
            print(f"{kr.kernel.label}: virtme-ng cannot boot it (no "
                  f"{', '.join(kr.vng_missing)}); one attempt to show it ...", flush=True)
            kr.vng_attempt = prove_vng_cannot_boot(kr.kernel, args.timeout)
            print(f"  vng exit {kr.vng_attempt['exit']} after {kr.vng_attempt['seconds']} s: "
                  f"{kr.vng_attempt['reason']}", flush=True)
        for i in range(args.rounds):
            sides = ["zstest", "vng"] if i % 2 == 0 else ["vng", "zstest"]
            for order, side in enumerate(sides):
                if side == "vng":
                    if kr.vng_missing:
                        continue
                    r = run_vng(kr.kernel, args.timeout)
                    check_vng(kr.kernel, r)
                    kr.vng_writes = {k: r[k] for k in ("wrote_in_workdir", "tmp_left",
                                                         "created_home_cache")}
                    kr.vng_argv = r["argv"]
                else:
                    try:
                        r = run_zstest(kr.kernel, images[kr.kernel.label], args.timeout)
                    except ZstestError as exc:
                        raise SideFailed(f"zstest side failed on {kr.kernel.label}: "
                                         f"{exc.message}") from None
                    if r["output"] != kr.kernel.version:
                        raise SideFailed(f"zstest side failed on {kr.kernel.label}: uname -r "
                                         f"printed {r['output']!r}, not {kr.kernel.version!r}.")
                kr.samples.append(Sample(side, r["seconds"], order))
                print(f"{kr.kernel.label:40} round {i + 1} {side:7} {r['seconds']:6.2f} s",
                      flush=True)
        if sha256(kr.kernel.image) != kernel_sha:
            raise SideFailed(f"virtme-ng side failed: the kernel image {kr.kernel.image} "
                             f"changed during the benchmark.")
    return report(results, images, vng_version, started, started_load, os.getloadavg(), args)


def summary(values: List[float]) -> dict:
    return {"median_s": round(statistics.median(values), 2), "min_s": round(min(values), 2),
            "max_s": round(max(values), 2), "n": len(values),
            "all_s": [round(v, 2) for v in values]}


def report(results, images, vng_version, started, load_start, load_end, args) -> dict:
    qemu = proc.run(["qemu-system-x86_64", "--version"], timeout=30).stdout.splitlines()[0]
    out = {"started": started, "rounds": args.rounds, "accel": "tcg (both)",
           "host": {"cores": os.cpu_count(), "cpu": _cpu_model(), "qemu": qemu,
                    "kernel": platform.release(),
                    "load_avg_start": [round(v, 2) for v in load_start],
                    "load_avg_end": [round(v, 2) for v in load_end]},
           "virtme_ng": {"version": vng_version, "venv": str(VNG_VENV)},
           "kernels": []}
    for kr in results:
        entry = {"label": kr.kernel.label, "image": str(kr.kernel.image),
                 "uname_r": kr.kernel.version,
                 "zstest": summary([s.seconds for s in kr.samples if s.side == "zstest"]),
                 "zstest_image": {"path": str(images[kr.kernel.label].path),
                                  "bytes": images[kr.kernel.label].size_bytes,
                                  "compression": images[kr.kernel.label].compression},
                 "zstest_cmdline_extra": kr.kernel.cmdline_extra}
        if kr.vng_missing:
            entry["vng"] = {"bootable": False, "missing": kr.vng_missing,
                            "attempt": kr.vng_attempt}
        else:
            entry["vng"] = {"bootable": True, "argv": kr.vng_argv, "writes": kr.vng_writes,
                            **summary([s.seconds for s in kr.samples if s.side == "vng"])}
        out["kernels"].append(entry)
    return out


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def render(out: dict) -> str:
    h = out["host"]
    lines = [f"zstest vs virtme-ng {out['virtme_ng']['version']}: boot + `uname -r` + exit, "
             f"TCG, {out['rounds']} alternating rounds, {h['cores']} cores ({h['cpu']}), "
             f"{h['qemu']}",
             f"host load average at start {h['load_avg_start']}, at end {h['load_avg_end']}",
             "",
             f"{'kernel':42} {'side':10} {'median':>8} {'min':>8} {'max':>8}"]
    for k in out["kernels"]:
        z = k["zstest"]
        lines.append(f"{k['label']:42} {'zstest':10} {z['median_s']:7.2f}s {z['min_s']:7.2f}s "
                     f"{z['max_s']:7.2f}s")
        v = k["vng"]
        if v["bootable"]:
            lines.append(f"{'':42} {'virtme-ng':10} {v['median_s']:7.2f}s {v['min_s']:7.2f}s "
                         f"{v['max_s']:7.2f}s   (x{v['median_s'] / z['median_s']:.1f})")
        else:
            a = v["attempt"]
            lines.append(f"{'':42} {'virtme-ng':10} cannot boot it: no {', '.join(v['missing'])}"
                         f" (vng exit {a['exit']} after {a['seconds']} s: {a['reason']})")
    return "\n".join(lines)


# ---------------------------------------------------------------- build benchmark

def build_commands(tree: Path, work: Path, jobs: int) -> dict:
    """argv, cwd and env of both cold builds (nothing runs here)."""
    fragment = work / "zram.config"
    zstest_cache = work / "zstest-cache"
    vng = {"argv": [str(VNG_VENV / "bin" / "vng"), "--build", "--config", str(fragment),
                    "--jobs", str(jobs), f"O={work / 'vng-objs'}"],
           "cwd": tree, "env": vng_env()}
    zst = {"argv": [str(REPO / ".venv" / "bin" / "python"), "-m", "zstest.cli", "build",
                    "--kernel", str(tree), "--config", "base", "-j", str(jobs),
                    "--out", str(work / "zstest-build")],
           "cwd": REPO, "env": {"ZSTEST_CACHE": str(zstest_cache), "CCACHE_DISABLE": "1"}}
    return {"fragment": fragment, "vng": vng, "zstest": zst}


def tree_changes_since(tree: Path, stamp: float) -> List[str]:
    changed = []
    for dirpath, dirnames, filenames in os.walk(tree):
        for name in filenames + dirnames:
            p = Path(dirpath) / name
            with contextlib.suppress(OSError):
                if p.lstat().st_mtime > stamp or p.lstat().st_ctime > stamp:
                    changed.append(str(p.relative_to(tree)))
    return changed


def bench_build(args) -> dict:
    from zstest.cache import default_kernel_tree
    tree = Path(args.kernel_tree) if args.kernel_tree else default_kernel_tree("6.1")
    vng_version = ensure_vng()
    jobs = args.jobs or os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-vng-build-", dir=args.work_dir))
    cmds = build_commands(tree, work, jobs)
    cmds["fragment"].write_text(ZRAM_FRAGMENT)
    (work / "vng-objs").mkdir()
    if args.dry_run:
        for side in ("vng", "zstest"):
            c = cmds[side]
            env = " ".join(f"{k}={v}" for k, v in c["env"].items() if k != "PATH")
            print(f"[{side}] cd {c['cwd']} && {env} {' '.join(c['argv'])}")
        # vng's own dry run: checks the argv without building anything
        stamp = time.time()
        res = proc.run(cmds["vng"]["argv"] + ["--dry-run"], cwd=tree, env=cmds["vng"]["env"],
                       timeout=300, check=False)
        print(f"[vng --dry-run] exit {res.returncode}:\n{(res.stdout + res.stderr).strip()}")
        changed = tree_changes_since(tree, stamp)
        shutil.rmtree(work, ignore_errors=True)
        if changed:
            raise SideFailed(f"virtme-ng side failed: its dry run changed {len(changed)} "
                             f"file(s) in {tree}, e.g. {changed[0]}.")
        if res.returncode != 0:
            raise SideFailed(f"virtme-ng side failed: `vng --build --dry-run` exited "
                             f"{res.returncode}.")
        return {"dry_run": True, "virtme_ng": vng_version}
    out = {"virtme_ng": vng_version, "tree": str(tree), "jobs": jobs,
           "load_avg_start": os.getloadavg(), "sides": {}}
    for side in ("vng", "zstest"):
        c = cmds[side]
        stamp = time.time()
        start = time.monotonic()
        with open(work / f"{side}.log", "w") as log_file:
            try:
                res = proc.run(c["argv"], cwd=c["cwd"], env=c["env"], timeout=args.build_timeout,
                               check=False, log_file=log_file)
                code = res.returncode
            except proc.CommandError:
                code = None
        seconds = time.monotonic() - start
        changed = tree_changes_since(tree, stamp)
        name = "virtme-ng" if side == "vng" else "zstest"
        if changed:
            raise SideFailed(f"{name} side failed: its build changed {len(changed)} file(s) in "
                             f"{tree}, e.g. {changed[0]}.")
        if code != 0:
            raise SideFailed(f"{name} side failed: its cold build "
                             f"{'timed out' if code is None else f'exited {code}'}; "
                             f"log: {work / (side + '.log')}.")
        out["sides"][side] = {"seconds": round(seconds, 1), "argv": c["argv"],
                              "log": str(work / f"{side}.log")}
        print(f"{name:10} cold build {seconds / 60:5.1f} min", flush=True)
    out["load_avg_end"] = os.getloadavg()
    if not args.keep:
        for sub in ("vng-objs", "zstest-cache", "zstest-build"):
            shutil.rmtree(work / sub, ignore_errors=True)
    return out


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--json", type=Path, help="write the numbers here")
    ap.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD,
                    help=f"zstest build dir whose bzImage both boot (default {DEFAULT_BUILD})")
    ap.add_argument("--no-distro-kernel", dest="distro_kernel", action="store_false",
                    help="do not fall back to Debian's kernel when vng cannot boot the build")
    ap.add_argument("--timeout", type=float, default=300, help="per boot, seconds")
    ap.add_argument("--build", action="store_true", help="the cold build comparison instead "
                    "(~15 min of every core)")
    ap.add_argument("--dry-run", action="store_true", help="with --build: print the commands")
    ap.add_argument("--kernel-tree", help="with --build: source tree (default: Debian's "
                    "linux-source-6.1 in the zstest cache; only read)")
    ap.add_argument("--jobs", type=int, help="with --build: make -j (default: all cores)")
    ap.add_argument("--work-dir", help="with --build: where the object dirs go (default /tmp)")
    ap.add_argument("--build-timeout", type=float, default=3600)
    ap.add_argument("--keep", action="store_true", help="with --build: keep the object dirs")
    args = ap.parse_args(argv)
    if args.rounds < 1 or (args.dry_run and not args.build):
        why = "--rounds must be at least 1" if args.rounds < 1 else "--dry-run goes with --build"
        print(f"bench_vs_virtme: error: {why}.", file=sys.stderr)
        return 2
    try:
        if args.build:
            out = bench_build(args)
        else:
            out = bench_boot(args)
            print()
            print(render(out))
    except SideFailed as exc:
        print(f"bench_vs_virtme: error: {exc}", file=sys.stderr)
        return 1
    except Prereq as exc:
        print(f"bench_vs_virtme: error: {exc}", file=sys.stderr)
        return 6
    except proc.CommandError as exc:
        print(f"bench_vs_virtme: error: {exc.summary()}", file=sys.stderr)
        return 6
    except ZstestError as exc:
        print(f"bench_vs_virtme: error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("bench_vs_virtme: interrupted.", file=sys.stderr)
        return 130
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
