"""The lines a series adds, as line numbers in the files after the whole series.

Each patch's `+` lines are numbered in the file as that patch leaves it; the hunks of the
later patches then move them (lines inserted or removed above) or drop them (lines a later
patch removes). Pure: patch texts in, line numbers out; the diffs are read by series/diff.py.
coverage.py maps executed lines onto these, mutate plants its mutants on them.
"""

from __future__ import annotations

from .diff import FileDiff, parse_file_diffs

C_SUFFIXES = (".c", ".h")


def added_lines(diff: FileDiff) -> list[int]:
    """Line numbers of the `+` lines in the file after this diff."""
    found = []
    for hunk in diff.hunks:
        n = hunk.new_start
        for body in hunk.body:
            if body[0] == "+":
                found.append(n)
            if body[0] in " +":
                n += 1
    return found


def map_through(line: int, diff: FileDiff) -> int | None:
    """Where line (of the file before diff) is after it; None when diff removes it."""
    offset = 0
    for hunk in diff.hunks:
        if line < hunk.old_start:
            break
        o, n = hunk.old_start, hunk.new_start
        for body in hunk.body:
            if body[0] == "+":
                n += 1
                continue
            if o == line:
                return None if body[0] == "-" else n
            o += 1
            if body[0] == " ":
                n += 1
        offset = n - o
    return line + offset


def series_changed_lines(patch_texts: list[str]) -> dict[str, list[tuple[int, int]]]:
    """C file -> [(line after the whole series, 1-based patch number)], in patch order."""
    per_file: dict[str, list[tuple[int, int]]] = {}
    for number, text in enumerate(patch_texts, 1):
        for diff in parse_file_diffs(text):
            if diff.old_path and diff.old_path in per_file:
                moved = []
                for line, owner in per_file.pop(diff.old_path):
                    mapped = map_through(line, diff) if diff.new_path else None
                    if mapped is not None:
                        moved.append((mapped, owner))
                if diff.new_path:
                    per_file[diff.new_path] = moved
            if diff.new_path and diff.new_path.endswith(C_SUFFIXES):
                per_file.setdefault(diff.new_path, []).extend(
                    (line, number) for line in added_lines(diff))
    return {f: sorted(set(v), key=lambda x: (x[1], x[0])) for f, v in per_file.items() if v}
