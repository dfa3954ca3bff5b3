"""`zstest mutate`: --list on the demo series and on zs_page_migrate of the default tree (fast,
no build), bad input (exit 2, one sentence), the verdict bookkeeping, and one real end-to-end
run (slow: incremental builds and QEMU boots of two mutants)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest import proc
from zstest.mutate.run import (MutateRequest, _series_dir, exit_code_for, files_after_series,
                               kill_reason, plan_mutants, render_summary, summarize)
from zstest.series import load_series

DEMO_V2 = REPO / "kernel-patches" / "demo-migrated" / "v2"
LIST_LINE = re.compile(r"^[0-9a-f]{12}  (patch \d+  )?\S+:\d+ +\S+ +\S+ +.+  ->  .+$")


def mutate(*args, timeout=300):
    r = run_zstest("mutate", *args, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def error_line(r) -> str:
    lines = [line for line in r.stderr.splitlines()
             if line.strip() and not line.startswith("zstest: using Debian")]
    assert len(lines) == 1 and lines[0].startswith("zstest: error: "), r.stderr
    return lines[0]


# ---------------------------------------------------------------- --list

def test_list_demo_series_v2():
    r = mutate("--series", DEMO_V2, "--list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert all(LIST_LINE.match(line) for line in lines[:-1]), lines
    assert lines[-1] == "6 mutants: delete 3, negate 1, return_early 2"
    # in patch order: 1/3's counter, 2/3's mm_stat line, then 3/3's check
    assert [line.split()[2] for line in lines[:-1]] == ["1", "1", "2", "3", "3", "3"]
    assert "VM_WARN_ON_ONCE_PAGE(!(PageIsolated(newpage)), ..." in r.stdout
    assert "mm/zsmalloc.c:1924" in lines[0] and "atomic_long_inc(&pool->stats.pages_migrated);" in lines[0]


def test_list_function_of_the_default_tree():
    r = mutate("--file", "mm/zsmalloc.c", "--function", "zs_page_migrate", "--list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert all(LIST_LINE.match(line) and " zs_page_migrate " in line for line in lines[:-1])
    total = int(lines[-1].split()[0])
    assert total == len(lines) - 1 > 40
    assert "dfece8e81726  mm/zsmalloc.c:1859" in r.stdout      # skip the NO_COPY check


def test_list_operators_and_several_functions():
    r = mutate("--file", "mm/zsmalloc.c", "--function", "zs_page_putback,zs_page_migrate",
               "--operators", "relational,skip_check", "--list")
    assert r.returncode == 0, r.stderr
    ops = {line.split()[3] for line in r.stdout.strip().splitlines()[:-1]}
    assert ops == {"relational", "skip_check"}
    # zs_page_migrate is a migration function: it comes first whatever the order given
    r = mutate("--file", "mm/zsmalloc.c", "--function", "zs_init,zs_page_migrate", "--list",
               "--operators", "skip_check")
    funcs = [line.split()[2] for line in r.stdout.strip().splitlines()[:-1]]
    assert funcs[0] == "zs_page_migrate" and "zs_init" in funcs


def test_list_is_fast_and_leaves_no_out_dir(tmp_path):
    r = mutate("--series", DEMO_V2, "--list", "--out", tmp_path / "m")
    assert r.returncode == 0 and not (tmp_path / "m").exists()


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("args, says", [
    (["--file", "mm/zsmalloc.c", "--function", "zs_no_such_fn"], "defines no function 'zs_no_such_fn'"),
    (["--file", "mm/zsmalloc.c", "--operators", "flip,delete"], "unknown operator 'flip'"),
    (["--file", "mm/no_such_file.c"], "is not a file of the kernel tree"),
    ([], "give a series (--series SRC) or a file"),
    (["--file", "mm/zsmalloc.c", "--suite", "nope"], "unknown suite 'nope'"),
])
def test_bad_input_is_one_sentence_and_exit_2(args, says):
    r = mutate(*args, "--list")
    assert r.returncode == 2
    assert says in error_line(r)


def test_series_without_c_lines_is_exit_2(tmp_path):
    doc_only = tmp_path / "docs"
    doc_only.mkdir()
    (doc_only / "0001-doc.patch").write_text(
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
        "From: A <a@b.c>\nDate: Sat, 1 Jan 2000 00:00:00 +0000\n"
        "Subject: [PATCH] docs: a word\n\n---\n"
        "diff --git a/README b/README\n--- a/README\n+++ b/README\n"
        "@@ -1,1 +1,2 @@\n Linux kernel\n+a word\n-- \n2.39\n")
    r = mutate("--series", doc_only, "--list")
    assert r.returncode == 2
    assert "adds no C source lines" in error_line(r)


def test_no_such_series_is_exit_2(tmp_path):
    r = mutate("--series", tmp_path / "nope.mbox", "--list")
    assert r.returncode == 2
    error_line(r)


# ---------------------------------------------------------------- bookkeeping (no build)

def test_demo_series_mutants_apply_after_the_series_and_build_as_its_last_patch(tmp_path):
    plan = plan_mutants(MutateRequest(series=str(DEMO_V2)))
    files = files_after_series(plan.kernel, plan.patches, sorted({p.mutant.file for p in plan.mutants}))
    work = tmp_path / "after"
    for name, text in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    assert proc.run(["git", "init", "-q", str(work)], env=env, timeout=60).ok
    for p in plan.mutants:
        patch = tmp_path / f"{p.mutant.id}.patch"
        patch.write_text(p.mutant.diff)
        res = proc.run(["git", "apply", "--check", str(patch)], cwd=work, env=env, timeout=60,
                       check=False)
        assert res.ok, (p.mutant.id, res.stderr)
    series = load_series(str(_series_dir(tmp_path / "s", plan.patches, plan.revision,
                                         plan.mutants[-1].mutant)))
    assert [p.index for p in series.patches] == [1, 2, 3, 4] and series.revision == 2
    assert series.patches[-1].subject.startswith(f"mutant {plan.mutants[-1].mutant.id}: ")


def _rec(verdict, patch=1, function="zs_page_migrate"):
    return {"id": f"{verdict}-{function}", "file": "mm/zsmalloc.c", "line": 1, "function": function,
            "operator": "delete", "original": "a();", "mutated": "", "patch": patch,
            "patch_subject": "zsmalloc: x", "verdict": verdict}


def test_score_summary_and_exit_codes():
    records = [_rec("killed"), _rec("killed", 2), _rec("survived", 2), _rec("build_failed"),
               _rec("timeout", 2, "zs_page_isolate"), _rec(None, 2)]
    groups = summarize(records, per_patch=True)
    assert groups["patch"]["1"]["score"] == 1.0
    assert groups["patch"]["2"]["score"] == round(1 / 3, 3)
    assert groups["function"]["mm/zsmalloc.c:zs_page_migrate"]["build_failed"] == 1
    text = render_summary(records, per_patch=True)
    assert "per patch:" in text and "per function:" in text and "survived:" in text
    assert re.search(r"all mutants +2 +1 +1 +1 +1 +50%", text), text
    assert exit_code_for(records) == 1
    assert exit_code_for([_rec("killed"), _rec("build_failed")]) == 0
    assert exit_code_for([_rec("build_failed"), _rec(None)]) == 4
    assert exit_code_for([_rec("timeout")]) == 1


def test_kill_reason_prefers_the_splat_title():
    results = {"tests": [
        {"name": "a.py::ok", "status": "passed"},
        {"name": "m.py::test_hotunplug", "status": "failed", "message": "\nAssertionError: x\nmore",
         "splats": [{"title": "WARNING: at mm/zsmalloc.c:1868 zs_page_migrate+0x34b/0x3c0"}]}]}
    assert kill_reason(results) == ("m.py::test_hotunplug",
                                    "WARNING: at mm/zsmalloc.c:1868 zs_page_migrate+0x34b/0x3c0")
    results["tests"][1]["splats"] = []
    assert kill_reason(results) == ("m.py::test_hotunplug", "AssertionError: x")
    assert kill_reason({"tests": [], "splats": [{"title": "BUG: x"}]}) == (None, "BUG: x")


# ---------------------------------------------------------------- end to end

@pytest.mark.slow
def test_two_mutants_of_zs_page_migrate_end_to_end(tmp_path):
    """The first two swap_args mutants of zs_page_migrate, built incrementally, booted and
    judged by the hot-unplug migration test: `zspage_class(zspage, pool)` does not compile
    (incompatible pointer types), `memcpy(s_addr, d_addr, PAGE_SIZE)` copies the wrong way and
    loses every object of a migrated page."""
    out = tmp_path / "mutate"
    args = ["--file", "mm/zsmalloc.c", "--function", "zs_page_migrate", "--operators",
            "swap_args", "--suite", "migration", "-k", "hotunplug", "--out", out]
    r = mutate(*args, "--max", "2", timeout=3 * 3600)
    data = json.loads((out / "mutate.json").read_text())
    judged = [m for m in data["mutants"] if m["verdict"]]
    assert [m["mutated"].strip() for m in judged] == [
        "class = zspage_class(zspage, pool);", "memcpy(s_addr, d_addr, PAGE_SIZE);"], r.stderr
    assert data["baseline"]["verdict"] == "passed"
    failed, killed = judged
    assert failed["verdict"] == "build_failed" and "zsmalloc.c" in failed["why"]
    assert killed["verdict"] == "killed", (r.stdout, r.stderr)
    assert "hotunplug" in killed["test"] and killed["why"]
    assert killed["build_s"] > 0 and killed["run_s"] > 0
    assert (Path(killed["results_dir"]) / "results.json").is_file()
    assert not (Path(killed["build_dir"]) / "vmlinux").exists()     # bulky artifacts dropped
    assert r.returncode == 0, r.stdout + r.stderr                     # every built mutant killed
    assert (out / "summary.txt").read_text().startswith("per function:")
    # resumed: the two verdicts stay, nothing is rebuilt
    again = mutate(*args, "--max", "0", timeout=600)
    assert "resuming: 2 of" in again.stdout, again.stdout + again.stderr
    assert json.loads((out / "mutate.json").read_text())["mutants"][:2] == data["mutants"][:2]


def test_a_mutant_whose_kernel_does_not_boot_is_judged_not_the_end_of_the_run(tmp_path):
    """After a baseline that booted, a mutant whose guest never comes up is a judged mutant
    (timeout, saying so); the same boot failure of the baseline is the machine's (exit 5)."""
    from types import SimpleNamespace

    from zstest.errors import BootFailed
    from zstest.mutate.run import MutateRequest, MutationPlan, Trial, _Mutator
    from zstest.pipeline import PipelineOutcome

    class _NoBoot(_Mutator):
        def build_and_boot(self, name, mutant, run_timeout, booting=""):
            return Trial(build_dir=self.out / name / "build", results_dir=self.out / name / "r",
                         build_s=12.0, run_s=31.0, outcome=PipelineOutcome(boot_error=BootFailed(
                             "the guest did not boot: the guest printed no ready marker within "
                             "30 s (sshd never started?); console log: x")))

    plan = MutationPlan(kernel=tmp_path, series_name=None, revision=None, patches=[], mutants=[])
    m = _NoBoot(MutateRequest(on_progress=lambda s: None), plan, tmp_path)
    rec = {}
    m.judge(rec, SimpleNamespace(id="zsmalloc-c-1-delete", diff="--- a\n+++ b\n"))
    assert rec["verdict"] == "timeout", rec
    assert rec["why"].startswith("the kernel did not boot: the guest printed no ready marker")
    with pytest.raises(BootFailed):
        m.run_baseline()
