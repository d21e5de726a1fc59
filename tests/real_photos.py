"""The real-photo fixture as a Visual Genome folder: the hand-made annotation of
``tests/fixtures/real_photos`` beside real photos that ship inside installed wheels (Ultralytics'
bus.jpg and zidane.jpg, matplotlib's grace_hopper.jpg), copied into place. Tests only: nothing of it
goes into a release of the project."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "real_photos"
FILES = ("image_data.json", "scene_graphs.json", "region_descriptions.json")


def photo(package: str, path: str) -> Path:
    spec = importlib.util.find_spec(package)
    return Path(next(iter(spec.submodule_search_locations))) / path


def vg_folder(root: Path, regions: bool = True) -> Path:
    """Write the fixture as a VG folder under ``root``; returns it."""
    root.mkdir(parents=True, exist_ok=True)
    for name in FILES if regions else FILES[:2]:
        shutil.copyfile(FIXTURE / name, root / name)
    for p in json.loads((FIXTURE / "photos.json").read_text()).values():
        (root / p["file"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo(p["package"], p["path"]), root / p["file"])
    return root
