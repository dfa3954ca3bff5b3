"""`zstest image`: build (or reuse from the cache) the guest initramfs."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import EXIT_OK, BadInput


@click.command()
@click.option("--build", "build_dir", type=click.Path(path_type=Path),
              help="Build directory (build.json): its modules and kmod .ko go into the image.")
@click.option("--recipe", type=click.Path(path_type=Path),
              help="Image recipe (.ini); default: qemu-images/initramfs.ini.")
@click.option("--compression", type=click.Choice(["auto", "none", "gzip", "lz4"]),
              help="Override the recipe's compression.")
@click.option("--add", "extra", multiple=True, metavar="GUEST_PATH=HOST_FILE",
              help="Add a host file to the image (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def image(build_dir, recipe, compression, extra, as_json) -> int:
    """Build the guest image (initramfs) or reuse the cached one with the same inputs."""
    from ..image import ImageRequest, build_image, describe
    extra_files = {}
    for item in extra:
        guest, sep, host = item.partition("=")
        if not sep or not guest.startswith("/") or not host:
            raise BadInput(f"--add takes GUEST_PATH=HOST_FILE with an absolute guest path "
                           f"(got {item!r}).")
        extra_files[guest] = Path(host)
    if build_dir is not None and not Path(build_dir).is_dir():
        raise BadInput(f"build directory {build_dir} does not exist.")
    img = build_image(ImageRequest(build_dir=build_dir, extra_files=extra_files, recipe=recipe,
                                   compression=compression))
    if as_json:
        click.echo(json.dumps({"path": str(img.path), "digest": img.digest,
                               "size_bytes": img.size_bytes, "compression": img.compression,
                               "built": img.built, "host_key_pub": img.host_key_pub,
                               "files": img.files, "duration_s": round(img.duration_s, 3)},
                              indent=2))
    else:
        click.echo(f"image: {describe(img)}")
        click.echo(f"digest: {img.digest}")
        click.echo(f"host key: {img.host_key_pub}")
    return EXIT_OK


COMMANDS = [image]
