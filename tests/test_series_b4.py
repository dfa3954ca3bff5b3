"""b4's inputs (lore URLs, `-` for stdin, `b4 am` .mbx), --lore-url on every command that takes
--series, base-commit honoured in a git tree, and review trailers from a thread's replies.

Real mboxes (../shared/series), a real public-inbox-like server on 127.0.0.1 (never the real
lore), real git trees; the kernel trees here are tiny (a top Makefile, Kconfig, mm/): a build
stops at `make tinyconfig`, after build.json has recorded the series and its base.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import run_zstest
from lore_server import LocalLore

V5_COVER = "1462760433-32357-1-git-send-email-minchan@kernel.org"
V5_PATCH6 = "1462760433-32357-7-git-send-email-minchan@kernel.org"
SERGEY = "Sergey Senozhatsky <sergey.senozhatsky@gmail.com>"


@pytest.fixture
def lore():
    with LocalLore() as server:
        yield server


def v5_thread(shared: Path) -> bytes:
    return ((shared / "nonlru-migration-v5.mbox").read_bytes()
            + (shared / "nonlru-migration-v5-replies.mbox").read_bytes())


def zs(*args, cache: Path, input=None, env=None, cwd=None):
    r = run_zstest(*args, env={"ZSTEST_CACHE": str(cache), "XDG_CONFIG_HOME": str(cache / "xdg"),
                               **(env or {})}, input=input, cwd=cwd, timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return r


def one_error(r) -> str:
    lines = [l for l in r.stderr.splitlines() if l.startswith("zstest: error: ")]
    assert len(lines) == 1, r.stderr
    return lines[0]


def git(*args, cwd) -> str:
    return subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def tiny_kernel(path: Path) -> Path:
    """What KernelTree.open and the build stage accept as a kernel tree, nothing more."""
    for sub in ("mm", "scripts/kconfig", "arch/x86"):
        (path / sub).mkdir(parents=True)
    (path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 0\n")
    (path / "Kconfig").write_text("")
    (path / "mm" / "zsmalloc.c").write_text("int a = 1;\nint b = 2;\n")
    return path


# ------------------------------------------------------------------ lore URLs

@pytest.mark.parametrize("url", [
    f"https://lore.kernel.org/r/{V5_COVER}",
    f"https://lore.kernel.org/linux-mm/{V5_COVER}/",
    f"https://lore.kernel.org/all/{V5_COVER}/T/#u",
    f"https://lore.kernel.org/linux-mm/{V5_COVER.replace('@', '%40')}/t.mbox.gz",
])
def test_lore_url_fetched_from_configured_server(url, lore, shared_series, tmp_path):
    lore.serve(V5_COVER, v5_thread(shared_series))
    r = zs("series", "show", url, "--json", "--lore-url", lore.url, cache=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["kind"] == "lore-url" and data["source"] == url
    assert data["msgid"] == V5_COVER and data["revision"] == 5
    assert [p["index"] for p in data["patches"]] == [1, 4, 5, 6, 7, 9, 12]
    assert lore.requests == [f"/all/{V5_COVER}/t.mbox.gz"]


def test_lore_url_from_config_file(lore, shared_series, tmp_path):
    """lore_url in ~/.config/zstest/config.toml is the server when no --lore-url is given."""
    lore.serve(V5_COVER, v5_thread(shared_series))
    config = tmp_path / "xdg" / "zstest" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'lore_url = "{lore.url}"\n')
    r = zs("series", "show", f"https://lore.kernel.org/r/{V5_COVER}", cache=tmp_path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"msgid:     <{V5_COVER}>" in r.stdout
    assert len(lore.requests) == 1


def test_lore_url_without_msgid_is_exit_2(tmp_path):
    r = zs("series", "show", "https://lore.kernel.org/linux-mm/", cache=tmp_path)
    assert r.returncode == 2
    assert "names no message-id" in one_error(r)


@pytest.mark.parametrize("command", ["build", "run", "bisect", "compare", "mutate"])
def test_lore_url_option_on_every_series_command(command, lore, tmp_path):
    """--lore-url reaches the stage that loads the series: the local server is asked, and says 404."""
    kernel = tiny_kernel(tmp_path / "linux")
    url = "https://lore.kernel.org/r/no-such-thread@example.org"
    args = {"build": ["build", "--series", url],
            "run": ["run", "--series", url],
            "bisect": ["bisect", "--series", url],
            "compare": ["compare", url, url],
            "mutate": ["mutate", "--series", url, "--list"]}[command]
    r = zs(*args, "--kernel", kernel, "--lore-url", lore.url, cache=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"{lore.url} has no thread for message-id <no-such-thread@example.org>" in one_error(r)
    assert lore.requests and set(lore.requests) == {"/all/no-such-thread@example.org/t.mbox.gz"}


# ------------------------------------------------------------------ stdin and b4 am

def test_stdin_series(shared_series, tmp_path):
    r = zs("series", "show", "-", "--json", cache=tmp_path,
           input=(shared_series / "nonlru-migration-v5.mbox").read_text())
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["kind"] == "stdin" and data["source"] == "-" and len(data["patches"]) == 7
    empty = zs("series", "show", "-", cache=tmp_path, input="")
    assert empty.returncode == 2 and "standard input is empty" in one_error(empty)


def b4_am_output(shared: Path, dest: Path) -> Path:
    """What `b4 am` writes: X.mbx (patches with the thread's trailers and a Link: added, `From
    git@z` separators, no list footers) and X.cover next to it."""
    from zstest.series.parse import read_mails
    mails = read_mails(shared / "nonlru-migration-v5.mbox")
    stem = dest / "20160509_minchan_support_non_lru_page_migration"
    patches = []
    for mail in mails:
        text = mail.raw.split(b"\n", 1)[1].decode("utf-8", "replace")
        head, _, body = text.partition("\n\n")
        headers = [h for h in re.split(r"\n(?=\S)", head)
                   if h.split(":", 1)[0].lower() in ("from", "date", "subject", "message-id")]
        if "[PATCH v5 00/12]" in mail.subject:
            stem.with_suffix(".cover").write_text("From git@z Thu Jan  1 00:00:00 1970\n"
                                                  + "\n".join(headers) + "\n\n" + body)
            continue
        if f"<{V5_PATCH6}>" in head:
            body = body.replace("Signed-off-by: Minchan Kim <minchan@kernel.org>\n",
                                f"Reviewed-by: {SERGEY}\n"
                                "Signed-off-by: Minchan Kim <minchan@kernel.org>\n"
                                f"Link: https://lore.kernel.org/r/{V5_PATCH6}\n", 1)
        patches.append("From git@z Thu Jan  1 00:00:00 1970\n" + "\n".join(headers)
                       + "\n\n" + body)
    stem.with_suffix(".mbx").write_text("".join(p if p.endswith("\n") else p + "\n"
                                                for p in patches))
    return stem.with_suffix(".mbx")


def test_b4_am_mbx_with_cover(shared_series, tmp_path):
    mbx = b4_am_output(shared_series, tmp_path)
    r = zs("series", "show", mbx, "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["cover_subject"] == "Support non-lru page migration"
    assert data["msgid"] == V5_COVER
    assert [p["index"] for p in data["patches"]] == [1, 4, 5, 6, 7, 9, 12]
    # b4's trailer lines sit in the commit message: what `git am` keeps, not a review reply
    assert all(p["trailers"] == [] for p in data["patches"])


# ------------------------------------------------------------------ trailers

def test_trailers_of_thread_replies(shared_series, tmp_path, lore):
    thread = tmp_path / "v5-thread.mbox"
    thread.write_bytes(v5_thread(shared_series))
    r = zs("series", "show", thread, "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    trailers = {p["index"]: p["trailers"] for p in json.loads(r.stdout)["patches"]}
    assert trailers[6] == [{"tag": "Reviewed-by", "who": SERGEY,
                            "msgid": "20160516014826.GB504@swordfish"}]
    assert trailers[7] == [{"tag": "Reviewed-by", "who": SERGEY,
                            "msgid": "20160516021420.GC504@swordfish"}]
    # quoted trailers ("> Reviewed-by:") and replies without trailers add nothing
    assert all(trailers[i] == [] for i in (1, 4, 5, 9, 12))
    text = zs("series", "show", thread, cache=tmp_path).stdout
    block6 = text.split(" 6/12 ", 1)[1].split(" 7/12 ", 1)[0]
    assert f"Reviewed-by: {SERGEY}" in block6
    # the same thread through a lore URL
    lore.serve(V5_COVER, v5_thread(shared_series))
    via_url = zs("series", "show", f"https://lore.kernel.org/all/{V5_COVER}/T/", "--json",
                 "--lore-url", lore.url, cache=tmp_path)
    assert {p["index"]: p["trailers"] for p in json.loads(via_url.stdout)["patches"]} == trailers


def test_v4_reply_to_cover_gives_no_trailer_without_one(shared_series, tmp_path):
    thread = tmp_path / "v4-thread.mbox"
    thread.write_bytes((shared_series / "nonlru-migration-v4.mbox").read_bytes()
                       + (shared_series / "nonlru-migration-v4-replies.mbox").read_bytes())
    r = zs("series", "show", thread, "--json", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert all(p["trailers"] == [] for p in json.loads(r.stdout)["patches"])


# ------------------------------------------------------------------ base-commit

@pytest.fixture
def based_series(tmp_path):
    """A git kernel tree whose HEAD conflicts with a series made by `git format-patch --base`."""
    tree = tiny_kernel(tmp_path / "linux")
    git("init", "-q", "-b", "master", cwd=tree)
    git("add", "-A", cwd=tree)
    git("commit", "-qm", "base", cwd=tree)
    base = git("rev-parse", "HEAD", cwd=tree)
    git("checkout", "-qb", "topic", cwd=tree)
    zsm = tree / "mm" / "zsmalloc.c"
    zsm.write_text(zsm.read_text().replace("a = 1", "a = 10"))
    git("commit", "-qam", "zsmalloc: a is 10", cwd=tree)
    series = tmp_path / "series"
    git("format-patch", "-q", "--cover-letter", f"--base={base}", "-o", str(series), "master",
        cwd=tree)
    git("checkout", "-q", "master", cwd=tree)
    zsm.write_text(zsm.read_text().replace("a = 1", "a = 5"))
    git("commit", "-qam", "head moves on", cwd=tree)
    git("branch", "-qD", "topic", cwd=tree)
    return tree, series, base


def tree_git_state(tree: Path) -> str:
    return "\n".join(subprocess.run(["git", "--no-optional-locks", *cmd], cwd=tree,
                                    capture_output=True, text=True).stdout
                     for cmd in (["status", "--porcelain"], ["show-ref"], ["rev-parse", "HEAD"]))


def test_base_commit_honoured_in_git_tree(based_series, tmp_path):
    tree, series, base = based_series
    before = tree_git_state(tree)
    out = tmp_path / "apply"
    r = zs("series", "apply", series, "--kernel", tree, "--out", out, cache=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"base:      applying on the series' base-commit {base[:12]}" in r.stdout
    data = json.loads((out / "apply.json").read_text())
    assert data["kernel"]["base"] == base
    assert data["series"]["base_commit"] == base and data["series"]["base_used"] == base
    assert data["series"]["base_from"] == "base-commit"
    # --base wins over base-commit (HEAD conflicts with the patch: exit 3), and says so
    r = zs("series", "apply", series, "--kernel", tree, "--base", "HEAD", "--out", out,
           cache=tmp_path)
    assert r.returncode == 3
    head = git("rev-parse", "HEAD", cwd=tree)
    assert f"base {head[:12]} (--base HEAD; the series' base-commit {base} is not used)" in r.stdout
    assert json.loads((out / "apply.json").read_text())["series"]["base_used"] == head
    # build.json records it too (the tiny tree's build stops at `make tinyconfig`, exit 4)
    b = zs("build", "--kernel", tree, "--series", series, "--out", tmp_path / "build",
           cache=tmp_path)
    assert b.returncode == 4, b.stderr
    assert f"zstest build: applying on the series' base-commit {base[:12]}" in b.stdout
    manifest = json.loads((tmp_path / "build" / "build.json").read_text())
    assert manifest["series"]["base_commit"] == base and manifest["series"]["base_used"] == base
    assert manifest["kernel"]["base"] == base
    assert tree_git_state(tree) == before


def test_base_commit_missing_or_plain_tree_says_which_base(based_series, tmp_path):
    tree, series, base = based_series
    cover = next(series.glob("0000-*"))
    unknown = "0123456789abcdef0123456789abcdef01234567"
    cover.write_text(cover.read_text().replace(base, unknown))
    out = tmp_path / "apply"
    r = zs("series", "apply", series, "--kernel", tree, "--out", out, cache=tmp_path)
    head = git("rev-parse", "HEAD", cwd=tree)
    assert r.returncode == 3     # HEAD conflicts: the fallback was really used
    assert (f"the series' base-commit {unknown} is not used ({tree} does not have it): "
            f"applying on its HEAD {head[:12]}") in r.stdout
    data = json.loads((out / "apply.json").read_text())["series"]
    assert (data["base_commit"], data["base_used"], data["base_from"]) == (unknown, head, "HEAD")
    # a plain tree (no .git) cannot have any commit
    plain = tiny_kernel(tmp_path / "plain")
    r = zs("series", "apply", series, "--kernel", plain, "--out", out, cache=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"({plain} is not a git tree): applying on its imported copy" in r.stdout
    assert json.loads((out / "apply.json").read_text())["series"]["base_from"] == "import"
