"""Text from outside (mails, consoles, servers) made safe to print on a terminal or in a mail.

A subject that decodes to ESC sequences can move the cursor, retitle the window or hide lines
(issue 26, finding 9): whole ANSI/OSC sequences go first, then every other non-printable char.
"""

from __future__ import annotations

import re
import unicodedata

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), other two-char ESC sequences, 8-bit CSI
ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]?|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
                             r"|\x1b[ -~]?|\x9b[0-?]*[ -/]*[@-~]?")


def printable(text: str, keep_newlines: bool = True) -> str:
    """text without escape sequences and control characters (tabs and other spaces: a space)."""
    text = ESCAPE_SEQUENCE.sub("", text).replace("\t", " ")
    return "".join(ch if ch.isprintable() or (keep_newlines and ch == "\n") else
                   " " if unicodedata.category(ch) == "Zs" else ""    # a no-break space stays one
                   for ch in text)


def one_line(text: str, limit: int = 200) -> str:
    """text as one printable line of at most limit characters (for an error sentence)."""
    flat = " ".join(printable(text.replace("\n", " "), keep_newlines=False).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."
