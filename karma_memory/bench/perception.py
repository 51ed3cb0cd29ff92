"""Perception on embedded-simulator frames of real iTHOR scenes: speed, recall, centroid error, relations, duplicates.

Workload: for each scene, an exploration sweep — teleport to ``--positions`` reachable positions spread by
farthest-point sampling, four headings each, camera horizon ``--horizon`` — rendered by
``karma_memory.sim.EmbeddedController`` at 320×240 and 640×480. Measured in one run, on one core
(the process is pinned to one CPU and re-executed with OMP_NUM_THREADS=1 so open3d uses one thread):

- ms per frame (wall and CPU) of ``SceneGraphBuilder.process``, against the number of labelled instances,
  and an anchor measured on the same frames: back-projecting the whole frame and one open3d voxel
  downsample of it (the least any RGB-D pipeline does), reported as a CPU-time ratio. CPU time is the
  figure to read when the machine is shared: wall time includes waiting for the core;
- recall of objects that covered >= ``--min-pixels`` pixels in at least one frame;
- centroid error of the fused track centre against the simulator's ground truth. The embedded simulator
  renders each object as its THOR axis-aligned box, so the ground truth compared to is the THOR
  ``axisAlignedBoundingBox.center``; the error against THOR ``position`` (the object pivot) is given too;
- relation accuracy: for pickupable objects with THOR ``parentReceptacles``, whether the inferred support
  (on/inside) is one of them (a sub-receptacle such as ``Sink|...|SinkBasin`` counts for its ``Sink|...``);
- duplicate-track rate after 10 viewpoints with the objectIds stripped from the labels (geometric + type
  association only): windows of 10 consecutive views, each with a fresh builder; also over the full sweep.

``--noise`` (default 0.01) adds a run at 320×240 on degraded depth — Gaussian noise of that share of the
depth and flying pixels at mask borders, since the simulator's depth is exact — with the settings meant
for real sensors, ``PerceptionConfig.real_sensor()``; the other runs use the defaults (exact depth).

With ids (the paper's simulation setting: THOR labels and ids) association is by id, so its duplicate
rate is 0 by construction; the id-free runs are the meaningful test of association.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["main", "sweep_poses", "evaluate_scene", "degrade"]

DEFAULT_SCENES = ("FloorPlan1", "FloorPlan15", "FloorPlan201", "FloorPlan215",
                  "FloorPlan301", "FloorPlan315", "FloorPlan401", "FloorPlan415")
HEADINGS = (0.0, 90.0, 180.0, 270.0)


def _pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else float("nan")


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if len(values) else float("nan")


def sweep_poses(reachable: np.ndarray, n_positions: int, horizon: float) -> list[tuple[float, float, float, float]]:
    """(x, z, yaw, horizon) of an exploration sweep: farthest-point-sampled positions × 4 headings.

    >>> len(sweep_poses(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]), 2, 30.0))
    8
    """
    pts = np.asarray(reachable, dtype=float)
    if len(pts) == 0:
        return []
    chosen = [0]
    dist = np.linalg.norm(pts - pts[0], axis=1)
    while len(chosen) < min(n_positions, len(pts)):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(pts - pts[nxt], axis=1))
    return [(float(pts[i, 0]), float(pts[i, 1]), yaw, horizon) for i in chosen for yaw in HEADINGS]


def _render(scene: str, width: int, height: int, poses: Sequence[tuple[float, float, float, float]]) -> list:
    from karma_memory.sim import EmbeddedController

    ctrl = EmbeddedController(scene=scene, width=width, height=height)
    y = float(ctrl.last_event.metadata["agent"]["position"]["y"])
    frames = []
    for x, z, yaw, horizon in poses:
        event = ctrl.step("Teleport", position={"x": x, "y": y, "z": z}, rotation=yaw, horizon=horizon)
        if not event.last_action_success:
            continue
        frames.append(event.camera_frame())
    return frames


def degrade(frame: Any, rng: np.random.Generator, depth_sigma: float = 0.01, flying: float = 0.5) -> Any:
    """A copy of ``frame`` with sensor-like depth: Gaussian noise of ``depth_sigma`` x depth, and at mask
    borders a share ``flying`` of pixels replaced by a value between the two sides (mixed/flying pixels)."""
    from dataclasses import replace

    depth = frame.depth.astype(np.float32, copy=True)
    ok = np.isfinite(depth) & (depth > 0)
    depth[ok] += rng.normal(0.0, 1.0, int(ok.sum())).astype(np.float32) * depth_sigma * depth[ok]
    inst = frame.instances
    edge = np.zeros(inst.shape, dtype=bool)
    edge[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    edge[1:, :] |= inst[1:, :] != inst[:-1, :]
    rows, cols = np.nonzero(edge & ok & (rng.random(inst.shape) < flying))
    other = depth[rows, np.maximum(cols - 1, 0)]
    mix = rng.random(len(rows)).astype(np.float32)
    depth[rows, cols] = mix * depth[rows, cols] + (1 - mix) * other
    return replace(frame, depth=depth)


def _strip_ids(frame: Any) -> Any:
    from dataclasses import replace

    from karma_memory.core.types import InstanceLabel

    labels = {iid: InstanceLabel(lab.object_type, None, lab.score) for iid, lab in frame.labels.items()}
    return replace(frame, labels=labels)


def _pixels_per_object(frame: Any) -> dict[str, int]:
    counts = np.bincount(frame.instances.ravel())
    return {lab.object_id: int(counts[iid]) for iid, lab in frame.labels.items() if iid < len(counts)}


def _anchor(frame: Any) -> None:
    """Back-project every valid pixel and voxel-downsample the whole cloud once with open3d."""
    import open3d as o3d

    from karma_memory.core.perception.geometry import backproject_pixels, transform_points

    depth = frame.depth
    flat = np.flatnonzero(np.isfinite(depth) & (depth > 0))
    w = frame.intrinsics.width
    z = depth.ravel()[flat].astype(np.float64)
    pts = transform_points(frame.world_from_camera,
                           backproject_pixels((flat % w).astype(float), (flat // w).astype(float), z, frame.intrinsics))
    o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts)).voxel_down_sample(0.02)


def _centre(meta: dict, key: str) -> np.ndarray:
    c = meta["axisAlignedBoundingBox"]["center"] if key == "aabb" else meta["position"]
    return np.array([c["x"], c["y"], c["z"]], dtype=float)


@dataclass
class _Votes:
    """Which ground-truth object each id-free track was built from (pixel-weighted votes)."""

    votes: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(collections.Counter))

    def add(self, assignment: dict[int, str], frame: Any, counts: np.ndarray) -> None:
        for iid, tid in assignment.items():
            self.votes[tid][frame.labels[iid].object_id] += int(counts[iid])

    def owners(self, live: set[str]) -> dict[str, str]:
        return {tid: c.most_common(1)[0][0] for tid, c in self.votes.items() if tid in live and c}


def _run_free(frames: Sequence[Any], config: Any) -> tuple[Any, dict[str, str]]:
    """An id-free builder over ``frames``; returns it and track -> owning ground-truth objectId."""
    from karma_memory.core.perception import SceneGraphBuilder

    builder = SceneGraphBuilder(config)
    votes = _Votes()
    for frame in frames:
        builder.process(_strip_ids(frame))
        votes.add(builder.last_assignment, frame, np.bincount(frame.instances.ravel()))
    return builder, votes.owners(set(builder.tracks))


def _dup_rate(owners: dict[str, str]) -> tuple[int, int]:
    """(duplicate tracks, tracks): tracks beyond the first per ground-truth object."""
    per = collections.Counter(owners.values())
    return sum(n - 1 for n in per.values()), len(owners)


def _support(relations: Sequence[Any]) -> Any:
    return next((r for r in relations if r.predicate in ("on", "inside")), None)


def _same_receptacle(predicted: str | None, truth: Sequence[str]) -> bool:
    """Whether a predicted support id names one of THOR's parentReceptacles; a sub-receptacle such as
    ``Sink|...|SinkBasin`` counts for its parent ``Sink|...`` and vice versa (THOR lists either)."""
    if predicted is None:
        return False
    return any(predicted == t or predicted.startswith(t + "|") or t.startswith(predicted + "|") for t in truth)


def evaluate_scene(scene: str, frames: Sequence[Any], min_pixels: int, dup_views: int,
                   config: Any = None, timing_repeats: int = 1) -> dict[str, Any]:
    """All metrics of one scene's sweep (see the module docstring)."""
    from karma_memory.core.perception import PerceptionConfig, SceneGraphBuilder

    config = config or PerceptionConfig()
    builder = SceneGraphBuilder(config)
    wall, cpu, anchor, n_inst = [], [], [], []
    best_pixels: collections.Counter = collections.Counter()
    for frame in frames:
        for oid, px in _pixels_per_object(frame).items():
            best_pixels[oid] = max(best_pixels[oid], px)
        t0, c0 = time.perf_counter(), time.process_time()
        builder.process(frame)
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        c0 = time.process_time()
        _anchor(frame)
        anchor.append((time.process_time() - c0) * 1000)
        n_inst.append(len(frame.labels))
    meta = {m["objectId"]: m for m in frames[-1].metadata_objects} if frames else {}
    qualified = sorted(o for o, px in best_pixels.items() if px >= min_pixels and o in meta)
    found = [o for o in qualified if o in builder.tracks]
    err_aabb = [float(np.linalg.norm(builder.tracks[o].position() - _centre(meta[o], "aabb"))) for o in found]
    err_pos = [float(np.linalg.norm(builder.tracks[o].position() - _centre(meta[o], "position"))) for o in found]
    rel_total = rel_ok = rel_none = rel_parent_tracked = rel_ok_parent_tracked = 0
    rel_errors = []
    for oid in builder.tracks:
        m = meta.get(oid)
        if not m or not m.get("pickupable") or not m.get("parentReceptacles"):
            continue
        rel_total += 1
        support = _support(builder.relations_of(oid))
        ok = support is not None and _same_receptacle(support.target_id, m["parentReceptacles"])
        rel_ok += ok
        rel_none += support is None
        tracked_parent = any(_same_receptacle(t, m["parentReceptacles"]) for t in builder.tracks)
        rel_parent_tracked += tracked_parent
        rel_ok_parent_tracked += ok and tracked_parent
        if not ok:
            rel_errors.append({"object": oid, "predicted": None if support is None else
                               f"{support.predicate} {support.target_id}", "truth": m["parentReceptacles"]})
    # id-free: whole sweep, then windows of ``dup_views`` consecutive views
    free, owners = _run_free(frames, config)
    free_found = {o for o in owners.values()} & set(qualified)
    dup_full, tracks_full = _dup_rate(owners)
    dup_win = tracks_win = 0
    for start in range(0, max(0, len(frames) - dup_views + 1), dup_views):
        _, win_owners = _run_free(frames[start:start + dup_views], config)
        d, t = _dup_rate(win_owners)
        dup_win += d
        tracks_win += t
    best_track: dict[str, tuple[int, str]] = {}
    for tid, gt in owners.items():
        size = len(free.tracks[tid].points)
        if gt in meta and (gt not in best_track or size > best_track[gt][0]):
            best_track[gt] = (size, tid)
    free_err = [float(np.linalg.norm(free.tracks[tid].position() - _centre(meta[gt], "aabb")))
                for gt, (_, tid) in best_track.items() if gt in free_found]
    free_rel_total = free_rel_ok = 0
    for gt, (_, tid) in best_track.items():
        m = meta[gt]
        if not m.get("pickupable") or not m.get("parentReceptacles"):
            continue
        free_rel_total += 1
        support = _support(free.relations_of(tid))
        free_rel_ok += support is not None and _same_receptacle(owners.get(support.target_id), m["parentReceptacles"])
    return {
        "scene": scene, "frames": len(frames), "instances_median": _median(n_inst),
        "instances": n_inst, "wall_ms": wall, "cpu_ms": cpu, "anchor_ms": anchor,
        "qualified": len(qualified), "found": len(found), "missed": [o for o in qualified if o not in builder.tracks],
        "err_aabb": err_aabb, "err_position": err_pos,
        "relations": {"total": rel_total, "correct": rel_ok, "no_support": rel_none,
                      "parent_tracked": rel_parent_tracked, "correct_parent_tracked": rel_ok_parent_tracked,
                      "errors": rel_errors},
        "free": {"qualified_found": len(free_found), "tracks": tracks_full, "duplicates": dup_full,
                 "window_tracks": tracks_win, "window_duplicates": dup_win, "err_aabb": free_err,
                 "relations_total": free_rel_total, "relations_correct": free_rel_ok},
    }


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    wall = [v for r in results for v in r["wall_ms"]]
    cpu = [v for r in results for v in r["cpu_ms"]]
    anchor = [v for r in results for v in r["anchor_ms"]]
    inst = [v for r in results for v in r["instances"]]
    band = [c for c, n in zip(cpu, inst) if 25 <= n <= 35]
    band_wall = [w for w, n in zip(wall, inst) if 25 <= n <= 35]
    fit = np.polyfit(np.asarray(inst, float), np.asarray(cpu, float), 1) if len(set(inst)) > 1 else (0.0, _median(cpu))
    q = sum(r["qualified"] for r in results)
    err = [v for r in results for v in r["err_aabb"]]
    rel_t = sum(r["relations"]["total"] for r in results)
    rel_ok = sum(r["relations"]["correct"] for r in results)
    rel_pt = sum(r["relations"]["parent_tracked"] for r in results)
    rel_okpt = sum(r["relations"]["correct_parent_tracked"] for r in results)
    fr = [r["free"] for r in results]
    return {
        "frames": len(wall), "instances_median": _median(inst), "instances_max": max(inst, default=0),
        "wall_median_ms": _median(wall), "cpu_median_ms": _median(cpu), "cpu_p95_ms": _pct(cpu, 95),
        "frames_25_35_instances": len(band), "cpu_median_ms_25_35": _median(band),
        "wall_median_ms_25_35": _median(band_wall),
        "cpu_ms_fit": {"per_instance": float(fit[0]), "intercept": float(fit[1]),
                       "at_30_instances": float(fit[0] * 30 + fit[1])},
        "anchor_cpu_median_ms": _median(anchor), "ratio_to_anchor": _median(cpu) / max(_median(anchor), 1e-9),
        "recall": sum(r["found"] for r in results) / q if q else float("nan"), "qualified": q,
        "centroid_err_median_m": _median(err), "centroid_err_p90_m": _pct(err, 90),
        "centroid_err_vs_position_median_m": _median([v for r in results for v in r["err_position"]]),
        "relation_accuracy": rel_ok / rel_t if rel_t else float("nan"), "relations": rel_t,
        "relation_accuracy_parent_tracked": rel_okpt / rel_pt if rel_pt else float("nan"),
        "free_recall": sum(f["qualified_found"] for f in fr) / q if q else float("nan"),
        "free_dup_rate_10_views": (sum(f["window_duplicates"] for f in fr)
                                   / max(1, sum(f["window_tracks"] for f in fr))),
        "free_dup_rate_full_sweep": sum(f["duplicates"] for f in fr) / max(1, sum(f["tracks"] for f in fr)),
        "free_centroid_err_median_m": _median([v for f in fr for v in f["err_aabb"]]),
        "free_relation_accuracy": (sum(f["relations_correct"] for f in fr)
                                   / max(1, sum(f["relations_total"] for f in fr))),
    }


