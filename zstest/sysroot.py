"""A foreign arch's guest userland: Debian's own packages for that arch, unpacked.

The guest image is made of the host's binaries (busybox, dropbear, mkfs.ext4, ...) when the
guest runs the host's arch. For another arch (arm64 or i386 on an amd64 host) the same
programs come from the same Debian packages built for that arch: `apt-get download pkg:ARCH`
(apt knows the arch once `dpkg --add-architecture ARCH && apt-get update` ran: ci/setup does)
and `dpkg-deb -x` into a cache dir; nothing is installed on the host. Which packages: the
host's own package of each binary, then, library by library (readelf's NEEDED entries and
program interpreter), the host package that holds the same soname. A sysroot is cached per
arch and package set (with the host's versions of them) and only ever whole.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

from .arch import ArchSpec, known_arches
from .cache import cache_dir, file_lock
from .errors import PrereqMissing
from .proc import CommandError, run, which

# Where Debian puts libraries and programs, relative to the root (merged /usr or not).
_LIB_DIRS = ("lib/{triplet}", "usr/lib/{triplet}", "lib", "usr/lib")
_NEEDED_RE = re.compile(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]")
_INTERP_RE = re.compile(r"\[Requesting program interpreter: ([^\]]+)\]")
_RUNPATH_RE = re.compile(r"\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]")
# A sysroot's layout version: bump to leave old cache entries behind.
FORMAT = "1"


def host_debian_arch() -> str:
    """dpkg's name for the host's arch ("amd64"); "" without dpkg."""
    if not which("dpkg"):
        return ""
    try:
        return run(["dpkg", "--print-architecture"], timeout=30).stdout.strip()
    except CommandError:
        return ""


def is_foreign(arch: ArchSpec) -> bool:
    """The guest's userland cannot be the host's binaries."""
    return arch.debian_arch != host_debian_arch()


def elf_deps(path: Path, runpath: Optional[List[str]] = None) -> Tuple[Optional[str], List[str]]:
    """(program interpreter or None, NEEDED sonames) of an ELF file, for any arch (readelf);
    its RUNPATH/RPATH dirs are appended to `runpath` when a list is given."""
    readelf = which("readelf")
    if readelf is None:
        raise PrereqMissing("readelf is missing; it reads a foreign guest's binaries "
                            "(apt-get install binutils).")
    try:
        out = run([readelf, "-lWd", str(path)], timeout=60, check=False).stdout
    except CommandError as exc:
        raise PrereqMissing(f"readelf could not read {path}: {exc.summary()}.") from None
    interp = _INTERP_RE.search(out)
    if runpath is not None:
        for found in _RUNPATH_RE.findall(out):
            runpath.extend(d for d in found.split(":") if d)
    return (interp.group(1) if interp else None), _NEEDED_RE.findall(out)


def _host_package_of(path: str) -> Optional[str]:
    """The host's package that installed path (with or without its /usr prefix), or None."""
    candidates = [path]
    candidates.append(path[len("/usr"):] if path.startswith("/usr/") else "/usr" + path)
    for candidate in candidates:
        res = run(["dpkg-query", "-S", candidate], timeout=30, check=False)
        if res.returncode == 0 and ":" in res.stdout:
            return res.stdout.split(":", 1)[0].split(",")[0].strip()
    return None


def _host_package_of_soname(soname: str, host_multiarch: str) -> Optional[str]:
    """The host's package that holds a library named soname in the host's multiarch dir
    (not a cross toolchain's copy such as libc6-arm64-cross)."""
    res = run(["dpkg-query", "-S", f"*/{host_multiarch}/*{soname}"], timeout=30, check=False)
    # the multiarch dir itself or a private subdir of it (a RUNPATH: .../ceph/libceph-common)
    wanted = re.compile(rf"^/(usr/)?lib/{re.escape(host_multiarch)}/([^/]+/)*{re.escape(soname)}$")
    for line in res.stdout.splitlines():
        pkg, _, where = line.partition(": ")
        if wanted.match(where.strip()):
            return pkg.split(":", 1)[0].split(",")[0].strip()
    return None


