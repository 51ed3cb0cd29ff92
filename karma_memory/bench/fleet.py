"""Fleet memory on one Chroma server: write load and sync lag, building-scale catch-up and queries, exploration saved.

Three parts, all against a real ``chroma run`` server on loopback started by the benchmark:

1. **Load**: ``--robots`` robot processes (default 4) each observe ``--rate`` objects/s (default 100) for
   ``--seconds`` (default 60), moving objects of a shared pool, through the ``chroma`` backend (durable
   outbox, batched upserts, incremental pulls), after a warm-up in which each robot uploads its view of the
   whole pool (steady state, not the first upload). Measured: outbox backlog over time per robot, and sync lag =
   time from an observation on robot A (its wall-clock stamp) to the moment robot B's graph holds it
   (p50/p95; target p95 < 500 ms). ``--link ros`` (default, as the nodes run) gives each robot the live link
   on a ROS topic beside the server; ``--link none`` measures the path through the server alone.
2. **Building scale**: iTHOR rooms tiled to ``--objects`` objects (default 100,000; ``bench/ltm.py``'s
   ``building_workload``). Robot A ingests them (outbox on) and uploads; robot B, a fresh process with the
   map only, catches up from the server; then B's area-ranking query p50/p95 (target p95 < 20 ms) and its
   memory RSS. Peer in the same run: the server's own filtered top-5 vector query over the same records.
3. **Tasks**: composite tasks; robot A looks around the scene, robot B runs the task with A's memory
   (fleet) and without it (alone). Reduced exploration for the second robot = (alone − fleet) / alone.

Writes ``fleet.json`` and ``fleet.png`` (backlog over time, lag distribution) under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system, all threads) of a process so far (this one by default)."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _embedder(kind: str) -> Any:
    if kind == "minilm":
        from karma_memory.core.embedding import default_embedder

        return default_embedder()
    from karma_memory.core.fleet import TypeHashEmbedder  # deterministic, torch-free: measures the store

    return TypeHashEmbedder()


# ---------------------------------------------------------------------------------------------- part 1: load
def _ros_link(name: str, backend: Any, peers: int) -> Any:
    """The nodes' live link for a robot process: its own rclpy node, spun in a thread, once every peer matched."""
    import threading

    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from karma_memory.nodes.fleet_link import RosFleetLink

    rclpy.init()
    node = rclpy.create_node(f"fleet_bench_{name}")
    backend.link = link = RosFleetLink(node, "/fleet_bench/records", backend.receive)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    deadline = time.monotonic() + 60.0
    while link.subscribers() < peers and time.monotonic() < deadline:
        time.sleep(0.05)
    return executor


