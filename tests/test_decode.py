"""zstest.decode: splat frames to file:line and to the patches that touched them.

Real data only: recorded consoles (tests/data/console, tests/data/decode), a real
git repository made here with two commits, a real ELF compiled here with gcc -g.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO, run_zstest
from zstest.decode import (Decoded, annotate_results, decode_splat,
                           find_definition, format_decoded, parse_frames, parse_system_map)
from zstest.splats import find_splats

CONSOLE = REPO / "tests" / "data" / "console"
DATA = REPO / "tests" / "data" / "decode"
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost", "PATH": "/usr/bin:/bin"}


def console_splat(name: str, kind: str) -> dict:
    text = (CONSOLE / name).read_text(errors="replace")
    return next(s.to_dict() for s in find_splats(text) if s.kind == kind)


# ---------------------------------------------------------------- parsing

def test_warn_frames_from_a_module_warn():
    frames = parse_frames(console_splat("warn-base-6.1.log", "warning")["text"])
    bug = frames[0]
    assert (bug.kind, bug.file, bug.line, bug.source) == ("bug", "/tmp/devkernel/smb/splatmod.c", 42,
                                                           "bug-table")
    assert (bug.function, bug.offset, bug.size, bug.module) == ("splatmod_init", 0x3f, 0x1000, "splatmod")
    # the RIP repeats the WARN site: not a second frame
    assert [f.kind for f in frames].count("rip") == 0
    trace = [f for f in frames if f.kind == "trace"]
    assert [f.function for f in trace] == [None, "do_one_initcall", "do_init_module",
                                           "__do_sys_finit_module", "do_syscall_64",
                                           "entry_SYSCALL_64_after_hwframe"]
    assert trace[0].reliable is False and trace[0].address == "0xffffffffa0005000"
    assert all(f.reliable for f in trace[1:])


def test_kernel_bug_takes_its_function_from_the_rip():
    frames = parse_frames(console_splat("bug-base-6.1.log", "bug")["text"])
    assert frames[0].kind == "bug"
    assert (frames[0].file, frames[0].line) == ("/tmp/devkernel/smb/splatmod.c", 46)
    assert (frames[0].function, frames[0].offset) == ("splatmod_init", 0x7e)
    # the RIP printed again after "end trace" is not another frame
    assert sum(1 for f in frames if f.function == "splatmod_init") == 1


def test_oops_has_rip_then_trace_and_no_bug_table():
    frames = parse_frames(console_splat("oops-base-6.1.log", "oops")["text"])
    assert frames[0].kind == "rip" and frames[0].function == "splatmod_init"
    assert frames[0].source is None
    assert "bug" not in [f.kind for f in frames]


def test_unreliable_frames_and_cold_parts_from_a_real_oom_trace():
    text = (DATA / "panic-sysrq" / "console.log").read_text(errors="replace")
    splat = next(s for s in find_splats(text) if s.kind == "panic")
    frames = parse_frames(splat.text)
    names = [f.function for f in frames]
    assert names[:3] == ["dump_stack_lvl", "panic", "sysrq_handle_crash"]
    assert "__handle_sysrq.cold" in names


def test_old_kernel_trace_format_with_addresses():
    # the 2016 kernels the nonlru-migration series was posted against print [<addr>] first
    text = "\n".join([
        "WARNING: CPU: 1 PID: 77 at mm/zsmalloc.c:1923 zs_page_migrate+0x1a3/0x5f0()",
        "Call Trace:",
        " [<ffffffff8130f4a3>] dump_stack+0x63/0x90",
        " [<ffffffff81080bd1>] ? __warn+0xd1/0xf0",
        "---[ end trace 9b1c2a4ff3d6e0b2 ]---"])
    frames = parse_frames(text)
    assert (frames[0].file, frames[0].line, frames[0].function) == ("mm/zsmalloc.c", 1923,
                                                                     "zs_page_migrate")
    assert [(f.function, f.reliable) for f in frames[1:]] == [("dump_stack", True), ("__warn", False)]


def test_find_definition_skips_prototypes_and_finds_syscalls_and_asm():
    source = "\n".join([
        "static int zs_page_migrate(struct page *newpage, struct page *page,",
        "\t\tenum migrate_mode mode);",
        "",
        "static int zs_page_migrate(struct page *newpage, struct page *page,",
        "\t\tenum migrate_mode mode)",
        "{",
        "\treturn 0;",
        "}",
        "SYSCALL_DEFINE3(finit_module, int, fd, const char __user *, uargs, int, flags)",
        "{",
        "}",
        "EXPORT_SYMBOL(zs_page_migrate);",
        "DEFINE_IDTENTRY_SYSVEC(sysvec_apic_timer_interrupt)",
        "{",
        "}",
        "SYM_CODE_START(entry_SYSCALL_64)",
        "SYM_INNER_LABEL(entry_SYSCALL_64_after_hwframe, SYM_L_GLOBAL)",
        "SYM_CODE_END(entry_SYSCALL_64)",
    ])
    assert find_definition(source, "zs_page_migrate") == (4, 8)
    assert find_definition(source, "zs_page_migrate.isra.0") == (4, 8)
    assert find_definition(source, "__do_sys_finit_module")[0] == 9
    assert find_definition(source, "sysvec_apic_timer_interrupt")[0] == 13
    assert find_definition(source, "entry_SYSCALL_64_after_hwframe")[0] == 17
    assert find_definition(source, "no_such_function") is None


def test_system_map_sizes_are_the_distance_to_the_next_symbol():
    table = parse_system_map("ffffffff810005d0 T do_one_initcall\n"
                             "ffffffff81000750 t match_dev_by_label\n"
                             "ffffffff81000800 d some_data\n"
                             "ffffffff81000900 t last\n")
    assert table["do_one_initcall"] == [(0xffffffff810005d0, 0x180)]   # as the trace prints it
    assert "some_data" not in table


# ---------------------------------------------------------------- no build, bad build

def test_no_build_dir_keeps_the_bug_table_and_never_raises(tmp_path):
    splat = json.loads((DATA / "failure-probe" / "results.json").read_text())["tests"][2]["splats"][0]
    decoded = decode_splat(splat, None)
    assert decoded.frames[0].location == "mm/zsmalloc.c:1"
    assert decoded.frames[0].source == "bug-table"
    # an empty build dir: no vmlinux is an undecoded frame with a reason, not an error
    oops = console_splat("oops-base-6.1.log", "oops")
    decoded = decode_splat(oops, tmp_path)
    assert any("no vmlinux" in n for n in decoded.notes)
    assert decoded.decoded_frames == 0
    assert all(f.note for f in decoded.frames)


# ---------------------------------------------------------------- attribution on a real git repo

ZSMALLOC_BASE = """\
#include <linux/zsmalloc.h>

