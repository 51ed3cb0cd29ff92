"""Replacement-policy benchmark: speed and Zipf hit rate vs cachetools/theine, and the paper's STM experiment.

Part (a), throughput and correctness. One Zipf(1.2) trace over 5,000 keys (numpy
``default_rng(seed).zipf(1.2, n) % 5000``, the DESIGN.md §4 measurement) is replayed as
``get``, plus ``set`` on a miss, against our FIFO/LRU/LFU/W-TinyLFU and, in the same run,
cachetools FIFOCache/LRUCache/LFUCache and theine (W-TinyLFU, Rust core, ``nolock=True``).
Speed is requests/s (best of ``--repeats``) and is reported as a ratio to the matching peer
and to theine. The correctness check: our W-TinyLFU hit rate at capacity 100 and 1,000 must
be within ±0.02 of theine's.

Part (b), the paper's replacement experiment (karma_spec.md §2.6, paper Figs 4-6). Task
sequences are generated over real iTHOR scenes (object lists of procthor's
``ai2thor-object-metadata.json``, FloorPlan order). The generator, per sequence:

* picks a scene uniformly from the chosen room types (default kitchens, where the paper's
  tasks live); its recallable objects are those a task can refer to and the STM can hold:
  pickupable, openable, toggleable or receptacle objects, except the Floor;
* gives the objects Zipf(``zipf_s``) popularity over a random rank order (a few objects of
  a household are used often, most rarely);
* makes each task recall k objects, k = 1/2/3 with probabilities ``task_sizes`` (simple /
  composite / complex instructions); each recalled object is, with probability ``p_recent``,
  one touched in the last ``recent_tasks`` tasks (follow-up tasks, e.g. wash then cut the
  same apple), else a Zipf draw; no object twice in one task;
* with probability ``p_witness`` per task the agent also witnesses or moves one uniformly
  random other object, which is stored without being queried (paper §3.4: the STM holds
  "recently used or witnessed" objects).

Replay per policy: for each recalled object, hit = ``access(id)`` (the needed unit is
resident when queried); then ``insert(id)`` (the unit is stored or merged after the task
touched it). Warm-up ends after the first task at which occupancy exceeds 95 % of capacity;
the post-warm-up hit rate pools the queries of later tasks. The same sequences are replayed
for every policy. Sequence ``i`` uses ``random.Random(seed * 1_000_003 + i)``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from karma_memory.core.policies import ReplacementPolicy, make_policy

__all__ = [
    "TaskGenConfig",
    "Task",
    "load_ithor_scenes",
    "generate_sequences",
    "replay",
    "zipf_trace",
    "run_throughput",
    "run_replacement_experiment",
    "main",
]

ROOM_BASE = {"kitchens": 1, "living_rooms": 201, "bedrooms": 301, "bathrooms": 401}
PEERS = {"fifo": "cachetools.FIFOCache", "lru": "cachetools.LRUCache", "lfu": "cachetools.LFUCache",
         "wtinylfu": "theine"}
THEINE_DESIGN = {100: 0.626, 1000: 0.788}  # DESIGN.md §4, for reference only
PAPER_RATIO_25_5 = {"fifo": 4.6, "wtinylfu": 3.9}  # karma_spec.md §2.6
TARGET_OPS = 200_000


# -- part (a): Zipf trace, throughput and hit rate -----------------------------------------------
def zipf_trace(n: int, seed: int = 0, keys: int = 5000, s: float = 1.2) -> list[int]:
    """Zipf(s) draws folded onto ``keys`` keys by modulo (the DESIGN.md §4 trace)."""
    import numpy as np

    return (np.random.default_rng(seed).zipf(s, n) % keys).tolist()


def _drive_ours(policy: ReplacementPolicy, trace: Sequence[int]) -> tuple[int, float]:
    access, insert = policy.access, policy.insert
    hits = 0
    start = time.perf_counter()
    for key in trace:
        if access(key):
            hits += 1
        else:
            insert(key)
    return hits, time.perf_counter() - start


def _drive_cachetools(cache: Any, trace: Sequence[int]) -> tuple[int, float]:
    get = cache.get
    missing = object()
    hits = 0
    start = time.perf_counter()
    for key in trace:
        if get(key, missing) is missing:
            cache[key] = 1
        else:
            hits += 1
    return hits, time.perf_counter() - start


def _drive_theine(cache: Any, trace: Sequence[int]) -> tuple[int, float]:
    get, put = cache.get, cache.set
    hits = 0
    start = time.perf_counter()
    for key in trace:
        if get(key)[1]:
            hits += 1
        else:
            put(key, 1)
    return hits, time.perf_counter() - start


def _peer_runner(name: str, capacity: int) -> Callable[[Sequence[int]], tuple[int, float]]:
    if name == "theine":
        from theine import Cache

        def run(trace: Sequence[int]) -> tuple[int, float]:
            random.seed(0)  # theine's lossy read buffer picks stripes with random bits
            cache: Any = Cache(capacity, nolock=True)
            try:
                return _drive_theine(cache, trace)
            finally:
                cache.close()

        return run
    import cachetools

    cls = getattr(cachetools, name.split(".")[1])
    return lambda trace: _drive_cachetools(cls(capacity), trace)


def run_throughput(trace: Sequence[int], capacities: Sequence[int], repeats: int) -> list[dict[str, Any]]:
    """Time ours and the peers on ``trace`` (alternating, best of ``repeats``) at each capacity."""
    rows = []
    names = ["fifo", "lru", "lfu", "wtinylfu"]
    peer_names = list(dict.fromkeys(PEERS.values()))
    for capacity in capacities:
        best: dict[str, float] = {}
        hits: dict[str, int] = {}
        runners: dict[str, Callable[[Sequence[int]], tuple[int, float]]] = {
            **{n: (lambda t, n=n: _drive_ours(make_policy(n, capacity), t)) for n in names},
            **{p: _peer_runner(p, capacity) for p in peer_names},
        }
        for _ in range(repeats):
            for label, run in runners.items():
                h, seconds = run(trace)
                hits.setdefault(label, h)
                best[label] = min(best.get(label, math.inf), seconds)
        ops = {label: len(trace) / best[label] for label in runners}
        for n in names:
            peer = PEERS[n]
            rows.append({
                "policy": n,
                "capacity": capacity,
                "ops_per_s": ops[n],
                "hit_rate": hits[n] / len(trace),
                "peer": peer,
                "peer_ops_per_s": ops[peer],
                "peer_hit_rate": hits[peer] / len(trace),
                "ratio_to_peer": ops[n] / ops[peer],
                "ratio_to_theine": ops[n] / ops["theine"],
                "meets_target": ops[n] >= TARGET_OPS,
            })
    return rows


# -- part (b): the paper's replacement experiment ---------------------------------------------
@dataclass(frozen=True)
class TaskGenConfig:
    """Parameters of the task-sequence generator (see the module docstring)."""

    rooms: tuple[str, ...] = ("kitchens",)
    sequences: int = 100
    tasks: int = 300
    zipf_s: float = 1.0
    task_sizes: tuple[float, ...] = (0.4, 0.4, 0.2)
    p_recent: float = 0.3
    recent_tasks: int = 3
    p_witness: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class Task:
    """One task: the object ids it recalls (queried) and those it merely witnesses (stored)."""

    recalled: tuple[str, ...]
    witnessed: tuple[str, ...] = field(default=())


@functools.lru_cache(maxsize=1)
def _object_metadata() -> dict[str, list[list[dict[str, Any]]]]:
    """procthor's dump of ``event.metadata['objects']`` per iTHOR scene (43 MB; parsed once)."""
    spec = importlib.util.find_spec("procthor")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("procthor is not installed (pip install --no-deps procthor)")
    path = Path(list(spec.submodule_search_locations)[0]) / "databases" / "ai2thor-object-metadata.json"
    data: dict[str, list[list[dict[str, Any]]]] = json.loads(path.read_text())
    return data


