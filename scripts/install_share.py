"""Mirror the ament index marker and share/ files into a venv, as colcon would for an editable install.

`pip install -e .` does not install setup.py's data_files, so launch/config/urdf would not be
found by ament_index_python. This links them (symlinks, so edits show at once). Idempotent.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "karma_memory"


def link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.is_symlink() or dst.exists():
        if dst.is_symlink() and dst.resolve() == src.resolve():
            return
        dst.unlink()
    dst.symlink_to(src)


def main(prefix: str) -> None:
    base = Path(prefix)
    link(ROOT / "resource" / PACKAGE, base / "share/ament_index/resource_index/packages" / PACKAGE)
    share = base / "share" / PACKAGE
    link(ROOT / "package.xml", share / "package.xml")
    for folder in ("launch", "config", "urdf"):
        link(ROOT / folder, share / folder)


if __name__ == "__main__":
    main(sys.argv[1])