def _pin_one_core() -> tuple[int, set[int]]:
    """Pin this thread (and the threads it starts) to one CPU; returns it and the previous CPU set."""
    before = set(os.sched_getaffinity(0))
    cpu = min(before)
    os.sched_setaffinity(0, {cpu})
    return cpu, before


def _plot(results: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for size, rows in results.items():
        inst = [v for r in rows for v in r["instances"]]
        cpu = [v for r in rows for v in r["cpu_ms"]]
        ax.scatter(inst, cpu, s=6, alpha=0.5, label=size)
    ax.axhline(50, color="C0", lw=0.8, ls="--")
    ax.axhline(150, color="C1", lw=0.8, ls="--")
    ax.set_xlabel("labelled instances in the frame")
    ax.set_ylabel("CPU ms per frame (one core)")
    ax.set_title("SceneGraphBuilder.process on embedded-sim iTHOR frames")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (``karma bench perception``); returns the exit status.

    Re-executes itself with OMP_NUM_THREADS=1 (and one BLAS thread) unless ``--no-reexec`` (open3d's
    thread pool is sized at import), then pins to one CPU for the measurement and restores the affinity afterwards.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="karma bench perception", description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default=",".join(DEFAULT_SCENES), help="comma-separated FloorPlan names")
    parser.add_argument("--positions", type=int, default=16, help="reachable positions per scene (x4 headings)")
    parser.add_argument("--horizon", type=float, default=30.0, help="camera horizon, degrees down")
    parser.add_argument("--sizes", default="320x240,640x480")
    parser.add_argument("--min-pixels", type=int, default=200)
    parser.add_argument("--dup-views", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--noise", type=float, default=0.01,
                        help="also run 320x240 with depth noise of this share of depth plus flying pixels at mask "
                             "borders, with PerceptionConfig.real_sensor() (0: skip)")
    parser.add_argument("--config", default="", help="PerceptionConfig overrides as JSON, e.g. '{\"box_trim\": 0.01}'")
    parser.add_argument("--no-reexec", action="store_true", help="do not re-run with OMP_NUM_THREADS=1")
    args = parser.parse_args(argv)
    if not args.no_reexec and os.environ.get("OMP_NUM_THREADS") != "1":
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        return subprocess.call([sys.executable, "-m", "karma_memory.bench.perception", *argv, "--no-reexec"], env=env)
    cpu_id, cpus_before = _pin_one_core()
    try:
        return _run(args, cpu_id)
    finally:
        os.sched_setaffinity(0, cpus_before)