@dataclass
class Sysroot:
    """An unpacked foreign userland: files by their guest path, with symlinks resolved inside."""
    root: Path
    arch: ArchSpec
    triplet: str
    # host program path -> [(guest path, file)] of its loader and libraries (remembered)
    closures: Dict[str, List[Tuple[str, Path]]] = field(default_factory=dict)

    def closure_of(self, host_path: str, binary: Path) -> List[Tuple[str, Path]]:
        if host_path not in self.closures:
            self.closures[host_path] = closure(self, binary)
        return self.closures[host_path]

    def resolve(self, guest_path: str) -> Optional[Path]:
        """The file at guest_path (absolute symlinks followed inside the root; merged /usr
        tried both ways), or None."""
        for candidate in _usr_variants(guest_path):
            found = self._follow(candidate)
            if found is not None:
                return found
        return None

    def _follow(self, guest_path: str, depth: int = 0) -> Optional[Path]:
        if depth > 16:
            return None
        parts = [p for p in guest_path.split("/") if p and p != "."]
        current = "/"
        for i, part in enumerate(parts):
            if part == "..":
                current = os.path.dirname(current.rstrip("/")) or "/"
                continue
            nxt = os.path.join(current, part)
            host = self.root / nxt.lstrip("/")
            if host.is_symlink():
                target = os.readlink(host)
                target = target if target.startswith("/") else os.path.join(current, target)
                rest = "/".join(parts[i + 1:])
                return self._follow(os.path.normpath(os.path.join(target, rest)), depth + 1)
            current = nxt
        host = self.root / current.lstrip("/")
        return host if host.is_file() else None

    def find_library(self, soname: str, runpath: Sequence[str] = ()) -> Optional[Tuple[str, Path]]:
        """(guest path, file) of a library the loader would find by its soname: in the
        needing binary's RUNPATH dirs, then the arch's library dirs."""
        dirs = [d.rstrip("/") for d in runpath if d.startswith("/")]
        dirs += ["/" + pattern.format(triplet=self.triplet) for pattern in _LIB_DIRS]
        for directory in dirs:
            guest = directory + "/" + soname
            found = self._follow(guest)
            if found is not None:
                return guest, found
        return None


def _usr_variants(path: str) -> List[str]:
    if path.startswith("/usr/"):
        return [path, path[len("/usr"):]]
    return [path, "/usr" + path]


def _host_version(package: str) -> str:
    res = run(["dpkg-query", "-W", "-f", "${Version}", package], timeout=30, check=False)
    return res.stdout.strip() if res.returncode == 0 else "?"


def _download(packages: Iterable[str], arch: ArchSpec, into: Path) -> None:
    """apt-get download pkg:arch for each package into `into`; PrereqMissing in one sentence."""
    names = [f"{p}:{arch.debian_arch}" for p in sorted(set(packages))]
    if not which("apt-get"):
        raise PrereqMissing(f"apt-get is missing; a {arch.name} guest's userland comes from "
                            f"Debian's {arch.debian_arch} packages.")
    into.mkdir(parents=True, exist_ok=True)
    res = run(["apt-get", "download", "-q", *names], cwd=into, timeout=600, check=False)
    if res.returncode != 0:
        text = (res.stderr or res.stdout).strip().splitlines()
        why = next((line for line in text if line.startswith("E:")), text[-1] if text else "")
        raise PrereqMissing(
            f"could not download Debian's {arch.debian_arch} packages for the {arch.name} guest "
            f"({why.strip()[:200]}); run `dpkg --add-architecture {arch.debian_arch} && "
            f"apt-get update` (ci/setup does).")


def _unpack(debs: Iterable[Path], root: Path) -> None:
    for deb in debs:
        try:
            run(["dpkg-deb", "-x", str(deb), str(root)], timeout=300)
        except CommandError as exc:
            raise PrereqMissing(f"dpkg-deb could not unpack {deb.name}: {exc.summary()}.") \
                from None


def guest_sysroot(arch: ArchSpec, host_binaries: Dict[str, str]) -> Sysroot:
    """The foreign userland holding host_binaries' programs (name -> host path) and every
    library they need, cached; PrereqMissing (exit 6) naming what is missing."""
    quick = _quick_key(arch, host_binaries)
    remembered = _remembered(arch, quick)
    if remembered is not None:
        return remembered
    from .arch import arch_spec
    host_multiarch = next((a.debian_multiarch for a in map(arch_spec, known_arches())
                           if a.debian_arch == host_debian_arch()), "x86_64-linux-gnu")
    packages: Set[str] = set()
    for name, path in host_binaries.items():
        pkg = _host_package_of(os.path.realpath(path)) or _host_package_of(path)
        if pkg is None:
            raise PrereqMissing(f"{path} ({name}) belongs to no Debian package on this host: "
                                f"its {arch.name} build cannot be found.")
        packages.add(pkg)
    base = cache_dir("sysroots")
    with file_lock(cache_dir("locks") / f"sysroot-{arch.name}.lock"):
        # what the same binaries needed last time: one round instead of several
        index = base / f"{arch.name}-{_key(arch, packages)}.packages"
        try:
            packages |= set(index.read_text().split())
        except OSError:
            pass
        tried = []
        # grow the package set until every binary's libraries are in it
        for _round in range(8):
            key = _key(arch, packages)
            root = base / f"{arch.name}-{key}"
            if not (root / ".complete").is_file():
                _build(arch, packages, root)
            tried.append(root)
            sysroot = Sysroot(root, arch, arch.debian_multiarch)
            missing = _missing_sonames(sysroot, host_binaries.values())
            # a loader (ld-linux-aarch64.so.1) comes with the libc every binary needs
            wanted = [s for s in missing if not s.startswith("ld-")]
            if not missing:
                from .fsutil import write_text_atomic
                write_text_atomic(index, " ".join(sorted(packages)) + "\n")
                for stale in tried[:-1]:
                    shutil.rmtree(stale, ignore_errors=True)
                _remember(sysroot, quick, host_binaries)
                return sysroot
            if not wanted:
                raise PrereqMissing(f"the {arch.name} guest's packages lack the loader "
                                    f"{missing[0]}.")
            more = set()
            for soname in wanted:
                pkg = _host_package_of_soname(soname, host_multiarch)
                if pkg is None:
                    raise PrereqMissing(f"the {arch.name} guest needs {soname}, which no package "
                                        f"on this host provides: its {arch.debian_arch} "
                                        f"package cannot be named.")
                more.add(pkg)
            if more <= packages:
                raise PrereqMissing(f"the {arch.name} guest's packages lack "
                                    f"{', '.join(sorted(wanted))}.")
            packages |= more
    raise PrereqMissing(f"the {arch.name} guest's libraries did not settle after 8 rounds.")


