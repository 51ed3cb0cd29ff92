"""The core is pure Python: importing every karma_memory.core module never loads rclpy (STYLE pattern 3)."""

from __future__ import annotations

import subprocess
import sys


def test_every_core_module_imports_without_ros():
    code = (
        "import importlib, pkgutil, sys\n"
        "import karma_memory.core as core\n"
        "names = [m.name for m in pkgutil.walk_packages(core.__path__, 'karma_memory.core.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'rosidl_runtime_py', 'karma_interfaces'))\n"
        "assert not bad, bad\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) >= 30
