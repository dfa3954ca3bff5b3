"""The lines a series adds, as line numbers in the files after the whole series.

Each patch's `+` lines are numbered in the file as that patch leaves it; the hunks of the
later patches then move them (lines inserted or removed above) or drop them (lines a later
patch removes). Pure: patch texts in, line numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..series.diff import DIFF_GIT, HUNK_HEADER, unquote_path

C_SUFFIXES = (".c", ".h")


@dataclass
class FileHunk:
    old_start: int
    new_start: int
    body: list[str] = field(default_factory=list)   # ' ', '-', '+' lines


@dataclass
class FileDiff:
    old_path: str | None       # None: a new file
    new_path: str | None       # None: a deleted file
    hunks: list[FileHunk] = field(default_factory=list)


def _side(path: str) -> str | None:
    path = unquote_path(path.split("\t")[0].strip())
    if path == "/dev/null":
        return None
    return path.split("/", 1)[1] if "/" in path else path


def parse_file_diffs(patch_text: str) -> list[FileDiff]:
    """Every file's hunks in one patch (mail or plain diff), with their line bodies."""
    diffs: list[FileDiff] = []
    current: FileDiff | None = None
    lines = patch_text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if DIFF_GIT.match(line):
            m = DIFF_GIT.match(line)
            current = FileDiff(_side(m.group(1)), _side(m.group(2)))
            diffs.append(current)
        elif line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            old, new = _side(line[4:]), _side(lines[i + 1][4:])
            if current is None or current.hunks:
                current = FileDiff(old, new)
                diffs.append(current)
            else:
                current.old_path, current.new_path = old, new
            i += 1
        elif line.startswith("@@") and current is not None:
            hm = HUNK_HEADER.match(line)
            if not hm:
                i += 1
                continue
            old_left = int(hm.group(2)) if hm.group(2) is not None else 1
            new_left = int(hm.group(4)) if hm.group(4) is not None else 1
            # "-5,0": the hunk inserts after line 5, its first old line would be 6
            hunk = FileHunk(int(hm.group(1)) + (old_left == 0), int(hm.group(3)) + (new_left == 0))
            while (old_left > 0 or new_left > 0) and i + 1 < len(lines):
                i += 1
                body = lines[i]
                kind = body[:1] or " "
                if kind == "\\":
                    continue
                if kind == " ":
                    old_left, new_left = old_left - 1, new_left - 1
                elif kind == "-":
                    old_left -= 1
                elif kind == "+":
                    new_left -= 1
                else:
                    break
                hunk.body.append(kind + body[1:])
            current.hunks.append(hunk)
        i += 1
    return diffs


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