def load_ithor_scenes(rooms: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """Real iTHOR object lists per scene, e.g. ``{"FloorPlan1": [{objectId, objectType, ...}]}``.

    Raises:
        FileNotFoundError: if procthor (installed with --no-deps) is missing.
        KeyError: for an unknown room type.
    """
    data = _object_metadata()
    scenes = {}
    for room in rooms:
        if room not in ROOM_BASE:
            raise KeyError(f"unknown room type {room!r}; known: {sorted(ROOM_BASE)}")
        for i, objects in enumerate(data[room]):
            scenes[f"FloorPlan{ROOM_BASE[room] + i}"] = objects
    return scenes


def _recallable(objects: list[dict[str, Any]]) -> list[str]:
    return sorted(
        o["objectId"] for o in objects
        if o["objectType"] != "Floor"
        and (o["pickupable"] or o["openable"] or o["toggleable"] or o["receptacle"])
    )


def generate_sequences(
    scenes: dict[str, list[dict[str, Any]]], cfg: TaskGenConfig
) -> list[tuple[str, list[Task]]]:
    """Generate ``cfg.sequences`` seeded task sequences of ``cfg.tasks`` tasks each."""
    names = sorted(scenes, key=lambda s: int(s.removeprefix("FloorPlan")))
    out = []
    for i in range(cfg.sequences):
        rng = random.Random(cfg.seed * 1_000_003 + i)
        scene = rng.choice(names)
        objects = _recallable(scenes[scene])
        ranked = rng.sample(objects, len(objects))
        cum = []
        total = 0.0
        for rank in range(len(ranked)):
            total += 1.0 / (rank + 1) ** cfg.zipf_s
            cum.append(total)
        recent: deque[tuple[str, ...]] = deque(maxlen=cfg.recent_tasks)
        tasks = []
        for _ in range(cfg.tasks):
            k = min(len(objects), 1 + rng.choices(range(len(cfg.task_sizes)), cfg.task_sizes)[0])
            chosen: list[str] = []
            pool = [o for t in recent for o in t]
            while len(chosen) < k:
                if pool and rng.random() < cfg.p_recent:
                    obj = rng.choice(pool)
                else:
                    obj = rng.choices(ranked, cum_weights=cum)[0]
                if obj not in chosen:
                    chosen.append(obj)
            witnessed = (rng.choice(objects),) if rng.random() < cfg.p_witness else ()
            tasks.append(Task(tuple(chosen), witnessed))
            recent.append(tuple(chosen))
        out.append((scene, tasks))
    return out


def replay(policy: ReplacementPolicy, tasks: Sequence[Task]) -> tuple[list[int], list[int], int | None]:
    """Run one sequence through ``policy``; return per-task hits, queries, and the warm-up task count.

    The warm-up count is the number of tasks after which occupancy first exceeded 95 % of
    capacity (None if it never did).
    """
    hits, queries = [], []
    warm: int | None = None
    threshold = 0.95 * policy.capacity
    for t, task in enumerate(tasks):
        h = 0
        for obj in task.recalled:
            if policy.access(obj):
                h += 1
            policy.insert(obj)
        for obj in task.witnessed:
            policy.insert(obj)
        hits.append(h)
        queries.append(len(task.recalled))
        if warm is None and len(policy) > threshold:
            warm = t + 1
    return hits, queries, warm


def _evaluate(label: str, build: Callable[[], ReplacementPolicy],
              sequences: list[tuple[str, list[Task]]]) -> dict[str, Any]:
    n_tasks = len(sequences[0][1])
    cum_curves = []
    post_h = post_q = 0
    per_seq: list[float] = []
    warms: list[int] = []
    total_h = total_q = 0
    for _, tasks in sequences:
        policy = build()
        hits, queries, warm = replay(policy, tasks)
        ch = cq = 0
        curve = []
        for h, q in zip(hits, queries):
            ch += h
            cq += q
            curve.append(ch / cq)
        cum_curves.append(curve)
        total_h += ch
        total_q += cq
        if warm is not None and warm < n_tasks:
            warms.append(warm)
            sh, sq = sum(hits[warm:]), sum(queries[warm:])
            post_h += sh
            post_q += sq
            per_seq.append(sh / sq)
    mean_curve = [statistics.fmean(c[t] for c in cum_curves) for t in range(n_tasks)]
    return {
        "label": label,
        "post_warmup_hit_rate": post_h / post_q if post_q else None,
        "post_warmup_std_over_sequences": statistics.pstdev(per_seq) if len(per_seq) > 1 else None,
        "whole_run_hit_rate": total_h / total_q,
        "warmed_up_sequences": len(warms),
        "median_warmup_tasks": statistics.median(warms) if warms else None,
        "mean_cumulative_curve": mean_curve,
    }


def _split_9_1(capacity: int) -> tuple[int, int]:
    """[window, main] with the paper's best 9:1 proportion (main at least 1)."""
    main = max(1, math.floor(0.1 * capacity + 0.5))
    return capacity - main, main


def run_replacement_experiment(cfg: TaskGenConfig, capacities: Sequence[int] = (5, 10, 15, 20, 25)) -> dict[str, Any]:
    """Fig. 4 (capacity 10: FIFO vs W-TinyLFU splits) and Figs 5-6 (capacity sweep, 25 vs 5 ratio)."""
    scenes = load_ithor_scenes(cfg.rooms)
    sequences = generate_sequences(scenes, cfg)
    objects_per_scene = [len(_recallable(scenes[s])) for s, _ in sequences]
    fig4 = [_evaluate("FIFO [10]", lambda: make_policy("fifo", 10), sequences)]
    for w in range(1, 10):
        fig4.append(_evaluate(f"W-TinyLFU [{w},{10 - w}]",
                              lambda w=w: make_policy("wtinylfu", 10, window=w, main=10 - w), sequences))
    fig4.append(_evaluate("LRU [10]", lambda: make_policy("lru", 10), sequences))
    fig4.append(_evaluate("LFU [10]", lambda: make_policy("lfu", 10), sequences))
    sweep: dict[str, list[dict[str, Any]]] = {"fifo": [], "wtinylfu": [], "wtinylfu_default": []}
    for c in capacities:
        w, m = _split_9_1(c)
        sweep["fifo"].append({"capacity": c, **_evaluate(f"FIFO [{c}]", lambda c=c: make_policy("fifo", c), sequences)})
        sweep["wtinylfu"].append({"capacity": c, **_evaluate(
            f"W-TinyLFU [{w},{m}]", lambda c=c, w=w, m=m: make_policy("wtinylfu", c, window=w, main=m), sequences)})
        sweep["wtinylfu_default"].append({"capacity": c, **_evaluate(
            f"W-TinyLFU default [{max(1, c // 100)},{c - max(1, c // 100)}]",
            lambda c=c: make_policy("wtinylfu", c), sequences)})
    ratios: dict[str, Any] = {}
    lo, hi = min(capacities), max(capacities)
    for name, rows in sweep.items():
        by_cap = {r["capacity"]: r for r in rows}
        post_lo, post_hi = by_cap[lo]["post_warmup_hit_rate"], by_cap[hi]["post_warmup_hit_rate"]
        ratios[name] = {
            "capacities": [hi, lo],
            "post_warmup": post_hi / post_lo if post_lo and post_hi else None,
            "whole_run": by_cap[hi]["whole_run_hit_rate"] / by_cap[lo]["whole_run_hit_rate"],
            "paper": PAPER_RATIO_25_5.get(name),
        }
    return {
        "generator": {**asdict(cfg), "doc": "see karma_memory/bench/policies.py module docstring"},
        "scenes_used": sorted({s for s, _ in sequences}, key=lambda s: int(s.removeprefix("FloorPlan"))),
        "recallable_objects_per_sequence": {"min": min(objects_per_scene), "median": statistics.median(objects_per_scene),
                                            "max": max(objects_per_scene)},
        "queries_per_sequence": statistics.fmean(sum(len(t.recalled) for t in ts) for _, ts in sequences),
        "fig4_capacity10": fig4,
        "capacity_sweep": sweep,
        "ratio_25_vs_5": ratios,
    }


def _plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2), constrained_layout=True)
    cmap = plt.get_cmap("viridis")

    def draw(ax: Any, row: dict[str, Any], color: Any, style: str = "-") -> None:
        curve = row["mean_cumulative_curve"]
        ax.plot(range(1, len(curve) + 1), curve, style, color=color, lw=1.6, label=row["label"])
        if row["median_warmup_tasks"] is not None:
            ax.axvline(row["median_warmup_tasks"], color=color, ls=":", lw=0.9)

    fig4 = result["fig4_capacity10"]
    draw(axes[0], fig4[0], "black", "--")
    for i, row in enumerate(fig4[1:10]):
        draw(axes[0], row, cmap(i / 8))
    axes[0].set_title("Capacity 10: FIFO vs W-TinyLFU [window, main] (cf. paper Fig. 4)")
    for ax, name, title in ((axes[1], "fifo", "FIFO by capacity (cf. Fig. 5)"),
                            (axes[2], "wtinylfu", "W-TinyLFU ~[9:1] by capacity (cf. Fig. 6)")):
        rows = result["capacity_sweep"][name]
        for i, row in enumerate(rows):
            draw(ax, row, plt.get_cmap("plasma")(i / max(1, len(rows) - 1) * 0.85))
        ax.set_title(title)
    for ax in axes:
        ax.set_xlabel("consecutive tasks")
        ax.set_ylabel("cumulative memory hit rate (mean over sequences)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("STM replacement on generated iTHOR task sequences (dotted: median warm-up end, occupancy > 95 %)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- CLI ---------------------------------------------------------------------------------------
def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    for dist in ("numpy", "cachetools", "theine", "theine-core", "matplotlib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "missing"
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    """Run both parts, print tables, write ``policies.json`` and ``policies_replacement.png`` under --out.

    Returns 1 if our W-TinyLFU misses theine's Zipf hit rate by more than the tolerance.
    """
    parser = argparse.ArgumentParser(prog="karma bench policies", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accesses", type=int, default=None, help="Zipf trace length (default 200000)")
    parser.add_argument("--repeats", type=int, default=None, help="timing repeats, best kept (default 3)")
    parser.add_argument("--sequences", type=int, default=None, help="task sequences (default 100)")
    parser.add_argument("--tasks", type=int, default=None, help="tasks per sequence (default 300)")
    parser.add_argument("--rooms", default="kitchens", help="comma list of kitchens,living_rooms,bedrooms,bathrooms")
    parser.add_argument("--tolerance", type=float, default=None, help="hit-rate tolerance vs theine (default 0.02)")
    args = parser.parse_args(argv)

    quick = args.quick
    accesses = args.accesses or (20_000 if quick else 200_000)
    repeats = args.repeats or (1 if quick else 3)
    tolerance = args.tolerance if args.tolerance is not None else (0.05 if quick else 0.02)
    caps = (10, 100, 1000, 10_000)
    cfg = TaskGenConfig(
        rooms=tuple(r.strip() for r in args.rooms.split(",") if r.strip()),
        sequences=args.sequences or (6 if quick else 100),
        tasks=args.tasks or (60 if quick else 300),
        seed=args.seed,
    )

    trace = zipf_trace(accesses, seed=args.seed)
    t0 = time.perf_counter()
    rows = run_throughput(trace, caps, repeats)
    check = []
    for row in rows:
        if row["policy"] == "wtinylfu" and row["capacity"] in (100, 1000):
            diff = row["hit_rate"] - row["peer_hit_rate"]
            check.append({"capacity": row["capacity"], "ours": row["hit_rate"], "theine": row["peer_hit_rate"],
                          "theine_design_md": THEINE_DESIGN[row["capacity"]], "diff": diff,
                          "tolerance": tolerance, "ok": abs(diff) <= tolerance})
    t1 = time.perf_counter()
    experiment = run_replacement_experiment(cfg)
    t2 = time.perf_counter()

    print(f"(a) Zipf(1.2) trace, 5,000 keys, {accesses:,} requests (get + set on miss); best of {repeats}")
    print(f"{'policy':9} {'cap':>6} {'kops/s':>8} {'peer':22} {'peer kops/s':>11} {'x peer':>7} {'x theine':>8}"
          f" {'hit':>6} {'peer hit':>8}")
    for r in rows:
        print(f"{r['policy']:9} {r['capacity']:>6} {r['ops_per_s'] / 1e3:>8.0f} {r['peer']:22} "
              f"{r['peer_ops_per_s'] / 1e3:>11.0f} {r['ratio_to_peer']:>7.2f} {r['ratio_to_theine']:>8.2f} "
              f"{r['hit_rate']:>6.3f} {r['peer_hit_rate']:>8.3f}")
    for c in check:
        print(f"check W-TinyLFU vs theine @ {c['capacity']}: ours {c['ours']:.3f}, theine {c['theine']:.3f} "
              f"(DESIGN.md {c['theine_design_md']}), diff {c['diff']:+.3f} -> {'OK' if c['ok'] else 'FAIL'}")
    print(f"\n(b) replacement experiment: {cfg.sequences} sequences x {cfg.tasks} tasks, rooms {','.join(cfg.rooms)},"
          f" {experiment['queries_per_sequence']:.0f} queries/sequence, recallable objects/scene "
          f"{experiment['recallable_objects_per_sequence']}")
    print(f"{'config':24} {'post-warm-up':>12} {'± std':>6} {'whole run':>9} {'warm-up tasks':>13} {'warmed':>6}")
    for r in experiment["fig4_capacity10"]:
        print(f"{r['label']:24} {_fmt(r['post_warmup_hit_rate']):>12} {_fmt(r['post_warmup_std_over_sequences']):>6}"
              f" {_fmt(r['whole_run_hit_rate']):>9} {_fmt(r['median_warmup_tasks'], 0):>13} {r['warmed_up_sequences']:>6}")
    print()
    for name, rws in experiment["capacity_sweep"].items():
        print(f"{name:17}" + "".join(f" C={r['capacity']}: {_fmt(r['post_warmup_hit_rate'])}/{_fmt(r['whole_run_hit_rate'])}"
                                     for r in rws) + "   (post-warm-up/whole run)")
    for name, r in experiment["ratio_25_vs_5"].items():
        print(f"ratio C=25 vs C=5 {name:17} post-warm-up x{_fmt(r['post_warmup'], 2)}, whole run x{_fmt(r['whole_run'], 2)}"
              f" (paper x{r['paper']})")

    args.out.mkdir(parents=True, exist_ok=True)
    png = args.out / "policies_replacement.png"
    _plot(experiment, png)
    result = {
        "benchmark": "policies",
        "environment": _versions(),
        "seconds": {"throughput": t1 - t0, "experiment": t2 - t1},
        "zipf": {"accesses": accesses, "keys": 5000, "s": 1.2, "seed": args.seed, "repeats": repeats,
                 "generator": "numpy default_rng(seed).zipf(1.2, n) % 5000", "peers_nolock": True,
                 "rows": rows, "theine_check": check, "target_ops_per_s": TARGET_OPS},
        "replacement": experiment,
        "png": str(png),
    }
    (args.out / "policies.json").write_text(json.dumps(result, indent=1))
    print(f"\nwrote {args.out / 'policies.json'} and {png}")
    return 0 if all(c["ok"] for c in check) else 1


if __name__ == "__main__":
    sys.exit(main())