def _run(args: argparse.Namespace, cpu_id: int) -> int:
    """The measurement itself (see the module docstring); prints the table and writes JSON and PNG."""
    args.out.mkdir(parents=True, exist_ok=True)
    scenes = [s.strip() for s in args.scenes.split(",") if s.strip()]
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s.strip()]
    from karma_memory.core.perception import PerceptionConfig
    from karma_memory.sim.scenes import load_scene

    config = PerceptionConfig.from_mapping(json.loads(args.config)) if args.config else PerceptionConfig()

    results: dict[str, list[dict[str, Any]]] = {}
    load_start = os.getloadavg()
    runs = [(f"{w}x{h}", w, h, 0.0) for w, h in sizes]
    if args.noise > 0:
        runs.append(("320x240 noisy", 320, 240, args.noise))
    for key, width, height, noise in runs:
        results[key] = []
        rng = np.random.default_rng(0)
        for scene in scenes:
            poses = sweep_poses(load_scene(scene).reachable, args.positions, args.horizon)
            frames = _render(scene, width, height, poses)
            run_config = config
            if noise > 0:
                frames = [degrade(f, rng, noise) for f in frames]
                overrides = json.loads(args.config) if args.config else {}
                run_config = PerceptionConfig.real_sensor(**overrides)
            results[key].append(evaluate_scene(scene, frames, args.min_pixels, args.dup_views, run_config))
            r = results[key][-1]
            print(f"  {key} {scene:13s} frames {r['frames']:3d}  inst med {r['instances_median']:4.1f}  "
                  f"cpu med {_median(r['cpu_ms']):5.1f} ms  recall {r['found']}/{r['qualified']}  "
                  f"err med {100 * _median(r['err_aabb']):.1f} cm  rel {r['relations']['correct']}/"
                  f"{r['relations']['total']}  dup10 {r['free']['window_duplicates']}/{r['free']['window_tracks']}",
                  flush=True)
    summary = {key: _summary(rows) for key, rows in results.items()}
    targets = {"320x240": 50.0, "640x480": 150.0, "320x240 noisy": 50.0}
    print(f"\nPerception on {len(scenes)} iTHOR scenes (embedded sim), sweep {args.positions} positions x 4 headings, "
          f"horizon {args.horizon:.0f}; one core (cpu {cpu_id}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}); "
          f"load avg at start {load_start[0]:.2f}")
    header = f"{'':34s}" + "".join(f"{k:>16s}" for k in summary)
    print(header)

    def row(label: str, fmt: str, key: str, scale: float = 1.0) -> None:
        print(f"{label:34s}" + "".join(f"{format(s[key] * scale if scale != 1.0 else s[key], fmt):>16s}"
                                           for s in summary.values()))

    row("frames", "d", "frames")
    row("instances per frame (median)", ".1f", "instances_median")
    row("instances per frame (max)", "d", "instances_max")
    row("wall ms/frame (median)", ".1f", "wall_median_ms")
    row("CPU ms/frame (median)", ".1f", "cpu_median_ms")
    row("CPU ms/frame (p95)", ".1f", "cpu_p95_ms")
    row("frames with 25-35 instances", "d", "frames_25_35_instances")
    row("CPU ms/frame, 25-35 instances", ".1f", "cpu_median_ms_25_35")
    print(f"{'CPU ms at 30 instances (linear fit)':34s}" + "".join(
        f"{s['cpu_ms_fit']['at_30_instances']:>16.1f}" for s in summary.values()))
    print(f"{'  target':34s}" + "".join(f"{'< ' + str(int(targets.get(k, 0))):>16s}" for k in summary))
    row("anchor CPU ms (backproject+voxel)", ".1f", "anchor_cpu_median_ms")
    row("ratio CPU / anchor", ".2f", "ratio_to_anchor")
    row("recall, >= %d px (with ids)" % args.min_pixels, ".3f", "recall")
    row("centroid err median, cm (AABB)", ".2f", "centroid_err_median_m", 100)
    row("centroid err p90, cm (AABB)", ".2f", "centroid_err_p90_m", 100)
    row("centroid err median, cm (position)", ".2f", "centroid_err_vs_position_median_m", 100)
    row("relation accuracy (on/inside)", ".3f", "relation_accuracy")
    row("  ... where the parent is tracked", ".3f", "relation_accuracy_parent_tracked")
    row("id-free recall", ".3f", "free_recall")
    row("id-free duplicate rate, 10 views", ".4f", "free_dup_rate_10_views")
    row("id-free duplicate rate, full sweep", ".4f", "free_dup_rate_full_sweep")
    row("id-free centroid err median, cm", ".2f", "free_centroid_err_median_m", 100)
    row("id-free relation accuracy", ".3f", "free_relation_accuracy")
    print("targets: recall >= 0.95, centroid err < 5 cm, relation accuracy >= 0.90, duplicates <= 0.02")
    out = {"settings": {"config": json.loads(args.config) if args.config else {}, "scenes": scenes,
                        "positions": args.positions, "horizon": args.horizon,
                        "min_pixels": args.min_pixels, "dup_views": args.dup_views, "cpu": cpu_id,
                        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "loadavg_start": load_start,
                        "loadavg_end": os.getloadavg(),
                        "ground_truth": "THOR axisAlignedBoundingBox.center (the sim renders AABBs)"},
           "summary": summary, "per_scene": results}
    (args.out / "perception.json").write_text(json.dumps(out, indent=1, default=float))
    try:
        _plot(results, args.out / "perception.png")
    except ImportError:  # matplotlib missing: the table and JSON are the result
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
