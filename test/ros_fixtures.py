"""Helpers for tests that talk to real nodes: a probe node spun in a thread, and a stack started by the launcher.

Every process a test starts is killed in teardown, even when the launcher itself dies: the launcher
prints each node's pid and the stack fixture kills what is left.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import rclpy

from karma_memory.client import KarmaClient as Probe  # noqa: F401 (tests use the public client)

ROOT = Path(__file__).resolve().parent.parent


class StackProcess:
    """``python -m karma_memory.launcher ...`` with its output in a log file."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._handle = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "karma_memory.launcher", *args], cwd=ROOT,
                                     stdout=self._handle, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def child_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", self.text())]

    def wait_for_log(self, pattern: str, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.text()):
                return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 20.0) -> int:
        """SIGINT the launcher (it forwards to the nodes) and wait; kill everything left. Returns its status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            status = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            status = self.proc.wait()
        for pid in self.child_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._handle.close()
        return status


def start_stack(tmp_path: Path, nodes: list[str], params: dict[str, Any], namespace: str = "",
                extra: list[str] | None = None) -> StackProcess:
    """Start a stack of real nodes (separate processes) with parameter overrides ``{"node.param": value}``."""
    args = ["--nodes", *nodes, "--grace", "10"]
    if namespace:
        args += ["--namespace", namespace]
    for key, value in params.items():
        text = "true" if value is True else "false" if value is False else str(value)
        args += ["-p", f"{key}={text}"]
    return StackProcess(args + (extra or []), tmp_path / "stack.log")


def ros_session() -> Iterator[None]:
    """rclpy.init/shutdown around a test module (use as a module-scoped fixture body)."""
    rclpy.init()
    try:
        yield
    finally:
        rclpy.try_shutdown()