static int zs_page_isolate(struct page *page)
{
\treturn 0;
}

static void zs_pool_stat(struct zs_pool *pool)
{
\tpool->stat = 0;
}
"""

ZSMALLOC_P1 = ZSMALLOC_BASE + """
static int zs_page_migrate(struct page *newpage, struct page *page)
{
\tint ret = 0;

\tret = zs_page_isolate(page);
\treturn ret;
}
"""

ZSMALLOC_P2 = ZSMALLOC_P1.replace("\tret = zs_page_isolate(page);\n",
                                  "\tret = zs_page_isolate(page);\n"
                                  "\tWARN_ON(pool->pages_migrated++ < 0);\n")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=GIT_ENV).stdout.strip()


@pytest.fixture
def series_build(tmp_path, monkeypatch) -> Path:
    """A git tree with a base commit and two patch commits, and a build.json naming them.

    The git dir is one of ZSTEST_CACHE's repositories (repos/<tree>/git), as zstest's own
    cached repositories are: decode reads no other git dir.
    """
    monkeypatch.setenv("ZSTEST_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "src" / "linux"
    git_dir = tmp_path / "cache" / "repos" / "linux" / "git"
    (repo / "mm").mkdir(parents=True)
    git_dir.parent.mkdir(parents=True)
    git(repo, "init", "-q", "--separate-git-dir", str(git_dir))
    (repo / "mm" / "zsmalloc.c").write_text(ZSMALLOC_BASE)
    (repo / "mm" / "other.c").write_text("int other(void)\n{\n\treturn 1;\n}\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    base = git(repo, "rev-parse", "HEAD")
    commits = []
    for text, subject in ((ZSMALLOC_P1, "zsmalloc: add zs_page_migrate"),
                          (ZSMALLOC_P2, "zsmalloc: count migrated pages")):
        (repo / "mm" / "zsmalloc.c").write_text(text)
        git(repo, "commit", "-qam", subject)
        commits.append((git(repo, "rev-parse", "HEAD"), subject))
    build = tmp_path / "build"
    build.mkdir()
    (build / "build.json").write_text(json.dumps({
        "status": "ok",
        "kernel": {"tree": str(repo), "base": base, "version": "6.1.0", "git_dir": str(git_dir),
                   "worktree": str(repo)},
        "series": {"source": "demo.mbox", "revision": 1, "total": 2, "applied_prefix": 2,
                   "patches": [{"index": i + 1, "subject": s, "apply": "ok", "build": "ok",
                                "commit": c, "new_warnings": []} for i, (c, s) in enumerate(commits)]},
        "artifacts": {}}))
    return build


def warn_line_no() -> int:
    return ZSMALLOC_P2.splitlines().index("\tWARN_ON(pool->pages_migrated++ < 0);") + 1


def test_warn_line_blamed_on_the_patch_that_wrote_it(series_build):
    n = warn_line_no()
    splat = {"kind": "warning", "title": "WARNING",
             "text": f"[    5.1] WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:{n} zs_page_migrate+0x1a3/0x5f0\n"
                     "[    5.2] Call Trace:\n"
                     "[    5.2]  <TASK>\n"
                     "[    5.2]  zs_pool_stat+0x10/0x40\n"
                     "[    5.2]  other+0x3/0x10\n"
                     "[    5.2]  </TASK>\n"}
    decoded = decode_splat(splat, series_build)
    refs = [(p.index, p.how, p.frame) for p in decoded.patches]
    # the WARN's line: patch 2 wrote it; the function: both patches changed it
    assert refs[0] == (2, "line", 0)
    assert (1, "function", 0) in refs and (2, "function", 0) in refs
    # zs_pool_stat (a touched file, untouched function) resolves to its definition, no patch
    stat = decoded.frames[1]
    assert (stat.location, stat.source) == ("mm/zsmalloc.c:8", "definition")
    assert all(p.frame == 0 for p in decoded.patches)
    # other() lives in a file the series never touched: not found without an object map
    assert decoded.frames[2].source is None
    text = "\n".join(format_decoded(decoded))
    assert 'patch 2 changed this line: zs_page_migrate mm/zsmalloc.c:' in text
    assert all(len(line) <= 72 for line in format_decoded(decoded))


def test_a_line_from_the_first_patch_names_it_not_the_second(series_build):
    n = ZSMALLOC_P2.splitlines().index("\tint ret = 0;") + 1
    splat = {"kind": "bug", "title": f"kernel BUG at mm/zsmalloc.c:{n}!",
             "text": f"kernel BUG at mm/zsmalloc.c:{n}!\nRIP: 0010:zs_page_migrate+0x20/0x5f0\n"}
    decoded = decode_splat(splat, series_build)
    assert [(p.index, p.how) for p in decoded.patches if p.how == "line"] == [(1, "line")]
    assert decoded.patches[0].subject == "zsmalloc: add zs_page_migrate"


def test_a_base_line_names_no_patch_by_line(series_build):
    splat = {"kind": "warning", "title": "WARNING",
             "text": "WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:10 zs_pool_stat+0x4/0x40\n"}
    decoded = decode_splat(splat, series_build)
    assert decoded.patches == []


# ---------------------------------------------------------------- addr2line on a real ELF

TINY_C = """\
int tiny_counter;

