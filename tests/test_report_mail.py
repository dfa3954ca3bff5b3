"""zstest report as a mail: splat lines whole, a Tested-by: line, the series' lore link, and a
reproducer that works on another machine. Recorded real runs (tests/data/decode), real git."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import REPO, run_zstest

DATA = REPO / "tests" / "data" / "decode"


def results_copy(tmp_path: Path, name: str, passed: bool = False, series: dict = None,
                 reproducer: str = None) -> Path:
    results = tmp_path / name
    shutil.copytree(DATA / name, results)
    data = json.loads((results / "results.json").read_text())
    build = tmp_path / "build"
    build.mkdir()
    manifest = json.loads((DATA / name / "build.json").read_text())
    manifest["kernel"].pop("git_dir", None)
    if series is not None:
        manifest["series"].update(series)
    if reproducer is not None:
        manifest["reproducer"] = reproducer
    (build / "build.json").write_text(json.dumps(manifest))
    data["kernel"]["build_dir"] = str(build)
    if passed:
        data["status"], data["splats"] = "passed", []
        for t in data["tests"]:
            t.update(status="passed", splats=[], message="")
        (results / "console.log").write_text("")
    (results / "results.json").write_text(json.dumps(data))
    return results


def report(results: Path, tmp_path: Path, gitconfig: str = "", toml: str = "") -> str:
    """`zstest report` with the user's git identity and config file under our control."""
    (tmp_path / "gitconfig").write_text(gitconfig)
    xdg = tmp_path / "xdg"
    (xdg / "zstest").mkdir(parents=True, exist_ok=True)
    (xdg / "zstest" / "config.toml").write_text(toml)
    r = run_zstest("report", results, cwd=tmp_path, timeout=120,
                   env={"GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
                        "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(xdg)})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    return r.stdout


def test_splat_title_and_locations_are_never_wrapped(tmp_path):
    text = report(results_copy(tmp_path, "demo-v1-migration"), tmp_path)
    lines = text.splitlines()
    title = next(l for l in lines if "[warning] WARNING:" in l)
    assert title.endswith("build/mm/zsmalloc.c:1868 zs_page_migrate+0x34b/0x3c0")
    assert "   zs_page_migrate+0x34b/0x3c0  mm/zsmalloc.c:1868 (bug-table)" in lines
    # no line starts with the tail of a cut path or number
    assert not any(l.lstrip().startswith(("68 (bug-table)", "zsmalloc.c:")) for l in lines)
    # prose still wraps at 72 columns
    assert "Accel:    tcg (QEMU under KVM stopped before booting the kernel bzImage:" in lines


def test_reproducer_works_on_another_machine(tmp_path):
    text = report(results_copy(tmp_path, "demo-v1-migration"), tmp_path)
    repro = text.split("How to reproduce:\n", 1)[1]
    assert repro.splitlines()[:2] == [
        "  zstest run --series kernel-patches/demo-migrated/v1 --prefix 3 \\",
        "      --suite migration -k test_hotunplug_migrates_zspages"]
    assert "/root/.cache" not in repro and str(tmp_path) not in repro


def test_reproducer_drops_this_machines_paths(tmp_path):
    from zstest.cache import cache_root
    cached_mbox = f"{cache_root()}/lore/0123abcd.mbox"
    results = results_copy(tmp_path, "demo-v1-migration", reproducer=(
        f"zstest run --kernel {cache_root()}/src/linux-source-6.12 --series {cached_mbox} "
        f"--out /srv/ci/results --build-out /srv/ci/build --config debug --suite quick"),
        series={"source": cached_mbox, "msgid": "20160516014826.GB504@swordfish"})
    repro = report(results, tmp_path).split("How to reproduce:\n", 1)[1]
    words = " ".join(repro.replace("\\\n", " ").split())
    assert words.startswith("zstest run --kernel 6.12 --series "
                            "https://lore.kernel.org/r/20160516014826.GB504@swordfish "
                            "--config debug --suite migration -k test_hotunplug_migrates_zspages")
    assert "/srv/ci" not in repro and "--suite quick" not in repro


def test_tested_by_line_from_git_identity_or_config(tmp_path):
    results = results_copy(tmp_path, "demo-v1-migration", passed=True)
    text = report(results, tmp_path, gitconfig="[user]\n\tname = Ada Tester\n"
                                               "\temail = ada@example.org\n")
    assert text.startswith("zstest results: PASSED\n")
    assert "\nTested-by: Ada Tester <ada@example.org>\n" in text
    # the config file's tested_by wins
    text = report(results, tmp_path, gitconfig="[user]\n\tname = Ada Tester\n"
                                               "\temail = ada@example.org\n",
                  toml='tested_by = "Bo Reviewer <bo@example.org>"\n')
    assert "\nTested-by: Bo Reviewer <bo@example.org>\n" in text
    # unknown: omitted, with a note saying how to get it
    text = report(results, tmp_path)
    assert "(No Tested-by here: set git config user.name and user.email" in text
    assert not any(line.startswith("Tested-by") for line in text.splitlines())


def test_no_tested_by_when_something_failed(tmp_path):
    text = report(results_copy(tmp_path, "demo-v1-migration"), tmp_path,
                  gitconfig="[user]\n\tname = Ada Tester\n\temail = ada@example.org\n")
    assert "Tested-by" not in text


def test_lore_link_of_the_series(tmp_path):
    msgid = "1462760433-32357-1-git-send-email-minchan@kernel.org"
    text = report(results_copy(tmp_path, "demo-v1-migration", series={"msgid": msgid}), tmp_path)
    assert f"Thread:   https://lore.kernel.org/r/{msgid}\n" in text
    # from the source itself when build.json predates the msgid field
    other = tmp_path / "b"
    other.mkdir()
    url = f"https://lore.kernel.org/linux-mm/{msgid}/T/"
    text = report(results_copy(other, "demo-v1-migration", series={"source": url},
                               reproducer=f"zstest build --series {url}"), other)
    assert f"Thread:   https://lore.kernel.org/r/{msgid}\n" in text
    assert f"--series {url}" in " ".join(text.replace("\\\n", " ").split())