def _quick_key(arch: ArchSpec, host_binaries: Dict[str, str]) -> str:
    """The host programs as they are now (path, size, mtime): unchanged host packages give
    the same sysroot and closures without asking dpkg or readelf again."""
    import hashlib
    h = hashlib.sha256(f"{FORMAT} {arch.name} {arch.debian_arch}".encode())
    for name, path in sorted(host_binaries.items()):
        try:
            st = os.stat(path)
            h.update(f"\0{name}={path}:{st.st_size}:{st.st_mtime_ns}".encode())
        except OSError:
            h.update(f"\0{name}={path}:missing".encode())
    return h.hexdigest()[:16]


def _remembered(arch: ArchSpec, quick: str) -> Optional[Sysroot]:
    import json
    try:
        data = json.loads((cache_dir("sysroots") / f"{arch.name}-{quick}.json").read_text())
        root = Path(data["root"])
        if not (root / ".complete").is_file() or root.parent != cache_dir("sysroots"):
            return None
        closures = {k: [(g, root / f) for g, f in v] for k, v in data["closures"].items()}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Sysroot(root, arch, arch.debian_multiarch, closures)


def _remember(sysroot: Sysroot, quick: str, host_binaries: Dict[str, str]) -> None:
    import json
    from .fsutil import write_text_atomic
    closures = {}
    for path in host_binaries.values():
        binary = sysroot.resolve(path)
        if binary is not None:
            closures[path] = [(g, str(f.relative_to(sysroot.root)))
                              for g, f in sysroot.closure_of(path, binary)]
    write_text_atomic(cache_dir("sysroots") / f"{sysroot.arch.name}-{quick}.json",
                      json.dumps({"root": str(sysroot.root), "closures": closures}) + "\n")


def _key(arch: ArchSpec, packages: Set[str]) -> str:
    import hashlib
    h = hashlib.sha256(f"{FORMAT} {arch.debian_arch}".encode())
    for pkg in sorted(packages):
        h.update(f"\0{pkg}={_host_version(pkg)}".encode())
    return h.hexdigest()[:16]


def _build(arch: ArchSpec, packages: Set[str], root: Path) -> None:
    tmp = root.with_name(root.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        debs = tmp / "debs"
        _download(packages, arch, debs)
        _unpack(sorted(debs.glob("*.deb")), tmp / "root")
        shutil.rmtree(debs, ignore_errors=True)
        (tmp / "root" / ".complete").write_text(" ".join(sorted(packages)) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        os.replace(tmp / "root", root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _missing_sonames(sysroot: Sysroot, host_paths: Iterable[str]) -> List[str]:
    """Sonames (and interpreters) the binaries need that the sysroot does not hold."""
    missing: List[str] = []
    for path in host_paths:
        binary = sysroot.resolve(path)
        if binary is None:
            continue   # an optional binary; the image says so
        for soname, _found in closure(sysroot, binary, missing):
            pass
    return sorted(set(missing))


def closure(sysroot: Sysroot, binary: Path,
            missing: Optional[List[str]] = None) -> List[Tuple[str, Path]]:
    """(guest path, file) of every library and the interpreter binary needs, transitively.
    A soname not found goes to `missing` (PrereqMissing when no list is given)."""
    out: List[Tuple[str, Path]] = []
    seen: Set[str] = set()
    todo = [binary]
    while todo:
        runpath: List[str] = []
        interp, needed = elf_deps(todo.pop(), runpath)
        if interp and interp not in seen:
            seen.add(interp)
            found = sysroot.resolve(interp)
            if found is None:
                if missing is None:
                    raise PrereqMissing(f"the {sysroot.arch.name} guest lacks its loader {interp}.")
                missing.append(os.path.basename(interp))
            else:
                out.append((interp, found))
        for soname in needed:
            if soname in seen:
                continue
            seen.add(soname)
            hit = sysroot.find_library(soname, runpath)
            if hit is None:
                if missing is None:
                    raise PrereqMissing(f"the {sysroot.arch.name} guest lacks {soname}.")
                missing.append(soname)
                continue
            out.append(hit)
            todo.append(hit[1])
    return out

