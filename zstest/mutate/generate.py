"""Mutants of C source lines: pure text in, one-line or one-statement changes out.

The source is read through a mask of the same length in which comments, string and character
literals and preprocessor lines (with their continuations) are blanked, so the scanner sees
only code and every offset in the mask is an offset in the real text. Functions are found by
their brace-delimited bodies at file level; inside a body the code is cut into units
(statements, control headers, braces, labels), and each operator rewrites one unit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

OPERATORS = ("delete", "negate", "relational", "off_by_one", "skip_check", "return_early",
             "swap_args")
OPERATOR_HELP = {
    "delete": "delete a statement (a call, an assignment, a stat update, an unlock)",
    "negate": "negate an if/while condition or a WARN_ON/BUG_ON condition",
    "relational": "swap < and <=, > and >=",
    "off_by_one": "+ 1 / - 1 on an index or a size argument",
    "skip_check": "remove an `if (...) return/goto` error check",
    "return_early": "insert `return 0;` (`return;` in a void function) before a statement",
    "swap_args": "swap two plain-identifier arguments of one call",
}

CONTROL_WORDS = {"if", "while", "for", "switch"}
NOT_CALLS = CONTROL_WORDS | {"return", "sizeof", "typeof", "__typeof__", "defined", "else",
                             "do", "case", "_Alignof", "alignof", "__builtin_expect"}
JUMP_WORDS = {"return", "goto", "break", "continue"}
DECLARATION = re.compile(
    r"^(?:(?:static|const|volatile|register|unsigned|signed|struct|enum|union|extern|__\w+)\s+)*"
    r"[A-Za-z_]\w*(?:\s*\*+\s*|\s+)(?:const\s+)?\**\s*[A-Za-z_]\w*\s*(?:\[[^\]]*\]\s*)*[=;,\[]")
IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
SIMPLE_OPERAND = re.compile(r"^[A-Za-z_0-9]\w*(?:(?:->|\.)\w+)*$")
# WARN_ON(cond), BUG_ON, VM_BUG_ON_PAGE(cond, page)...: their condition is negated too.
ASSERTION = re.compile(r"^(?:VM_)?(?:WARN|BUG)\w*$")
# A comparison or a truth value is no size: `likely(size > MIN)` gets no + 1.
LOGIC = re.compile(r"(?<!-)>|<|==|!=|&&|\|\||^!")
CONSTANT_NAME = re.compile(r"^[A-Z0-9_]+$")
SIZE_NAME = re.compile(r"(?i:size|len|count|bytes)|\bnr_|\bnum")
# Calls whose size argument is known by position (0-based).
SIZE_POSITIONS = {"memcpy": 2, "memmove": 2, "memset": 2, "memcmp": 2, "kmalloc": 0,
                  "kzalloc": 0, "kvmalloc": 0, "kmemdup": 1, "copy_page": None}
RETURN_TYPE_NOISE = {"static", "inline", "__always_inline", "noinline", "__init", "__exit",
                     "extern", "__maybe_unused", "notrace", "__cold", "__must_check"}
INTEGER_WORDS = {"int", "long", "short", "char", "unsigned", "signed", "size_t", "ssize_t",
                 "bool", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "loff_t"}
AUTHOR = "zstest mutate <zstest@localhost>"
PATCH_DATE = "Sat, 1 Jan 2000 00:00:00 +0000"


@dataclass(frozen=True)
class Function:
    name: str
    return_type: str
    start_line: int        # 1-based line of the header's first character
    end_line: int          # 1-based line of the closing brace
    body_open: int         # offset of `{`
    body_close: int        # offset of the matching `}`


@dataclass
class Mutant:
    id: str
    file: str
    line: int              # first line changed (the line before which a line is inserted)
    end_line: int          # last original line changed (line - 1 for a pure insertion)
    function: str
    operator: str
    original: str          # the original lines changed, joined by newlines
    mutated: str           # their replacement ("" for a deleted statement)
    diff: str              # a `git format-patch`-style patch that `git am` / `git apply` take

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Unit:
    kind: str              # stmt / ctrl / open / close / else / do / label / block_head / partial
    start: int
    end: int               # exclusive
    keyword: str = ""


@dataclass
class _Edit:
    operator: str
    first: int             # 1-based first original line replaced
    last: int              # 1-based last original line replaced (first - 1: insertion)
    new_lines: list[str] = field(default_factory=list)


class Source:
    """A C file's text, its code mask, line offsets and functions."""

    def __init__(self, text: str):
        self.text = text
        self.mask = mask_source(text)
        self.lines = text.split("\n")
        self.line_starts = [0]
        for line in self.lines[:-1]:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)
        self.functions = _find_functions(self)

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def line_end(self, line: int) -> int:
        return self.line_starts[line - 1] + len(self.lines[line - 1])

    def function_at(self, line: int) -> Function | None:
        for fn in self.functions:
            if fn.start_line <= line <= fn.end_line:
                return fn
        return None


