"""Series manifests: what is known about a posted series, revision by revision.

A manifest is kernel-patches/<name>/series.toml (read with the stdlib tomllib).
It names each revision's cover letter and patches by message-id, the base the
revision was posted against and what tree the series needs, so that
`zstest series fetch NAME --rev N` can fetch the thread from a lore server and
check what came back. Fields that were not found in a real message are absent.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import BadInput, PrereqMissing
from ..textsafe import printable
from .lore import DEFAULT_LORE_URL, fetch_thread
from .model import Series
from .parse import build_series, read_mails

MANIFEST_FILE = "series.toml"
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
REVISION_KEY = re.compile(r"^v([1-9][0-9]*)$")
MSGID_VALUE = re.compile(r"^[^\s<>@]+@[^\s<>@]+$")
TOP_KEYS = {"name", "title", "author", "list", "needs", "upstream", "revisions"}
REVISION_KEYS = {"cover_msgid", "cover_subject", "date", "posted", "patch_count", "base",
                 "needs", "sources", "patches"}
PATCH_KEYS = {"subject", "msgid"}


@dataclass(frozen=True)
class ManifestPatch:
    index: int
    subject: Optional[str] = None
    msgid: Optional[str] = None


@dataclass
class Revision:
    number: int
    patch_count: int
    needs: str
    cover_msgid: Optional[str] = None
    cover_subject: Optional[str] = None
    date: Optional[str] = None             # the Date header as posted
    posted: Optional[datetime.date] = None
    base: Optional[str] = None             # what the cover letter says it is based on
    sources: List[str] = field(default_factory=list)
    patches: Dict[int, ManifestPatch] = field(default_factory=dict)

    def msgids(self) -> List[str]:
        """Every message-id this revision names: the cover's, then the patches' in order."""
        ids = [self.cover_msgid] if self.cover_msgid else []
        return ids + [self.patches[i].msgid for i in sorted(self.patches) if self.patches[i].msgid]

    def to_dict(self) -> dict:
        return {"revision": self.number, "patch_count": self.patch_count, "needs": self.needs,
                "cover_msgid": self.cover_msgid, "cover_subject": self.cover_subject,
                "date": self.date, "posted": self.posted.isoformat() if self.posted else None,
                "base": self.base, "sources": list(self.sources),
                "patches": [{"index": p.index, "subject": p.subject, "msgid": p.msgid}
                            for _, p in sorted(self.patches.items())]}


@dataclass
class SeriesManifest:
    name: str
    title: str
    path: Path
    needs: str
    revisions: Dict[int, Revision]
    author: Optional[str] = None
    list: Optional[str] = None
    upstream: Optional[str] = None

    @property
    def newest(self) -> Revision:
        return self.revisions[max(self.revisions)]

    def revision(self, number: Optional[int]) -> Revision:
        """Revision `number` (the newest when None); BadInput naming the known ones."""
        if number is None:
            return self.newest
        if number not in self.revisions:
            known = ", ".join(str(n) for n in sorted(self.revisions))
            raise BadInput(f"{self.name} has no revision {number} in {self.path} "
                           f"(known revisions: {known}).")
        return self.revisions[number]


def manifests_root() -> Path:
    """kernel-patches/ of this checkout, or $ZSTEST_KERNEL_PATCHES."""
    env = os.environ.get("ZSTEST_KERNEL_PATCHES")
    if env:
        return Path(env).expanduser()
    from ..resources import kernel_patches_dir
    return kernel_patches_dir()


def load_manifest(path: Path) -> SeriesManifest:
    """Read and validate one series.toml; BadInput naming the file and the key."""
    try:
        import tomllib  # stdlib from Python 3.11; only manifests need it
    except ImportError:
        raise PrereqMissing("reading series manifests needs Python 3.11 or newer "
                            "(the stdlib tomllib).") from None

    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise BadInput(f"cannot read the series manifest {path}: {exc.strerror}.") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path} is not valid TOML: {exc}.") from None

    where = str(path)
    _unknown_keys(data, TOP_KEYS, where, "")
    name = _string(data, "name", where, "", required=True)
    if not NAME.match(name):
        raise BadInput(f"{where}: `name` {name!r} must be lower-case letters, digits, '.', '_' or '-'.")
    if path.parent.name != name:
        raise BadInput(f"{where}: `name` is {name!r} but the manifest lives in "
                       f"{path.parent.name}/; they must agree.")
    needs = _string(data, "needs", where, "", required=True)
    revisions_table = data.get("revisions")
    if not isinstance(revisions_table, dict) or not revisions_table:
        raise BadInput(f"{where}: `revisions` must hold at least one table such as [revisions.v1].")

    revisions: Dict[int, Revision] = {}
    for key, table in revisions_table.items():
        m = REVISION_KEY.match(key)
        if not m:
            raise BadInput(f"{where}: revision key `revisions.{key}` must look like v1, v2, ...")
        if not isinstance(table, dict):
            raise BadInput(f"{where}: `revisions.{key}` must be a table.")
        revisions[int(m.group(1))] = _revision(table, int(m.group(1)), needs, where, f"revisions.{key}.")

    return SeriesManifest(name=name, title=_string(data, "title", where, "", required=True),
                          path=path, needs=needs, revisions=revisions,
                          author=_string(data, "author", where, ""),
                          list=_string(data, "list", where, ""),
                          upstream=_string(data, "upstream", where, ""))


def _revision(table: dict, number: int, needs: str, where: str, prefix: str) -> Revision:
    _unknown_keys(table, REVISION_KEYS, where, prefix)
    count = table.get("patch_count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise BadInput(f"{where}: `{prefix}patch_count` must be a positive integer.")
    posted = table.get("posted")
    if posted is not None and (not isinstance(posted, datetime.date)
                               or isinstance(posted, datetime.datetime)):
        raise BadInput(f"{where}: `{prefix}posted` must be a TOML date such as 2016-05-09.")
    sources = table.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise BadInput(f"{where}: `{prefix}sources` must be a list of strings.")
    patches_table = table.get("patches", {})
    if not isinstance(patches_table, dict):
        raise BadInput(f"{where}: `{prefix}patches` must be a table keyed by patch index.")

    patches: Dict[int, ManifestPatch] = {}
    for key, entry in patches_table.items():
        pkey = f"{prefix}patches.{key}"
        if not key.isdigit() or not 1 <= int(key) <= count:
            raise BadInput(f"{where}: `{pkey}` is not a patch index from 1 to {count}.")
        if not isinstance(entry, dict):
            raise BadInput(f"{where}: `{pkey}` must be a table {{ subject = ..., msgid = ... }}.")
        _unknown_keys(entry, PATCH_KEYS, where, pkey + ".")
        patches[int(key)] = ManifestPatch(index=int(key),
                                          subject=_string(entry, "subject", where, pkey + "."),
                                          msgid=_msgid(entry, "msgid", where, pkey + "."))

    rev = Revision(number=number, patch_count=count,
                   needs=_string(table, "needs", where, prefix) or needs,
                   cover_msgid=_msgid(table, "cover_msgid", where, prefix),
                   cover_subject=_string(table, "cover_subject", where, prefix),
                   date=_string(table, "date", where, prefix), posted=posted,
                   base=_string(table, "base", where, prefix), sources=list(sources),
                   patches=patches)
    seen: Dict[str, str] = {}
    for label, msgid in ([("cover_msgid", rev.cover_msgid)]
                         + [(f"patches.{i}.msgid", p.msgid) for i, p in sorted(patches.items())]):
        if msgid is None:
            continue
        if msgid in seen:
            raise BadInput(f"{where}: `{prefix}{label}` repeats the message-id of "
                           f"`{prefix}{seen[msgid]}` ({msgid}).")
        seen[msgid] = label
    return rev


def _unknown_keys(table: dict, allowed: set, where: str, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise BadInput(f"{where}: unknown key `{prefix}{unknown[0]}` "
                       f"(known: {', '.join(sorted(allowed))}).")


def _string(table: dict, key: str, where: str, prefix: str, required: bool = False) -> Optional[str]:
    value = table.get(key)
    if value is None:
        if required:
            raise BadInput(f"{where}: `{prefix}{key}` is missing.")
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{where}: `{prefix}{key}` must be a non-empty string.")
    return value.strip()


def _msgid(table: dict, key: str, where: str, prefix: str) -> Optional[str]:
    value = _string(table, key, where, prefix)
    if value is None:
        return None
    if not MSGID_VALUE.match(value):
        raise BadInput(f"{where}: `{prefix}{key}` {value!r} is not a message-id "
                       f"(local@domain, without angle brackets).")
    return value


def load_manifests(root: Optional[Path] = None) -> List[SeriesManifest]:
    """Every kernel-patches/*/series.toml under root, by name."""
    root = root or manifests_root()
    return [load_manifest(p) for p in sorted(root.glob(f"*/{MANIFEST_FILE}"))]


