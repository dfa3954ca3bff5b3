"""Pure reading of the diff in a patch: files touched, +/- lines, hunks, unsafe paths, and each
file's hunks with their lines (`DiffInfo.diffs`). The one diff parser: series intake, git am's
failure report, the series' config symbols and touched files (series_config.py), the lines a
series adds (series/changed.py: coverage, mutate) and git's diff of a change (affected.py)
all read diffs here."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Optional

HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
# Each side is a plain path or a C-quoted one ("a/\303\244 x"), as git writes names with
# spaces, quotes or non-ASCII bytes.
QUOTED_OR_PLAIN = r'("(?:[^"\\]|\\.)*"|\S+)'
DIFF_GIT = re.compile(rf"^diff --git {QUOTED_OR_PLAIN} {QUOTED_OR_PLAIN}\s*$")
C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


@dataclass
class Hunk:
    file: str
    number: int          # 1-based within its file, as `git apply` counts them
    header: str          # the @@ line


@dataclass
class FileHunk:
    old_start: int       # the first old line it covers ("-5,0", an insertion after 5: 6)
    new_start: int
    header: str = ""     # the @@ line, with git's function context after it
    body: list[str] = field(default_factory=list)   # its ' ', '-', '+' lines, in order

    @property
    def context(self) -> str:
        """What git names after the @@: the enclosing function, or a Kconfig `config FOO`."""
        parts = self.header.split("@@", 2)
        return parts[2].strip() if len(parts) == 3 else ""


@dataclass
class FileDiff:
    old_path: Optional[str]    # None: a new file
    new_path: Optional[str]    # None: a deleted file
    hunks: list[FileHunk] = field(default_factory=list)
    new_file: bool = False     # git's `new file mode` (also an empty file, no hunks)
    deleted_file: bool = False
    renamed: bool = False      # git's `rename from` / `rename to`

    @property
    def path(self) -> str:
        """The file's name in the tree after the patch (before it, for a deletion)."""
        return self.new_path or self.old_path or ""


@dataclass
class DiffInfo:
    files: list[str] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    hunks: list[Hunk] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)   # every path named, for the safety check
    suspect: list[str] = field(default_factory=list)  # unquoted git headers that may climb out
    error: Optional[str] = None                      # malformed or truncated hunk
    truncated: bool = False
    diffs: list[FileDiff] = field(default_factory=list)   # per file, its hunks (to an error)

    @property
    def has_diff(self) -> bool:
        return bool(self.files)

    def unsafe_paths(self) -> list[str]:
        return [p for p in self.paths if is_unsafe_path(p)] + list(self.suspect)


def is_unsafe_path(path: str) -> bool:
    """A path that would write outside the tree (absolute, climbing with `..`) or into .git."""
    if path == "/dev/null":
        return False
    parts = PurePosixPath(path).parts
    # git refuses .git in any case (case-insensitive file systems), so does zstest, earlier.
    return path.startswith("/") or ".." in parts or any(p.lower() == ".git" for p in parts)


def unquote_path(path: str) -> str:
    """git's C-style quoted path ("a/\\303\\244") as the name it stands for; others unchanged."""
    if len(path) < 2 or not (path.startswith('"') and path.endswith('"')):
        return path
    body, out, i = path[1:-1], bytearray(), 0
    while i < len(body):
        ch = body[i]
        if ch != "\\" or i + 1 == len(body):
            out += ch.encode("utf-8", "surrogateescape")
            i += 1
            continue
        nxt = body[i + 1]
        octal = re.match(r"[0-7]{3}", body[i + 1:i + 4])
        if octal:
            out.append(int(octal.group(0), 8) & 0xFF)
            i += 4
        else:
            out.append(C_ESCAPES.get(nxt, ord(nxt) if nxt.isascii() else 63))
            i += 2
    return out.decode("utf-8", "surrogateescape")


def _strip_prefix(path: str) -> str:
    # git's a/ and b/ prefixes; other -p1 prefixes (quilt's dir.orig/) lose their first part too.
    path = unquote_path(path)
    if path == "/dev/null" or path.startswith("/"):
        return path
    parts = path.split("/", 1)
    return parts[1] if len(parts) == 2 else path


def _same_name_split(rest: str) -> Optional[str]:
    """git's reading of an unquoted `a/x y b/x y`: the split whose two sides name the same file
    (linear: only a split giving both names the same length is compared)."""
    first = rest.find("/")
    if first < 0:
        return None
    next_slash, following = [-1] * (len(rest) + 1), -1
    for k in range(len(rest) - 1, -1, -1):
        if rest[k] == "/":
            following = k
        next_slash[k] = following
    for m in (k for k, ch in enumerate(rest) if ch == " " and k > first):
        slash = next_slash[m + 1]
        if slash < 0:
            break
        old_len, new_len = m - first - 1, len(rest) - slash - 1
        if old_len == new_len and rest[first + 1:m] == rest[slash + 1:]:
            return rest[slash + 1:]
    return None


def _suspect_header(rest: str) -> bool:
    """Any way of splitting an unquoted `diff --git` line could name a path outside the tree."""
    tokens = re.split(r"[/ \t]", rest)
    return any(t == ".." or t.lower() == ".git" for t in tokens) or "//" in rest or " /" in rest


