"""Ultralytics without the network: no weight, font or requirement downloads, no settings sync.

Call `prepare()` before importing ultralytics. It sets the switches Ultralytics reads at import
(YOLO_OFFLINE, YOLO_AUTOINSTALL, a project YOLO_CONFIG_DIR), places a bundled TrueType font where
Ultralytics looks for Arial.ttf (it would download one to draw training plots), and turns settings
sync off.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path

from core.env import REPO


@cache
def prepare() -> Path:
    config_dir = Path(os.environ.setdefault("YOLO_CONFIG_DIR", str(REPO / ".ultralytics")))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    config_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (config_dir / name).exists():
            shutil.copy(font, config_dir / name)
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync"):
        SETTINGS.update({"sync": False})
    return config_dir
