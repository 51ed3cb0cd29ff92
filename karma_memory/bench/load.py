"""``karma bench load``: 1,000 observations/s for 60 s into the memory nodes — backlog, RSS, update latency, rate.

The long- and short-term memory nodes run as child processes (persistence on, default flush interval);
this process publishes ObjectObservationArrays on ``/observations`` at ``--rate`` observations per second
in messages of ``--batch``. The workload is a robot re-observing a bounded world: ``--objects`` objects
(iTHOR types) seen again and again with sub-threshold jitter, one object per message moved (so every
message changes the graph and produces a scene-graph delta) and one put down by a skill (STM material).

Measured, per second and overall:
- sustained rate: observations the nodes processed (their per-message acknowledgements), and what was
  lost (published, never acknowledged after a drain);
- queue growth: published − processed messages (the backlog inside DDS and the node);
- RSS of each node process over time (psutil);
- update latency: publish stamp (the wall time each message carries) → the scene_graph/delta that
  shows it arrives here; p50/p95/p99;
- processing latency of each node: publish stamp → its acknowledgement arrives here; p50/p95/p99;
- the machine's load average before and after (the figures depend on what else runs);
- peer: the same observations folded into the core LongTermMemory + ShortTermMemory in-process, so the
  nodes' rate reads as a fraction of what the core alone sustains on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from karma_memory.bench.bags import NodeRig, replay_parameters

__all__ = ["main", "Workload"]

TYPES = ("Apple", "Mug", "Bowl", "Egg", "Bread", "Knife", "Cup", "Plate", "Potato", "Tomato", "Book", "Vase",
         "CounterTop", "Cabinet", "Drawer", "Shelf", "Fridge", "Microwave", "Sink", "Toaster")


class Workload:
    """Deterministic observation batches: re-observations with jitter, one move and one skill report each."""

    def __init__(self, objects: int, batch: int, seed: int = 0) -> None:
        rng = random.Random(seed)
        self.batch = batch
        self.objects = []
        for i in range(objects):
            kind = TYPES[i % len(TYPES)]
            movable = TYPES.index(kind) < 12
            self.objects.append((f"{kind}|{i:05d}", kind, [rng.uniform(-6, 6), rng.uniform(0.5, 1.5),
                                                           rng.uniform(-6, 6)], movable))
        self.rng = rng
        self.cursor = 0

    def next_batch(self, stamp: float) -> list[Any]:
        from karma_memory.core.types import ObjectObservation, ObservationKind

        out = []
        for j in range(self.batch):
            oid, kind, position, movable = self.objects[self.cursor % len(self.objects)]
            self.cursor += 1
            if j == 0 and movable:  # moved well beyond the move threshold: a graph change
                position[0] += self.rng.choice((-0.3, 0.3))
                out.append(ObjectObservation(oid, kind, tuple(position), ObservationKind.MOVED, movable=True,
                                             stamp=stamp, source="perception"))
            elif j == 1 and movable:  # put down by the robot: STM material
                out.append(ObjectObservation(oid, kind, tuple(position), ObservationKind.MOVED, movable=True,
                                             stamp=stamp, source="skill:PutObject"))
            else:
                jitter = tuple(p + self.rng.uniform(-0.01, 0.01) for p in position)
                out.append(ObjectObservation(oid, kind, jitter, ObservationKind.SEEN, movable=movable,
                                             stamp=stamp, source="perception"))
        return out


def _peer_rate(objects: int, batch: int, seconds: float = 3.0) -> float:
    """Observations per second the core memories alone absorb with the same workload (in-process)."""
    from karma_memory.core.long_term import LongTermMemory
    from karma_memory.core.short_term import ShortTermMemory

    ltm, stm, workload = LongTermMemory(), ShortTermMemory(), Workload(objects, batch, seed=1)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        observations = workload.next_batch(time.time())
        ltm.observe_many(observations)
        for obs in observations:
            stm.observe(obs)
        done += len(observations)
    return done / (time.perf_counter() - started)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _summary(values: list[float]) -> dict[str, float]:
    return {"count": len(values), "p50": round(_pct(values, 50), 2), "p95": round(_pct(values, 95), 2),
            "p99": round(_pct(values, 99), 2), "max": round(max(values, default=float("nan")), 2)}


def run(seconds: float, rate: float, batch: int, objects: int, workdir: Path,
        snapshot_interval_s: float | None = None) -> dict[str, Any]:
    """Publish the workload for ``seconds`` into running memory nodes and measure them.

    Args:
        snapshot_interval_s: the nodes' ``publish_min_interval_s`` (None = their default).
    """
    import psutil
    from karma_interfaces.msg import ObjectObservationArray

    from karma_memory.nodes import conversions as cv
    from rclpy.qos import HistoryPolicy, QoSProfile

    from karma_memory.nodes.qos import EVENTS

    # as deep as the nodes' observation queue: a reliable KEEP_LAST writer drops what its readers have not
    # received yet once its history is full, so a 100-deep one loses messages whenever a starved node's
    # middleware threads fall 1 s behind
    PUBLISHER_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1000, reliability=EVENTS.reliability,
                               durability=EVENTS.durability)

    params = replay_parameters("", workdir / "memory", flush_interval_s=30.0, perceptions=0)
    if snapshot_interval_s is not None:
        for node in params.values():
            node["publish_min_interval_s"] = snapshot_interval_s
    workload = Workload(objects, batch)
    samples: list[dict[str, Any]] = []
    with NodeRig(workdir / "rig", params, snapshots=False) as rig:
        rig.start()
        rig.wait_ready(60.0)
        pub = rig.node.create_publisher(ObjectObservationArray, "/observations", PUBLISHER_QOS)
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        procs = {name: psutil.Process(proc.pid) for name, proc in rig.procs.items()}
        rig.record_deltas = True
        period = batch / rate
        sent = 0
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(max(0.0, t0 + len(samples) + 1 - time.monotonic())):
                row = {"t": round(time.monotonic() - t0, 2), "sent": sent, "ltm_done": rig.acks("ltm_ack"),
                       "stm_done": rig.acks("stm_ack")}
                for name, proc in procs.items():
                    try:
                        row[f"{name}_rss_mb"] = round(proc.memory_info().rss / 1e6, 1)
                        row[f"{name}_cpu_s"] = round(sum(proc.cpu_times()[:2]), 2)
                    except psutil.Error:
                        row[f"{name}_rss_mb"] = float("nan")
                samples.append(row)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        late = 0.0
        while time.monotonic() - started < seconds:
            stamp = time.time()
            pub.publish(cv.observations_to_msg(workload.next_batch(stamp), stamp))
            sent += 1
            wait = started + sent * period - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            else:
                late = max(late, -wait)
        publish_s = time.monotonic() - started
        drain_started = time.monotonic()
        try:
            rig.wait_acks(sent, timeout=30.0)
        except TimeoutError:
            pass
        drain_s = time.monotonic() - drain_started
        stop.set()
        sampler.join()
        with rig.lock:
            latencies = [(recv - newest) * 1e3 for recv, newest in rig.delta_times if newest > 0]
            ltm_times = list(rig.latest["ltm_ack"].times)
            processing = {name: [(t - stamp / 1e9) * 1e3 for stamp, t in zip(rig.latest[key].stamps,
                                                                              rig.latest[key].times)]
                          for name, key in (("ltm", "ltm_ack"), ("stm", "stm_ack"))}
        done = {"ltm": rig.acks("ltm_ack"), "stm": rig.acks("stm_ack")}
    # steady-state processing rate: acknowledgements between 10 % and 90 % of the run
    window = [t for t in ltm_times if started_wall(ltm_times, 0.1) <= t <= started_wall(ltm_times, 0.9)]
    steady = (len(window) - 1) * batch / (window[-1] - window[0]) if len(window) > 2 else float("nan")
    backlog = [max(r["sent"] - r["ltm_done"], r["sent"] - r["stm_done"]) for r in samples]
    rss = {name: [r[f"{name}_rss_mb"] for r in samples] for name in procs}
    cpu = {name: (samples[-1][f"{name}_cpu_s"] - samples[0][f"{name}_cpu_s"]) / max(1e-9, samples[-1]["t"] -
                                                                                   samples[0]["t"]) * 100
           for name in procs} if len(samples) > 1 else {}
    return {
        "offered_obs_per_s": round(sent * batch / publish_s, 1),
        "publisher_max_late_ms": round(late * 1e3, 1),
        "messages_sent": sent,
        "messages_processed": done,
        "lost_messages": {k: sent - v for k, v in done.items()},
        "sustained_obs_per_s": round(steady, 1),
        "drain_s": round(drain_s, 2),
        "backlog_messages": {"max": max(backlog, default=0), "final_before_drain": backlog[-1] if backlog else 0,
                             "growth_per_s": round(float(np.polyfit([r["t"] for r in samples], backlog, 1)[0]), 2)
                             if len(samples) > 2 else float("nan")},
        "rss_mb": {n: {"start": v[0], "end": v[-1], "max": max(v)} for n, v in rss.items() if v},
        "cpu_percent_of_one_core": {n: round(v, 1) for n, v in cpu.items()},
        "latency_ms": _summary(latencies),
        "processing_latency_ms": {name: _summary(values) for name, values in processing.items()},
        "samples": samples,
    }


def started_wall(times: list[float], fraction: float) -> float:
    """The wall time ``fraction`` of the way between the first and the last of ``times``."""
    return times[0] + fraction * (times[-1] - times[0]) if times else 0.0


def main(argv: list[str] | None = None) -> int:
    """``karma bench load``."""
    head, _, body = __doc__.partition("\n\n")
    parser = argparse.ArgumentParser(prog="karma bench load", formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=head.replace("``karma bench load``: ", "").strip(),
                                     epilog=body.replace("``", "").strip())
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish")
    parser.add_argument("--rate", type=float, default=1000.0, help="observations per second")
    parser.add_argument("--batch", type=int, default=10, help="observations per message")
    parser.add_argument("--objects", type=int, default=2000, help="objects in the simulated world")
    parser.add_argument("--snapshot-interval", type=float, default=None, metavar="S",
                        help="the memory nodes' publish_min_interval_s (full scene-graph snapshots); default: theirs")
    parser.add_argument("--out", type=Path, default=Path("build/bench"), help="where load.json and load.png go")
    args = parser.parse_args(argv)
    if args.batch < 2 or args.rate <= 0 or args.seconds <= 0 or args.objects < args.batch:
        parser.error("need --batch >= 2, --rate > 0, --seconds > 0 and --objects >= --batch")
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    peer = _peer_rate(args.objects, args.batch)
    workdir = Path(tempfile.mkdtemp(prefix="karma-bench-load-"))
    try:
        result = run(args.seconds, args.rate, args.batch, args.objects, workdir, args.snapshot_interval)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["load_average"] = {"before": [round(v, 2) for v in load_before],
                              "after": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}
    result["peer_core_in_process_obs_per_s"] = round(peer, 1)
    result["sustained_vs_peer"] = round(result["sustained_obs_per_s"] / peer, 3)
    keeps_up = all(v == 0 for v in result["lost_messages"].values()) and \
        result["backlog_messages"]["growth_per_s"] < 0.05 * args.rate / args.batch
    result["keeps_up"] = keeps_up
    result["snapshot_interval_s"] = args.snapshot_interval
    print(f"workload: {args.rate:g} observations/s in messages of {args.batch} for {args.seconds:g} s, "
          f"{args.objects} objects; offered {result['offered_obs_per_s']:.0f} obs/s; snapshot interval "
          f"{args.snapshot_interval if args.snapshot_interval is not None else 'node default'}")
    print(f"{'sustained (LTM acks)':28s} {result['sustained_obs_per_s']:.0f} obs/s   "
          f"(peer: core in-process {peer:.0f} obs/s, ratio {result['sustained_vs_peer']:.2f})")
    print(f"{'messages sent / processed':28s} {result['messages_sent']} / {result['messages_processed']}   "
          f"lost {result['lost_messages']}   drain {result['drain_s']:.2f} s")
    b = result["backlog_messages"]
    print(f"{'backlog (messages)':28s} max {b['max']}, at end {b['final_before_drain']}, "
          f"growth {b['growth_per_s']:+.2f}/s")
    for label, lat in (("update latency (LTM delta)", result["latency_ms"]),
                       ("processed (LTM ack)", result["processing_latency_ms"]["ltm"]),
                       ("processed (STM ack)", result["processing_latency_ms"]["stm"])):
        print(f"{label:28s} p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms  p99 {lat['p99']:.1f} ms  "
              f"max {lat['max']:.1f} ms  (n={lat['count']})")
    for name, r in result["rss_mb"].items():
        print(f"{'RSS ' + name:28s} {r['start']:.0f} → {r['end']:.0f} MB (max {r['max']:.0f})   "
              f"CPU {result['cpu_percent_of_one_core'].get(name, float('nan')):.0f} % of a core")
    print(f"{'machine load average (1 min)':28s} {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} CPUs)")
    print(f"{'keeps up without backlog':28s} {keeps_up}")
    (args.out / "load.json").write_text(json.dumps(result, indent=2))
    try:  # RSS and backlog over time
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        t = [r["t"] for r in result["samples"]]
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7, 5), sharex=True)
        for name in result["rss_mb"]:
            ax1.plot(t, [r[f"{name}_rss_mb"] for r in result["samples"]], label=name)
        ax1.set_ylabel("RSS (MB)")
        ax1.legend()
        ax2.plot(t, [max(r["sent"] - r["ltm_done"], r["sent"] - r["stm_done"]) for r in result["samples"]])
        ax2.set_ylabel("backlog (messages)")
        ax2.set_xlabel("s")
        fig.tight_layout()
        fig.savefig(args.out / "load.png", dpi=100)
    except ImportError:
        pass
    return 0 if keeps_up else 1


if __name__ == "__main__":
    sys.exit(main())
