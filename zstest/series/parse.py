"""Pure parsing of patch mails into a Series (no network, no git).

Messages come from mbox files read with the stdlib `mailbox`; headers and
bodies (quoted-printable, base64, charsets) are decoded by the stdlib `email`.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import BadInput
from .diff import DiffInfo, analyze_diff
from .model import Patch, Series

REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv)\s*:\s*)+", re.IGNORECASE)
BRACKET = re.compile(r"\s*\[([^\]]*)\]\s*")
INDEX_TOKEN = re.compile(r"^(\d+)/(\d+)$")
REVISION_TOKEN = re.compile(r"^[vV](\d+)$")
BASE_COMMIT = re.compile(r"^base-commit:\s*([0-9a-f]{7,40})\s*$", re.MULTILINE)
MBOXRD_QUOTED_FROM = re.compile(rb"(?m)^>(>*From )")
FROM_LINE = b"From zstest Mon Sep 17 00:00:00 2001\n"
KNOWN_FLAGS = ("RFC", "RESEND")
# The longest posted series are a few hundred patches: a claimed 1/99999999999 is refused,
# not turned into a list of every missing index.
MAX_SERIES_PATCHES = 5000
# A subject, an author or a message-id is a line or two; the email package's header parser is
# super-linear in a header's length, so an absurd one is refused before it is parsed.
MAX_HEADER_CHARS = 16 << 10
# An index or revision of more digits than this is absurd (and int() refuses 4300 digits).
MAX_NUMBER_DIGITS = 9
# A thread mbox is a few MB (lore's downloads stop at 256 MiB): a bigger file is not read whole.
MAX_MBOX_BYTES = 256 << 20
MSGID_IN_HEADER = re.compile(r"<([^<>\s]+@[^<>\s]+)>")
# A reviewer's own trailer line (quoted lines start with '>', so they never match).
TRAILER = re.compile(r"^(Reviewed-by|Acked-by|Tested-by|Reported-by|Suggested-by|Signed-off-by):"
                     r"[ \t]*(\S.*?)\s*$", re.IGNORECASE)


@dataclass
class Mail:
    """One message, decoded enough to classify it."""
    raw: bytes                   # the message as `git am` takes it (with a From line)
    subject: str                 # full subject, unfolded
    author: str
    date: str
    msgid: str
    body: str                    # decoded text of all text parts
    position: int                # order in its source
    origin: str                  # file it came from, for error messages
    last_in_file: bool = False
    header_notes: List[str] = field(default_factory=list)   # headers Python's parser refused
    in_reply_to: str = ""        # the parent's message-id (replies)
    references: List[str] = field(default_factory=list)     # ancestors, oldest first
    diff_text: str = ""          # every part git mailinfo reads (attachments too): the diff's source


@dataclass
class Prefix:
    is_reply: bool = False
    is_patch: bool = False
    index: Optional[int] = None
    total: Optional[int] = None
    revision: int = 1
    flags: List[str] = field(default_factory=list)
    title: str = ""              # subject without prefixes


def _number(digits: str) -> int:
    # an absurd number stays absurd (build_series refuses it) without int() of 10^6 digits
    return int(digits) if len(digits) <= MAX_NUMBER_DIGITS else 10 ** MAX_NUMBER_DIGITS


def parse_subject(subject: str) -> Prefix:
    """Split '[RFC PATCH v4 02/12] mm: foo' into its prefix parts and the title."""
    p = Prefix()
    rest = subject
    if REPLY_PREFIX.match(rest):
        p.is_reply = True
        rest = REPLY_PREFIX.sub("", rest, count=1)
    pos = 0
    while True:
        # matched in place: slicing rest after each [..] was quadratic in their number
        m = BRACKET.match(rest, pos)
        if not m:
            break
        tokens = re.split(r"[\s,]+", m.group(1).strip())
        upper = [t.upper() for t in tokens]
        if "PATCH" in upper or "RFC" in upper or any(INDEX_TOKEN.match(t) for t in tokens):
            p.is_patch = True
            for tok, up in zip(tokens, upper):
                im = INDEX_TOKEN.match(tok)
                rm = REVISION_TOKEN.match(tok)
                if im:
                    p.index, p.total = _number(im.group(1)), _number(im.group(2))
                elif rm:
                    p.revision = _number(rm.group(1))
                elif up in KNOWN_FLAGS and up not in p.flags:
                    p.flags.append(up)
        pos = m.end()
    p.title = rest[pos:].strip()
    return p


def _text_of(msg: email.message.EmailMessage) -> str:
    parts = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_subtype() == "html":
            continue
        try:
            parts.append(part.get_content())
        except (LookupError, UnicodeError, AssertionError):
            payload = part.get_payload(decode=True) or b""
            parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)


def _diff_text_of(msg: email.message.EmailMessage) -> str:
    """Every leaf part in order, transfer-decoded, whatever its type: git mailinfo reads an
    application/octet-stream attachment (or an HTML part) into the patch as well."""
    parts = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() if part.get_content_maintype() == "text" else None
        try:
            parts.append(payload.decode(charset or "utf-8", "replace"))
        except LookupError:
            parts.append(payload.decode("utf-8", "replace"))
    return "\n".join(parts)


def _oversized_header(msg) -> Optional[str]:
    for name, value in msg.raw_items():
        if name.lower() in PARSED_HEADERS and len(value) > MAX_HEADER_CHARS:
            return f"its {name} header is {len(value)} characters long (at most " \
                   f"{MAX_HEADER_CHARS >> 10} KiB is read): not a patch mail"
    return None


# the headers mail_from_bytes has the email package parse (References and In-Reply-To are only
# searched for message-ids, which is linear)
PARSED_HEADERS = ("subject", "from", "date", "message-id")


def _header(msg, name: str, notes: Optional[List[str]] = None) -> str:
    if name.lower() not in PARSED_HEADERS:
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
        return " ".join(str(value).split()) if value is not None else ""
    try:
        value = msg[name]
    except Exception:   # the email package raises IndexError, ValueError, ... on odd headers
        # its raw text instead (`Message-ID: <>` made the parser raise IndexError)
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
        if notes is not None:
            notes.append(f"its {name} header {str(value)[:60]!r} is malformed; read as plain text")
    return " ".join(str(value).split()) if value is not None else ""


def mail_from_bytes(raw: bytes, position: int, origin: str, from_line: Optional[bytes] = None) -> Mail:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    oversized = _oversized_header(msg)
    if oversized:
        raise BadInput(f"{origin or 'a mail'}: message {position + 1} is refused: {oversized}.")
    if from_line is None:
        from_line = FROM_LINE
    notes: List[str] = []
    msgid = _header(msg, "Message-ID", notes).strip().strip("<>").strip()
    if msgid and not re.fullmatch(r"[^\s<>@]+@[^\s<>@]+", msgid):
        notes.append(f"its Message-ID {msgid[:60]!r} is not local@domain; ignored")
        msgid = ""
    parents = MSGID_IN_HEADER.findall(_header(msg, "In-Reply-To"))
    return Mail(raw=from_line + raw, subject=_header(msg, "Subject", notes),
                author=_header(msg, "From", notes), date=_header(msg, "Date", notes),
                msgid=msgid, body=_text_of(msg), position=position, origin=origin,
                diff_text=_diff_text_of(msg),
                header_notes=notes, in_reply_to=parents[-1] if parents else "",
                references=MSGID_IN_HEADER.findall(_header(msg, "References")))


def looks_binary(data: bytes) -> bool:
    head = data[:8192]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
        return False
    except UnicodeDecodeError as exc:
        # A cut multi-byte char at the end of the sample is not binary.
        if exc.start >= len(head) - 4:
            return False
    text_bytes = sum(1 for b in head if b in (9, 10, 13) or 32 <= b < 127)
    return text_bytes < 0.7 * len(head)


HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*: ")


def read_mails(path: Path) -> List[Mail]:
    """The messages of an mbox (or a single mail/patch file), in file order.

    Raises BadInput for an empty, binary or non-mail file.
    """
    try:
        if path.stat().st_size > MAX_MBOX_BYTES:
            raise BadInput(f"{path} is {path.stat().st_size >> 20} MiB; no patch series is over "
                           f"{MAX_MBOX_BYTES >> 20} MiB.")
        data = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}.") from None
    if not data.strip():
        raise BadInput(f"{path} is empty: expected an mbox or a patch file.")
    if looks_binary(data):
        raise BadInput(f"{path} is binary data, not an mbox or a patch file.")
    first = data.lstrip(b"\r\n").split(b"\n", 1)[0]
    if first.startswith(b"From "):
        mails = []
        box = mailbox.mbox(str(path), create=False)
        try:
            keys = list(box.keys())
            for pos, key in enumerate(keys):
                raw = MBOXRD_QUOTED_FROM.sub(rb"\1", box.get_bytes(key))
                from_line = box.get_message(key).get_from().encode("utf-8", "replace")
                mails.append(mail_from_bytes(raw, pos, str(path), b"From " + from_line + b"\n"))
        finally:
            box.close()
        if mails:
            mails[-1].last_in_file = True
        return mails
    if HEADER_LINE.match(first):
        mail = mail_from_bytes(data, 0, str(path))
        mail.last_in_file = True
        return [mail]
    text = data.decode("utf-8", "replace")
    if analyze_diff(text).has_diff:
        # A bare diff (quilt style): wrap it in a minimal mail for `git am`.
        return [plain_patch_mail(text, path.name, 0, str(path))]
    raise BadInput(f"{path} is neither an mbox nor a patch: it has no mail headers and no diff.")


def plain_patch_mail(text: str, name: str, position: int, origin: str) -> Mail:
    """A headerless patch (quilt, bare diff) as a mail; its first line or file name is the subject."""
    desc = text.split("\n---", 1)[0] if not text.startswith(("diff ", "--- ", "Index: ")) else ""
    first = next((l.strip() for l in desc.splitlines() if l.strip()
                  and not l.startswith(("diff ", "--- ", "Index: ", "==="))), "")
    subject = first or re.sub(r"\.(patch|diff)$", "", name)
    body_lines = desc.splitlines()[1:] if first else []
    body = "\n".join(body_lines).strip()
    diff_start = _diff_start(text)
    mail_text = (f"From: zstest <zstest@localhost>\nSubject: [PATCH] {subject}\n"
                 f"Date: Thu, 1 Jan 1970 00:00:00 +0000\n"
                 f"Content-Type: text/plain; charset=utf-8\n\n"
                 f"{body}\n{'' if not body else chr(10)}---\n{text[diff_start:]}")
    raw = mail_text.encode("utf-8")
    return Mail(raw=FROM_LINE + raw, subject=f"[PATCH] {subject}", author="",
                date="", msgid="", body=text, position=position, origin=origin,
                last_in_file=True, diff_text=text[diff_start:])


def _diff_start(text: str) -> int:
    m = re.search(r"(?m)^(diff |Index: |--- )", text)
    return m.start() if m else 0


@dataclass
class _Candidate:
    mail: Mail
    prefix: Prefix
    diff: DiffInfo


def build_series(mails: List[Mail], source: str, kind: str) -> Series:
    """Classify mails (cover, patches, replies) and assemble the newest revision."""
    problems: List[str] = []
    covers: List[_Candidate] = []
    patches: List[_Candidate] = []
    replies: List[Mail] = []
    for mail in mails:
        prefix = parse_subject(mail.subject)
        if prefix.is_reply:
            replies.append(mail)
            continue
        problems += [f"{mail.subject[:60]!r}: {note}." for note in mail.header_notes]
        diff = analyze_diff(mail.diff_text)
        if diff.error:
            where = f"patch {prefix.index}/{prefix.total}" if prefix.index else f"{mail.subject!r}"
            if diff.truncated and mail.last_in_file:
                raise BadInput(f"{mail.origin} looks truncated: {where} {diff.error}.")
            raise BadInput(f"{mail.origin}: {where} is malformed: {diff.error}.")
        if prefix.index == 0 and not diff.has_diff:
            covers.append(_Candidate(mail, prefix, diff))
        elif diff.has_diff:
            unsafe = diff.unsafe_paths()
            if unsafe:
                raise BadInput(f"{mail.origin}: patch {mail.subject!r} writes outside the tree "
                               f"({unsafe[0]}); refusing it.")
            patches.append(_Candidate(mail, prefix, diff))
        elif prefix.is_patch and prefix.index and mail.last_in_file and mail.origin.endswith(".mbox"):
            raise BadInput(f"{mail.origin} looks truncated: its last message, patch "
                           f"{prefix.index}/{prefix.total}, ends before its diff.")
        elif prefix.is_patch and prefix.index:
            problems.append(f"{prefix.index}/{prefix.total} {prefix.title!r} holds no diff; skipped.")

    if not patches:
        raise BadInput(f"{source} holds no patches (no message with a diff).")

    revisions = sorted({c.prefix.revision for c in patches})
    revision = revisions[-1]
    if len(revisions) > 1:
        names = ", ".join(f"v{r}" for r in revisions)
        problems.append(f"mixed revisions {names}; using v{revision}, the newest.")
    patches = [c for c in patches if c.prefix.revision == revision]
    covers = [c for c in covers if c.prefix.revision == revision]

    # Unnumbered patches ([PATCH] alone) take their place in order.
    numbered = [c for c in patches if c.prefix.index]
    unnumbered = [c for c in patches if not c.prefix.index]
    next_index = max((c.prefix.index for c in numbered), default=0)
    for c in unnumbered:
        next_index += 1
        c.prefix.index = next_index
    totals = sorted({c.prefix.total for c in numbered if c.prefix.total})
    total = totals[-1] if totals else next_index
    if unnumbered and not numbered:
        total = len(unnumbered)
    if len(totals) > 1:
        problems.append(f"patches disagree on the series length ({', '.join(map(str, totals))}); "
                        f"using {total}.")

    cover = covers[-1] if covers else None
    if len(covers) > 1:
        problems.append(f"{len(covers)} cover letters for v{revision}; using the last one.")
    if cover and cover.prefix.total and cover.prefix.total != total:
        problems.append(f"the cover letter says 00/{cover.prefix.total} but the patches say "
                        f"k/{total}; the series has {total} patches.")

    by_index: Dict[int, _Candidate] = {}
    for c in patches:
        if c.prefix.index in by_index:
            problems.append(f"patch {c.prefix.index}/{total} appears more than once; "
                            f"using the last one ({c.mail.msgid or c.mail.origin}).")
        by_index[c.prefix.index] = c
    beyond = sorted(i for i in by_index if i > total)
    if beyond:
        problems.append(f"patch index {', '.join(map(str, beyond))} is beyond the series length {total}.")
        total = max(beyond)
    if total > MAX_SERIES_PATCHES:
        claim = max(patches, key=lambda c: max(c.prefix.index or 0, c.prefix.total or 0))
        raise BadInput(f"{claim.mail.origin}: {claim.mail.subject[:80]!r} claims a series of "
                       f"more than {MAX_SERIES_PATCHES} patches; zstest takes at most "
                       f"{MAX_SERIES_PATCHES}.")
    missing = [i for i in range(1, total + 1) if i not in by_index]
    if missing:
        problems.append(f"missing patches: {', '.join(f'{i}/{total}' for i in missing)}.")

    flags: List[str] = []
    for c in ([cover] if cover else []) + list(by_index.values()):
        for f in c.prefix.flags:
            if f not in flags:
                flags.append(f)

    base = None
    for c in ([cover] if cover else []) + [by_index[i] for i in sorted(by_index)]:
        m = BASE_COMMIT.search(c.mail.body)
        if m:
            base = m.group(1)

    result = []
    for index in sorted(by_index):
        c = by_index[index]
        result.append(Patch(index=index, total=total, subject=c.prefix.title,
                            author=c.mail.author, date=c.mail.date, msgid=c.mail.msgid,
                            files=list(c.diff.files), added=c.diff.added,
                            removed=c.diff.removed, raw=c.mail.raw))
    _attach_trailers(result, cover.mail if cover else None, replies, mails, revision)
    first = by_index[min(by_index)].mail
    return Series(source=source, kind=kind, revision=revision,
                  cover_subject=cover.prefix.title if cover else None,
                  cover_body=cover.mail.body if cover else None,
                  patches=result, missing=missing, total=total, base_commit=base,
                  problems=problems, prefix_flags=flags,
                  msgid=(cover.mail.msgid if cover else first.msgid) or None)


def reply_trailers(body: str) -> List[tuple]:
    """(tag, who) of the trailer lines a reply writes itself: not quoted, before its signature."""
    found = []
    for line in body.splitlines():
        if line.rstrip() == "--":
            break
        m = TRAILER.match(line)
        if m:
            tag = m.group(1)
            found.append((tag[0].upper() + tag[1:].lower(), m.group(2)))
    return found


def _attach_trailers(patches: List[Patch], cover: Optional[Mail], replies: List[Mail],
                     mails: List[Mail], revision: int) -> None:
    """Give each patch the trailers of the thread's replies to it (a reply to the cover: all)."""
    by_msgid = {p.msgid: p for p in patches if p.msgid}
    parent_of = {m.msgid: m.in_reply_to or (m.references[-1] if m.references else "")
                 for m in mails if m.msgid}
    cover_id = cover.msgid if cover is not None else ""
    for reply in replies:
        trailers = reply_trailers(reply.body)
        if not trailers:
            continue
        targets: List[Patch] = []
        node, seen = reply.in_reply_to or (reply.references[-1] if reply.references else ""), set()
        while node and node not in seen:
            seen.add(node)
            if node in by_msgid:
                targets = [by_msgid[node]]
                break
            if node == cover_id:
                targets = list(patches)
                break
            node = parent_of.get(node, "")
        if not targets and not seen & set(parent_of):
            # the thread's messages in between are not in the mbox: go by the subject
            prefix = parse_subject(reply.subject)
            if prefix.revision == revision and prefix.index:
                targets = [p for p in patches if p.index == prefix.index]
        for patch in targets:
            for tag, who in trailers:
                if tag == "Signed-off-by" and who == patch.author:
                    continue
                entry = {"tag": tag, "who": who, "msgid": reply.msgid}
                if not any(t["tag"] == tag and t["who"] == who for t in patch.trailers):
                    patch.trailers.append(entry)
