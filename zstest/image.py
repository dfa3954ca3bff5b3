"""Guest image: an initramfs assembled, without root, from host binaries.

The recipe (qemu-images/initramfs.ini) says which host binaries, files and
directories go in; the build's modules and kmod .ko are added from its
build.json. For a kernel of another arch (build.json's arch: arm64, i386) the
same programs come from Debian's packages for that arch (zstest/sysroot.py). The cpio (newc) is written here in Python, so device nodes and
root ownership need no privileges. Images are cached under
cache_dir("images") by the hash of everything that went in; each image gets
its own dropbear host key, which the SSH client pins.
"""

from __future__ import annotations

import configparser
import contextlib
import gzip
import hashlib
import json
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import resources
from .cache import cache_dir, file_lock
from .errors import BadInput, PrereqMissing
from .kconfig import read_config
from .manifests import BuildManifest, has_build, load_build
from .proc import CommandError, run, which
from .target import Target

REPO_DIR = Path(__file__).resolve().parent.parent
DEFAULT_RECIPE = resources.images_dir() / "initramfs.ini"   # package data, also from a wheel
# Bump when the image layout changes so old cache entries are not reused.
FORMAT_VERSION = "3"
HOST_KEY_PATH = "/etc/dropbear/dropbear_ed25519_host_key"
COMPRESSIONS = ("none", "gzip", "lz4")


@dataclass
class ImageRequest:
    build_dir: Optional[Path] = None              # modules + kmod .ko from build.json artifacts
    extra_files: Dict[str, Path] = field(default_factory=dict)   # guest path -> host file
    recipe: Optional[Path] = None                 # default: qemu-images/initramfs.ini
    compression: Optional[str] = None             # overrides the recipe: none/gzip/lz4/auto
    arch: Optional[str] = None                    # default: the build's arch, else x86_64


@dataclass
class Image:
    path: Path               # the initramfs, what QEMU's -initrd takes
    host_key_pub: str        # "ssh-ed25519 AAAA..." to pin in the client
    digest: str              # sha256 of everything that went in
    size_bytes: int
    built: bool              # False when it came from the cache
    compression: str = "none"
    ready_marker: str = "ZSTEST-GUEST-READY"
    duration_s: float = 0.0
    files: int = 0           # entries in the cpio


@dataclass
class Recipe:
    path: Path
    text: str
    compression: str
    ready_marker: str
    binaries: List[Tuple[str, bool]]      # (name, required)
    busybox_applets: bool
    files: Dict[str, Path]                # guest path -> host file
    dirs: List[str]


def load_recipe(path: Optional[Path] = None) -> Recipe:
    path = Path(path) if path else DEFAULT_RECIPE
    if not path.is_file():
        raise BadInput(f"image recipe {path} does not exist.")
    text = path.read_text()
    parser = configparser.ConfigParser(inline_comment_prefixes=(";",), interpolation=None,
                                       delimiters=("=",))
    parser.optionxform = str  # keep guest paths and binary names as written
    try:
        parser.read_string(text, source=str(path))
        base = parser.get("image", "base", fallback="").strip()
        if base:
            # a recipe may extend another: the base first, then this file's entries on top
            base_path = path.parent / base
            if not base_path.is_file():
                raise BadInput(f"image recipe {path}: base recipe {base} does not exist.")
            base_text = base_path.read_text()
            parser = configparser.ConfigParser(inline_comment_prefixes=(";",),
                                               interpolation=None, delimiters=("=",))
            parser.optionxform = str
            parser.read_string(base_text, source=str(base_path))
            parser.read_string(text, source=str(path))
            text = base_text + "\n" + text
    except configparser.Error as exc:
        raise BadInput(f"image recipe {path} is not a valid .ini file: {str(exc).splitlines()[0]}") from None
    image = parser["image"] if parser.has_section("image") else {}
    compression = image.get("compression", "auto").strip()
    if compression not in COMPRESSIONS + ("auto",):
        raise BadInput(f"image recipe {path}: compression must be one of "
                       f"none, gzip, lz4, auto (got {compression!r}).")
    binaries = []
    for name, kind in (parser["binaries"].items() if parser.has_section("binaries") else []):
        kind = (kind or "required").strip()
        if kind not in ("required", "optional"):
            raise BadInput(f"image recipe {path}: binary {name} must be required or optional.")
        binaries.append((name, kind == "required"))
    files = {}
    for guest, host in (parser["files"].items() if parser.has_section("files") else []):
        host_path = (path.parent / host.strip()).resolve()
        if not host_path.is_file():
            raise BadInput(f"image recipe {path}: {host} (for {guest}) does not exist.")
        files[guest] = host_path
    dirs = parser.get("dirs", "paths", fallback="").split()
    applets = parser.get("busybox", "applets", fallback="all").strip() == "all"
    return Recipe(path, text, compression, image.get("ready_marker", "ZSTEST-GUEST-READY").strip(),
                  binaries, applets, files, dirs)


