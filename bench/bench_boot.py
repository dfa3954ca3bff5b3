#!/usr/bin/env python3
"""Boot-to-SSH benchmark under TCG: median of N boots per image compression.

    .venv/bin/python bench/bench_boot.py --build DIR [--runs 5] [--write-doc]

For each compression (none, gzip -1, lz4 when the kernel has CONFIG_RD_LZ4) it
builds the default image for the build and boots it N times with
launch_guest (TCG), recording QEMU start -> SSH login, QEMU start -> the
kernel's "Run /init", and the whole launch + poweroff cycle. --write-doc puts
the table in the "Boot" section of docs/PERFORMANCE.md (only that section).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from zstest.image import ImageRequest, build_image  # noqa: E402
from zstest.vm.guest import GuestSpec, launch_guest  # noqa: E402

RUN_INIT = re.compile(r"\[\s*(\d+\.\d+)\] Run /init as init process")


def boot_once(kernel: Path, image, workdir: Path, cmdline_extra: str = "") -> dict:
    start = time.monotonic()
    with launch_guest(GuestSpec(kernel=kernel, image=image, accel="tcg", workdir=workdir,
                                boot_timeout=120, cmdline_extra=cmdline_extra)) as guest:
        to_ssh = guest.boot_to_ssh_s
        first_byte = (guest.console.first_byte_wall or start) - start
        m = RUN_INIT.search(guest.console.text())
        guest.run("true", check=True)
    return {"boot_to_ssh_s": to_ssh, "qemu_to_first_byte_s": first_byte,
            "kernel_run_init_s": float(m.group(1)) if m else None,
            "cycle_s": time.monotonic() - start}


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--build", type=Path, required=True, help="build directory (build.json)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compression", action="append",
                    help="none, gzip, lz4 (repeatable; default: all the kernel can read)")
    ap.add_argument("--write-doc", action="store_true", help="update docs/PERFORMANCE.md")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    ap.add_argument("--cmdline-extra", default="", help="extra kernel command line")
    ap.add_argument("--recipe", type=Path, help="image recipe (default: qemu-images/initramfs.ini)")
    args = ap.parse_args()
    manifest = json.loads((args.build / "build.json").read_text())
    kernel = args.build / (manifest["artifacts"].get("bzImage") or "bzImage")
    config = (args.build / ".config").read_text() if (args.build / ".config").exists() else ""
    comps = args.compression or ["none", "gzip"] + (["lz4"] if "CONFIG_RD_LZ4=y" in config else [])
    results = []
    for comp in comps:
        image = build_image(ImageRequest(build_dir=args.build, compression=comp,
                                         recipe=args.recipe))
        load_before = os.getloadavg()[0]
        runs = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory(prefix="zstest-bench-") as tmp:
                runs.append(boot_once(kernel, image, Path(tmp), args.cmdline_extra))
            print(f"{comp:5} run {i + 1}: boot to SSH {runs[-1]['boot_to_ssh_s']:.2f} s, "
                  f"Run /init at {runs[-1]['kernel_run_init_s']} s, "
                  f"cycle {runs[-1]['cycle_s']:.2f} s", flush=True)
        results.append({"compression": comp, "image_bytes": image.size_bytes, "runs": runs,
                        "recipe": (args.recipe or Path("qemu-images/initramfs.ini")).name,
                        "load_avg": round((load_before + os.getloadavg()[0]) / 2, 1),
                        "median": {k: median([r[k] for r in runs]) for k in runs[0]}})
    table = render(results, manifest, args.runs)
    print(table)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.write_doc:
        write_section(REPO / "docs" / "PERFORMANCE.md", table)
    return 0


def fmt(v):
    return "-" if v is None else f"{v:.2f}"


def render(results, manifest, runs: int) -> str:
    import platform
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    lines = [
        "## Boot",
        "",
        f"Boot to SSH under TCG (`bench/bench_boot.py --runs {runs}`), median of {runs} boots, "
        f"kernel {manifest.get('kernel', {}).get('version')} "
        f"(profile {', '.join(manifest.get('config', {}).get('profiles', []) or ['?'])}), "
        f"1024 MiB, 2 vCPUs, on {os.cpu_count()} host cores ({cpu}), "
        f"{time.strftime('%Y-%m-%d')}. Goal: <= 3.5 s.",
        "",
        "| recipe | initramfs | size | QEMU start -> SSH login | kernel `Run /init` at | "
        "launch + poweroff | host load avg |",
        "|--------|-----------|-----:|------------------------:|----------------------:|"
        "------------------:|--------------:|",
    ]
    for r in results:
        m = r["median"]
        lines.append(f"| {r['recipe']} | {r['compression']} | {r['image_bytes'] / 1e6:.1f} MB | "
                     f"{fmt(m['boot_to_ssh_s'])} s | {fmt(m['kernel_run_init_s'])} s | "
                     f"{fmt(m['cycle_s'])} s | {r['load_avg']} |")
    lines.append("")
    return "\n".join(lines)


def write_section(doc: Path, section: str) -> None:
    """Replace (or append) the '## Boot' section, leaving every other section alone."""
    text = doc.read_text() if doc.exists() else "# Performance\n\n"
    pattern = re.compile(r"^## Boot\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