def known_names(root: Optional[Path] = None) -> List[str]:
    root = root or manifests_root()
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST_FILE}"))


def find_manifest(name: str, root: Optional[Path] = None) -> SeriesManifest:
    """The manifest called name; BadInput listing the known names."""
    root = root or manifests_root()
    path = root / name / MANIFEST_FILE
    if not NAME.match(name) or not path.is_file():
        names = known_names(root)
        known = ", ".join(names) if names else "none"
        raise BadInput(f"no series manifest named {name!r} in {root} (known: {known}).")
    return load_manifest(path)


def find_by_msgid(msgid: str, root: Optional[Path] = None) -> Optional[Tuple[SeriesManifest, Revision]]:
    """The manifest revision naming msgid (cover or patch), or None."""
    msgid = msgid.strip().strip("<>")
    for manifest in load_manifests(root):
        for number in sorted(manifest.revisions):
            if msgid in manifest.revisions[number].msgids():
                return manifest, manifest.revisions[number]
    return None


def check_against_manifest(revision: Revision, series: Series) -> List[str]:
    """Warnings where a fetched series differs from what the manifest says: revision,
    length, subjects and message-ids of the patches both know."""
    warnings = []
    if series.revision != revision.number:
        warnings.append(f"the fetched thread is v{series.revision}, the manifest's is "
                        f"v{revision.number}.")
    if series.total != revision.patch_count:
        warnings.append(f"the fetched series has {series.total} patches, the manifest says "
                        f"{revision.patch_count}.")
    for patch in series.patches:
        known = revision.patches.get(patch.index)
        if known is None:
            continue
        if known.subject is not None and _words(patch.subject) != _words(known.subject):
            warnings.append(f"patch {patch.index}/{series.total} is {patch.subject!r}, the "
                            f"manifest says {known.subject!r}.")
        if known.msgid is not None and patch.msgid and patch.msgid != known.msgid:
            warnings.append(f"patch {patch.index}/{series.total} has message-id <{patch.msgid}>, "
                            f"the manifest says <{known.msgid}>.")
    # message-ids and subjects come from the thread: no escape sequence reaches the terminal
    return [printable(w, keep_newlines=False) for w in warnings]