def _load_robot(index: int, port: int, workdir: str, seconds: float, rate: float, frame_hz: float, pool: int,
                embedder: str, sync: dict[str, Any], link: str, robots: int, ready: Any, uploaded: Any, go: Any,
                out: Any) -> None:
    """One robot process: observe ``rate`` objects/s in ``frame_hz`` frames for ``seconds``; measure the lag of
    other robots' observations into this robot's graph."""
    from karma_memory.core.fleet import ChromaBackend, ChromaConfig
    from karma_memory.core.long_term import LongTermMemory, LtmConfig
    from karma_memory.core.types import ObjectObservation

    name = f"robot_{index}"
    memory = LongTermMemory(LtmConfig(semantic_weight=0.0), directory=Path(workdir) / name)
    xs, zs = np.meshgrid(np.arange(0, 30, 0.25), np.arange(0, 30, 0.25))
    memory.add_areas(np.column_stack([xs.ravel(), zs.ravel()]))
    backend = ChromaBackend(memory, ChromaConfig(name, port=port, collection="load", **sync), _embedder(embedder))
    types = ["Apple", "Mug", "Bowl", "Plate", "Cup", "Knife", "Bread", "Tomato", "Egg", "Spoon"]
    rng = np.random.default_rng(index)
    lags: list[float] = []
    backlog: list[tuple[float, int]] = []
    observe_ms: list[float] = []
    # warm-up: the robot has been about for a while — the server holds its records of the whole pool
    for start in range(0, pool, 100):
        backend.observe([ObjectObservation(f"{types[k % len(types)]}|{k}", types[k % len(types)],
                                           (float(rng.uniform(0, 29)), 0.9, float(rng.uniform(0, 29))),
                                           stamp=time.time(), source="bench", robot_id=name)
                         for k in range(start, min(pool, start + 100))])
    backend.flush(600.0)
    executor = _ros_link(name, backend, robots) if link == "ros" else None
    ready.put(index)
    uploaded.wait()  # every robot's warm-up is on the server: take it all in, so the run measures steady state
    while backend.sync(600.0):
        pass
    ready.put(index)
    go.wait()
    backend.poll()
    backend.reset_timings()
    before = backend.status()
    cpu0 = _cpu_s()
    t0 = time.time()
    period = 1.0 / frame_hz
    per_frame = max(1, round(rate / frame_hz))
    next_tick = t0
    sent = 0
    next_sample = t0
    while time.time() - t0 < seconds:
        now = time.time()
        if now >= next_tick:  # one camera frame's worth of observations, as perception delivers them
            frame = []
            for k in rng.choice(pool, size=per_frame, replace=False):
                frame.append(ObjectObservation(f"{types[k % len(types)]}|{k}", types[k % len(types)],
                                               (float(rng.uniform(0, 29)), 0.9, float(rng.uniform(0, 29))),
                                               stamp=now, source="bench", robot_id=name))
            t1 = time.perf_counter()
            backend.observe(frame)
            observe_ms.append((time.perf_counter() - t1) * 1e3)
            sent += len(frame)
            next_tick += period
        for change in backend.poll():
            data = memory.graph.nodes.get(change.object_id)
            if data is not None and data.get("robot_id") != name and float(data["last_seen"]) >= t0:
                lags.append(time.time() - float(data["last_seen"]))  # warm-up records arriving late excluded
        if now >= next_sample:
            backlog.append((now - t0, len(backend.outbox)))
            next_sample += 1.0
        time.sleep(max(0.0, min(next_tick - time.time(), 0.02)))
    cpu_s = _cpu_s() - cpu0
    drained_at = time.time()
    flushed = backend.flush(30.0)
    drain_s = time.time() - drained_at
    status = backend.status()
    backend.close()
    if executor is not None:
        executor.shutdown()
    out.put({"robot": name, "sent": sent, "cpu_s": cpu_s, "lags": lags, "backlog": backlog, "flushed": flushed,
             "drain_s": drain_s,
             "pushed": status.pushed - before.pushed, "pulled": status.pulled - before.pulled,
             "merged": status.merged - before.merged, "push_requests": status.push_requests - before.push_requests,
             "pull_requests": status.pull_requests - before.pull_requests,
             "push_ms_p50": status.push_ms_p50, "push_ms_p95": status.push_ms_p95,
             "pull_ms_p50": status.pull_ms_p50, "pull_ms_p95": status.pull_ms_p95,
             "live_sent": status.live_sent - before.live_sent,
             "live_received": status.live_received - before.live_received,
             "observe_ms_p50": _pct(observe_ms, 50), "observe_ms_p95": _pct(observe_ms, 95)})


def _backlog_slope(results: list[dict[str, Any]]) -> float:
    slopes = []
    for r in results:
        if len(r["backlog"]) >= 3:
            t, b = np.asarray(r["backlog"], float).T
            slopes.append(float(np.polyfit(t, b, 1)[0]))
    return float(sum(slopes)) if slopes else float("nan")


def _backlog_mean(results: list[dict[str, Any]], start: float, end: float) -> float:
    values = [b for r in results for t, b in r["backlog"] if start <= t < end]
    return float(np.mean(values)) * len(results) if values else float("nan")