def mask_source(text: str) -> str:
    """text with comments, literals' contents and preprocessor lines blanked (same length)."""
    out = list(text)
    i, n = 0, len(text)
    line_start = True
    while i < n:
        ch = text[i]
        if line_start and ch in " \t":
            i += 1
            continue
        if line_start and ch == "#":
            # the directive and its backslash continuations
            while i < n:
                if text[i] == "\n" and text[i - 1] != "\\":
                    break
                if text[i] != "\n":
                    out[i] = " "
                i += 1
            continue
        line_start = False
        if ch == "\n":
            line_start = True
            i += 1
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            for k in range(i, end):
                if text[k] != "\n":
                    out[k] = " "
            i = end
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                out[i] = " "
                i += 1
        elif ch in "\"'":
            k = i + 1
            while k < n and text[k] != ch and text[k] != "\n":
                k += 2 if text[k] == "\\" else 1
            for m in range(i + 1, min(k, n)):
                if text[m] != "\n":
                    out[m] = " "
            i = k + 1
        else:
            i += 1
    return "".join(out)


def _matching(mask: str, open_at: int, limit: int | None = None) -> int:
    """Offset of the bracket closing the one at open_at, or -1."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[mask[open_at]]]
    end = len(mask) if limit is None else limit
    for k in range(open_at + 1, end):
        ch = mask[k]
        if ch in pairs:
            stack.append(pairs[ch])
        elif ch in ")]}":
            if ch != stack[-1]:
                return -1
            stack.pop()
            if not stack:
                return k
    return -1


def _function_header(header: str) -> tuple[str, str] | None:
    """(name, return type) when the text before a file-level `{` is a function's header."""
    h = header.rstrip()
    if not h.endswith(")") or "=" in h.split("(", 1)[0]:
        return None
    depth = 0
    for k in range(len(h) - 1, -1, -1):
        if h[k] == ")":
            depth += 1
        elif h[k] == "(":
            depth -= 1
            if depth == 0:
                break
    else:
        return None
    m = re.search(r"([A-Za-z_]\w*)\s*$", h[:k])
    if not m or m.group(1) in NOT_CALLS:
        return None
    return m.group(1), " ".join(h[:m.start()].split())


def _find_functions(src: Source) -> list[Function]:
    mask = src.mask
    functions: list[Function] = []
    depth, top_end, current = 0, 0, None
    for i, ch in enumerate(mask):
        if ch == "{":
            if depth == 0:
                header = mask[top_end:i]
                found = _function_header(header)
                current = None
                if found:
                    lead = len(header) - len(header.lstrip())
                    current = (found, top_end + lead, i)
            depth += 1
        elif ch == "}":
            depth = max(depth - 1, 0)
            if depth == 0:
                if current:
                    (name, rtype), start, open_at = current
                    functions.append(Function(name, rtype, src.line_of(start), src.line_of(i),
                                              open_at, i))
                current = None
                top_end = i + 1
        elif ch == ";" and depth == 0:
            top_end = i + 1
    return functions


def find_functions(text: str) -> list[Function]:
    """Every function definition in a C file."""
    return Source(text).functions