def _side(stripped: str) -> Optional[str]:
    return None if stripped == "/dev/null" else stripped


def _header_path(rest: str) -> str:
    # a ---/+++ name: quoted (may hold tabs and spaces) or plain up to an optional tab and date
    rest = rest.strip()
    quoted = re.match(r'"(?:[^"\\]|\\.)*"', rest)
    return quoted.group(0) if quoted else rest.split("\t")[0].strip()


def analyze_diff(text: str) -> DiffInfo:
    info = DiffInfo()
    lines = text.splitlines()
    current: Optional[str] = None
    hunk_no = 0
    seen_git_header = False
    i = 0
    n = len(lines)

    listed: set[str] = set()       # info.files as a set: a list lookup was quadratic
    diff: Optional[FileDiff] = None

    def add_file(path: str) -> None:
        nonlocal current, hunk_no
        current = path
        hunk_no = 0
        if path not in listed:
            listed.add(path)
            info.files.append(path)

    def start_diff(old: Optional[str], new: Optional[str]) -> FileDiff:
        nonlocal diff
        diff = FileDiff(old, new)
        info.diffs.append(diff)
        return diff

    while i < n:
        line = lines[i]
        m = DIFF_GIT.match(line)
        if m:
            seen_git_header = True
            old, new = m.group(1), m.group(2)
            info.paths += [_strip_prefix(old), _strip_prefix(new)]
            add_file(_strip_prefix(new))
            start_diff(_side(_strip_prefix(old)), _side(_strip_prefix(new)))
        elif line.startswith("diff --git "):
            # unquoted names with spaces: git applies it all the same (a new empty file, a mode
            # change, a binary patch need no ---/+++ lines naming it)
            seen_git_header = True
            rest = line[len("diff --git "):].rstrip()
            name = _same_name_split(rest)
            if name is not None:
                info.paths.append(name)
            if _suspect_header(rest):
                info.suspect.append(rest)
            add_file(name if name is not None else _strip_prefix(rest.split(" ", 1)[0]))
            start_diff(current, current)
        elif line.startswith(("rename from ", "rename to ", "copy from ", "copy to ")):
            info.paths.append(unquote_path(line.split(" ", 2)[2].strip()))
            if diff is not None and line.startswith("rename "):
                diff.renamed = True
        elif line.startswith(("new file mode ", "deleted file mode ")) and diff is not None:
            diff.new_file = diff.new_file or line.startswith("new ")
            diff.deleted_file = diff.deleted_file or line.startswith("deleted ")
        elif line.startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "):
            old = _header_path(line[4:])
            new = _header_path(lines[i + 1][4:])
            old_s, new_s = _strip_prefix(old), _strip_prefix(new)
            info.paths += [old_s, new_s]
            target = old_s if new_s == "/dev/null" else new_s
            if not seen_git_header or current is None:
                add_file(target)
            elif current != target and target != "/dev/null":
                add_file(target)
            if diff is None or diff.hunks:     # a plain diff's next file, or a second ---/+++
                start_diff(_side(old_s), _side(new_s))
            else:
                diff.old_path, diff.new_path = _side(old_s), _side(new_s)
            i += 1
        elif line.startswith("@@"):
            hm = HUNK_HEADER.match(line)
            if not hm or current is None:
                info.error = f"malformed hunk header {line[:60]!r}"
                return info
            hunk_no += 1
            info.hunks.append(Hunk(current, hunk_no, line))
            old_left = int(hm.group(2)) if hm.group(2) is not None else 1
            new_left = int(hm.group(4)) if hm.group(4) is not None else 1
            # "-5,0": the hunk inserts after line 5, its first old line would be 6
            hunk = FileHunk(int(hm.group(1)) + (old_left == 0), int(hm.group(3)) + (new_left == 0),
                            line)
            (diff if diff is not None else start_diff(current, current)).hunks.append(hunk)
            while old_left > 0 or new_left > 0:
                i += 1
                if i >= n:
                    info.error = (f"the diff ends inside hunk {hunk_no} of {current} "
                                  f"({line.split('@@')[1].strip()})")
                    info.truncated = True
                    return info
                body = lines[i]
                kind = body[:1]
                if kind == "\\":
                    continue
                if kind == " " or body == "":
                    old_left -= 1
                    new_left -= 1
                elif kind == "-":
                    old_left -= 1
                    info.removed += 1
                elif kind == "+":
                    new_left -= 1
                    info.added += 1
                else:
                    info.error = (f"malformed hunk {hunk_no} of {current}: line {body[:60]!r} "
                                  f"is not context, '+' or '-' while the header "
                                  f"{line.split('@@')[1].strip()} promises more lines")
                    return info
                hunk.body.append(body or " ")
                if old_left < 0 or new_left < 0:
                    info.error = (f"malformed hunk {hunk_no} of {current}: more lines than "
                                  f"its header {line.split('@@')[1].strip()} says")
                    return info
        i += 1
    return info


def parse_file_diffs(text: str) -> list[FileDiff]:
    """Every file's hunks in one patch (a mail or a plain diff), as far as the diff is well
    formed (analyze_diff's error says where it stops)."""
    return analyze_diff(text).diffs
