"""SIGTERM (what systemd, docker stop and launchers send) shuts a memory node down like Ctrl-C: memory flushed."""

from __future__ import annotations

import signal
import time

from karma_interfaces.msg import ObjectObservationArray

from karma_memory.bench.bags import NodeRig, replay_parameters
from karma_memory.core.long_term import GRAPH_FILE, LongTermMemory
from karma_memory.core.short_term import STM_FILE, ShortTermMemory, StmConfig
from karma_memory.core.types import ObjectObservation, ObservationKind
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.qos import EVENTS

MESSAGES = 5


def _message(k: int) -> ObjectObservationArray:
    stamp = 100.0 + k
    return cv.observations_to_msg([ObjectObservation(f"Mug|{k}|{j}", "Mug", (0.3 * j, 0.9, 0.2 * k),
                                                     ObservationKind.MOVED, stamp=stamp, source="skill:PutObject")
                                   for j in range(2)], stamp)


def test_sigterm_flushes_both_memory_nodes(tmp_path) -> None:
    """flush_interval_s = 0 (save only at shutdown): whatever is on disk after SIGTERM was written by close()."""
    params = replay_parameters("", tmp_path, flush_interval_s=0.0, perceptions=0)
    params["short_term_memory"].update(policy="lru", capacity=100)
    wanted = {f"Mug|{k}|{j}" for k in range(MESSAGES) for j in range(2)}
    with NodeRig(tmp_path / "rig", params) as rig:
        rig.start()
        rig.wait_ready(60.0)
        pub = rig.node.create_publisher(ObjectObservationArray, "/observations", EVENTS)
        deadline = time.monotonic() + 30.0
        while pub.get_subscription_count() < 2:
            assert time.monotonic() < deadline, "memory nodes did not subscribe to /observations"
            time.sleep(0.05)
        time.sleep(0.5)
        for k in range(MESSAGES):
            pub.publish(_message(k))
        rig.wait_acks(MESSAGES, timeout=20.0)
        assert not (tmp_path / "ltm" / GRAPH_FILE).exists() and not (tmp_path / "stm" / STM_FILE).exists()
        statuses = {}
        for name in ("long_term_memory", "short_term_memory"):
            proc = rig.procs[name]
            rig.kill(name, signal.SIGTERM)
            statuses[name] = proc.returncode
            assert "shutdown" not in rig.log(name).lower() or "error" not in rig.log(name).lower(), rig.log(name)
        assert statuses == {"long_term_memory": 0, "short_term_memory": 0}, statuses
    ltm = LongTermMemory(directory=tmp_path / "ltm")
    ltm.load()
    assert wanted <= set(ltm.graph.nodes)
    stm = ShortTermMemory(StmConfig(policy="lru", capacity=100), directory=tmp_path / "stm")
    stm.load()
    assert wanted == {u.object_id for u in stm.units()}


_SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from rclpy.node import Node
from std_msgs.msg import Header
from karma_memory.nodes.common import run_node

out = Path(sys.argv[1])
mode = sys.argv[2]

class Probe(Node):
    def __init__(self):
        super().__init__("sigterm_probe")
        if mode == "starting":  # the signal lands while the node is still being built
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
            self.create_publisher(Header, "probe", 10)  # the context is shut down by now
        else:
            self.create_timer(0.05, lambda: out.write_text("spinning"))

    def close(self):
        out.write_text("closed")

sys.exit(run_node(Probe, []))
"""


def _probe(tmp_path, mode: str) -> tuple[int, str, str]:
    import os
    import subprocess
    import sys

    from karma_memory.bench.bags import ros_env

    marker = tmp_path / f"{mode}.txt"
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(marker), mode], env=ros_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if mode == "spinning":
            deadline = time.monotonic() + 30.0
            while not (marker.exists() and marker.read_text() == "spinning"):
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=30.0)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, marker.read_text() if marker.exists() else "", output


def test_run_node_treats_sigterm_like_ctrl_c(tmp_path) -> None:
    status, marker, output = _probe(tmp_path, "spinning")
    assert (status, marker) == (0, "closed"), output  # close() ran, clean exit
    assert "Traceback" not in output


def test_run_node_exits_cleanly_on_sigterm_during_start_up(tmp_path) -> None:
    status, marker, output = _probe(tmp_path, "starting")
    assert status == 0 and "Traceback" not in output, output
    assert "stopped by a signal while starting" in output
    assert marker == ""  # no node, nothing to close