def _units(mask: str, start: int, end: int) -> list[_Unit]:
    """A function body cut into statements, control headers, braces and labels."""
    units: list[_Unit] = []
    i = start
    while i < end:
        ch = mask[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "{}":
            units.append(_Unit("open" if ch == "{" else "close", i, i + 1))
            i += 1
            continue
        word = re.match(r"[A-Za-z_]\w*", mask[i:i + 64])
        word = word.group(0) if word else ""
        if word in CONTROL_WORDS:
            paren = mask.find("(", i)
            close = _matching(mask, paren, end) if paren >= 0 else -1
            if close < 0:
                units.append(_Unit("partial", i, end))
                break
            units.append(_Unit("ctrl", i, close + 1, word))
            i = close + 1
            continue
        if word in ("else", "do"):
            units.append(_Unit(word, i, i + len(word)))
            i += len(word)
            continue
        label = re.match(r"(?:case\b[^;:]*|default|[A-Za-z_]\w*)\s*:(?!:)", mask[i:end])
        if label:
            units.append(_Unit("label", i, i + label.end()))
            i += label.end()
            continue
        k, depth, assigned = i, 0, False
        kind = "partial"
        while k < end:
            c = mask[k]
            if c in "([":
                depth += 1
            elif c in ")]":
                depth -= 1
            elif depth == 0 and c == "=" and mask[k - 1] not in "=!<>" and mask[k + 1] != "=":
                assigned = True
            elif depth == 0 and c == ";":
                kind = "stmt"
                k += 1
                break
            elif depth == 0 and c == "{":
                if assigned:
                    close = _matching(mask, k, end)
                    if close < 0:
                        break
                    k = close
                else:
                    kind = "block_head"     # a loop macro: list_for_each_entry(...) {
                    break
            elif depth == 0 and c == "}":
                break
            k += 1
        units.append(_Unit(kind, i, k))
        i = k
    return units


def _first_word(text: str) -> str:
    m = re.match(r"\s*([A-Za-z_]\w*)", text)
    return m.group(1) if m else ""


def _is_declaration(code: str) -> bool:
    flat = " ".join(code.split())
    return _first_word(flat) not in JUMP_WORDS | {"else", "case", "do", "sizeof"} \
        and bool(DECLARATION.match(flat))


def _has_initialiser(code: str) -> bool:
    depth = 0
    for k, c in enumerate(code):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and c == "=" and code[k - 1:k] not in ("=", "!", "<", ">") \
                and code[k + 1:k + 2] != "=":
            return True
    return False


def _calls(mask: str, start: int, end: int) -> list[tuple[str, list[tuple[int, int]]]]:
    """Calls inside [start, end): (name, [(arg start, arg end)...]) with offsets in the file."""
    found = []
    for m in re.finditer(r"\b([A-Za-z_]\w*)\s*\(", mask[start:end]):
        name = m.group(1)
        if name in NOT_CALLS:
            continue
        open_at = start + m.end() - 1
        close = _matching(mask, open_at, end)
        if close < 0:
            continue
        args, depth, arg_start = [], 0, open_at + 1
        for k in range(open_at + 1, close):
            c = mask[k]
            if c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
            elif c == "," and depth == 0:
                args.append((arg_start, k))
                arg_start = k + 1
        args.append((arg_start, close))
        found.append((name, args))
    return found


def _trimmed(src: Source, start: int, end: int) -> tuple[int, int]:
    while start < end and src.mask[start].isspace():
        start += 1
    while end > start and src.mask[end - 1].isspace():
        end -= 1
    return start, end


def _line_aligned(src: Source, start: int, end: int) -> bool:
    """Nothing but blanks (or comments) share the first and last line with [start, end)."""
    first, last = src.line_of(start), src.line_of(end - 1)
    before = src.mask[src.line_starts[first - 1]:start]
    after = src.mask[end:src.line_end(last)]
    return not before.strip() and not after.strip()


def _indent(src: Source, line: int) -> str:
    text = src.lines[line - 1]
    return text[:len(text) - len(text.lstrip())]


def _in_line_edit(src: Source, operator: str, edits: list[tuple[int, int, str]]) -> _Edit:
    """Text replacements (offset ranges) -> the lines they touch, rewritten."""
    lo = min(s for s, _, _ in edits)
    hi = max(max(e - 1, s) for s, e, _ in edits)
    first, last = src.line_of(lo), src.line_of(hi)
    seg_start, seg_end = src.line_starts[first - 1], src.line_end(last)
    segment = src.text[seg_start:seg_end]
    for s, e, rep in sorted(edits, reverse=True):
        segment = segment[:s - seg_start] + rep + segment[e - seg_start:]
    return _Edit(operator, first, last, segment.split("\n"))


def _early_return(fn: Function) -> str | None:
    words = [w for w in fn.return_type.replace("*", " * ").split() if w not in RETURN_TYPE_NOISE]
    if not words or "*" in words:
        return None
    if words == ["void"]:
        return "return;"
    if all(w in INTEGER_WORDS or w == "const" for w in words):
        return "return 0;"
    return None


def _unit_edits(src: Source, fn: Function, units: list[_Unit], idx: int) -> list[_Edit]:
    unit = units[idx]
    prev = units[idx - 1] if idx else None
    mask, text = src.mask, src.text
    code = mask[unit.start:unit.end]
    edits: list[_Edit] = []
    unbraced_body = prev is not None and prev.kind in ("ctrl", "else", "do")
    if unit.kind not in ("stmt", "ctrl"):
        return edits
    declaration = unit.kind == "stmt" and _is_declaration(code)
    if declaration and not _has_initialiser(code):
        return edits
    word = _first_word(code)

    if unit.kind == "stmt" and not declaration and word not in JUMP_WORDS \
            and code.strip() != ";" and _line_aligned(src, unit.start, unit.end):
        first, last = src.line_of(unit.start), src.line_of(unit.end - 1)
        if unbraced_body:
            # the body of an unbraced if/else/for: an empty statement keeps the if's shape
            edits.append(_Edit("delete", first, last, [_indent(src, first) + ";"]))
        else:
            edits.append(_Edit("delete", first, last, []))
            early = _early_return(fn)
            if early:
                edits.append(_Edit("return_early", first, first - 1,
                                   [_indent(src, first) + early]))

    if unit.kind == "ctrl" and unit.keyword in ("if", "while"):
        paren = mask.find("(", unit.start)
        edits.append(_in_line_edit(src, "negate", [(paren + 1, paren + 1, "!("),
                                                   (unit.end - 1, unit.end - 1, ")")]))

    calls = _calls(mask, unit.start, unit.end)
    for name, args in calls:
        if ASSERTION.match(name) and args:
            s, e = _trimmed(src, *args[0])
            if e > s:
                edits.append(_in_line_edit(src, "negate", [(s, s, "!("), (e, e, ")")]))

    if unit.kind == "ctrl" and unit.keyword == "if":
        edits += _skip_check(src, units, idx)

    if unit.keyword != "switch":
        for k in range(unit.start, unit.end):
            c = mask[k]
            if c not in "<>":
                continue
            before, after = mask[k - 1], mask[k + 1]
            if before in "<>" or (c == ">" and before == "-") or after in "<>":
                continue
            if after == "=":
                edits.append(_in_line_edit(src, "relational", [(k, k + 2, c)]))
            else:
                edits.append(_in_line_edit(src, "relational", [(k, k + 1, c + "=")]))

    targets: list[tuple[int, int]] = []
    for m in re.finditer(r"\[", code):
        open_at = unit.start + m.start()
        close = _matching(mask, open_at, unit.end)
        if close > open_at + 1 and mask[open_at + 1:close].strip():
            targets.append(_trimmed(src, open_at + 1, close))
    for name, args in calls:
        for position, (s, e) in enumerate(args):
            s, e = _trimmed(src, s, e)
            arg = mask[s:e]
            if not arg or arg.startswith("&") or '"' in arg or "?" in arg or "=" in arg \
                    or LOGIC.search(arg):
                continue
            if SIZE_POSITIONS.get(name) == position or SIZE_NAME.search(arg):
                targets.append((s, e))
    for s, e in dict.fromkeys(targets):
        operand = text[s:e]
        base = operand if SIMPLE_OPERAND.match(operand) else f"({operand})"
        for delta in (" + 1", " - 1"):
            edits.append(_in_line_edit(src, "off_by_one", [(s, e, base + delta)]))

    for name, args in calls:
        plain = []
        for s, e in args:
            s, e = _trimmed(src, s, e)
            arg = mask[s:e]
            if IDENTIFIER.match(arg) and not CONSTANT_NAME.match(arg) \
                    and arg not in INTEGER_WORDS | {"NULL", "true", "false", "void"}:
                plain.append((s, e, arg))
        # neighbours only: every pair of a 4-argument call would be 6 mutants of one line
        for (s1, e1, n1), (s2, e2, n2) in zip(plain, plain[1:]):
            if n1 != n2:
                edits.append(_in_line_edit(src, "swap_args", [(s1, e1, n2), (s2, e2, n1)]))
    return edits


def _skip_check(src: Source, units: list[_Unit], idx: int) -> list[_Edit]:
    """`if (cond) return/goto ...;` (braced or not, no else) removed whole."""
    if idx and units[idx - 1].kind in ("ctrl", "else", "do"):
        return []
    body = idx + 1
    if body >= len(units):
        return []
    if units[body].kind == "stmt":
        last = body
        inner = [units[body]]
    elif units[body].kind == "open":
        depth, last = 0, body
        for k in range(body, len(units)):
            depth += {"open": 1, "close": -1}.get(units[k].kind, 0)
            if depth == 0:
                last = k
                break
        inner = units[body + 1:last]
        if not inner or len(inner) > 4 or any(u.kind != "stmt" for u in inner):
            return []
    else:
        return []
    if _first_word(src.mask[inner[-1].start:inner[-1].end]) not in ("return", "goto"):
        return []
    if last + 1 < len(units) and units[last + 1].kind == "else":
        return []
    start, end = units[idx].start, units[last].end
    if not _line_aligned(src, start, end):
        return []
    return [_Edit("skip_check", src.line_of(start), src.line_of(end - 1), [])]


def mutant_id(file: str, line: int, operator: str, replacement: str) -> str:
    digest = hashlib.sha1(f"{file}\0{line}\0{operator}\0{replacement}".encode()).hexdigest()
    return digest[:12]


def format_patch(file: str, lines: list[str], first: int, last: int, new_lines: list[str],
                 subject: str, body: str, function: str = "") -> str:
    """One mail `git am` takes: lines first..last of file replaced by new_lines."""
    context = 3
    lo = max(1, first - context)
    hi = min(len(lines), max(last, first - 1) + context)
    old_count = hi - lo + 1
    new_count = old_count - (last - first + 1) + len(new_lines)
    hunk = [f"@@ -{lo},{old_count} +{lo},{new_count} @@" + (f" {function}" if function else "")]
    for n in range(lo, first):
        hunk.append(" " + lines[n - 1])
    hunk += ["-" + lines[n - 1] for n in range(first, last + 1)]
    hunk += ["+" + x for x in new_lines]
    for n in range(max(last, first - 1) + 1, hi + 1):
        hunk.append(" " + lines[n - 1])
    changed = f" {file} | {last - first + 1 + len(new_lines)} "
    return "\n".join([
        "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001",
        f"From: {AUTHOR}", f"Date: {PATCH_DATE}", f"Subject: {subject}", "",
        body.rstrip(), "---", changed, "",
        f"diff --git a/{file} b/{file}", f"--- a/{file}", f"+++ b/{file}",
        *hunk, "-- ", "zstest", ""])


def _trim_common(old: list[str], new: list[str], first: int) -> tuple[int, list[str], list[str]]:
    while old and new and old[0] == new[0]:
        old, new, first = old[1:], new[1:], first + 1
    while old and new and old[-1] == new[-1]:
        old, new = old[:-1], new[:-1]
    return first, old, new


def generate_mutants(text: str, file: str, lines: set[int] | None = None,
                     operators: tuple[str, ...] | list[str] = OPERATORS) -> list[Mutant]:
    """Mutants of file (its text) that change one of `lines` (1-based; None: every line)."""
    unknown = [op for op in operators if op not in OPERATORS]
    if unknown:
        raise ValueError(f"unknown operator {unknown[0]!r}")
    src = Source(text)
    body_lines = text.split("\n")
    found: dict[str, Mutant] = {}
    for fn in src.functions:
        if lines is not None and not any(fn.start_line <= n <= fn.end_line for n in lines):
            continue
        units = _units(src.mask, fn.body_open + 1, fn.body_close)
        for idx in range(len(units)):
            for edit in _unit_edits(src, fn, units, idx):
                if edit.operator not in operators:
                    continue
                old = body_lines[edit.first - 1:edit.last]
                first, old, new = _trim_common(old, edit.new_lines, edit.first)
                if not old and not new:
                    continue
                last = first + len(old) - 1
                touched = range(first, last + 1) if old else range(first, first + 1)
                if lines is not None and not any(n in lines for n in touched):
                    continue
                mutated = "\n".join(new)
                ident = mutant_id(file, first, edit.operator, mutated)
                if ident in found:
                    continue
                original = "\n".join(old)
                subject = f"[PATCH] mutant {ident}: {edit.operator} in {fn.name}() at {file}:{first}"
                body = (f"zstest mutate, operator {edit.operator} ({OPERATOR_HELP[edit.operator]}).\n\n"
                        + "\n".join("    - " + x.strip() for x in old)
                        + ("\n" if old and new else "")
                        + "\n".join("    + " + x.strip() for x in new))
                found[ident] = Mutant(
                    id=ident, file=file, line=first, end_line=last, function=fn.name,
                    operator=edit.operator, original=original, mutated=mutated,
                    diff=format_patch(file, body_lines, first, last, new, subject, body, fn.name))
    order = {op: k for k, op in enumerate(OPERATORS)}
    return sorted(found.values(), key=lambda m: (m.line, order[m.operator], m.mutated))


def function_lines(text: str, names: list[str]) -> tuple[dict[str, set[int]], list[str]]:
    """The lines of each named function, and the names not defined in text."""
    found: dict[str, set[int]] = {}
    for fn in Source(text).functions:
        # a function defined twice (#ifdef / #else stubs): both definitions count
        if fn.name in names:
            found.setdefault(fn.name, set()).update(range(fn.start_line, fn.end_line + 1))
    return found, [n for n in names if n not in found]
