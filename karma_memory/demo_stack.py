"""The demo through the real ROS 2 stack: nodes as separate processes, tasks through the ExecuteTask action."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["run_stack_demo"]

NODES = ("sim_bridge", "long_term_memory", "short_term_memory", "planner")


def _start(scene: str, memory_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "karma_memory.launcher", "--scene", scene, "--nodes", *NODES, "--grace", "10",
            "-p", f"long_term_memory.memory_dir={memory_dir}", "-p", f"short_term_memory.memory_dir={memory_dir}"]
    return subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_stack_demo(scene: str, out: Path) -> int:
    """Start the stack, run DEMO_TASKS through ExecuteTask, print progress and a table, draw the memories."""
    import rclpy

    from karma_interfaces.msg import SceneGraph, ShortTermMemoryState
    from karma_memory.client import KarmaClient
    from karma_memory.demo import DEMO_TASKS, _finish, _print_step
    from karma_memory.nodes.memory_conversions import memory_unit_from_msg
    from karma_memory.nodes.qos import LATCHED
    from karma_memory.nodes.memory_conversions import scene_graph_from_msg

    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    memory_dir = Path(tempfile.mkdtemp(prefix="karma-demo-memory-"))
    log = out / "stack.log"
    proc = _start(scene, memory_dir, log)
    print(f"started the stack on {scene}: {', '.join(NODES)} (log: {log})", flush=True)
    rclpy.init()
    client = KarmaClient("karma_demo")
    rows = []
    try:
        graphs = client.subscribe(SceneGraph, "scene_graph", LATCHED)
        stm_states = client.subscribe(ShortTermMemoryState, "short_term_memory/state", LATCHED)
        if not client.wait_for(lambda: bool(graphs), timeout=90.0):
            raise TimeoutError(f"the long-term memory did not publish a scene graph; see {log}")
        counter = {"n": 0}

        def on_feedback(feedback: object) -> None:
            step = feedback.step  # type: ignore[attr-defined]
            counter["n"] += 1
            _print_step(counter["n"], step.skill, step.args_json[:70], step.success, step.message)

        for title, subtasks in DEMO_TASKS:
            print(f"\n== {title}", flush=True)
            instruction = ", then ".join(s.rstrip(".") for s in subtasks)
            result = client.execute_task(instruction, timeout=180.0, on_feedback=on_feedback)
            rows.append((title, bool(result.success), len(result.steps), int(result.explorations),
                         int(result.memory_hits), result.message))
        client.wait_for(lambda: bool(stm_states), timeout=10.0)
        graph = scene_graph_from_msg(graphs[-1])
        units = [memory_unit_from_msg(u) for u in stm_states[-1].units] if stm_states else []
        return _finish(rows, graph, units, out, scene)
    finally:
        client.close()
        rclpy.try_shutdown()
        _stop(proc)
        print(f"stack stopped ({time.strftime('%H:%M:%S')})", flush=True)
