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
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import rclpy
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile

ROOT = Path(__file__).resolve().parent.parent


class Probe:
    """A test-side node spinning in a background thread, with blocking helpers for topics, services, actions."""

    def __init__(self, name: str = "probe") -> None:
        self.node: Node = rclpy.create_node(name)
        self.messages: dict[str, list[Any]] = {}
        self._cond = threading.Condition()
        self._executor = MultiThreadedExecutor(num_threads=2)
        self._executor.add_node(self.node)
        self._thread: threading.Thread | None = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()
        self._publishers: dict[str, Any] = {}
        self._helpers: list[Node] = []

    def subscribe(self, kind: type, topic: str, qos: QoSProfile | int = 10) -> list[Any]:
        """Record every message of ``topic``; returns the (live) list."""
        received = self.messages.setdefault(topic, [])

        def keep(msg: Any) -> None:
            with self._cond:
                received.append(msg)
                self._cond.notify_all()

        self.node.create_subscription(kind, topic, keep, qos)
        return received

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds (re-checked on every message and every 50 ms)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def latest(self, topic: str) -> Any:
        return self.messages[topic][-1] if self.messages.get(topic) else None

    def publish(self, kind: type, topic: str, msg: Any, qos: QoSProfile | int = 10) -> None:
        if topic not in self._publishers:
            self._publishers[topic] = self.node.create_publisher(kind, topic, qos)
            deadline = time.monotonic() + 5.0
            while self._publishers[topic].get_subscription_count() == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
        self._publishers[topic].publish(msg)

    def call(self, kind: type, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.node.create_client(kind, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f"service {name} not available"
            return _wait(client.call_async(request), timeout)
        finally:
            self.node.destroy_client(client)

    def run_action(self, kind: type, name: str, goal: Any, timeout: float = 60.0) -> tuple[Any, Any, list[Any]]:
        """Send a goal and wait for its result: (status, result, feedback messages)."""
        # An ActionClient made on a node that is spinning can be polled by the executor thread before its
        # constructor finished (rclpy race: "'ActionClient' object has no attribute '_lock'"), so it is made
        # on a helper node that joins the executor only afterwards.
        helper = rclpy.create_node(f"{self.node.get_name()}_action_{len(self._helpers)}")
        self._helpers.append(helper)
        client = ActionClient(helper, kind, name)
        self._executor.add_node(helper)
        feedback: list[Any] = []
        try:
            assert client.wait_for_server(timeout_sec=timeout), f"action {name} not available"
            handle = _wait(client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback)),
                           timeout)
            assert handle.accepted, f"goal to {name} rejected"
            response = _wait(handle.get_result_async(), timeout)
            return response.status, response.result, feedback
        finally:
            self._executor.remove_node(helper)
            client.destroy()
            helper.destroy_node()

    def close(self) -> None:
        if self._thread is None:
            return
        self._executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self._thread = None


def _wait(future: Any, timeout: float) -> Any:
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout), f"no answer within {timeout} s"
    return future.result()


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
