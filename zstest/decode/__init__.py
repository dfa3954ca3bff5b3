"""Decode: a splat's trace to file:line, and the patches of the series that touched it.

Stage input is a splat dict (from results.json or zstest.splats) and a build
directory (build.json, vmlinux, System.map, the .ko files). Three sources of a
location, best first:
  - "bug-table": the WARNING / kernel BUG line's own file:line;
  - "debuginfo": addr2line on vmlinux or the .ko, when they carry DWARF lines;
  - "definition": without debug info (the base profile), the line where the
    function is defined in the built source (the cached repo at the built commit).
Attribution: `git blame` of a frame's line (how "line") and `git log -L` of the
function's extent over base..commit (how "function"), mapped to patch indexes
through build.json series.patches[].commit.

Never blocks and never raises on bad data: every external command goes through
zstest.proc.run with a timeout; what cannot be decoded is kept as an undecoded
frame with a note saying why.

The package: symbols.py (pure parsing of frames, symbol tables, addr2line, C source),
git.py (the built commit's repository and patch attribution), decoder.py (Decoder: one
build directory), render.py (the entry points and the text).
"""

from __future__ import annotations

from .decoder import TOOL_TIMEOUT_S, Decoder
from .git import GIT_TIMEOUT_S, GitSide
from .render import (DECODED_HEADER, annotate_results, decode_console, decode_splat,
                     format_decoded, recorded_or_decode, results_splats)
from .symbols import (CALL_TRACE, KERNEL_BUG_AT, RIP_KERNEL, SYMREF, SYSCALL_PREFIXES,
                      TRACE_ADDRESS, TRACE_END, TRACE_FRAME, TRACE_MARKER, TRACE_NOISE,
                      WARNING_AT, Decoded, Frame, PatchRef, find_definition, parse_addr2line,
                      parse_frames, parse_readelf_symbols, parse_section_names, parse_system_map)

__all__ = ["CALL_TRACE", "DECODED_HEADER", "GIT_TIMEOUT_S", "KERNEL_BUG_AT", "RIP_KERNEL",
           "SYMREF", "SYSCALL_PREFIXES", "TOOL_TIMEOUT_S", "TRACE_ADDRESS", "TRACE_END",
           "TRACE_FRAME", "TRACE_MARKER", "TRACE_NOISE", "WARNING_AT", "Decoded", "Decoder",
           "Frame", "GitSide", "PatchRef", "annotate_results", "decode_console", "decode_splat",
           "find_definition", "format_decoded", "parse_addr2line", "parse_frames",
           "parse_readelf_symbols", "parse_section_names", "parse_system_map", "recorded_or_decode",
           "results_splats"]