# ---------------------------------------------------------------- cpio (newc)

class CpioWriter:
    """A newc cpio stream with root-owned entries and fixed mtimes (reproducible)."""

    def __init__(self, fh):
        self.fh = fh
        self.ino = 1
        self.count = 0

    def _header(self, name: str, mode: int, size: int, nlink: int = 1,
                rdev: Tuple[int, int] = (0, 0)) -> None:
        name_bytes = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1],
                  len(name_bytes), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.fh.write(header + name_bytes)
        self._pad(len(header) + len(name_bytes))
        self.ino += 1
        self.count += 1

    def _pad(self, length: int) -> None:
        self.fh.write(b"\0" * ((4 - length % 4) % 4))

    def add_dir(self, name: str, perm: int = 0o755) -> None:
        self._header(name, stat.S_IFDIR | perm, 0, nlink=2)

    def add_file(self, name: str, data: bytes, perm: int = 0o644) -> None:
        self._header(name, stat.S_IFREG | perm, len(data))
        self.fh.write(data)
        self._pad(len(data))

    def add_symlink(self, name: str, target: str) -> None:
        data = target.encode()
        self._header(name, stat.S_IFLNK | 0o777, len(data))
        self.fh.write(data)
        self._pad(len(data))

    def add_chardev(self, name: str, major: int, minor: int, perm: int = 0o600) -> None:
        self._header(name, stat.S_IFCHR | perm, 0, rdev=(major, minor))

    def finish(self) -> None:
        self.ino = 0
        self._header("TRAILER!!!", 0, 0, nlink=1)
        self.fh.write(b"\0" * ((512 - self.fh.tell() % 512) % 512))


# ---------------------------------------------------------------- the file list

@dataclass
class _Entry:
    kind: str                 # dir, file, symlink, chardev
    source: Optional[Path] = None
    data: Optional[bytes] = None
    target: str = ""
    perm: int = 0o644
    dev: Tuple[int, int] = (0, 0)


class _Tree:
    """Guest paths -> entries; host top-level symlinks (merged /usr) are mirrored."""

    def __init__(self):
        self.entries: Dict[str, _Entry] = {}
        self.top_links: Dict[str, str] = {}
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
            if os.path.islink(top):
                target = os.readlink(top)
                self.top_links[top] = target
                self.entries[top.lstrip("/")] = _Entry("symlink", target=target)

    def norm(self, guest_path: str) -> str:
        """Guest path with top-level symlinks resolved, without the leading slash."""
        path = "/" + guest_path.strip("/")
        for top, target in self.top_links.items():
            if path == top or path.startswith(top + "/"):
                base = target if target.startswith("/") else "/" + target
                path = base.rstrip("/") + path[len(top):]
                break
        return path.lstrip("/")

    def _parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            if parent not in self.entries:
                self.entries[parent] = _Entry("dir", perm=0o755)

    def add(self, guest_path: str, entry: _Entry) -> str:
        name = self.norm(guest_path)
        self._parents(name)
        self.entries[name] = entry
        return name

    def add_dir(self, guest_path: str, perm: int = 0o755) -> None:
        name = self.norm(guest_path)
        if self.entries.get(name, _Entry("file")).kind != "dir":
            self.add(guest_path, _Entry("dir", perm=perm))

    def add_host_file(self, guest_path: str, host: Path, perm: Optional[int] = None) -> None:
        mode = host.stat().st_mode
        self.add(guest_path, _Entry("file", source=host,
                                    perm=perm if perm is not None else stat.S_IMODE(mode)))

    def write(self, fh) -> int:
        writer = CpioWriter(fh)
        for name in sorted(self.entries):
            e = self.entries[name]
            if e.kind == "dir":
                writer.add_dir(name, e.perm)
            elif e.kind == "symlink":
                writer.add_symlink(name, e.target)
            elif e.kind == "chardev":
                writer.add_chardev(name, *e.dev, perm=e.perm)
            else:
                data = e.data if e.data is not None else e.source.read_bytes()
                writer.add_file(name, data, e.perm)
        writer.finish()
        return writer.count

    def digest_into(self, h) -> None:
        for name in sorted(self.entries):
            e = self.entries[name]
            h.update(f"{name}\0{e.kind}\0{e.perm:o}\0{e.target}\0{e.dev}\0".encode())
            if e.kind == "file":
                h.update(hashlib.sha256(e.data if e.data is not None
                                        else e.source.read_bytes()).digest())


