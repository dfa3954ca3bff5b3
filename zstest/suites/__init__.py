"""Guest test suites: pytest files run on the host against a booted guest.

suites.ini names the suites (which files, which guest shape); plugin.py gives
the tests their fixtures (guest, console, build_info, kernel_config, record).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from .. import resources
from ..errors import BadInput

SUITES_DIR = resources.suites_dir()
SUITES_INI = SUITES_DIR / "suites.ini"
IMAGES_DIR = resources.images_dir()


@dataclass
class SuiteSpec:
    name: str
    files: List[str]
    keyword: str = ""              # a pytest -k expression the suite always applies
    memory_mb: int = 1024
    cpus: int = 2
    dimm_mb: Optional[int] = None  # a movable pc-dimm for hot-unplug migration tests
    description: str = ""
    recipe: Optional[Path] = None  # guest image recipe (qemu-images/NAME); None: the default
    paths: List[Path] = field(default_factory=list)


def available_suites() -> List[str]:
    parser = configparser.ConfigParser()
    parser.read(SUITES_INI)
    return parser.sections()


def load_suite(name: str) -> SuiteSpec:
    parser = configparser.ConfigParser()
    parser.read(SUITES_INI)
    if not parser.has_section(name):
        raise BadInput(f"unknown suite {name!r}; the suites are: {', '.join(parser.sections())}.")
    sec = parser[name]
    files = sec.get("files", "").split()
    paths = []
    for f in files:
        matches = sorted(SUITES_DIR.glob(f))
        if not matches:
            raise BadInput(f"suite {name!r} names {f}, which is not in {SUITES_DIR}.")
        paths.extend(m for m in matches if m not in paths)
    dimm = sec.getint("dimm_mb", fallback=0) or None
    recipe = None
    if sec.get("image"):
        recipe = IMAGES_DIR / sec["image"]
        if not recipe.is_file():
            raise BadInput(f"suite {name!r} names the image recipe {sec['image']}, "
                           f"which is not in {IMAGES_DIR}.")
    return SuiteSpec(name=name, files=files, keyword=sec.get("k", ""), recipe=recipe,
                     memory_mb=sec.getint("memory_mb", fallback=1024),
                     cpus=sec.getint("cpus", fallback=2), dimm_mb=dimm,
                     description=sec.get("description", ""), paths=paths)