def _words(subject: str) -> str:
    # Folded headers and doubled spaces are not a different subject.
    return " ".join(subject.split())


@dataclass
class FetchResult:
    series: Series
    mbox: Path                              # the cached thread
    msgid: str
    manifest: Optional[SeriesManifest] = None
    revision: Optional[Revision] = None
    warnings: List[str] = field(default_factory=list)

    @property
    def needs_line(self) -> Optional[str]:
        return f"this series needs {self.revision.needs}" if self.revision else None

    def to_dict(self) -> dict:
        return {"msgid": self.msgid, "mbox": str(self.mbox),
                "manifest": str(self.manifest.path) if self.manifest else None,
                "name": self.manifest.name if self.manifest else None,
                "revision": self.revision.to_dict() if self.revision else None,
                "needs": self.needs_line, "warnings": list(self.warnings),
                "series": self.series.to_dict()}


def fetch_series(target: str, rev: Optional[int] = None, lore_url: str = DEFAULT_LORE_URL,
                 out: Optional[Path] = None, root: Optional[Path] = None) -> FetchResult:
    """Fetch a manifest's revision (target = NAME) or any thread (target = MSGID) from a
    lore server, parse it and check it against the manifest when one knows it."""
    manifest: Optional[SeriesManifest] = None
    revision: Optional[Revision] = None
    if "@" in target:
        msgid = target.strip().strip("<>")
        if not MSGID_VALUE.match(msgid):
            raise BadInput(f"{target} is not a message-id.")
        found = find_by_msgid(msgid, root)
        if found is not None:
            manifest, revision = found
            if rev is not None and rev != revision.number:
                raise BadInput(f"<{msgid}> is v{revision.number} of {manifest.name}, "
                               f"not v{rev}.")
        elif rev is not None:
            raise BadInput(f"--rev needs a manifest name; no manifest names <{msgid}> "
                           f"(known: {', '.join(known_names(root)) or 'none'}).")
    else:
        manifest = find_manifest(target, root)
        revision = manifest.revision(rev)
        msgid = revision.cover_msgid or next(iter(revision.msgids()), None)
        if msgid is None:
            raise BadInput(f"{manifest.path}: v{revision.number} names no message-id to fetch.")

    mbox = fetch_thread(msgid, lore_url)
    series = build_series(read_mails(mbox), f"<{msgid}>", "msgid")
    warnings = check_against_manifest(revision, series) if revision is not None else []
    if out is not None:
        out = Path(out)
        if out.parent and not out.parent.is_dir():
            raise BadInput(f"--out {out}: the directory {out.parent} does not exist.")
        shutil.copyfile(mbox, out)
    return FetchResult(series=series, mbox=mbox, msgid=msgid, manifest=manifest,
                       revision=revision, warnings=warnings)
