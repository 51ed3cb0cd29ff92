"""The ROS stack as a robot sees it: update latency, memory query round trips, idle CPU — beside bare rclpy.

Everything runs as real nodes in separate processes started by ``karma stack``; the bench process is
one more node on the same (loopback, private-domain) graph. Measured in one run:
- observation → long-term memory update visible on the latched ``scene_graph`` topic (and on
  ``scene_graph/delta``), in FloorPlan1 and with 1,000 more objects; median and p95;
- query service round trips with 1,000 objects: long-term GET_OBJECT, FIND_BY_TYPE, RANK_AREAS and
  a short-term lookup by id in a 1,000-unit memory; p50 and p95;
- peers in the same run: an empty std_srvs/Trigger service round trip and an ObjectObservationArray
  echoed by a bare rclpy node (publish → echo → receive), so each figure also reads as a ratio;
- idle CPU of the default stack (sim bridge at its default camera rate, both memories, planner) after
  start-up, summed over its processes with psutil over ``--idle-seconds``, in % of one core.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[2]
TYPES = ("Apple", "Mug", "Bowl", "Cup", "Egg", "Bread", "Knife", "Fork", "Spoon", "Plate", "Pot", "Pan", "Tomato",
         "Potato", "Lettuce", "Book", "Pen", "Pencil", "Vase", "Statue")

_ECHO = textwrap.dedent("""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from std_srvs.srv import Trigger
    from karma_interfaces.msg import ObjectObservationArray
    from karma_memory.nodes.qos import EVENTS
    rclpy.init()
    node = rclpy.create_node("bench_echo")
    pub = node.create_publisher(ObjectObservationArray, "bench/echo_out", EVENTS)
    node.create_subscription(ObjectObservationArray, "bench/echo_in", pub.publish, EVENTS)
    node.create_service(Trigger, "bench/trigger", lambda req, res: res)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