int tiny_func(int a, int b)
{
\tint c = a * 3;
\ttiny_counter += c;
\treturn c + b;
}

int main(void)
{
\treturn tiny_func(1, 2);
}

static inline __attribute__((always_inline)) int tiny_inner(int x)
{
\treturn x * 7 + tiny_counter;
}

int tiny_outer(int a)
{
\treturn tiny_inner(a) + 1;
}
"""


def line_addresses(elf: Path) -> dict:
    """line -> first address, read independently from the DWARF line table."""
    out = subprocess.run(["objdump", "--dwarf=decodedline", str(elf)], check=True,
                         capture_output=True, text=True).stdout
    lines = {}
    for m in re.finditer(r"^tiny\.c\s+(\d+)\s+(0x[0-9a-f]+)", out, re.M):
        lines.setdefault(int(m.group(1)), int(m.group(2), 16))
    return lines


@pytest.fixture
def tiny_build(tmp_path) -> Path:
    if not shutil.which("gcc") or not shutil.which("addr2line"):
        pytest.skip("gcc and binutils needed")
    src = tmp_path / "tiny.c"
    src.write_text(TINY_C)
    build = tmp_path / "build"
    build.mkdir()
    subprocess.run(["gcc", "-g", "-O0", "-fno-pie", "-no-pie", "-o", str(build / "vmlinux"), str(src)],
                   check=True)
    subprocess.run(["gcc", "-g", "-O0", "-c", "-o", str(build / "tinymod.ko"), str(src)], check=True)
    nm = subprocess.run(["nm", "-n", str(build / "vmlinux")], check=True, capture_output=True,
                        text=True).stdout
    (build / "System.map").write_text(nm)
    (build / "build.json").write_text(json.dumps({"status": "ok", "kernel": {}, "series": None,
                                                  "artifacts": {"vmlinux": "vmlinux",
                                                                "System.map": "System.map"}}))
    return build


def test_addr2line_resolves_a_frame_to_its_line(tiny_build):
    table = parse_system_map((tiny_build / "System.map").read_text())
    (start, size), = table["tiny_func"]
    lines = line_addresses(tiny_build / "vmlinux")
    off6 = lines[6] - start          # "tiny_counter += c;"
    off8 = lines[8] - start          # "}": the first byte after "return c + b;"
    text = (f"RIP: 0010:tiny_func+{off6:#x}/{size:#x}\n"
            "Call Trace:\n"
            # a return address: the byte before it (line 7) is the call, not line 8
            f" tiny_func+{off8:#x}/{size:#x}\n")
    decoded = decode_splat({"kind": "oops", "title": "t", "text": text}, tiny_build)
    rip, ret = decoded.frames
    assert rip.source == "debuginfo" and rip.line == 6 and rip.file.endswith("tiny.c")
    assert ret.source == "debuginfo" and ret.line == 7
    assert rip.address == f"{start + off6:#x}"


def test_addr2line_names_the_inlined_function_and_its_call_site(tiny_build):
    table = parse_system_map((tiny_build / "System.map").read_text())
    (start, size), = table["tiny_outer"]
    off = line_addresses(tiny_build / "vmlinux")[17] - start     # inside tiny_inner's body
    decoded = decode_splat({"kind": "oops", "title": "t",
                            "text": f"RIP: 0010:tiny_outer+{off:#x}/{size:#x}\n"}, tiny_build)
    frame = decoded.frames[0]
    assert (frame.line, frame.inline_function) == (17, "tiny_inner")
    assert [(c["function"], c["line"]) for c in frame.inlined] == [("tiny_outer", 22)]
    assert "      in tiny_inner(), inlined into:" in format_decoded(decoded)


def test_addr2line_on_a_module_frame_uses_its_section(tiny_build):
    text = "RIP: 0010:tiny_func+0x4/0x20 [tinymod]\n"
    decoded = decode_splat({"kind": "oops", "title": "t", "text": text}, tiny_build)
    frame = decoded.frames[0]
    assert frame.source == "debuginfo", frame.note
    assert frame.file.endswith("tiny.c") and 3 <= frame.line <= 5


def test_a_trace_from_another_kernel_is_flagged_not_misdecoded(tiny_build):
    text = "RIP: 0010:tiny_func+0x4/0x999\n"
    decoded = decode_splat({"kind": "oops", "title": "t", "text": text}, tiny_build)
    assert decoded.frames[0].source is None
    assert "not the kernel that ran" in decoded.frames[0].note


# ---------------------------------------------------------------- annotate a real results dir

def test_annotate_results_writes_decoded_and_summary(tmp_path):
    shutil.copytree(DATA / "failure-probe", tmp_path / "r")
    assert annotate_results(tmp_path / "r") == 1
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    decoded = Decoded.from_dict(data["tests"][2]["splats"][0]["decoded"])
    assert decoded.frames[0].location == "mm/zsmalloc.c:1"
    summary = (tmp_path / "r" / "summary.txt").read_text()
    assert summary.count("Decoded splats") == 1
    # again: the section is replaced, not appended twice
    assert annotate_results(tmp_path / "r") == 1
    assert (tmp_path / "r" / "summary.txt").read_text().count("Decoded splats") == 1


def test_annotate_results_gives_the_run_in_memory_the_same_decoding(tmp_path):
    """The runner hands its RunResults along: bisect and mutate use it as the pipeline returns
    it, with the decoding results.json got, and never read the file back."""
    from zstest.results import load_results
    shutil.copytree(DATA / "failure-probe", tmp_path / "r")
    run = load_results(tmp_path / "r")
    assert not any("decoded" in s for t in run.tests for s in t.splats)
    assert annotate_results(tmp_path / "r", run) == 1
    on_disk = json.loads((tmp_path / "r" / "results.json").read_text())
    assert run.tests[2].splats[0]["decoded"] == on_disk["tests"][2]["splats"][0]["decoded"]
    assert Decoded.from_dict(run.tests[2].splats[0]["decoded"]).frames[0].location == \
        "mm/zsmalloc.c:1"


def test_annotate_results_never_raises(tmp_path):
    assert annotate_results(tmp_path / "missing") == 0
    (tmp_path / "results.json").write_text("{not json")
    assert annotate_results(tmp_path) == 0
    (tmp_path / "results.json").write_text(json.dumps({"tests": [{"splats": ["junk"]}],
                                                       "splats": [{"text": 5}]}))
    assert annotate_results(tmp_path) == 0     # no build dir named


# ---------------------------------------------------------------- against the shared real build

@pytest.mark.slow
def test_real_panic_decodes_to_definitions_in_the_built_tree(kernel_build, tmp_path):
    """A sysrq panic recorded on the shared test build: every frame resolves in its source."""
    shutil.copytree(DATA / "panic-sysrq", tmp_path / "r")
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    data["kernel"]["build_dir"] = str(kernel_build)
    (tmp_path / "r" / "results.json").write_text(json.dumps(data))
    assert annotate_results(tmp_path / "r") == 1
    splat = json.loads((tmp_path / "r" / "results.json").read_text())["tests"][0]["splats"][0]
    frames = {f["function"]: f for f in splat["decoded"]["frames"]}
    assert frames["sysrq_handle_crash"]["file"] == "drivers/tty/sysrq.c", splat["decoded"]
    assert frames["sysrq_handle_crash"]["source"] == "definition"
    assert frames["vfs_write"]["file"] == "fs/read_write.c"
    assert frames["entry_SYSCALL_64_after_hwframe"]["file"] == "arch/x86/entry/entry_64.S"
    assert all(f["source"] for f in splat["decoded"]["frames"])


@pytest.mark.slow
def test_decode_reads_the_object_map_the_build_kept_not_the_shared_objdir(kernel_build, tmp_path):
    """The objdir is shared by every later build of the profile (and rewritten while one runs):
    CI saw a frame lose its file when another test's build was relinking vmlinux.a. The build
    keeps its own objects.map.gz; decode must resolve with the objdir gone."""
    manifest = json.loads((kernel_build / "build.json").read_text())
    assert manifest["artifacts"]["objects"] == "objects.map.gz"
    build = tmp_path / "b"
    build.mkdir()
    for name in ("System.map", "objects.map.gz"):
        shutil.copy2(kernel_build / name, build / name)
    manifest["objdir"] = str(tmp_path / "gone")
    (build / "build.json").write_text(json.dumps(manifest))
    shutil.copytree(DATA / "panic-sysrq", tmp_path / "r")
    data = json.loads((tmp_path / "r" / "results.json").read_text())
    data["kernel"]["build_dir"] = str(build)
    (tmp_path / "r" / "results.json").write_text(json.dumps(data))
    assert annotate_results(tmp_path / "r") == 1
    splat = json.loads((tmp_path / "r" / "results.json").read_text())["tests"][0]["splats"][0]
    frames = {f["function"]: f for f in splat["decoded"]["frames"]}
    assert frames["sysrq_handle_crash"]["file"] == "drivers/tty/sysrq.c", splat["decoded"]
    # a map that inflates past the bound is a note, never a MemoryError
    import gzip
    with gzip.open(build / "objects.map.gz", "wb") as fh:
        fh.write(b"\0" * (65 << 20))
    assert annotate_results(tmp_path / "r") == 1
    notes = json.loads((tmp_path / "r" / "results.json").read_text())["tests"][0]["splats"][0][
        "decoded"]["notes"]
    assert any("objects.map.gz is unreadable or larger than 64 MiB" in n for n in notes), notes


def test_object_map_round_trip_from_real_nm_output():
    """object_map_text on recorded `nm -A` lines of a thin vmlinux.a (6.1 base build)."""
    from zstest.decode.symbols import object_map_text, parse_object_map
    objdir = "/root/.cache/zstest/objs/linux-source-6.1-19ae69399b-base-695e50ec"
    nm = (f"{objdir}/vmlinux.a:{objdir}/drivers/tty/sysrq.o:0000000000000a10 t sysrq_handle_crash\n"
          f"{objdir}/vmlinux.a:{objdir}/drivers/tty/sysrq.o:0000000000000000 d sysrq_crash_op\n"
          f"{objdir}/vmlinux.a:{objdir}/fs/read_write.o:0000000000001c40 T vfs_write\n"
          f"{objdir}/vmlinux.a:{objdir}/kernel/a.o:0000000000000000 t show_state\n"
          f"{objdir}/vmlinux.a:{objdir}/kernel/b.o:0000000000000000 t show_state\n"
          f"{objdir}/vmlinux.a:/elsewhere/x.o:0000000000000000 T outside\n"
          f"{objdir}/vmlinux.a:{objdir}/lib/lib.a:0000000000000000 T not_an_object\n")
    text = object_map_text(nm, objdir)
    table = parse_object_map(text)
    assert table["sysrq_handle_crash"] == ["drivers/tty/sysrq"]
    assert table["vfs_write"] == ["fs/read_write"]
    assert table["show_state"] == ["kernel/a", "kernel/b"]
    assert "sysrq_crash_op" not in table and "outside" not in table and "not_an_object" not in table
    # a hand-made map naming paths outside the tree is ignored
    assert parse_object_map("../../etc/passwd\tx\n/etc\ty\n") == {}


def test_decode_command_on_a_console_log_and_bad_input(tmp_path):
    out = tmp_path / "d.json"
    proc = run_zstest("decode", str(CONSOLE / "warn-base-6.1.log"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "/tmp/devkernel/smb/splatmod.c:42 (bug-table)" in proc.stdout
    assert json.loads(out.read_text())[0]["frames"][0]["line"] == 42
    proc = run_zstest("decode", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "zstest: error:" in proc.stderr


@pytest.mark.slow
def test_kmod_frame_resolves_in_the_kmod_source(kernel_build):
    """A frame in the out-of-tree torture module: its .ko names the file, the kmod source the line."""
    manifest = json.loads((kernel_build / "build.json").read_text())
    source = Path(manifest["artifacts"]["kmod"]["source"]) / "zstorture.c"
    expected = next(i for i, line in enumerate(source.read_text().splitlines(), 1)
                    if re.match(r"^static \w+ zst_worker\(", line))
    # kthread's size is this build's own (0x110 here, 0xe0 on a CI runner): a trace from
    # another kernel would rightly not resolve
    vmlinux = kernel_build / (manifest["artifacts"].get("vmlinux") or "vmlinux")
    nm = subprocess.run(["nm", "-S", str(vmlinux)], capture_output=True, text=True,
                        check=True).stdout.split("\n")
    size = next(int(f[1], 16) for f in (line.split() for line in nm)
                if len(f) == 4 and f[3] == "kthread")
    text = (f"Call Trace:\n zst_worker+0x10/0x3e3 [zstorture]\n kthread+{size // 2:#x}/{size:#x}\n"
            "</TASK>\n")
    decoded = decode_splat({"kind": "warning", "title": "t", "text": text}, kernel_build)
    worker, kthread = decoded.frames
    assert (worker.file, worker.line, worker.source) == (str(source), expected, "definition")
    assert worker.address is not None
    assert kthread.file == "kernel/kthread.c" and kthread.source == "definition"


# ---------------------------------------------------------------- build.json is untrusted input

def _warn_results(tmp_path: Path, build: Path) -> Path:
    """A results dir whose one test logged the WARN patch 2 added, decoded against build."""
    n = warn_line_no()
    splat = {"kind": "warning", "title": "WARNING",
             "text": f"[    5.1] WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:{n} zs_page_migrate+0x1a3/0x5f0\n"}
    results = tmp_path / "results"
    results.mkdir()
    (results / "results.json").write_text(json.dumps({
        "schema": 1, "status": "failed", "kernel": {"build_dir": str(build)},
        "tests": [{"name": "test_x", "status": "failed", "splats": [splat]}], "splats": []}))
    return results


def test_build_json_revisions_never_reach_git_as_options(series_build, tmp_path):
    """kernel.base = "--output=FILE" made `git diff` truncate FILE during decode and report."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    manifest = json.loads((series_build / "build.json").read_text())
    manifest["kernel"]["base"] = f"--output={victim}"
    manifest["series"]["patches"][0]["commit"] = f"--output={victim}"
    (series_build / "build.json").write_text(json.dumps(manifest))
    results = _warn_results(tmp_path, series_build)
    proc = run_zstest("decode", results)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    assert "kernel.base '--output=" in proc.stdout and "not a full commit id" in proc.stdout
    proc = run_zstest("report", results)
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"


def test_build_json_git_dir_outside_the_cache_is_not_read(series_build, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "cache" / "repos" / "linux" / "git", outside / ".git")
    manifest = json.loads((series_build / "build.json").read_text())
    manifest["kernel"]["git_dir"] = str(outside / ".git")
    manifest["kernel"]["worktree"] = str(outside)
    (series_build / "build.json").write_text(json.dumps(manifest))
    n = warn_line_no()
    decoded = decode_splat({"kind": "warning", "title": "WARNING",
                            "text": f"WARNING: CPU: 0 PID: 1 at mm/zsmalloc.c:{n} zs_page_migrate+0x1/0x5\n"},
                           series_build)
    assert decoded.patches == []
    assert any("not one of the zstest cache's repositories" in note for note in decoded.notes)
