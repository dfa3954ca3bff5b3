"""The mutant generator, pure and fast: every operator on recorded lines of 6.1's mm/zsmalloc.c
(tests/data/mutate/README.md says where they come from), stable ids, function detection, the
lines it must leave alone, patches that `git apply --check` / `git am` take, and the lines the
demo series v2 adds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import REPO
from zstest import proc
from zstest.series.changed import map_through, series_changed_lines
from zstest.series.diff import parse_file_diffs
from zstest.mutate.generate import (OPERATORS, find_functions, function_lines, generate_mutants,
                                    mask_source, mutant_id)
from zstest.series import load_series

EXCERPT = REPO / "tests" / "data" / "mutate" / "zsmalloc-6.1-excerpt.c"
DEMO_V2 = REPO / "kernel-patches" / "demo-migrated" / "v2"
FILE = "mm/zsmalloc.c"
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost", "HOME": "/nonexistent"}


@pytest.fixture(scope="module")
def text() -> str:
    return EXCERPT.read_text()


@pytest.fixture(scope="module")
def mutants(text):
    return generate_mutants(text, FILE)


def line_no(text: str, needle: str, nth: int = 0) -> int:
    hits = [k for k, line in enumerate(text.split("\n"), 1) if needle in line]
    return hits[nth]


def pick(mutants, operator, line):
    return [(m.original.strip(), m.mutated.strip()) for m in mutants
            if m.operator == operator and m.line == line]


# ---------------------------------------------------------------- operators

def test_delete_a_call_an_assignment_a_stat_update_and_an_unlock(text, mutants):
    for needle in ("dec_zspage_isolation(zspage);", "pool = zspage->pool;",
                   "zspage->isolated++;", "zspage->isolated--;", "spin_unlock(&pool->lock);",
                   "class->stats.objs[type] += cnt;", "dec_zone_page_state(page, NR_ZSPAGES);"):
        n = line_no(text, needle, nth=-1 if needle.startswith("dec_zspage_isolation") else 0)
        assert pick(mutants, "delete", n) == [(needle, "")], needle


def test_delete_keeps_the_shape_of_an_unbraced_if_and_spans_a_multiline_statement(text, mutants):
    n = line_no(text, "fg = ZS_EMPTY;")
    assert [(m.original.strip(), m.mutated) for m in mutants
            if m.operator == "delete" and m.line == n] == [("fg = ZS_EMPTY;", "\t\t;")]
    n = line_no(text, "new_obj = (unsigned long)location_to_obj(newpage,")
    (m,) = [m for m in mutants if m.operator == "delete" and m.line == n]
    assert m.end_line == n + 1 and m.mutated == ""


def test_no_delete_of_returns_declarations_or_jumps(text, mutants):
    for needle in ("return MIGRATEPAGE_SUCCESS;", "int idx = 0;", "goto out;", "return fg;"):
        assert not pick(mutants, "delete", line_no(text, needle)), needle


def test_negate_if_while_and_assertion_conditions(text, mutants):
    n = line_no(text, "if (mode == MIGRATE_SYNC_NO_COPY)")
    assert pick(mutants, "negate", n) == [
        ("if (mode == MIGRATE_SYNC_NO_COPY)", "if (!(mode == MIGRATE_SYNC_NO_COPY))")]
    n = line_no(text, "} while ((page = get_next_page(page)) != NULL);")
    assert pick(mutants, "negate", n) == [
        ("} while ((page = get_next_page(page)) != NULL);",
         "} while (!((page = get_next_page(page)) != NULL));")]
    n = line_no(text, "VM_BUG_ON(zspage->isolated == 0);")
    assert pick(mutants, "negate", n) == [
        ("VM_BUG_ON(zspage->isolated == 0);", "VM_BUG_ON(!(zspage->isolated == 0));")]


def test_relational_swaps_lt_le_gt_ge_and_leaves_arrows_and_shifts(text, mutants):
    n = line_no(text, "addr < s_addr + PAGE_SIZE;")
    assert pick(mutants, "relational", n) == [
        ("for (addr = s_addr + offset; addr < s_addr + PAGE_SIZE;",
         "for (addr = s_addr + offset; addr <= s_addr + PAGE_SIZE;")]
    n = line_no(text, "else if (inuse <= 3 * objs_per_zspage")
    assert pick(mutants, "relational", n)[0][1] == \
        "else if (inuse < 3 * objs_per_zspage / fullness_threshold_frac)"
    n = line_no(text, "if (likely(size > ZS_MIN_ALLOC_SIZE))")
    assert pick(mutants, "relational", n) == [
        ("if (likely(size > ZS_MIN_ALLOC_SIZE))", "if (likely(size >= ZS_MIN_ALLOC_SIZE))")]
    # `->` is no comparison
    assert not pick(mutants, "relational", line_no(text, "pool = zspage->pool;"))


def test_off_by_one_on_an_index_and_a_size_argument(text, mutants):
    n = line_no(text, "pages[idx] = newpage;")
    assert pick(mutants, "off_by_one", n) == [
        ("pages[idx] = newpage;", "pages[idx + 1] = newpage;"),
        ("pages[idx] = newpage;", "pages[idx - 1] = newpage;")]
    n = line_no(text, "memcpy(d_addr, s_addr, PAGE_SIZE);")
    assert [after for _, after in pick(mutants, "off_by_one", n)] == [
        "memcpy(d_addr, s_addr, PAGE_SIZE + 1);", "memcpy(d_addr, s_addr, PAGE_SIZE - 1);"]
    n = line_no(text, "return min_t(int, ZS_SIZE_CLASSES - 1, idx);")
    assert "return min_t(int, (ZS_SIZE_CLASSES - 1) + 1, idx);" in \
        [after for _, after in pick(mutants, "off_by_one", n)]
    # a comparison is no size, even with `size` in it
    assert not pick(mutants, "off_by_one", line_no(text, "if (likely(size > ZS_MIN_ALLOC_SIZE))"))


def test_skip_check_removes_the_error_check_whole(text, mutants):
    n = line_no(text, "if (mode == MIGRATE_SYNC_NO_COPY)")
    (m,) = [m for m in mutants if m.operator == "skip_check" and m.line == n]
    assert m.original == "\tif (mode == MIGRATE_SYNC_NO_COPY)\n\t\treturn -EINVAL;"
    assert m.mutated == "" and m.end_line == n + 1
    n = line_no(text, "\tif (ret)")
    assert [x.original for x in mutants if x.operator == "skip_check" and x.line == n] == \
        ["\tif (ret)\n\t\tgoto out;"]


def test_return_early_matches_the_return_type(text, mutants):
    migrate = line_no(text, "spin_lock(&pool->lock);", nth=1)          # zs_page_migrate: int
    inc = line_no(text, "zspage->isolated++;")                        # inc_zspage_isolation: void
    isolate = line_no(text, "inc_zspage_isolation(zspage);")          # zs_page_isolate: bool
    assert pick(mutants, "return_early", migrate) == [("", "return 0;")]
    assert pick(mutants, "return_early", inc) == [("", "return;")]
    assert pick(mutants, "return_early", isolate) == [("", "return 0;")]
    m = next(m for m in mutants if m.operator == "return_early" and m.line == migrate)
    assert m.end_line == migrate - 1 and m.mutated == "\treturn 0;"


def test_swap_args_only_plain_identifiers_of_one_call(text, mutants):
    n = line_no(text, "record_obj(handle, new_obj);")
    assert pick(mutants, "swap_args", n) == [
        ("record_obj(handle, new_obj);", "record_obj(new_obj, handle);")]
    n = line_no(text, "memcpy(d_addr, s_addr, PAGE_SIZE);")
    assert pick(mutants, "swap_args", n) == [
        ("memcpy(d_addr, s_addr, PAGE_SIZE);", "memcpy(s_addr, d_addr, PAGE_SIZE);")]
    # NR_ZSPAGES is a constant, &pool->lock no identifier, int a type
    for needle in ("dec_zone_page_state(page, NR_ZSPAGES);", "spin_lock(&pool->lock);",
                   "return min_t(int, ZS_SIZE_CLASSES - 1, idx);"):
        assert not pick(mutants, "swap_args", line_no(text, needle)), needle


def test_every_operator_is_exercised(mutants):
    assert {m.operator for m in mutants} == set(OPERATORS)


def test_operator_filter_and_unknown_operator(text):
    only = generate_mutants(text, FILE, operators=["relational"])
    assert only and {m.operator for m in only} == {"relational"}
    with pytest.raises(ValueError):
        generate_mutants(text, FILE, operators=["flip"])


# ---------------------------------------------------------------- what is left alone

def test_comments_preprocessor_bare_declarations_and_braces_give_no_mutant(text):
    lines = text.split("\n")
    quiet = [k for k, line in enumerate(lines, 1)
             if line.strip() in ("{", "}", "int ret;", "struct zs_pool *pool;")
             or line.strip().startswith(("/*", "*", "#"))]
    assert len(quiet) > 30
    assert generate_mutants(text, FILE, set(quiet)) == []


def test_macro_bodies_comments_and_strings_are_masked():
    src = ("#define BUMP(x) \\\n\tdo { (x)++; } while (0)\n"
           "static int f(int a, int b)\n{\n"
           "\t/* g(a, b); if (a < b) */\n"
           "\tpr_info(\"if (a < b) { g(a, b); }\\n\");\n"
           "\treturn a;\n}\n")
    mask = mask_source(src)
    assert len(mask) == len(src) and "BUMP" not in mask and "g(a, b)" not in mask
    assert [f.name for f in find_functions(src)] == ["f"]
    mutants = generate_mutants(src, "x.c")
    assert {m.line for m in mutants} == {6}          # only the pr_info call itself
    assert all(m.operator in ("delete", "return_early") for m in mutants)


# ---------------------------------------------------------------- functions, ids

def test_function_detection_on_recorded_zsmalloc(text):
    names = [f.name for f in find_functions(text)]
    assert names == ["get_size_class_index", "class_stat_inc", "get_fullness_group",
                     "insert_zspage", "remove_zspage", "migrate_write_unlock",
                     "inc_zspage_isolation", "dec_zspage_isolation", "replace_sub_page",
                     "zs_page_isolate", "zs_page_migrate", "zs_page_putback", "zs_init"]
    migrate = next(f for f in find_functions(text) if f.name == "zs_page_migrate")
    assert text.split("\n")[migrate.start_line - 1].startswith("static int zs_page_migrate(")
    assert migrate.return_type == "static int"
    assert text.split("\n")[migrate.end_line - 1] == "}"
    selected, missing = function_lines(text, ["zs_page_migrate", "zs_nope"])
    assert missing == ["zs_nope"] and min(selected["zs_page_migrate"]) == migrate.start_line


def test_every_mutant_names_its_enclosing_function(text, mutants):
    functions = find_functions(text)
    for m in mutants:
        (fn,) = [f for f in functions if f.start_line <= m.line <= f.end_line]
        assert m.function == fn.name


def test_ids_are_stable_and_unique(text, mutants):
    again = generate_mutants(text, FILE)
    assert [m.id for m in again] == [m.id for m in mutants]
    assert len({m.id for m in mutants}) == len(mutants)
    n = line_no(text, "if (mode == MIGRATE_SYNC_NO_COPY)")
    skip = next(m for m in mutants if m.operator == "skip_check" and m.line == n)
    assert skip.id == mutant_id(FILE, n, "skip_check", "")
    # recorded: a changed hash function or key would silently orphan every mutate.json
    assert n == 163 and skip.id == "68bc0fedfe9b"
    # the same mutant in the whole file (zstest mutate --list showed it at 1859)
    assert mutant_id("mm/zsmalloc.c", 1859, "skip_check", "") == "dfece8e81726"


def test_selection_by_lines(text):
    n = line_no(text, "record_obj(handle, new_obj);")
    got = generate_mutants(text, FILE, {n})
    assert {m.line for m in got} == {n}
    assert {m.operator for m in got} == {"delete", "return_early", "swap_args"}


# ---------------------------------------------------------------- patches apply

def _git(*args, cwd):
    return proc.run(["git", *args], cwd=cwd, env={**os.environ, **GIT_ENV}, timeout=60,
                    check=False)


@pytest.fixture(scope="module")
def excerpt_repo(tmp_path_factory, text) -> Path:
    repo = tmp_path_factory.mktemp("excerpt-repo")
    (repo / "mm").mkdir()
    (repo / "mm" / "zsmalloc.c").write_text(text)
    assert _git("init", "-q", cwd=repo).ok
    assert _git("add", "mm/zsmalloc.c", cwd=repo).ok
    assert _git("commit", "-q", "-m", "excerpt", cwd=repo).ok
    return repo


def test_every_mutant_patch_applies_with_git_apply_check(excerpt_repo, mutants, tmp_path):
    failed = []
    for m in mutants:
        patch = tmp_path / f"{m.id}.patch"
        patch.write_text(m.diff)
        res = _git("apply", "--check", str(patch), cwd=excerpt_repo)
        if not res.ok:
            failed.append((m.id, m.operator, m.line, res.stderr.strip()))
    assert not failed, failed[:5]


def test_a_mutant_patch_is_a_mail_git_am_takes(excerpt_repo, text, mutants, tmp_path):
    n = line_no(text, "if (mode == MIGRATE_SYNC_NO_COPY)")
    m = next(m for m in mutants if m.operator == "skip_check" and m.line == n)
    patch = tmp_path / "0001.patch"
    patch.write_text(m.diff)
    res = _git("am", "-q", str(patch), cwd=excerpt_repo)
    assert res.ok, res.stderr
    after = (excerpt_repo / "mm" / "zsmalloc.c").read_text().split("\n")
    assert after == text.split("\n")[:n - 1] + text.split("\n")[n + 1:]
    subject = _git("log", "-1", "--format=%s", cwd=excerpt_repo).stdout.strip()
    assert subject == f"mutant {m.id}: skip_check in zs_page_migrate() at {FILE}:{n}"
    _git("reset", "-q", "--hard", "HEAD~1", cwd=excerpt_repo)


# ---------------------------------------------------------------- the demo series

def test_demo_v2_added_lines_numbered_after_the_whole_series():
    series = load_series(str(DEMO_V2))
    changed = series_changed_lines([p.raw.decode() for p in series.patches])
    # 1/3 adds one line at 1919 of zsmalloc.c; 3/3 then adds five above it (1864..1868)
    assert changed["mm/zsmalloc.c"] == [(1924, 1), (1864, 3), (1865, 3), (1866, 3), (1867, 3),
                                        (1868, 3)]
    assert changed["include/linux/zsmalloc.h"] == [(39, 1), (40, 1)]
    assert changed["drivers/block/zram/zram_drv.c"] == [(1115, 2), (1124, 2), (1125, 2)]
    assert "Documentation/admin-guide/blockdev/zram.rst" not in changed


def test_map_through_moves_and_drops_lines():
    (diff,) = parse_file_diffs("--- a/f.c\n+++ b/f.c\n@@ -10,3 +10,4 @@\n a\n-b\n+c\n+d\n e\n")
    assert map_through(5, diff) == 5
    assert map_through(10, diff) == 10
    assert map_through(11, diff) is None
    assert map_through(12, diff) == 13
    assert map_through(40, diff) == 41


def test_demo_v2_mutants_on_the_series_lines():
    """The lines of 3/3 as the series leaves them (recorded from the 6.1 tree after v2)."""
    series = load_series(str(DEMO_V2))
    patch3 = series.patches[2].raw.decode()
    added = [line[1:] for line in patch3.splitlines() if line.startswith("+") and not line.startswith("+++")]
    body = "\n".join(["static int zs_page_migrate(struct page *newpage, struct page *page,",
                      "\t\tenum migrate_mode mode)", "{", *added, "\treturn 0;", "}", ""])
    got = generate_mutants(body, FILE, set(range(4, 4 + len(added))))
    assert [(m.operator, m.mutated.strip()) for m in got] == [
        ("delete", ""),
        ("negate", "VM_WARN_ON_ONCE_PAGE(!(PageIsolated(newpage)), newpage);"),
        ("return_early", "return 0;")]