def shared_libraries(binary: Path) -> List[Tuple[str, Path]]:
    """(path the loader asks for, host file) for each library of a dynamic ELF binary."""
    try:
        result = run(["ldd", str(binary)], timeout=30, check=False)
    except CommandError as exc:
        raise PrereqMissing(f"ldd could not inspect {binary}: {exc}") from None
    text = result.stdout + result.stderr
    if "not a dynamic executable" in text or "statically linked" in text:
        return []
    libs = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            path = rest.strip().split(" (")[0].strip()
            if path == "not found" or not path:
                raise PrereqMissing(f"{binary} needs {name.strip()}, which is not installed.")
            libs.append((path, Path(os.path.realpath(path))))
        elif line.startswith("/"):
            path = line.split(" (")[0].strip()
            libs.append((path, Path(os.path.realpath(path))))
    return libs


def _add_binary(tree: _Tree, host: Path) -> None:
    tree.add_host_file(str(host), Path(os.path.realpath(host)), perm=0o755)
    for loader_path, real in shared_libraries(host):
        # The library goes where the loader looks (its directory resolved, its soname kept).
        guest = os.path.join(os.path.realpath(os.path.dirname(loader_path)),
                             os.path.basename(loader_path))
        tree.add_host_file(guest, real, perm=0o755)


def _read_build(build_dir: Path) -> BuildManifest:
    if not has_build(build_dir):
        raise BadInput(f"{build_dir} is not a build directory (no build.json).")
    return load_build(build_dir)


def _add_modules(tree: _Tree, build_dir: Path, manifest: BuildManifest) -> str:
    """Copy the build's modules (debug info stripped) into /lib/modules; returns the version."""
    version = manifest.kernel.version or ""
    modules = manifest.artifact(manifest.artifacts.modules)
    if modules is not None and modules.is_dir():
        root = modules
        if (modules / "lib" / "modules").is_dir():
            root = modules / "lib" / "modules"
        if not (root / "modules.dep").exists() and not (root / "kernel").is_dir():
            # a lib/modules-like dir holding one <version>/ dir
            subdirs = [d for d in root.iterdir() if d.is_dir()]
            if len(subdirs) == 1:
                version = version or subdirs[0].name
                root = subdirs[0]
        if not version:
            raise BadInput(f"{build_dir}/build.json gives modules but no kernel version.")
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_symlink() and rel.name in ("build", "source"):
                continue
            if path.is_file():
                tree.add_host_file(f"/lib/modules/{version}/{rel}", path, perm=0o644)
    for kmod in manifest.artifacts.kmod_modules:
        path = manifest.artifact(kmod)
        if path.is_file():
            tree.add_host_file(f"/lib/modules/zstest/{path.name}", path, perm=0o644)
    return version


def _kernel_config(build_dir: Optional[Path], manifest: Optional[BuildManifest]) -> Dict[str, str]:
    """The build's .config through kconfig.read_config ({} when there is none)."""
    if build_dir is None or manifest is None:
        return {}
    for candidate in (manifest.artifact(manifest.artifacts.config), Path(build_dir) / ".config"):
        if candidate is not None and candidate.is_file():
            return read_config(candidate)
    return {}


def choose_compression(requested: str, kernel_config: Dict[str, str]) -> str:
    """auto: lz4 if the kernel can unpack it (fast to decompress), else none; kernel_config as
    kconfig.read_config gives it ({}: not known)."""
    if requested != "auto":
        if requested == "lz4" and kernel_config and kernel_config.get("RD_LZ4") != "y":
            raise BadInput("the image asks for lz4 compression but the kernel's .config "
                           "lacks CONFIG_RD_LZ4=y; use compression = none or gzip.")
        return requested
    if kernel_config.get("RD_LZ4") == "y" and which("lz4"):
        return "lz4"
    return "none"


