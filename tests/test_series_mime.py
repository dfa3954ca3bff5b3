"""What `series show` lists and checks is what `series apply` (git am) applies (issue 26, finding 3).

A mail's text part shows a harmless hunk while an application/octet-stream attachment carries a
diff to another file: git mailinfo reads both. zstest now reads every part as git does, runs
git's own mailsplit + mailinfo before git am to prove it, and refuses (exit 2, before git am)
a patch whose paths climb out of the tree, also unquoted names with spaces, or whose diff as git
reads it differs from what zstest lists. Real git, a small real tree, the real CLI.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from conftest import run_zstest

README_HUNK = """diff --git a/Kconfig b/Kconfig
index 1..2 100644
--- a/Kconfig
+++ b/Kconfig
@@ -1,2 +1,3 @@
 config ZSMALLOC
 \tbool "zsmalloc"
+# harmless
"""


def attachment_diff(path: str) -> str:
    return f"""diff --git a/{path} b/{path}
index 1..2 100644
--- a/{path}
+++ b/{path}
@@ -1 +1,2 @@
 /* zsmalloc */
+int planted;
"""


def mime_mail(text_diff: str, attached: str, subject: str = "[PATCH] harmless") -> str:
    att = base64.encodebytes(attached.encode()).decode()
    return f"""From: A U Thor <a@example.org>
Subject: {subject}
Date: Thu, 1 Jan 2026 00:00:00 +0000
Message-ID: <mime-1@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="BOUNDARY"

--BOUNDARY
Content-Type: text/plain; charset=utf-8

A harmless change.

Signed-off-by: A U Thor <a@example.org>
---
{text_diff}
--BOUNDARY
Content-Type: application/octet-stream; name="extra.patch"
Content-Transfer-Encoding: base64

{att}
--BOUNDARY--
"""


def plain_mail(diff: str) -> str:
    return f"""From: A U Thor <a@example.org>
Subject: [PATCH] spaced
Date: Thu, 1 Jan 2026 00:00:00 +0000

A change.
---
{diff}"""


@pytest.fixture
def env(tmp_path):
    (tmp_path / "xdg").mkdir()
    return {"ZSTEST_CACHE": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
            "ZSTEST_KERNEL": ""}


@pytest.fixture
def tiny_tree(tmp_path) -> Path:
    """The smallest tree zstest takes for a kernel (top Makefile, Kconfig, mm/), in git."""
    path = tmp_path / "linux"
    for d in ("mm", "arch/x86", "scripts/kconfig"):
        (path / d).mkdir(parents=True)
    (path / "scripts" / "kconfig" / "Makefile").write_text("# kconfig\n")
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (path / "Kconfig").write_text('config ZSMALLOC\n\tbool "zsmalloc"\n')
    (path / "mm" / "zsmalloc.c").write_text("/* zsmalloc */\n")
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "add", "."], check=True)
    subprocess.run(["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "-m", "base"], check=True)
    return path


def show_json(mail: Path, cwd: Path, env: dict):
    return run_zstest("series", "show", "--json", mail, cwd=cwd, env=env, timeout=120)


def one_sentence(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zstest: error: "), proc.stderr
    return lines[0]


def test_show_lists_the_attachment_git_applies(tmp_path, env, tiny_tree):
    mail = tmp_path / "p.eml"
    mail.write_text(mime_mail(README_HUNK, attachment_diff("mm/zsmalloc.c")))
    proc = show_json(mail, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)["patches"][0]["files"]
    assert sorted(listed) == ["Kconfig", "mm/zsmalloc.c"]
    out = tmp_path / "out"
    proc = run_zstest("series", "apply", mail, "--kernel", tiny_tree, "--out", out, cwd=tmp_path,
                      env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    worktree = json.loads((out / "apply.json").read_text())["worktree"]["path"]
    applied = subprocess.run(["git", "-C", worktree, "show", "--name-only", "--format=", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert sorted(applied) == sorted(listed)


def test_attachment_climbing_out_is_exit_2_in_show_and_apply(tmp_path, env, tiny_tree):
    mail = tmp_path / "p.eml"
    mail.write_text(mime_mail(README_HUNK, attachment_diff("../evil")))
    assert "../evil" in one_sentence(proc := show_json(mail, tmp_path, env))
    assert proc.returncode == 2
    proc = run_zstest("series", "apply", mail, "--kernel", tiny_tree, cwd=tmp_path, env=env,
                      timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "../evil" in one_sentence(proc)
    assert not (tmp_path / "evil").exists()


@pytest.mark.parametrize("diff", [
    # a new empty file: no ---/+++ line names it, only the unquoted header with spaces
    "diff --git a/../x y b/../x y\nnew file mode 100644\nindex 0000000..e69de29\n",
    "diff --git a/mm/../../x y b/mm/../../x y\nold mode 100644\nnew mode 100755\n",
    "diff --git a/.git/x y b/.git/x y\nnew file mode 100644\nindex 0000000..e69de29\n",
])
def test_unquoted_names_with_spaces_are_checked_before_git(tmp_path, env, tiny_tree, diff):
    """git applied these (or refused them itself: exit 3) while zstest saw no path at all."""
    mail = tmp_path / "p.patch"
    mail.write_text(plain_mail(diff))
    proc = run_zstest("series", "apply", mail, "--kernel", tiny_tree, cwd=tmp_path, env=env,
                      timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "outside the tree" in one_sentence(proc)
    # refused before any worktree was made: git never ran on the tree
    assert not (Path(env["ZSTEST_CACHE"]) / "worktrees").exists()


def test_a_from_line_hiding_a_second_mail_is_refused(tmp_path, env):
    """git mailsplit cuts a mail at a 'From ' line; zstest read one patch where git am sees two."""
    second = ("From someone@example.org Mon Sep 17 00:00:00 2001\n"
              "From: B <b@example.org>\nSubject: [PATCH] hidden\n\n---\n"
              + attachment_diff("mm/zsmalloc.c"))
    mail = tmp_path / "p.patch"
    mail.write_text(plain_mail(README_HUNK) + second)
    proc = show_json(mail, tmp_path, env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "2 mails for git am" in one_sentence(proc)


def test_show_strips_escape_sequences_from_encoded_subjects(tmp_path, env):
    """An encoded-word subject decoding to ESC sequences reached the terminal (finding 9)."""
    evil = base64.b64encode("\x1b]0;owned\x07\x1b[2J\x1b[31mred\x9b1A tail".encode()).decode()
    mail = tmp_path / "p.patch"
    text = plain_mail(README_HUNK).replace("Subject: [PATCH] spaced",
                                           f"Subject: [PATCH] =?utf-8?b?{evil}?=")
    mail.write_text(text.replace("From: A U Thor <a@example.org>",
                                 "From: =?utf-8?b?" + base64.b64encode(b"\x1b[5mX").decode() +
                                 "?= <a@example.org>"))
    proc = run_zstest("series", "show", mail, cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x9b" not in proc.stdout and "\x07" not in proc.stdout
    assert "red tail" in proc.stdout and "owned" not in proc.stdout
