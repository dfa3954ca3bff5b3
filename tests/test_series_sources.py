"""Every series source: format-patch dirs, quilt, git ranges, RFC/RESEND, QP/base64, duplicates."""

from __future__ import annotations

import email
import email.policy
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.series import load_series
from zstest.series.parse import parse_subject

GOOD = REPO / "kernel-patches" / "fixtures" / "good-3"
DATA = REPO / "tests" / "data" / "series"
GOOD_SUBJECTS = ["zsmalloc: log the size class layout at init",
                 "zram: make default_compressor a const pointer",
                 "zsmalloc: add zs_objs_to_pages() helper"]


def git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@pytest.mark.parametrize("subject,expected", [
    ("[PATCH v4 02/12] mm: migrate: support", (False, 2, 12, 4, [], "mm: migrate: support")),
    ("[PATCH v4 00/13] Support non-lru page migration", (False, 0, 13, 4, [], "Support non-lru page migration")),
    ("Re: [PATCH v4 11/12] zsmalloc: page migration support", (True, 11, 12, 4, [], "zsmalloc: page migration support")),
    ("[RFC PATCH v2 3/5] zram: x", (False, 3, 5, 2, ["RFC"], "zram: x")),
    ("[PATCH RESEND 1/3] zram: y", (False, 1, 3, 1, ["RESEND"], "zram: y")),
    ("[PATCH] mm: single", (False, None, None, 1, [], "mm: single")),
    ("[PATCH mm-unstable v3 1/2] [fixup] z", (False, 1, 2, 3, [], "z")),
])
def test_parse_subject(subject, expected):
    p = parse_subject(subject)
    assert (p.is_reply, p.index, p.total, p.revision, p.flags, p.title) == expected


def test_format_patch_dir():
    s = load_series(str(GOOD))
    assert s.kind == "format-patch-dir"
    assert [p.subject for p in s.patches] == GOOD_SUBJECTS
    assert [p.files for p in s.patches] == [["mm/zsmalloc.c"], ["drivers/block/zram/zram_drv.c"],
                                            ["mm/zsmalloc.c"]]
    assert [(p.added, p.removed) for p in s.patches] == [(4, 0), (1, 1), (8, 5)]
    assert s.missing == [] and s.problems == [] and s.cover_subject is None


def test_rfc_v2_with_cover_and_base():
    r = run_zstest("series", "show", "--json", DATA / "rfc-v2")
    assert r.returncode == 0, r.stderr
    import json
    d = json.loads(r.stdout)
    assert d["revision"] == 2 and d["prefix_flags"] == ["RFC"]
    assert d["cover_subject"] == "zsmalloc, zram: small cleanups"
    assert d["base_commit"] == "dddd42f2c04c475d1953913ac0efff6b2bd8b9c4"
    assert [p["subject"] for p in d["patches"]] == GOOD_SUBJECTS


def test_resend_mbox():
    s = load_series(str(DATA / "resend.mbox"))
    assert s.prefix_flags == ["RESEND"]
    assert [p.subject for p in s.patches] == GOOD_SUBJECTS


def _reencode(patch: Path, cte: str) -> bytes:
    """The same mail with its body in another transfer encoding, as some mailers send it."""
    orig = email.message_from_bytes(patch.read_bytes().split(b"\n", 1)[1],
                                    policy=email.policy.default)
    msg = EmailMessage()
    for h in ("From", "Date", "Subject"):
        msg[h] = orig[h]
    msg.set_content(orig.get_content(), subtype="plain", charset="utf-8", cte=cte)
    return b"From mboxrd@z Thu Jan  1 00:00:00 1970\n" + msg.as_bytes() + b"\n"


@pytest.mark.parametrize("cte", ["base64", "quoted-printable"])
def test_encoded_bodies_are_decoded(tmp_path, cte):
    mbox = tmp_path / "encoded.mbox"
    mbox.write_bytes(b"".join(_reencode(p, cte) for p in sorted(GOOD.glob("*.patch"))))
    assert (b"diff --git" in mbox.read_bytes()) == (cte == "quoted-printable")
    s = load_series(str(mbox))
    assert [p.subject for p in s.patches] == GOOD_SUBJECTS
    assert [(p.added, p.removed) for p in s.patches] == [(4, 0), (1, 1), (8, 5)]