def bench_load(port: int, workdir: Path, robots: int, seconds: float, rate: float, frame_hz: float, pool: int,
               embedder: str, sync: dict[str, Any] | None = None, server_pid: int | None = None,
               link: str = "ros") -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out, ready, uploaded, go = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event()
    procs = [ctx.Process(target=_load_robot, args=(i, port, str(workdir), seconds, rate, frame_hz, pool, embedder,
                                                   sync or {}, link, robots, ready, uploaded, go, out))
             for i in range(robots)]
    for proc in procs:
        proc.start()
    for _ in procs:  # every robot has imported, connected and uploaded its warm-up records
        ready.get(timeout=900)
    uploaded.set()
    for _ in procs:  # ... and merged everybody else's
        ready.get(timeout=900)
    server_cpu0 = _cpu_s(server_pid) if server_pid else float("nan")
    go.set()
    time.sleep(seconds)
    server_cpu_s = _cpu_s(server_pid) - server_cpu0 if server_pid else float("nan")
    results = [out.get(timeout=180) for _ in procs]
    for proc in procs:
        proc.join(30)
    lags = [lag for r in results for lag in r["lags"]]
    return {
        "robots": robots, "rate_per_robot": rate, "frame_hz": frame_hz, "seconds": seconds, "pool": pool,
        "sync": sync or {}, "link": link,
        "observations": sum(r["sent"] for r in results),
        "achieved_rate_total": sum(r["sent"] for r in results) / seconds,
        "lag_samples": len(lags), "lag_p50_ms": _pct(lags, 50) * 1e3, "lag_p95_ms": _pct(lags, 95) * 1e3,
        "lag_p99_ms": _pct(lags, 99) * 1e3, "lag_max_ms": max(lags) * 1e3 if lags else float("nan"),
        "backlog_max": max((b for r in results for _, b in r["backlog"]), default=0),
        # growth = least-squares slope of the queued writes over the run (summed over robots), writes per second;
        # ~0 when the server keeps up, the excess write rate when it does not
        "backlog_growth_per_s": _backlog_slope(results),
        "backlog_mean_first_third": _backlog_mean(results, 0, seconds / 3),
        "backlog_mean_last_third": _backlog_mean(results, 2 * seconds / 3, seconds),
        "drain_s_max": max(r["drain_s"] for r in results), "all_flushed": all(r["flushed"] for r in results),
        "observe_frame_ms_p95": max(r["observe_ms_p95"] for r in results),
        "push_ms_p95": max(r["push_ms_p95"] for r in results), "pull_ms_p95": max(r["pull_ms_p95"] for r in results),
        # CPU demand per second of the run: > the machine's cores means the machine, not the design, is the limit
        "robot_cpu_per_s": sum(r["cpu_s"] for r in results) / seconds, "server_cpu_per_s": server_cpu_s / seconds,
        "cores": os.cpu_count(), "loadavg_1min": os.getloadavg()[0],
        "per_robot": [{k: v for k, v in r.items() if k != "lags"} for r in results],
        "lag_histogram_ms": np.histogram(np.asarray(lags) * 1e3, bins=30)[0].tolist() if lags else [],
        "lags_ms_sample": (np.asarray(lags[:: max(1, len(lags) // 2000)]) * 1e3).round(2).tolist(),
    }


# --------------------------------------------------------------------------------------- part 1b: capacity
def bench_capacity(port: int, server_pid: int | None, robots: int, rate: float, pool: int,
                   sync: dict[str, Any] | None = None, reps: int = 15) -> dict[str, Any]:
    """The server's cost model, one request at a time on records like the load part's (compact layout).

    Measured: the wall time (and server CPU) of a metadata update of B records and of a pull returning
    n rows. A fleet of ``robots`` robots writing ``rate`` records/s each, pushing every ``flush_interval_s``
    and pulling every ``pull_interval_s``, sends pushes of rate × interval records and pulls of
    (robots − 1) × rate × interval rows: interpolating the measured costs gives the server time it needs
    per second ("busy"; writes alone are what SQLite serialises) and the total write rate at which busy
    reaches 100 % (the ceiling).
    """
    import chromadb
    from chromadb.config import Settings

    from karma_memory.core.fleet import ChromaConfig
    from karma_memory.core.fleet.records import ObjectRecord, pack, seq_key, to_wire

    config = ChromaConfig("capacity", **(sync or {}))
    client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False))
    collection = client.get_or_create_collection("capacity", embedding_function=None,
                                                 metadata={"hnsw:space": "cosine"})
    rng = np.random.default_rng(7)
    types = ["Apple", "Mug", "Bowl", "Plate", "Cup", "Knife", "Bread", "Tomato", "Egg", "Spoon"]
    seq = [1]

    def records(indices: Any, writer: str) -> tuple[list[str], list[dict[str, Any]]]:
        ids, metas = [], []
        for k in indices:
            t = types[int(k) % len(types)]
            stamp = time.time()
            record = ObjectRecord(f"{t}|{k}", writer, seq[0], True, t, (float(rng.uniform(0, 29)), 0.9,
                                  float(rng.uniform(0, 29))), fields={f: (stamp, writer, seq[0]) for f in OBSERVED})
            rid, meta, _ = to_wire(record)
            ids.append(rid)
            metas.append(pack(dict(meta, seq=seq[0], **{seq_key(writer): seq[0]})))
            seq[0] += 1
        return ids, metas

    OBSERVED = ("presence", "type", "position", "movable")  # noqa: N806 — what a sighting stamps
    vector = [1.0] + [0.0] * 383
    for writer in range(robots):
        for start in range(0, pool, 500):
            ids, metas = records(range(start, min(pool, start + 500)), f"w{writer}")
            collection.upsert(ids=ids, embeddings=[vector] * len(ids), metadatas=metas)

    def measure(call: Any) -> tuple[float, float]:
        cpu0, times = _cpu_s(server_pid) if server_pid else 0.0, []
        for _ in range(reps):
            t0 = time.perf_counter()
            call()
            times.append((time.perf_counter() - t0) * 1e3)
        cpu = (_cpu_s(server_pid) - cpu0) / reps * 1e3 if server_pid else float("nan")
        return float(np.median(times)), cpu

    writes = {}
    for batch in (1, 5, 10, 20, 50, 100, 200):
        def write(batch: int = batch) -> None:
            ids, metas = records(rng.choice(pool, batch, replace=False), "w0")
            collection.update(ids=ids, metadatas=metas)
        writes[batch] = measure(write)
    pulls = {}
    for rows in (1, 10, 30, 100, 300):  # what the other writers pushed since the last pull: ``rows`` records
        mark = seq[0] - 1
        ids, metas = records(rng.choice(pool, rows, replace=False), "w1")
        collection.update(ids=ids, metadatas=metas)
        where = {"$or": [{seq_key(f"w{w}"): {"$gt": mark}} for w in range(1, max(2, robots))]}
        pulls[rows] = measure(lambda where=where: collection.get(where=where, include=["metadatas"]))
    push_hz, pull_hz = robots / config.flush_interval_s, robots / config.pull_interval_s

    def busy(total_rate: float) -> tuple[float, float]:
        """(write path, all) server seconds per second at a total write rate, from the measured costs."""
        per_robot = total_rate / robots
        batch = max(1.0, per_robot * config.flush_interval_s)
        rows = max(1.0, per_robot * (robots - 1) * config.pull_interval_s)
        write = push_hz * _interp(writes, batch) / 1e3
        return write, write + pull_hz * _interp(pulls, rows) / 1e3

    rates = np.arange(10.0, 5000.0, 10.0)
    under = [r for r in rates if busy(r)[1] <= 1.0]
    write_under = [r for r in rates if busy(r)[0] <= 1.0]
    at_load = busy(robots * rate)
    return {"write_ms_cpu_ms": {str(k): v for k, v in writes.items()},
            "pull_ms_cpu_ms": {str(k): v for k, v in pulls.items()}, "push_hz": push_hz, "pull_hz": pull_hz,
            "write_busy_at_load": at_load[0], "server_busy_at_load": at_load[1],
            "ceiling_records_per_s": float(max(under)) if under else 0.0,
            "write_ceiling_records_per_s": float(max(write_under)) if write_under else 0.0,
            "robots": robots, "rate_per_robot": rate}


def _interp(points: dict[int, tuple[float, float]], x: float) -> float:
    """Wall-time ms at ``x`` items, interpolated in log(items) between measured points (extrapolated linearly)."""
    keys = sorted(points)
    if x >= keys[-1]:
        return points[keys[-1]][0] * x / keys[-1]
    return float(np.interp(np.log(x), np.log(keys), [points[k][0] for k in keys]))


# ---------------------------------------------------------------------------------------- part 2: building
def _catch_up_robot(port: int, workdir: str, n_objects: int, queries: int, embedder: str, out: Any) -> None:
    """Robot B: a fresh process with the map only; catch up from the server, then query its graph."""
    from karma_memory.bench.ltm import building_workload
    from karma_memory.core import scene_graph as sg
    from karma_memory.core.fleet import ChromaBackend, ChromaConfig
    from karma_memory.core.long_term import LongTermMemory, LtmConfig

    observations, cells = building_workload(n_objects)
    types = sorted({o.object_type for o in observations if o.movable})
    del observations
    emb = _embedder(embedder)
    emb.embed(["warm up"])
    memory = LongTermMemory(LtmConfig(), emb, directory=Path(workdir) / "robot_b")
    memory.add_areas(cells)
    backend = ChromaBackend(memory, ChromaConfig("robot_b", port=port, collection="building", request_timeout_s=60.0,
                                                 pull_page_size=10000), emb)
    rss_start = _rss_mb()  # interpreter, model, chromadb client and the map: what the objects add comes after
    t0 = time.perf_counter()
    backend.sync(600.0)
    while len(memory) < n_objects and time.perf_counter() - t0 < 600:
        time.sleep(0.05)
        backend.poll()
    catch_up_s = time.perf_counter() - t0
    memory.rank_areas(types[0])  # warm the type index
    latencies = []
    for i in range(queries):
        t1 = time.perf_counter()
        memory.rank_areas(types[i % len(types)], k=5)
        latencies.append(time.perf_counter() - t1)
    out.put({"objects": len(memory), "areas": len(sg.area_ids(memory.graph)), "catch_up_s": catch_up_s,
             "rank_p50_ms": _pct(latencies, 50) * 1e3, "rank_p95_ms": _pct(latencies, 95) * 1e3,
             "rss_mb": _rss_mb(), "rss_before_graph_mb": rss_start,
             "rss_objects_mb": _rss_mb() - rss_start})
    backend.close()


def bench_building(port: int, workdir: Path, n_objects: int, queries: int, embedder: str) -> dict[str, Any]:
    import chromadb
    from chromadb.config import Settings

    from karma_memory.bench.ltm import building_workload
    from karma_memory.core.fleet import ChromaBackend, ChromaConfig
    from karma_memory.core.long_term import LongTermMemory, LtmConfig, TypeIndex

    observations, cells = building_workload(n_objects)
    emb = _embedder(embedder)
    memory = LongTermMemory(LtmConfig(), emb, directory=workdir / "robot_a")
    memory.add_areas(cells)
    backend = ChromaBackend(memory, ChromaConfig("robot_a", port=port, collection="building", batch_size=1000,
                                                 request_timeout_s=60.0), emb)
    t0 = time.perf_counter()
    for start in range(0, len(observations), 1000):
        backend.observe(observations[start:start + 1000])
    ingest_s = time.perf_counter() - t0
    flushed = backend.flush(1800.0)
    upload_s = time.perf_counter() - t0
    backend.close()
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_catch_up_robot, args=(port, str(workdir), n_objects, queries, embedder, out))
    proc.start()
    robot_b = out.get(timeout=1800)
    proc.join(60)
    # peer in the same run: the server's own filtered vector query (top 5 of a type) over the same records
    client = chromadb.HttpClient(host="127.0.0.1", port=port, settings=Settings(anonymized_telemetry=False))
    collection = client.get_collection("building")
    types = sorted({o.object_type for o in observations if o.movable})
    vectors = emb.embed([TypeIndex.describe(t) for t in types])  # the records' vectors are their types'
    server_lat = []
    for i in range(min(queries, 200)):
        t1 = time.perf_counter()
        collection.query(query_embeddings=[vectors[i % len(types)].tolist()], n_results=5,
                         where={"type": types[i % len(types)]}, include=["metadatas"])
        server_lat.append(time.perf_counter() - t1)
    return {"objects": n_objects, "server_records": collection.count(), "flushed": flushed,
            "ingest_obs_per_s": n_objects / ingest_s, "upload_records_per_s": n_objects / upload_s,
            "robot_b": robot_b, "server_query_p50_ms": _pct(server_lat, 50) * 1e3,
            "server_query_p95_ms": _pct(server_lat, 95) * 1e3,
            "rank_p95_vs_server_query_p95": robot_b["rank_p95_ms"] / (_pct(server_lat, 95) * 1e3)}


# ------------------------------------------------------------------------------------------- part 3: tasks
def bench_tasks(port: int, workdir: Path, limit: int) -> dict[str, Any]:
    from karma_memory.core.embedding import default_embedder
    from karma_memory.core.tasks import load_all_suites
    from karma_memory.fleet import compare_on_task

    embedder = default_embedder()
    tasks = [t for t in load_all_suites() if t.category == "composite"]
    tasks = tasks[:limit] if limit else tasks
    rows = []
    for index, task in enumerate(tasks):
        try:
            single, fleet = compare_on_task(task, port, workdir, embedder, f"tasks-{index}")
        except Exception as err:  # noqa: BLE001 — a broken task must not hide the others' figures
            rows.append({"task": task.id, "scene": task.scene, "error": f"{type(err).__name__}: {err}"})
            continue
        rows.append({"task": task.id, "scene": task.scene, "alone": single.explorations, "fleet": fleet.explorations,
                     "alone_success": single.success, "fleet_success": fleet.success,
                     "alone_sim_time_s": single.sim_time_s, "fleet_sim_time_s": fleet.sim_time_s,
                     "learnt_from_others": fleet.learnt_from_others})
    ok = [r for r in rows if "error" not in r]
    alone = sum(r["alone"] for r in ok)
    fleet_total = sum(r["fleet"] for r in ok)
    alone_t = sum(r["alone_sim_time_s"] for r in ok)
    fleet_t = sum(r["fleet_sim_time_s"] for r in ok)
    return {"tasks": len(rows), "errors": len(rows) - len(ok), "alone_explorations": alone,
            "fleet_explorations": fleet_total,
            "reduced_exploration": (alone - fleet_total) / alone if alone else float("nan"),
            "reduced_time": (alone_t - fleet_t) / alone_t if alone_t else float("nan"),
            "alone_success_rate": sum(r["alone_success"] for r in ok) / len(ok) if ok else float("nan"),
            "fleet_success_rate": sum(r["fleet_success"] for r in ok) / len(ok) if ok else float("nan"),
            "rows": rows}


def _plot(load: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for robot in load["per_robot"]:
        t, b = zip(*robot["backlog"]) if robot["backlog"] else ((), ())
        axes[0].plot(t, b, label=robot["robot"])
    axes[0].set_xlabel("s")
    axes[0].set_ylabel("queued writes (outbox)")
    axes[0].set_title("Backlog over time")
    axes[0].legend(fontsize=8)
    if load["lags_ms_sample"]:
        axes[1].hist(load["lags_ms_sample"], bins=40)
        axes[1].axvline(load["lag_p95_ms"], color="r", label=f"p95 {load['lag_p95_ms']:.0f} ms")
        axes[1].legend(fontsize=8)
    axes[1].set_xlabel("ms")
    axes[1].set_title("Sync lag: observed on A → in B's graph")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karma bench fleet", description=__doc__.splitlines()[0])
    parser.add_argument("--robots", type=int, default=4)
    parser.add_argument("--rate", type=float, default=100.0, help="observations per second per robot")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--frame-hz", type=float, default=10.0, help="observations arrive in frames at this rate")
    parser.add_argument("--flush-interval", type=float, default=None, help="ChromaConfig.flush_interval_s")
    parser.add_argument("--pull-interval", type=float, default=None, help="ChromaConfig.pull_interval_s")
    parser.add_argument("--live-pull-interval", type=float, default=None, help="ChromaConfig.live_pull_interval_s")
    parser.add_argument("--batch-size", type=int, default=None, help="ChromaConfig.batch_size")
    parser.add_argument("--link", choices=("ros", "none"), default="ros",
                        help="load part: the live link on a ROS topic beside the server (as the nodes), or none")
    parser.add_argument("--pool", type=int, default=2000, help="distinct objects the robots observe")
    parser.add_argument("--objects", type=int, default=100_000, help="building-scale graph size")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--tasks", type=int, default=0, help="composite tasks to compare (0 = all)")
    parser.add_argument("--parts", default="capacity,load,building,tasks")
    parser.add_argument("--embedder", choices=("minilm", "hash"), default="minilm",
                        help="record embeddings: offline MiniLM, or a torch-free hash (store-only runs)")
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # the live link stays on loopback
    from karma_memory.core.fleet import ChromaServer

    parts = set(args.parts.split(","))
    sync = {k: v for k, v in (("flush_interval_s", args.flush_interval), ("pull_interval_s", args.pull_interval),
                              ("live_pull_interval_s", args.live_pull_interval), ("batch_size", args.batch_size))
            if v is not None}
    args.out.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="karma-fleet-bench-"))
    result: dict[str, Any] = {"embedder": args.embedder}
    server = ChromaServer(workdir / "chroma").start()
    try:
        if "load" in parts:
            result["load"] = load = bench_load(server.port, workdir / "load", args.robots, args.seconds, args.rate,
                                               args.frame_hz, args.pool, args.embedder, sync, server.pid, args.link)
            print(f"load ({'live ROS link + server' if args.link == 'ros' else 'server only'}): "
                  f"{args.robots} robots × {args.rate:.0f} obs/s for {args.seconds:.0f} s "
                  f"→ {load['observations']} observations ({load['achieved_rate_total']:.0f}/s total)")
            print(f"  sync lag A→B: p50 {load['lag_p50_ms']:.0f} ms  p95 {load['lag_p95_ms']:.0f} ms  "
                  f"p99 {load['lag_p99_ms']:.0f} ms  ({load['lag_samples']} samples; target p95 < 500 ms)")
            print(f"  backlog (all robots) first third {load['backlog_mean_first_third']:.0f}, last third "
                  f"{load['backlog_mean_last_third']:.0f} queued writes, trend {load['backlog_growth_per_s']:+.1f}/s; "
                  f"max one robot {load['backlog_max']}")
            print(f"  drained in {load['drain_s_max']:.2f} s; "
                  f"observe() of one frame p95 {load['observe_frame_ms_p95']:.2f} ms (durable outbox)")
            print(f"  server requests p95: push {load['push_ms_p95']:.0f} ms, pull {load['pull_ms_p95']:.0f} ms")
            print(f"  CPU per second of run: robots {load['robot_cpu_per_s']:.2f} + server "
                  f"{load['server_cpu_per_s']:.2f} "
                  f"of {load['cores']} cores (1-min load average at the end {load['loadavg_1min']:.1f})")
            _plot(load, args.out / "fleet.png")
        if "capacity" in parts:
            result["capacity"] = c = bench_capacity(server.port, server.pid, args.robots, args.rate, args.pool, sync)
            w, r = c["write_ms_cpu_ms"], c["pull_ms_cpu_ms"]
            print("capacity, one request at a time (wall ms / server CPU ms): update of B records "
                  + ", ".join(f"B={k} {v[0]:.0f}/{v[1]:.0f}" for k, v in w.items()) + "; pull of n rows "
                  + ", ".join(f"n={k} {v[0]:.0f}/{v[1]:.0f}" for k, v in r.items()))
            print(f"  {args.robots} robots × {args.rate:.0f}/s, {c['push_hz']:.0f} pushes/s and {c['pull_hz']:.0f} "
                  f"pulls/s in all: the server is busy {c['write_busy_at_load']:.0%} writing, "
                  f"{c['server_busy_at_load']:.0%} in all; ceiling {c['ceiling_records_per_s']:.0f} records/s in all "
                  f"({c['write_ceiling_records_per_s']:.0f} for the writes alone)")
        if "building" in parts:
            result["building"] = b = bench_building(server.port, workdir / "building", args.objects, args.queries,
                                                    args.embedder)
            rb = b["robot_b"]
            print(f"building: {b['objects']} objects ({rb['areas']} areas), server holds {b['server_records']}")
            print(f"  robot A ingest {b['ingest_obs_per_s']:.0f} obs/s (outbox on), upload incl. ingest "
                  f"{b['upload_records_per_s']:.0f} records/s")
            print(f"  robot B catch-up {rb['catch_up_s']:.1f} s; area ranking p50 {rb['rank_p50_ms']:.2f} ms  "
                  f"p95 {rb['rank_p95_ms']:.2f} ms (target < 20 ms); RSS {rb['rss_mb']:.0f} MB, of which the "
                  f"objects {rb['rss_mb'] - rb['rss_before_graph_mb']:.0f} MB")
            print(f"  peer, same run: server filtered top-5 query p50 {b['server_query_p50_ms']:.2f} ms  "
                  f"p95 {b['server_query_p95_ms']:.2f} ms → local ranking p95 is "
                  f"×{b['rank_p95_vs_server_query_p95']:.2f} of it")
        if "tasks" in parts:
            result["tasks"] = t = bench_tasks(server.port, workdir / "tasks", args.tasks)
            print(f"tasks: {t['tasks']} composite tasks ({t['errors']} errors); second robot's explorations "
                  f"alone {t['alone_explorations']} vs fleet {t['fleet_explorations']} → reduced exploration "
                  f"{t['reduced_exploration']:.1%}, reduced time {t['reduced_time']:.1%}; success alone "
                  f"{t['alone_success_rate']:.2f} fleet {t['fleet_success_rate']:.2f}")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    (args.out / "fleet.json").write_text(json.dumps(result, indent=1, default=float))
    print(f"wrote {args.out / 'fleet.json'}" + (f" and {args.out / 'fleet.png'}" if "load" in parts else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
