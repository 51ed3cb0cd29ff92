"""Long-term memory at building scale: update latency, area-ranking latency, save/load — beside emem.

Workload: real iTHOR object lists (procthor dump) tiled side by side into one large map until it
holds ``--objects`` objects (default 10,000), with each tile's reachable grid. Measured in one run:
- karma: per-observation update latency (median, p95), ingest rate with persistence on (a snapshot
  every ``--flush-every`` observations, as the memory node does), area-ranking query p50/p95,
  save + load time, file size;
- emem 0.3.0 (the memory behind EmbodiedAgents; SQLite + hnswlib): ingest of the same observations
  as text + precomputed 384-d MiniLM embeddings with its SQLite persistence, and semantic-search
  latency for the same object types.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from karma_memory.core import scene_graph as sg
from karma_memory.core.embedding import default_embedder
from karma_memory.core.long_term import LongTermMemory, LtmConfig, thor_object_observations
from karma_memory.core.priors import ithor_scene_lists
from karma_memory.core.types import ObjectObservation

__all__ = ["main", "building_workload"]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def building_workload(n_objects: int, tile: float = 12.0) -> tuple[list[ObjectObservation], np.ndarray]:
    """iTHOR scenes tiled along x (``tile`` metres apart) until ``n_objects`` observations exist."""
    scenes = list(ithor_scene_lists().items())
    observations: list[ObjectObservation] = []
    cells: list[np.ndarray] = []
    k = 0
    while len(observations) < n_objects:
        name, objects = scenes[k % len(scenes)]
        dx = tile * k
        xs = [o["position"]["x"] for o in objects]
        zs = [o["position"]["z"] for o in objects]
        gx = np.arange(min(xs), max(xs) + 1e-9, 0.25)
        gz = np.arange(min(zs), max(zs) + 1e-9, 0.25)
        cells.append(np.array([(x + dx, z) for z in gz for x in gx]))
        for o in thor_object_observations(objects, stamp=float(k)):
            shifted = ObjectObservation(
                f"{o.object_id}#{k}", o.object_type, (o.position[0] + dx, o.position[1], o.position[2]), o.kind,
                o.size, o.states, tuple(type(r)(r.predicate, f"{r.target_id}#{k}") for r in o.relations),
                o.movable, o.stamp, o.source)
            observations.append(shifted)
        k += 1
    return observations[:n_objects], np.vstack(cells)


def bench_karma(observations: list[ObjectObservation], cells: np.ndarray, workdir: Path, flush_every: int,
                types: list[str], queries: int) -> dict:
    memory = LongTermMemory(LtmConfig(), default_embedder(), workdir)
    memory.add_areas(cells)
    latencies = []
    start = time.perf_counter()
    for i, o in enumerate(observations, 1):
        t0 = time.perf_counter()
        memory.observe(o)
        latencies.append(time.perf_counter() - t0)
        if i % flush_every == 0:
            memory.save()
    memory.save()
    ingest_s = time.perf_counter() - start
    memory.rank_areas(types[0])  # warm the vector index (type embeddings are computed once)
    rank = []
    for i in range(queries):
        t0 = time.perf_counter()
        memory.rank_areas(types[i % len(types)], k=5)
        rank.append(time.perf_counter() - t0)
    # steady-state updates on the full graph: move existing objects
    moves = []
    rng = np.random.default_rng(0)
    for i in rng.choice(len(observations), size=min(2000, len(observations)), replace=False):
        o = observations[int(i)]
        moved = ObjectObservation(o.object_id, o.object_type, (o.position[0] + 0.5, o.position[1], o.position[2]),
                                  o.kind, o.size, o.states, o.relations, o.movable, o.stamp + 1000, o.source)
        t0 = time.perf_counter()
        memory.observe(moved)
        moves.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    path = memory.save()
    save_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    LongTermMemory(LtmConfig(), default_embedder(), workdir).load()
    load_s = time.perf_counter() - t0
    return {
        "objects": len(memory), "areas": len(sg.area_ids(memory.graph)),
        "update_median_ms": statistics.median(latencies) * 1e3, "update_p95_ms": _pct(latencies, 95) * 1e3,
        "move_update_median_ms": statistics.median(moves) * 1e3, "move_update_p95_ms": _pct(moves, 95) * 1e3,
        "ingest_obs_per_s": len(observations) / ingest_s,
        "rank_p50_ms": _pct(rank, 50) * 1e3, "rank_p95_ms": _pct(rank, 95) * 1e3,
        "save_s": save_s, "load_s": load_s, "save_plus_load_s": save_s + load_s,
        "file_mb": path.stat().st_size / 1e6,
    }


def bench_emem(observations: list[ObjectObservation], workdir: Path, types: list[str], queries: int) -> dict:
    from emem import SpatioTemporalMemory, SpatioTemporalMemoryConfig

    embedder = default_embedder()
    texts = [f"{o.object_type} at {o.position[0]:.1f} {o.position[2]:.1f}" for o in observations]
    vectors = embedder.embed(sorted(set(o.object_type for o in observations)))
    by_type = dict(zip(sorted(set(o.object_type for o in observations)), vectors))
    config = SpatioTemporalMemoryConfig(db_path=str(workdir / "emem.db"), hnsw_path=str(workdir / "emem.hnsw.bin"),
                                        hnsw_max_elements=max(20000, 2 * len(observations)))

    class Provider:
        dim = 384

        def embed(self, batch: list[str]) -> np.ndarray:
            return embedder.embed(batch)

    memory = SpatioTemporalMemory(config=config, embedding_provider=Provider())
    start = time.perf_counter()
    for o, text in zip(observations, texts):
        memory.add(text, x=o.position[0], y=o.position[2], z=o.position[1], timestamp=1.0 + o.stamp,
                   layer_name="detections", embedding=by_type[o.object_type])
    memory.save()
    ingest_s = time.perf_counter() - start
    memory.semantic_search(types[0])
    lat = []
    for i in range(queries):
        t0 = time.perf_counter()
        memory.semantic_search(types[i % len(types)], n_results=5)
        lat.append(time.perf_counter() - t0)
    memory.close()
    return {"ingest_obs_per_s": len(observations) / ingest_s, "query_p50_ms": _pct(lat, 50) * 1e3,
            "query_p95_ms": _pct(lat, 95) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karma bench ltm", description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--flush-every", type=int, default=1000, help="snapshot period in observations")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--no-peer", action="store_true", help="skip emem")
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    observations, cells = building_workload(args.objects)
    types = sorted({o.object_type for o in observations if o.movable})
    workdir = Path(tempfile.mkdtemp(prefix="karma-ltm-bench-"))
    try:
        result = {"workload": {"objects": len(observations), "reachable_cells": len(cells)},
                  "karma": bench_karma(observations, cells, workdir / "karma", args.flush_every, types, args.queries)}
        if not args.no_peer:
            (workdir / "emem").mkdir()
            result["emem"] = bench_emem(observations, workdir / "emem", types, args.queries)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    k = result["karma"]
    print(f"LTM with {k['objects']} objects, {k['areas']} areas")
    print(f"  update (insert) median {k['update_median_ms']:.3f} ms  p95 {k['update_p95_ms']:.3f} ms   (target < 1 ms)")
    print(f"  update (move)   median {k['move_update_median_ms']:.3f} ms  p95 {k['move_update_p95_ms']:.3f} ms")
    print(f"  area ranking    p50 {k['rank_p50_ms']:.2f} ms  p95 {k['rank_p95_ms']:.2f} ms   (target p95 < 10 ms)")
    print(f"  save {k['save_s']:.2f} s + load {k['load_s']:.2f} s = {k['save_plus_load_s']:.2f} s (target < 2 s), "
          f"file {k['file_mb']:.1f} MB")
    print(f"  ingest with snapshots every {args.flush_every}: {k['ingest_obs_per_s']:.0f} obs/s")
    if "emem" in result:
        e = result["emem"]
        print(f"emem 0.3.0 same run: ingest {e['ingest_obs_per_s']:.0f} obs/s, semantic query p50 "
              f"{e['query_p50_ms']:.2f} ms p95 {e['query_p95_ms']:.2f} ms")
        result["ratios"] = {"ingest_vs_emem": k["ingest_obs_per_s"] / e["ingest_obs_per_s"],
                            "query_p95_vs_emem": k["rank_p95_ms"] / e["query_p95_ms"]}
        print(f"  ratio karma/emem: ingest ×{result['ratios']['ingest_vs_emem']:.2f}, "
              f"query p95 ×{result['ratios']['query_p95_vs_emem']:.2f} (lower is faster)")
    (args.out / "ltm.json").write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
