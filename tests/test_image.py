"""The image builder on the real host binaries: content, cache, host key, errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import run_zstest
from zstest.errors import BadInput, PrereqMissing
from zstest.image import (CpioWriter, ImageRequest, build_image, choose_compression, load_recipe)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("ZSTEST_CACHE", str(root))
    return root


def cpio_list(path: Path) -> dict:
    """name -> `cpio -tv` line, read by the host's cpio (an independent reader)."""
    out = subprocess.run(["cpio", "-itv", "--quiet"], stdin=open(path, "rb"),
                         capture_output=True, check=True).stdout.decode()
    return {line.split(" -> ")[0].split()[-1]: line for line in out.splitlines() if line.strip()}


def fake_build(tmp_path: Path, config: str = "CONFIG_RD_LZ4=y\n") -> Path:
    build = tmp_path / "build"
    mods = build / "modules" / "lib" / "modules" / "6.1.99-zstest" / "kernel" / "mm"
    mods.mkdir(parents=True)
    (mods / "zsmalloc.ko").write_bytes(b"\x7fELF not really a module")
    (mods.parent.parent / "modules.dep").write_text("kernel/mm/zsmalloc.ko:\n")
    (build / "zstorture.ko").write_bytes(b"\x7fELF kmod")
    (build / ".config").write_text(config)
    (build / "build.json").write_text(json.dumps({
        "status": "ok", "kernel": {"version": "6.1.99-zstest"},
        "artifacts": {"bzImage": "bzImage", "modules": "modules", "config": ".config",
                      "kmod": {"source": "kmod", "modules": ["zstorture.ko"]}}}))
    return build


def test_default_image_holds_init_busybox_dropbear_and_libs(cache):
    img = build_image(ImageRequest(compression="none"))
    assert img.built and img.path.is_file() and img.size_bytes == img.path.stat().st_size
    names = cpio_list(img.path)
    for needed in ("init", "usr/bin/busybox", "usr/sbin/dropbear", "usr/sbin/mkfs.ext4",
                   "usr/sbin/e2fsck", "usr/lib/x86_64-linux-gnu/libc.so.6",
                   "usr/lib64/ld-linux-x86-64.so.2", "etc/passwd",
                   "etc/dropbear/dropbear_ed25519_host_key", "dev/console"):
        assert needed in names, needed
    assert names["dev/console"].startswith("c")          # a real device node, made without root
    assert names["usr/bin/sh"].startswith("l")            # busybox applet symlink
    assert " root " in names["init"] and names["init"].startswith("-rwx")
    assert img.host_key_pub.startswith("ssh-ed25519 AAAA")
    assert img.size_bytes < 20e6, "the default image should stay small"


def test_second_build_comes_from_cache_with_same_key(cache):
    first = build_image(ImageRequest(compression="none"))
    second = build_image(ImageRequest(compression="none"))
    assert not second.built
    assert (second.path, second.digest, second.host_key_pub) == \
        (first.path, first.digest, first.host_key_pub)


def test_extra_file_changes_digest_and_lands_in_image(cache, tmp_path):
    extra = tmp_path / "payload.bin"
    extra.write_bytes(b"zstest payload")
    base = build_image(ImageRequest(compression="none"))
    img = build_image(ImageRequest(compression="none", extra_files={"/root/payload.bin": extra}))
    assert img.digest != base.digest and img.host_key_pub != base.host_key_pub
    assert "root/payload.bin" in cpio_list(img.path)


def test_build_dir_modules_and_kmod_go_in(cache, tmp_path):
    img = build_image(ImageRequest(build_dir=fake_build(tmp_path), compression="none"))
    names = cpio_list(img.path)
    assert "usr/lib/modules/6.1.99-zstest/kernel/mm/zsmalloc.ko" in names
    assert "usr/lib/modules/6.1.99-zstest/modules.dep" in names
    assert "usr/lib/modules/zstest/zstorture.ko" in names


def test_auto_compression_follows_kernel_config(cache, tmp_path):
    img = build_image(ImageRequest(build_dir=fake_build(tmp_path)))
    assert img.compression == "lz4" and img.path.name.endswith(".lz4")
    # the legacy lz4 frame (magic 0x184C2102) is what the kernel's unpacker reads
    assert img.path.read_bytes()[:4] == bytes.fromhex("02214c18")
    assert choose_compression("auto", {"RD_LZ4": "n"}) == "none"
    with pytest.raises(BadInput, match="CONFIG_RD_LZ4"):
        choose_compression("lz4", {"RD_GZIP": "y"})


def test_gzip_image_is_a_valid_cpio(cache):
    img = build_image(ImageRequest(compression="gzip"))
    out = subprocess.run(f"gzip -dc {img.path} | cpio -it --quiet", shell=True,
                         capture_output=True, check=True).stdout.decode().split()
    assert "init" in out


def test_missing_required_binary_is_a_prereq_error(cache, tmp_path):
    recipe = tmp_path / "r.ini"
    recipe.write_text("[binaries]\nbusybox = required\nzstest-no-such-tool = required\n")
    with pytest.raises(PrereqMissing, match="zstest-no-such-tool"):
        build_image(ImageRequest(recipe=recipe))


def test_missing_optional_binary_is_left_out(cache, tmp_path):
    recipe = tmp_path / "r.ini"
    recipe.write_text("[image]\ncompression = none\n[binaries]\nbusybox = required\n"
                      "zstest-no-such-tool = optional\n")
    img = build_image(ImageRequest(recipe=recipe))
    meta = json.loads((img.path.parent / "image.json").read_text())
    assert any("zstest-no-such-tool" in n for n in meta["notes"])


def test_bad_recipes(tmp_path):
    bad = tmp_path / "bad.ini"
    bad.write_text("[image]\ncompression = bzip9\n")
    with pytest.raises(BadInput, match="compression"):
        load_recipe(bad)
    bad.write_text("[files]\n/init = does-not-exist\n")
    with pytest.raises(BadInput, match="does-not-exist"):
        load_recipe(bad)
    with pytest.raises(BadInput, match="does not exist"):
        load_recipe(tmp_path / "nope.ini")


def test_cpio_writer_round_trips_through_cpio(tmp_path):
    path = tmp_path / "t.cpio"
    with open(path, "wb") as fh:
        w = CpioWriter(fh)
        w.add_dir("d")
        w.add_file("d/f", b"abc", 0o600)
        w.add_symlink("d/l", "f")
        w.finish()
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"], cwd=out,
                   stdin=open(path, "rb"), check=True)
    assert (out / "d" / "f").read_bytes() == b"abc"
    assert (out / "d" / "l").is_symlink() and (out / "d" / "l").read_bytes() == b"abc"


def test_cli_image(cache, tmp_path):
    proc = run_zstest("image", "--json", "--compression", "none", env={"ZSTEST_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert Path(info["path"]).is_file() and info["host_key_pub"].startswith("ssh-ed25519 ")
    proc = run_zstest("image", "--build", tmp_path / "nope", env={"ZSTEST_CACHE": str(cache)})
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_zstest("image", "--add", "relative=x", env={"ZSTEST_CACHE": str(cache)})
    assert proc.returncode == 2 and "--add" in proc.stderr


def test_recipe_extending_the_default_adds_fio():
    from zstest.image import REPO_DIR
    recipe = load_recipe(REPO_DIR / "qemu-images" / "initramfs-fio.ini")
    names = dict(recipe.binaries)
    assert names["fio"] is True and names["busybox"] is True and "/init" in recipe.files
    assert "base = initramfs.ini" in recipe.text and "[binaries]" in recipe.text