""")


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1e3 for v in values_s]
    return {"n": len(ms), "p50_ms": _pct(ms, 50), "p95_ms": _pct(ms, 95),
            "mean_ms": statistics.fmean(ms) if ms else 0.0}


class _Processes:
    """Child processes of the bench (a stack through the launcher, or a helper), always cleaned up."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir, self.procs = log_dir, []

    def start(self, name: str, cmd: list[str]) -> tuple[subprocess.Popen, Path]:
        log = self.log_dir / f"{name}.log"
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
                                env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT)))
        self.procs.append((proc, log))
        return proc, log

    def stack(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        return self.start(name, [sys.executable, "-m", "karma_memory.launcher", *args])

    def stop_all(self) -> None:
        for proc, log in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc, log in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            for pid in re.findall(r"started \w+ \(pid (\d+)\)", log.read_text(errors="replace")):
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass


def _wait_log(log: Path, pattern: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, log.read_text(errors="replace")):
            return True
        time.sleep(0.1)
    return False


class _Bench:
    """The measuring node, spun in a background thread."""

    def __init__(self) -> None:
        import rclpy
        from karma_interfaces.msg import SceneGraph, SceneGraphDelta
        from rclpy.executors import MultiThreadedExecutor
        from std_msgs.msg import Header

        from karma_memory.nodes.qos import EVENTS, LATCHED

        self.node = rclpy.create_node("bench")
        self.cond = threading.Condition()
        self.graph: Any = None
        self.graph_at: dict[int, float] = {}
        self.delta_at: dict[int, float] = {}
        self.ack_at: dict[int, float] = {}
        self.echo_at: dict[int, float] = {}
        self.node.create_subscription(SceneGraph, "scene_graph", self._on_graph, LATCHED)
        self.node.create_subscription(SceneGraphDelta, "scene_graph/delta", self._on_delta, EVENTS)
        self.node.create_subscription(Header, "short_term_memory/processed", self._on_ack, EVENTS)
        from karma_interfaces.msg import ObjectObservationArray

        self.node.create_subscription(ObjectObservationArray, "bench/echo_out", self._on_echo, EVENTS)
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _mark(self, table: dict[int, float], key: int) -> None:
        with self.cond:
            table.setdefault(key, time.perf_counter())
            self.cond.notify_all()

    def _on_graph(self, msg: Any) -> None:
        self.graph = msg
        self._mark(self.graph_at, int(msg.version))

    def _on_delta(self, msg: Any) -> None:
        self._mark(self.delta_at, int(msg.to_version))

    def _on_ack(self, msg: Any) -> None:
        self._mark(self.ack_at, msg.stamp.sec * 1_000_000_000 + msg.stamp.nanosec)

    def _on_echo(self, msg: Any) -> None:
        self._mark(self.echo_at, msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec)

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True

    def call(self, client: Any, request: Any, timeout: float = 10.0) -> tuple[Any, float]:
        done = threading.Event()
        start = time.perf_counter()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(timeout):
            raise TimeoutError(f"{client.srv_name} did not answer")
        return future.result(), time.perf_counter() - start

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()


def _observations(objects: list[tuple[str, str, tuple[float, float, float]]], stamp: float, source: str) -> Any:
    from karma_memory.core.types import ObjectObservation, ObservationKind
    from karma_memory.nodes import conversions as cv

    return cv.observations_to_msg([ObjectObservation(i, t, p, ObservationKind.ADDED, source=source, stamp=stamp)
                                   for i, t, p in objects], stamp)


def _update_latency(bench: _Bench, publish: Any, samples: int, gap_s: float, label: str) -> dict[str, Any]:
    """Publish one moved object at a time; time until the snapshot (and the delta) with the change arrives."""
    graph_lat, delta_lat = [], []
    for i in range(samples):
        version = int(bench.graph.version)
        x = 0.5 + 0.01 * (i % 50)
        msg = _observations([(f"BenchProbe|{label}", "Apple", (-1.0 + x, 0.9, 0.5))], 1.9e9 + i, "bench")
        start = time.perf_counter()
        publish(msg)
        if not bench.wait(lambda: any(v > version for v in bench.graph_at), 5.0):
            raise TimeoutError("no scene graph update within 5 s")
        graph_lat.append(min(t for v, t in bench.graph_at.items() if v > version) - start)
        deltas = [t for v, t in bench.delta_at.items() if v > version]
        if deltas:
            delta_lat.append(min(deltas) - start)
        time.sleep(gap_s)
    return {"snapshot": _summary(graph_lat), "delta": _summary(delta_lat), "nodes": len(bench.graph.nodes)}


def _query_latency(bench: _Bench, client: Any, make: Callable[[int], Any], samples: int,
                   check: bool = True) -> dict[str, Any]:
    times = []
    for i in range(samples):
        response, elapsed = bench.call(client, make(i))
        if check and not response.success:
            raise RuntimeError(f"query failed: {response.message}")
        times.append(elapsed)
    return _summary(times)


def _memory_phase(procs: _Processes, samples: int, n_objects: int, gap_s: float) -> dict[str, Any]:
    from karma_interfaces.msg import ObjectObservationArray
    from karma_interfaces.srv import QueryLongTermMemory, QueryShortTermMemory
    from std_srvs.srv import Trigger

    from karma_memory.nodes.qos import EVENTS

    # default parameters (area ranking with its MiniLM/chroma semantic term), except an STM big enough to hold
    # the 1,000 objects
    _, log = procs.stack("memories", ["--nodes", "long_term_memory", "short_term_memory", "--scene", "FloorPlan1",
                                      "-p", "short_term_memory.warm_up=false", "-p", "short_term_memory.policy=lru",
                                      "-p", f"short_term_memory.capacity={n_objects + 10}"])
    procs.start("echo", [sys.executable, "-c", _ECHO])
    if not _wait_log(log, "embedder ready", 120):
        raise TimeoutError(f"long-term memory did not load its embedder: {log.read_text()[-2000:]}")
    bench = _Bench()
    node = bench.node
    try:
        obs_pub = node.create_publisher(ObjectObservationArray, "observations", EVENTS)
        echo_pub = node.create_publisher(ObjectObservationArray, "bench/echo_in", EVENTS)
        ltm = node.create_client(QueryLongTermMemory, "long_term_memory/query")
        stm = node.create_client(QueryShortTermMemory, "short_term_memory/query")
        trigger = node.create_client(Trigger, "bench/trigger")
        for client in (ltm, stm, trigger):
            if not client.wait_for_service(timeout_sec=30):
                raise TimeoutError(f"{client.srv_name} not available")
        if not bench.wait(lambda: bench.graph is not None, 30):
            raise TimeoutError("no scene graph")
        deadline = time.monotonic() + 10
        while (obs_pub.get_subscription_count() < 2 or echo_pub.get_subscription_count() < 1) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        out: dict[str, Any] = {}
        print("memory phase: nodes up", flush=True)
        out["update_floorplan1"] = _update_latency(bench, obs_pub.publish, samples, gap_s, "small")
        # 1,000 more objects (the STM gets them as interactions, so it holds 1,000 units too)
        rng = random.Random(0)
        objects = [(f"{TYPES[i % len(TYPES)]}|bench|{i}", TYPES[i % len(TYPES)],
                    (rng.uniform(-2.5, 1.0), rng.uniform(0.5, 1.5), rng.uniform(-1.5, 2.5))) for i in range(n_objects)]
        batch = _observations(objects, 1.95e9, "skill:bench")
        stamp_ns = batch.header.stamp.sec * 1_000_000_000 + batch.header.stamp.nanosec
        obs_pub.publish(batch)
        if not bench.wait(lambda: len(bench.graph.nodes) >= n_objects and stamp_ns in bench.ack_at, 30):
            raise TimeoutError("memories did not take the 1,000 objects")
        time.sleep(0.5)
        out["update_1000_objects"] = _update_latency(bench, obs_pub.publish, samples, gap_s, "large")
        ids = [o[0] for o in objects]
        Q = QueryLongTermMemory.Request
        n = samples * 5
        out["ltm_get_object"] = _query_latency(
            bench, ltm, lambda i: Q(kind=Q.GET_OBJECT, object_id=ids[i % len(ids)]), n)
        out["ltm_find_by_type"] = _query_latency(
            bench, ltm, lambda i: Q(kind=Q.FIND_BY_TYPE, object_type=TYPES[i % len(TYPES)], max_results=10), n)
        _query_latency(bench, ltm, lambda i: Q(kind=Q.RANK_AREAS, object_type=TYPES[i]), len(TYPES))  # embed once
        out["ltm_rank_areas"] = _query_latency(
            bench, ltm, lambda i: Q(kind=Q.RANK_AREAS, object_type=TYPES[i % len(TYPES)], max_results=5), n)
        out["stm_get_unit"] = _query_latency(
            bench, stm, lambda i: QueryShortTermMemory.Request(object_id=ids[i % len(ids)]), samples * 5)
        out["peer_trigger_service"] = _query_latency(bench, trigger, lambda i: Trigger.Request(), samples * 5,
                                                     check=False)
        echo = []
        for i in range(samples):
            msg = _observations([(f"Echo|{i}", "Apple", (0.0, 1.0, 0.0))], 1.96e9 + i, "bench")
            key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            start = time.perf_counter()
            echo_pub.publish(msg)
            if not bench.wait(lambda: key in bench.echo_at, 5.0):
                raise TimeoutError("echo node did not answer")
            echo.append(bench.echo_at[key] - start)
            time.sleep(0.01)
        out["peer_topic_echo"] = _summary(echo)
        return out
    finally:
        bench.close()
        procs.stop_all()
        procs.procs.clear()


def _idle_phase(procs: _Processes, seconds: float, startup_timeout: float) -> dict[str, Any]:
    import psutil

    proc, log = procs.stack("idle", [])  # the default stack, default parameters
    try:
        needed = ["simulating", "long-term memory ready", "short-term memory ready", "planner ready"]
        if not all(_wait_log(log, p, startup_timeout) for p in needed):
            raise TimeoutError(f"stack did not start: {log.read_text()[-2000:]}")
        _wait_log(log, r"(?s)(embedder ready.*){3}", startup_timeout)  # background model loads are start-up
        time.sleep(3.0)
        pids = [proc.pid] + [int(p) for p in re.findall(r"started \w+ \(pid (\d+)\)", log.read_text())]
        handles = [psutil.Process(p) for p in pids]
        for h in handles:
            h.cpu_percent(None)
        time.sleep(seconds)
        per = {h.name() + f"[{h.pid}]": h.cpu_percent(None) for h in handles}
        names = re.findall(r"started (\w+) \(pid (\d+)\)", log.read_text())
        by_node = {"launcher": per[next(k for k in per if k.endswith(f"[{proc.pid}]"))]}
        for name, pid in names:
            by_node[name] = per[next(k for k in per if k.endswith(f"[{pid}]"))]
        rss = sum(h.memory_info().rss for h in handles) / 2**20
        return {"seconds": seconds, "total_pct_of_one_core": sum(by_node.values()), "by_process_pct": by_node,
                "rss_mib": rss}
    finally:
        procs.stop_all()
        procs.procs.clear()


def main(argv: list[str] | None = None) -> int:
    """Run the ROS stack benchmark; print a table and write ``ros_stack.json`` under ``--out``."""
    parser = argparse.ArgumentParser(prog="karma bench ros_stack", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench")
    parser.add_argument("--samples", type=int, default=100, help="update samples; query samples are 5x this")
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--gap", type=float, default=0.12, help="seconds between update samples (> the 0.1 s "
                                                                "snapshot rate limit, so each is a leading edge)")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--startup-timeout", type=float, default=90.0)
    args = parser.parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 60))
    os.environ.setdefault("ROS_LOG_DIR", str(ROOT / "build" / "ros_log"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)

    import rclpy

    rclpy.init()
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                                           "load_average_at_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="karma_bench_") as tmp:
        procs = _Processes(Path(tmp))
        try:
            results.update(_memory_phase(procs, args.samples, args.objects, args.gap))
            results["idle"] = _idle_phase(procs, args.idle_seconds, args.startup_timeout)
        finally:
            procs.stop_all()
            rclpy.try_shutdown()
    srv, topic = results["peer_trigger_service"], results["peer_topic_echo"]
    rows = [
        ("observation → scene_graph snapshot, FloorPlan1", results["update_floorplan1"]["snapshot"], topic,
         "< 20 ms median"),
        ("observation → scene_graph/delta, FloorPlan1", results["update_floorplan1"]["delta"], topic, ""),
        (f"observation → snapshot, +{args.objects} objects", results["update_1000_objects"]["snapshot"], topic,
         "< 20 ms median"),
        (f"observation → delta, +{args.objects} objects", results["update_1000_objects"]["delta"], topic, ""),
        ("LTM GET_OBJECT round trip", results["ltm_get_object"], srv, "< 5 ms p95"),
        ("LTM FIND_BY_TYPE round trip", results["ltm_find_by_type"], srv, "< 5 ms p95"),
        ("LTM RANK_AREAS round trip (with MiniLM term)", results["ltm_rank_areas"], srv, "< 5 ms p95"),
        (f"STM lookup by id, {args.objects} units", results["stm_get_unit"], srv, "< 5 ms p95"),
        ("peer: empty std_srvs/Trigger service", srv, srv, ""),
        ("peer: ObjectObservationArray echo (bare rclpy)", topic, topic, ""),
    ]
    print(f"{'measure':50s} {'p50 ms':>8s} {'p95 ms':>8s} {'x peer p50':>10s} {'x peer p95':>10s}  target")
    for name, s, peer, target in rows:
        print(f"{name:50s} {s['p50_ms']:8.2f} {s['p95_ms']:8.2f} {s['p50_ms'] / peer['p50_ms']:10.2f} "
              f"{s['p95_ms'] / peer['p95_ms']:10.2f}  {target}")
    idle = results["idle"]
    print(f"{'idle CPU of the default stack (% of one core)':50s} {idle['total_pct_of_one_core']:8.2f}"
          f"{'':31s}  < 5 %   ({', '.join(f'{k} {v:.1f}' for k, v in idle['by_process_pct'].items())};"
          f" {idle['rss_mib']:.0f} MiB RSS)")
    (args.out / "ros_stack.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'ros_stack.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