def test_duplicate_index_keeps_last(tmp_path):
    patches = sorted(GOOD.glob("*.patch"))
    mbox = tmp_path / "dup.mbox"
    mbox.write_bytes(b"".join(p.read_bytes() for p in patches + [patches[1]]))
    s = load_series(str(mbox))
    assert [p.index for p in s.patches] == [1, 2, 3]
    assert any("2/3 appears more than once" in p for p in s.problems)


def test_quilt_dir(tmp_path):
    q = tmp_path / "patches"
    q.mkdir()
    names = []
    for p in sorted(GOOD.glob("*.patch")):
        (q / p.name).write_bytes(p.read_bytes())
        names.append(p.name)
    # quilt also holds bare diffs with only a description.
    text = sorted(GOOD.glob("*.patch"))[0].read_text()
    bare = "Add a debug line\n\n" + text[text.index("diff --git"):].split("\n-- \n")[0] + "\n"
    (q / "bare.diff").write_text(bare)
    (q / "series").write_text("# order\n" + "\n".join(names[::-1]) + "\nbare.diff -p1\n")
    s = load_series(str(q))
    assert s.kind == "quilt"
    assert [p.subject for p in s.patches] == GOOD_SUBJECTS[::-1] + ["Add a debug line"]
    assert [p.index for p in s.patches] == [1, 2, 3, 4] and s.total == 4
    assert s.patches[3].files == ["mm/zsmalloc.c"] and s.patches[3].added == 4


def test_git_range_is_read_only(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "mm").mkdir()
    (repo / "mm" / "a.c").write_text("int a;\n")
    env_id = ["-c", "user.name=T", "-c", "user.email=t@example.org"]
    git(*env_id, "add", ".", cwd=repo)
    git(*env_id, "commit", "-qm", "base", cwd=repo)
    for i in range(2):
        (repo / "mm" / "a.c").write_text(f"int a;\nint b{i};\n")
        git(*env_id, "commit", "-qam", f"mm: change {i}", cwd=repo)
    (repo / "mm" / "a.c").write_text("dirty\n")
    before = (git("status", "--porcelain", cwd=repo), git("show-ref", cwd=repo),
              git("rev-parse", "HEAD", cwd=repo), sorted(p.name for p in tmp_path.iterdir()))
    r = run_zstest("series", "show", "--json", "HEAD~2..HEAD", "--git-tree", repo)
    assert r.returncode == 0, r.stderr
    import json
    d = json.loads(r.stdout)
    assert d["kind"] == "git-range"
    assert [p["subject"] for p in d["patches"]] == ["mm: change 0", "mm: change 1"]
    after = (git("status", "--porcelain", cwd=repo), git("show-ref", cwd=repo),
             git("rev-parse", "HEAD", cwd=repo), sorted(p.name for p in tmp_path.iterdir()))
    assert before == after
    bad = run_zstest("series", "show", "nosuch..HEAD", "--git-tree", repo)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "cannot list the range nosuch..HEAD" in bad.stderr


def test_a_source_starting_with_dash_never_reaches_git_as_an_option(tmp_path):
    """`--output-directory=DIR..HEAD` looks like a range; git format-patch took it as an option."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git("init", "-q", "-b", "main", cwd=repo)
    (repo / "a.c").write_text("int a;\n")
    env_id = ["-c", "user.name=T", "-c", "user.email=t@example.org"]
    git(*env_id, "add", ".", cwd=repo)
    git(*env_id, "commit", "-qm", "base", cwd=repo)
    target = tmp_path / "written"
    r = run_zstest("series", "show", "--git-tree", repo, "--", f"--output-directory={target}..HEAD")
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "cannot start with '-'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not any(p.name.startswith("written") for p in tmp_path.iterdir())
