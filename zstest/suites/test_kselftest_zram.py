"""The kernel tree's own zram kselftest, run in the guest (issue 5, test 7)."""

import shlex
from pathlib import Path

import pytest

from zstest.suites.lib.kselftest import parse_selftest_output
from zstest.suites.lib.zram import ensure_zram_control

SELFTEST_DIR = "tools/testing/selftests/zram"
GUEST_DIR = "/tmp/kselftest-zram"
NEEDED_TOOLS = ("dd", "bc", "mkfs.ext4", "mkswap", "swapon", "swapoff", "mount", "umount", "seq", "awk")


def test_kselftest_zram(guest, build_info, record):
    # The build dir's copy (the patched tree's); else the kernel tree build.json names.
    shipped = build_info.get("artifacts", {}).get("selftests")
    tree = build_info.get("kernel", {}).get("tree")
    if shipped and build_info.get("local_build_dir"):
        src = Path(build_info["local_build_dir"]) / shipped
    elif tree:
        src = Path(tree) / SELFTEST_DIR
    else:
        pytest.skip("the build has no zram selftests and records no kernel tree to take them from")
    scripts = sorted(p for p in src.glob("*.sh")) if src.is_dir() else []
    if not scripts:
        pytest.skip(f"{src} holds no zram selftest scripts")
    ensure_zram_control(guest)
    missing = [t for t in NEEDED_TOOLS if guest.run(f"command -v {t}").exit_status != 0]
    if missing:
        pytest.skip(f"the guest lacks {', '.join(missing)}, which the zram selftests need")
    guest.check(f"rm -rf {GUEST_DIR} && mkdir -p {GUEST_DIR}")
    for script in scripts:
        guest.put(str(script), f"{GUEST_DIR}/{script.name}")
    # zram.sh only runs these two in turn; each is run alone to keep its own exit code.
    parts = [p.name for p in scripts if p.name not in ("zram.sh", "zram_lib.sh")]
    has_bash = guest.run("command -v bash").exit_status == 0
    shell = "bash" if has_bash else "sh"
    record.detail("shell", shell if has_bash else "busybox sh (no bash in the guest)")
    outputs, exits = [], {}
    for name in parts:
        res = guest.run(f"cd {GUEST_DIR} && {shell} ./{shlex.quote(name)}", timeout=600)
        exits[name] = res.exit_status
        outputs.append(res.stdout + res.stderr)
    report = parse_selftest_output("\n".join(outputs))
    record.detail("selftest", report.as_dict())
    record.detail("exit_codes", exits)
    if all(code == 4 for code in exits.values()):
        pytest.skip("the zram selftests skipped themselves (kselftest exit 4)")
    assert report.cases, "the selftests printed no verdict:\n" + "\n".join(outputs)[-3000:]
    assert report.passed and all(code == 0 for code in exits.values()), \
        f"zram selftest failed: {report.as_dict()} exit codes {exits}\n" + "\n".join(outputs)[-3000:]