def _add_foreign_binary(tree: _Tree, sysroot, guest_path: str, binary: Path) -> None:
    """A foreign arch's program at the host program's path, with its loader and libraries."""
    tree.add_host_file(guest_path, binary, perm=0o755)
    for lib_guest_path, lib in sysroot.closure_of(guest_path, binary):
        tree.add_host_file(lib_guest_path, lib, perm=0o755)


def _gather(recipe: Recipe, request: ImageRequest,
            manifest: Optional[BuildManifest]) -> Tuple[_Tree, List[str]]:
    from .sysroot import guest_sysroot, is_foreign
    tree = _Tree()
    notes = []
    arch = _target(request, manifest).arch
    sysroot = None
    if is_foreign(arch):
        present = {name: which(name) for name, _ in recipe.binaries if which(name)}
        sysroot = guest_sysroot(arch, present)
    for d in recipe.dirs:
        tree.add_dir(d, perm=0o700 if d.startswith("/root") else 0o755)
    tree.add_dir("/tmp", perm=0o1777)
    tree.add("/dev/console", _Entry("chardev", perm=0o600, dev=(5, 1)))
    tree.add("/dev/null", _Entry("chardev", perm=0o666, dev=(1, 3)))
    real_names = set()
    for name, required in recipe.binaries:
        host = which(name)
        # a foreign arch's program: Debian's package of it for that arch (same path)
        foreign = sysroot.resolve(host) if host is not None and sysroot is not None else None
        if host is None or (sysroot is not None and foreign is None):
            where = ("installed on this host (see `zstest doctor`)" if host is None
                     else f"in Debian's {arch.debian_arch} package of it")
            if required:
                raise PrereqMissing(f"the {arch.name} guest image needs {name}, which is not "
                                    f"{where}.")
            notes.append(f"{name} not {where}: left out of the image")
            continue
        if foreign is not None:
            _add_foreign_binary(tree, sysroot, host, foreign)
        else:
            _add_binary(tree, Path(host))
        real_names.add(name)
    busybox = which("busybox")
    if recipe.busybox_applets and busybox:
        with _tool_failure_is_prereq("busybox"):
            applets = run([busybox, "--list"], timeout=30).stdout.split()
        for applet in applets:
            if applet in real_names or applet in ("busybox", "linuxrc", "init"):
                continue
            tree.add(f"/bin/{applet}", _Entry("symlink", target="busybox"))
    for guest, host in recipe.files.items():
        perm = 0o755 if os.access(host, os.X_OK) else 0o644
        tree.add_host_file(guest, host, perm=perm)
    if manifest is not None:
        _add_modules(tree, Path(request.build_dir), manifest)
    for guest, host in sorted(request.extra_files.items()):
        host = Path(host)
        if not host.is_file():
            raise BadInput(f"extra image file {host} does not exist.")
        tree.add_host_file(guest, host)
    return tree, notes


def _target(request: ImageRequest, manifest: Optional[BuildManifest]) -> Target:
    """The guest's arch: the request's, else its build's, else the default (no build given)."""
    if request.arch:
        return Target.from_options(request.arch)
    return Target.from_manifest(manifest) if manifest is not None else Target.default()


