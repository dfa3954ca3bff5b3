"""The CI templates: valid YAML, real zstest command lines, and their jobs run locally in order."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, run_zstest

GITHUB = REPO / "ci" / "github" / "zstest.yml"
GITLAB = REPO / "ci" / "gitlab" / "zstest.yml"
RUN_LOCAL = REPO / "ci" / "run-local"
ALLOWED_ACTIONS = {"actions/checkout", "actions/cache", "actions/cache/restore",
                   "actions/upload-artifact", "actions/download-artifact"}
# The cell the slow tests run: the default 6.1 base build (incremental on the cached object
# dir) and the ~30 s boot suite.
BOOT_CELL = "none-base-6.1-boot"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def scripts_of(path: Path) -> list:
    """Every shell script text of a template: GitHub `run:` steps, GitLab script lists."""
    data = load(path)
    texts = []
    if path == GITHUB:
        for job in data["jobs"].values():
            texts += [s["run"] for s in job["steps"] if "run" in s]
    else:
        for job in data.values():
            if isinstance(job, dict):
                for key in ("before_script", "script", "after_script"):
                    texts += list(job.get(key) or [])
    return texts


def zstest_invocations(text: str) -> list:
    """(subcommand, [options]) of every `zstest ...` command in a shell script."""
    text = re.sub(r"\$\{\{.*?\}\}", "X", text).replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        lex = shlex.shlex(line, posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        tokens = list(lex)
        for i, tok in enumerate(tokens[:-1]):
            # `zstest SUBCOMMAND`, not a path test such as `[ -x .venv/bin/zstest ]`
            if (tok == "zstest" or tok.endswith("/zstest")) and re.fullmatch(r"[a-z][a-z-]+", tokens[i + 1]):
                options = []
                for arg in tokens[i + 2:]:
                    if arg in ("|", "||", "&&", ";", ">", ">>", "<", ")", "&"):
                        break
                    if arg.startswith("-"):
                        options.append(arg.split("=", 1)[0])
                found.append((tokens[i + 1], options))
    return found


def help_options(command: str) -> set:
    proc = run_zstest(command, "--help")
    assert proc.returncode == 0, f"`zstest {command} --help` failed: {proc.stderr}"
    return set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", proc.stdout))


# ---------------------------------------------------------------- structure

def test_github_workflow_shape():
    wf = load(GITHUB)
    on = wf.get("on", wf.get(True))     # YAML 1.1 reads the key `on` as true
    inputs = on["workflow_call"]["inputs"]
    assert {"series", "config", "tree", "suite", "baseline"} <= set(inputs)
    jobs = wf["jobs"]
    assert list(jobs) == ["plan", "build", "boot", "report"]
    assert "matrix" in jobs["plan"]["outputs"]
    for name in ("build", "boot"):
        assert jobs[name]["strategy"]["matrix"] == "${{ fromJSON(needs.plan.outputs.matrix) }}"
        assert jobs[name]["strategy"]["fail-fast"] is False
    assert "build" in jobs["boot"]["needs"] and "boot" in jobs["report"]["needs"]
    uses = {s["uses"].split("@")[0] for j in jobs.values() for s in j["steps"] if "uses" in s}
    assert uses <= ALLOWED_ACTIONS, uses - ALLOWED_ACTIONS
    boot_steps = {s.get("name", s.get("uses")): s for s in jobs["boot"]["steps"]}
    uploads = [s for s in jobs["boot"]["steps"] if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and all(s["if"] == "${{ always() }}" for s in uploads)
    assert "GITHUB_STEP_SUMMARY" in boot_steps["Test summary"]["run"]
    cache_paths = " ".join(s["with"]["path"] for j in jobs.values() for s in j["steps"]
                           if s.get("uses", "").startswith("actions/cache"))
    for part in ("ccache", "images", "src", "repos"):
        assert f"~/.cache/zstest/{part}" in cache_paths


def test_gitlab_template_shape():
    tpl = load(GITLAB)
    for hidden in (".zstest-build", ".zstest-boot", ".zstest-plan", ".zstest-merge"):
        assert hidden in tpl
    assert not [k for k in tpl if not k.startswith(".")], "the template defines only hidden jobs"
    boot = tpl[".zstest-boot"]
    assert boot["artifacts"]["when"] == "always"
    assert boot["artifacts"]["reports"]["junit"] == "results/junit-*.xml"
    assert "results/" in boot["artifacts"]["paths"]
    build = tpl[".zstest-build"]
    assert build["artifacts"]["paths"] == ["build/"]
    # GitLab caches only paths inside the project dir: ZSTEST_CACHE points there
    assert tpl[".zstest-base"]["variables"]["ZSTEST_CACHE"] == "$CI_PROJECT_DIR/.zstest-cache"
    for job in (build, boot):
        for cache in job["cache"]:
            assert all(p.startswith(".zstest-cache/") for p in cache["paths"])


# ---------------------------------------------------------------- KVM

def run_step(script: str, tmp_path: Path, hide_kvm: bool) -> tuple:
    """A template's shell snippet as the engine runs it (bash), on this host or in a private
    mount namespace whose /dev is empty (a runner without KVM); (stdout, GITHUB_OUTPUT)."""
    output = tmp_path / f"github-output-{hide_kvm}"
    output.write_text("")
    argv = ["bash", "-e", "-c", script]
    if hide_kvm:
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'mount -t tmpfs none /dev && exec "$@"', "sh"] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "GITHUB_OUTPUT": str(output)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, output.read_text()


def can_hide_dev() -> bool:
    return subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode == 0


def test_github_boot_jobs_get_dev_kvm_when_the_runner_type_has_it(tmp_path):
    jobs = load(GITHUB)["jobs"]
    assert jobs["plan"]["outputs"]["boot-container-options"] == \
        "${{ steps.kvm.outputs.container-options }}"
    assert jobs["boot"]["container"] == {
        "image": "debian:bookworm", "options": "${{ needs.plan.outputs.boot-container-options }}"}
    assert "plan" in jobs["boot"]["needs"]
    probe = next(s for s in jobs["plan"]["steps"] if s.get("id") == "kvm")["run"]
    if Path("/dev/kvm").is_char_device():
        said, output = run_step(probe, tmp_path, hide_kvm=False)
        assert output == "container-options=--device /dev/kvm\n"
        assert "/dev/kvm present" in said
    if not can_hide_dev():
        pytest.skip("no private mount namespace here (unshare --mount)")
    said, output = run_step(probe, tmp_path, hide_kvm=True)
    assert output == "container-options=\n"
    assert "TCG" in said
    # the boot job says which one it got
    note = next(s for s in jobs["boot"]["steps"] if s.get("name") == "KVM or TCG")["run"]
    assert "TCG" in run_step(note, tmp_path, hide_kvm=True)[0]


def test_kvm_setup_is_documented_where_a_template_cannot_do_it(tmp_path):
    github = GITHUB.read_text()
    # a job of the caller's own on the runner itself: the udev rule opening /dev/kvm
    assert 'KERNEL=="kvm", GROUP="kvm", MODE="0666"' in github
    assert "udevadm trigger" in github
    gitlab = GITLAB.read_text()
    assert 'devices = ["/dev/kvm"]' in gitlab and "--device /dev/kvm" in gitlab
    note = load(GITLAB)[".zstest-boot"]["script"][1]
    assert "/dev/kvm" in note
    if can_hide_dev():
        assert "TCG" in run_step(note, tmp_path, hide_kvm=True)[0]
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Use in CI", 1)[1].split("\n## ", 1)[0]
    for words in ("--device /dev/kvm", "udev", 'devices = ["/dev/kvm"]', "TCG", "PERFORMANCE.md"):
        assert words in section, words


def test_generated_child_pipeline_extends_the_template():
    proc = run_zstest("matrix", REPO / "ci" / "matrix.example.toml", "--format", "gitlab-pipeline")
    child = yaml.safe_load(proc.stdout)
    tpl = load(GITLAB)
    for name, job in child.items():
        if isinstance(job, dict) and "extends" in job:
            assert job["extends"] in tpl
            # the cache keys the template uses are set for every job
            for var in re.findall(r"\$(ZSTEST_\w+)", json.dumps(tpl[job["extends"]].get("cache"))):
                assert var in job["variables"], (name, var)


@pytest.mark.parametrize("path", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_every_zstest_command_exists_with_its_options(path):
    calls = [c for text in scripts_of(path) for c in zstest_invocations(text)]
    commands = {c for c, _ in calls}
    assert {"build", "boot-and-run", "matrix", "compare"} <= commands, commands
    for command, options in calls:
        known = help_options(command)
        missing = [o for o in options if o not in known]
        assert not missing, f"`zstest {command}` has no option(s) {missing} ({path.name})"


def test_invocation_parser_sees_options():
    calls = zstest_invocations('zstest boot-and-run --cell "$X" --build b \\\n  --out "$PWD/r" | tee x')
    assert calls == [("boot-and-run", ["--cell", "--build", "--out"])]


# ---------------------------------------------------------------- ci/run-local, fast

def run_local(*args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_LOCAL), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def test_run_local_plan_job_expands_the_matrix(tmp_path):
    proc = run_local("github", "--only", "plan", "--input", "matrix=ci/matrix.example.toml",
                     "--workdir", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = next(l for l in proc.stdout.splitlines() if l.startswith('{"include"'))
    assert [c["name"] for c in json.loads(line)["include"]] == [
        "v1-base-6.1-default", "v2-base-6.1-default", "v2-base-6.12-boot"]
    assert "jobs: plan=success" in proc.stdout
    # a job gets a fresh copy of the repository, not the repository itself
    assert (tmp_path / "ws" / "plan" / "ci" / "run-local").is_file()


def test_run_local_refuses_unknown_actions_and_symlink_artifacts(tmp_path):
    wf = {"on": {"workflow_call": {"inputs": {}}}, "defaults": {"run": {"shell": "bash"}},
          "jobs": {"a": {"runs-on": "x", "steps": [{"uses": "someone/thing@v1"}]}}}
    path = tmp_path / "wf.yml"
    path.write_text(yaml.safe_dump(wf))
    proc = run_local("github", "--template", path, "--workdir", tmp_path / "w1")
    assert proc.returncode == 2 and "does not know the action someone/thing" in proc.stderr
    wf["jobs"]["a"]["steps"] = [
        {"run": "mkdir -p out && ln -s /etc out/link"},
        {"uses": "actions/upload-artifact@v4", "with": {"name": "x", "path": "out/"}}]
    path.write_text(yaml.safe_dump(wf))
    proc = run_local("github", "--template", path, "--workdir", tmp_path / "w2")
    assert proc.returncode == 2 and "holds a symlink" in proc.stderr


def test_run_local_propagates_a_failing_step(tmp_path):
    wf = {"on": {"workflow_call": {"inputs": {"x": {"type": "string", "default": "7"}}}},
          "jobs": {"a": {"runs-on": "x", "steps": [
              {"run": 'exit "${{ inputs.x }}"'},
              {"name": "after", "if": "${{ !cancelled() }}", "run": "echo after-ran"},
              {"name": "skipped", "run": "echo should-not-run"}]}}}
    path = tmp_path / "wf.yml"
    path.write_text(yaml.safe_dump(wf))
    proc = run_local("github", "--template", path, "--workdir", tmp_path / "w")
    assert proc.returncode == 7
    assert "after-ran" in proc.stdout and "should-not-run" not in proc.stdout


# ---------------------------------------------------------------- ci/run-local, end to end

def check_cell_results(results: Path) -> dict:
    """A boot cell's results dir as the next job (report/merge) receives it."""
    cell = json.loads((results / "cell.json").read_text())
    assert cell == {"schema": 1, "name": BOOT_CELL, "series": "", "config": "base", "tree": "6.1",
                    "suite": "boot"}
    run = json.loads((results / "results.json").read_text())
    assert run["status"] == "passed", run.get("message")
    assert run["tests"] and all(t["status"] in ("passed", "skipped") for t in run["tests"])
    assert (results / "console.log").stat().st_size > 1000
    assert "testcase" in (results / "junit.xml").read_text()
    return run


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_github_jobs_run_locally(kernel_build, tmp_path):
    # kernel_build: the shared default build exists, so this cell's build is incremental
    # The baseline: a recorded real boot-suite run; the boot job compares against it.
    baseline = REPO / "tests" / "data" / "compare" / "boot-good-3"
    proc = run_local("github", "--input", "suite=boot", "--input", f"baseline={baseline}",
                     "--workdir", tmp_path, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert ("jobs: plan=success, build (none-base-6.1-boot)=success, "
            "boot (none-base-6.1-boot)=success, report=success") in out
    build = tmp_path / "artifacts" / f"build-{BOOT_CELL}"
    manifest = json.loads((build / "build.json").read_text())
    assert manifest["status"] == "ok" and (build / manifest["artifacts"]["bzImage"]).is_file()
    assert json.loads((build / "cell.json").read_text())["name"] == BOOT_CELL
    # the boot job booted the build dir it downloaded, not the one the build job wrote
    results = tmp_path / "artifacts" / f"results-{BOOT_CELL}" / BOOT_CELL
    run = check_cell_results(results)
    assert run["kernel"]["build_dir"] == str(tmp_path / "ws" / f"boot_{BOOT_CELL}_" / "build")
    assert (tmp_path / "artifacts" / f"junit-{BOOT_CELL}" / f"junit-{BOOT_CELL}.xml").is_file()
    summaries = "".join(p.read_text() for p in (tmp_path / "step-summaries").iterdir())
    assert f"### zstest {BOOT_CELL}" in summaries and "zstest: all cells" in summaries
    # `zstest compare --merge` reads the downloaded artifacts (the report job did it too)
    merged = run_zstest("compare", "--merge", tmp_path / "artifacts")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert BOOT_CELL in merged.stdout

    compared = (tmp_path / "artifacts" / f"results-{BOOT_CELL}" / f"compare-{BOOT_CELL}.txt").read_text()
    assert "0 regressed" in compared, compared
    assert f"### {BOOT_CELL} against the baseline" in summaries


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_gitlab_jobs_run_locally(kernel_build, tmp_path):
    proc = run_local("gitlab", "--var", "ZSTEST_SUITE=boot", "--workdir", tmp_path, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert (f"jobs: zstest-plan=success, build {BOOT_CELL}=success, boot {BOOT_CELL}=success, "
            f"merge=success") in out
    assert re.search(r"junit report junit-none-base-6\.1-boot\.xml: [1-9]\d* testcases", out)
    check_cell_results(tmp_path / "artifacts" / f"boot {BOOT_CELL}" / "results" / BOOT_CELL)
    assert BOOT_CELL in (tmp_path / "artifacts" / "merge" / "merged.txt").read_text()
