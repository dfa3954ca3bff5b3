"""A panicked guest's memory as an ELF vmcore (QMP dump-guest-memory), readable by `crash`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .qmp import QMPClient, QMPError

DUMP_TIMEOUT_S = 300     # 1-2 GiB of guest RAM written through QEMU's main loop


def dump_vmcore(qmp_socket: Path, dest: Path) -> Optional[str]:
    """Write guest memory to dest (paging off: physical memory, as crash reads it); returns
    dest, or None with the reason logged in dest.with_suffix('.error') when QEMU refused."""
    dest = Path(dest).expanduser().resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".part")
    try:
        client = QMPClient(qmp_socket, timeout=DUMP_TIMEOUT_S).connect(5.0)
        try:
            client.execute("dump-guest-memory", paging=False, protocol=f"file:{partial}",
                           format="elf")
        finally:
            client.close()
        os.replace(partial, dest)
        return str(dest)
    except (QMPError, OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        dest.with_name(dest.name + ".error").write_text(f"dump-guest-memory failed: {exc}\n")
        return None
