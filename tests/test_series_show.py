"""`zstest series show` and load_series on the real 2016 mboxes and on recorded fixtures."""

from __future__ import annotations

import json


from conftest import REPO, run_zstest
from zstest.series import load_series

V4_SUBJECTS = {
    2: "mm: migrate: support non-lru movable page migration",
    4: "zsmalloc: keep max_object in size_class",
    5: "zsmalloc: use bit_spin_lock",
    6: "zsmalloc: use accessor",
    7: "zsmalloc: factor page chain functionality out",
    8: "zsmalloc: introduce zspage structure",
    9: "zsmalloc: separate free_zspage from putback_zspage",
    10: "zsmalloc: use freeobj for index",
    11: "zsmalloc: page migration support",
    12: "zram: use __GFP_MOVABLE for memory allocation",
}
FIXTURES = REPO / "kernel-patches" / "fixtures"


def test_show_v4_text(shared_series):
    r = run_zstest("series", "show", shared_series / "nonlru-migration-v4.mbox")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "revision:  v4" in out
    assert "cover:     Support non-lru page migration" in out
    positions = [out.index(f"{i:>2}/12 {s}\n") for i, s in V4_SUBJECTS.items()]
    assert positions == sorted(positions)
    assert "missing:   1/12, 3/12" in out
    assert "Traceback" not in r.stderr


def test_show_v4_json(shared_series):
    r = run_zstest("series", "show", "--json", shared_series / "nonlru-migration-v4.mbox")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["revision"] == 4
    assert data["total"] == 12
    assert data["missing"] == [1, 3]
    assert data["cover_subject"] == "Support non-lru page migration"
    assert [(p["index"], p["subject"]) for p in data["patches"]] == list(V4_SUBJECTS.items())
    p11 = data["patches"][-2]
    # The numbers git's own diffstat in the mail states.
    assert (p11["added"], p11["removed"]) == (487, 66)
    assert p11["files"] == ["include/uapi/linux/magic.h", "mm/zsmalloc.c"]
    assert any("00/13" in p for p in data["problems"])


def test_v4_with_replies_ignores_replies(shared_series, tmp_path):
    both = tmp_path / "thread.mbox"
    both.write_bytes((shared_series / "nonlru-migration-v4.mbox").read_bytes()
                     + (shared_series / "nonlru-migration-v4-replies.mbox").read_bytes())
    s = load_series(str(both))
    assert [p.index for p in s.patches] == list(V4_SUBJECTS)
    assert s.missing == [1, 3]


def test_v5_and_mixed_revisions(shared_series, tmp_path):
    v5 = load_series(str(shared_series / "nonlru-migration-v5.mbox"))
    assert v5.revision == 5
    assert [p.index for p in v5.patches] == [1, 4, 5, 6, 7, 9, 12]
    assert v5.missing == [2, 3, 8, 10, 11]
    mixed = tmp_path / "v4v5.mbox"
    mixed.write_bytes(b"".join((shared_series / f"nonlru-migration-{n}.mbox").read_bytes()
                               for n in ("v5", "v5-replies", "v4", "v4-replies")))
    s = load_series(str(mixed))
    assert s.revision == 5
    assert [p.index for p in s.patches] == [1, 4, 5, 6, 7, 9, 12]
    assert any("mixed revisions v4, v5; using v5" in p for p in s.problems)


def test_quoted_printable_reply_is_decoded_but_not_a_patch(shared_series):
    # v4-replies holds a quoted-printable reply to 11/12: it must not become a patch.
    r = run_zstest("series", "show", shared_series / "nonlru-migration-v4-replies.mbox")
    assert r.returncode == 2
    assert "holds no patches" in r.stderr
    assert "Traceback" not in r.stderr