def build_image(request: ImageRequest) -> Image:
    """Build the initramfs for request, or return the cached one with the same inputs."""
    start = time.monotonic()
    recipe = load_recipe(request.recipe)
    manifest = _read_build(request.build_dir) if request.build_dir is not None else None
    compression = choose_compression(request.compression or recipe.compression,
                                     _kernel_config(request.build_dir, manifest))
    tree, _notes = _gather(recipe, request, manifest)
    h = hashlib.sha256()
    h.update(f"zstest-image {FORMAT_VERSION} {compression}\0".encode())
    suffix = _target(request, manifest).arch_cache_suffix
    if suffix:
        h.update(f"arch {suffix}\0".encode())
    h.update(recipe.text.encode())
    tree.digest_into(h)
    digest = h.hexdigest()
    out_dir = cache_dir("images") / digest[:20]
    suffix = {"none": "cpio", "gzip": "cpio.gz", "lz4": "cpio.lz4"}[compression]
    image_path = out_dir / f"initramfs.{suffix}"
    meta_path = out_dir / "image.json"
    with file_lock(cache_dir("locks") / f"image-{digest[:20]}.lock"):
        if meta_path.is_file() and image_path.is_file():
            meta = json.loads(meta_path.read_text())
            return Image(image_path, meta["host_key_pub"], digest, image_path.stat().st_size,
                         built=False, compression=compression, ready_marker=recipe.ready_marker,
                         duration_s=time.monotonic() - start, files=meta.get("files", 0))
        tmp = out_dir.with_name(out_dir.name + f".tmp{os.getpid()}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        # the image holds the guest's private host key: only this user may read it, whatever the umask
        os.chmod(tmp, 0o700)
        try:
            host_key, host_key_pub = _make_host_key(tmp)
            tree.add(HOST_KEY_PATH, _Entry("file", data=host_key, perm=0o600))
            raw = tmp / "initramfs.cpio"
            with open(raw, "wb") as fh:
                count = tree.write(fh)
            _compress(raw, compression, tmp / image_path.name)
            os.chmod(tmp / image_path.name, 0o600)
            (tmp / "host_key.pub").write_text(host_key_pub + "\n")
            meta = {"digest": digest, "host_key_pub": host_key_pub, "compression": compression,
                    "files": count, "recipe": str(recipe.path), "notes": _notes,
                    "build_dir": str(request.build_dir) if request.build_dir else None,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (tmp / "image.json").write_text(json.dumps(meta, indent=2) + "\n")
            if out_dir.exists():
                shutil.rmtree(out_dir)
            tmp.rename(out_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return Image(image_path, host_key_pub, digest, image_path.stat().st_size, built=True,
                 compression=compression, ready_marker=recipe.ready_marker,
                 duration_s=time.monotonic() - start, files=count)


@contextlib.contextmanager
def _tool_failure_is_prereq(name: str):
    """A host tool the image needs failing or hanging is a host problem (exit 6), in one sentence."""
    try:
        yield
    except CommandError as exc:
        last = exc.tail.strip().splitlines()[-1:] or [""]
        raise PrereqMissing(f"{name} on this host is not usable: {exc.summary()}"
                            + (f" ({last[0].strip()[:160]})" if last[0].strip() else "") + ".",
                            detail=exc.tail) from None


def _make_host_key(directory: Path) -> Tuple[bytes, str]:
    keygen = which("dropbearkey")
    if keygen is None:
        raise PrereqMissing("dropbearkey is missing: `apt-get install dropbear-bin`.")
    key_file = directory / "dropbear_ed25519_host_key"
    with _tool_failure_is_prereq("dropbearkey"):
        run([keygen, "-t", "ed25519", "-f", str(key_file)], timeout=60)
        out = run([keygen, "-y", "-f", str(key_file)], timeout=60).stdout
    pub = next((line.strip() for line in out.splitlines() if line.startswith("ssh-ed25519 ")), "")
    if not pub:
        raise PrereqMissing(f"dropbearkey printed no ed25519 public key: {out.strip()[:200]}")
    data = key_file.read_bytes()
    key_file.unlink()
    return data, " ".join(pub.split()[:2])


def _compress(raw: Path, compression: str, dest: Path) -> None:
    if compression == "none":
        if raw != dest:
            raw.rename(dest)
        return
    if compression == "gzip":
        with open(raw, "rb") as src, gzip.open(dest, "wb", compresslevel=1) as out:
            shutil.copyfileobj(src, out, 1 << 20)
    else:
        tool = which("lz4")
        if tool is None:
            raise PrereqMissing("lz4 compression asked for but lz4 is missing: `apt-get install lz4`.")
        # -l: the legacy frame format, the one the kernel's initramfs unpacker reads
        with _tool_failure_is_prereq("lz4"):
            run([tool, "-l", "-q", "-f", str(raw), str(dest)], timeout=300)
    raw.unlink()


def describe(image: Image) -> str:
    state = "built" if image.built else "cached"
    return (f"{image.path} ({image.size_bytes / 1e6:.1f} MB, {image.compression}, "
            f"{image.files} entries, {state} in {image.duration_s:.1f} s)")
