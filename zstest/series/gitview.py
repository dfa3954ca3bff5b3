"""What `git am` applies from a patch's mail, read by git itself before `git am` runs.

zstest lists and checks the diff it reads from every part of a mail (parse._diff_text_of: an
attachment too, as git does). `git am` applies what `git mailsplit -b` and `git mailinfo` make
of the same bytes, so check_patch runs those two (they only read the mail, in zstest's own
empty repository) and refuses the patch, exit 2, when git's diff names a path outside the tree
or differs from zstest's: what `series show` lists is what `series apply` applies.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..errors import BadInput
from ..gitsafe import reader_repo, run_git
from ..proc import CommandError
from ..textsafe import one_line
from .diff import analyze_diff
from .model import Patch, Series

MAILINFO_TIMEOUT_S = 120


def diffs_git_applies(raw: bytes) -> list[str]:
    """The patch text git mailinfo extracts from each mail git am would split raw into."""
    with tempfile.TemporaryDirectory(prefix="zstest-mailinfo-") as tmp:
        mbox, split = Path(tmp) / "mail", Path(tmp) / "split"
        split.mkdir()
        mbox.write_bytes(raw)
        repo = reader_repo()
        try:
            # git am's own split (am.c: mailsplit -b, no --keep-cr)
            run_git(["mailsplit", "-b", f"-o{split}", "--", str(mbox)], git_dir=repo, cwd=tmp,
                    timeout=MAILINFO_TIMEOUT_S)
            diffs = []
            for one in sorted(split.iterdir()):
                msg, patch = Path(tmp) / "msg", Path(tmp) / "patch"
                # bytes that are not UTF-8 reach git as U+FFFD (proc.run's text input), each the
                # same way, so the mail's structure is what git am sees
                run_git(["mailinfo", str(msg), str(patch)], git_dir=repo, cwd=tmp,
                        input=one.read_bytes().decode("utf-8", "replace"),
                        timeout=MAILINFO_TIMEOUT_S)
                diffs.append(patch.read_bytes().decode("utf-8", "replace") if patch.is_file() else "")
            return diffs
        except CommandError as exc:
            raise BadInput(f"git cannot read the mail: {one_line(exc.tail or str(exc), 120)}.") from None


def check_patch(patch: Patch) -> None:
    """BadInput unless what git am would apply from patch.raw is safe and is what zstest lists."""
    where = f"patch {patch.index}/{patch.total} {one_line(patch.subject, 80)!r}"
    diffs = diffs_git_applies(patch.raw)
    if len(diffs) != 1:
        raise BadInput(f"{where} holds {len(diffs)} mails for git am (a 'From ' line inside it); "
                       f"refusing it.")
    info = analyze_diff(diffs[0])
    unsafe = info.unsafe_paths()
    if unsafe:
        raise BadInput(f"{where} writes outside the tree ({one_line(unsafe[0], 120)}) as git "
                       f"reads it; refusing it.")
    if sorted(info.files) != sorted(patch.files) or (info.added, info.removed) != \
            (patch.added, patch.removed):
        raise BadInput(f"{where}: git would apply {_files(info.files)} +{info.added}/-{info.removed}, "
                       f"not what zstest reads ({_files(patch.files)} +{patch.added}/"
                       f"-{patch.removed}); refusing it.")


def check_series(series: Series) -> None:
    for patch in series.patches:
        check_patch(patch)


def _files(files: list[str]) -> str:
    shown = ", ".join(one_line(f, 60) for f in files[:3]) or "no file"
    return shown + (f" and {len(files) - 3} more" if len(files) > 3 else "")
