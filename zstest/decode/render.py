"""decode's public entry points and its text: decode one splat or a console, the splats of a
results.json, plain-text lines of a decoded splat, and a results dir annotated in place."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from ..evidence import missing_splats
from ..fsutil import write_text_atomic
from ..manifests import load_results, save_results
from ..splats import find_splats
from .decoder import Decoder
from .symbols import Decoded

log = logging.getLogger("zstest.decode")

DECODED_HEADER = "Decoded splats"


def decode_splat(splat: Dict[str, Any], build_dir: Optional[Path],
                 decoder: Optional[Decoder] = None) -> Decoded:
    """Decode one splat dict (kind, title, text) against a build directory."""
    decoder = decoder or Decoder(build_dir)
    return decoder.decode(splat)


def recorded_or_decode(splat: Dict[str, Any], decoder: Callable[[], Decoder]) -> Decoded:
    """splat's decoding recorded in results.json when it is well-formed, else decoded now
    (decoder() gives the Decoder), with a note saying why."""
    recorded = splat.get("decoded")
    if isinstance(recorded, dict):
        try:
            return Decoded.from_dict(recorded)
        except ValueError as exc:
            decoded = decoder().decode(splat)
            decoded.notes.append(f"results.json's recorded decoding is malformed ({exc}): "
                                 f"decoded again")
            return decoded
    return decoder().decode(splat)


def decode_console(lines: Iterable[str], build_dir: Optional[Path]) -> List[Decoded]:
    """Find every splat in console lines and decode it."""
    decoder = Decoder(build_dir)
    return [decoder.decode(s.to_dict()) for s in find_splats(lines)]


def results_splats(data: Dict[str, Any], results_dir: Optional[Path] = None
                   ) -> List[Tuple[str, Dict[str, Any]]]:
    """(test name or "", splat dict) for every splat in a results.json, in order.

    With results_dir, the console log there is the source of truth: a splat it holds that
    results.json lacks (a run ended before it could write it) is added, with its test.
    """
    if results_dir is not None:
        data = missing_splats(data, Path(results_dir))
    out = []
    for test in data.get("tests") or []:
        if not isinstance(test, dict):
            continue
        for splat in test.get("splats") or []:
            if isinstance(splat, dict):
                out.append((str(test.get("name", "")), splat))
    for splat in data.get("splats") or []:
        if isinstance(splat, dict):
            out.append(("", splat))
    return out


def _mirror_decoded(found: List[Tuple[str, Dict[str, Any]]], run: Any) -> None:
    """The decodings of results.json's splats onto run's own splat dicts (same test, same
    console line and title); one the file does not hold stays as it was."""
    decoded = {(test, s.get("line_no"), s.get("title")): s["decoded"] for test, s in found}
    pairs = [(t.name, s) for t in run.tests for s in t.splats] + [("", s) for s in run.splats]
    for test, splat in pairs:
        key = (test, splat.get("line_no"), splat.get("title"))
        if key in decoded:
            splat["decoded"] = decoded[key]


def format_decoded(decoded: Decoded, width: int = 72, max_frames: int = 16) -> List[str]:
    """Plain-text lines of one decoded splat: its frames with locations, then its patches."""
    lines: List[str] = []
    shown = decoded.frames[:max_frames]
    for frame in shown:
        mark = "?" if not frame.reliable else " "
        head = f" {mark} {frame.symbol()}"
        where = (f"{frame.location} ({frame.source})" if frame.source else
                 f"(undecoded: {frame.note})" if frame.note else "(undecoded)")
        if len(head) + 2 + len(where) <= width:
            lines.append(f"{head}  {where}")
        else:
            lines.append(head)
            lines.append(f"      {where}")
        if frame.inline_function:
            lines.append(f"      in {frame.inline_function}(), inlined into:")
        for inl in frame.inlined:
            if inl.get("file"):
                lines.append(f"      {inl.get('function') or '?'} {inl['file']}:{inl.get('line')}")
    if len(decoded.frames) > len(shown):
        lines.append(f"   ... {len(decoded.frames) - len(shown)} more frames")
    if decoded.patches:
        for ref in decoded.patches:
            how = "changed this line" if ref.how == "line" else "changed this function"
            text = (f"patch {ref.index} {how}: {ref.function or '?'}"
                    f"{' ' + ref.location if ref.location else ''}: \"{ref.subject}\"")
            lines += textwrap.wrap(text, width=width, initial_indent="  -> ",
                                   subsequent_indent="     ", break_long_words=True)
    return lines


def _replace_section(summary: str, section: str) -> str:
    marker = f"\n{DECODED_HEADER}"
    head = summary.split(marker, 1)[0].rstrip("\n") + "\n"
    return head + "\n" + section


def annotate_results(results_dir: Path, run: Any = None) -> int:
    """Decode every splat of results.json in place and add "Decoded splats" to summary.txt;
    with run (the results.RunResults the file was written from), its splats gain the same
    `decoded`, so a caller of the pipeline never reads results.json back for it.

    Returns how many splats were decoded. Never raises on bad data: logs and returns 0.
    """
    try:
        results_dir = Path(results_dir)
        manifest = load_results(results_dir)
        data = manifest.data
        found = results_splats(data)
        if not found:
            return 0
        build_dir = manifest.kernel.build_dir
        if not build_dir:
            log.warning("decode: %s names no kernel.build_dir; splats not decoded", manifest.path)
            return 0
        decoder = Decoder(Path(build_dir))
        section = [f"{DECODED_HEADER} ({len(found)}, against {build_dir}):"]
        for test, splat in found:
            decoded = decoder.decode(splat)
            splat["decoded"] = decoded.to_dict()
            section.append("")
            section.append(f"[{decoded.kind}] {decoded.title}" + (f"  (in {test})" if test else ""))
            section += format_decoded(decoded, width=100)
            section += [f"  note: {n}" for n in decoded.notes]
        save_results(results_dir, data)
        if run is not None:
            _mirror_decoded(found, run)
        summary = results_dir / "summary.txt"
        old = summary.read_text() if summary.is_file() else ""
        write_text_atomic(summary, _replace_section(old, "\n".join(section) + "\n"))
        return len(found)
    except Exception as exc:   # annotation must never break a run that already has its results
        log.warning("decode: could not annotate %s: %s", results_dir, exc)
        return 0
