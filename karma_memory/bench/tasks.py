"""Task-suite benchmark: success, memory hit rate, retrieval accuracy, reduced exploration/time, per category.

Runs every task of the simple / composite / complex suites (all four room kinds) in the embedded
simulator under the four memory configurations (none = baseline, ltm, stm, full KARMA), with the
symbolic planner; writes build/bench/tasks.json and tasks.png. Tasks run in worker processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from karma_memory.core.short_term import StmConfig

__all__ = ["main"]


def _worker(args: tuple[str, str, str, int, int | None, str]) -> dict:
    task_id, config, policy, capacity, window, prior = args
    from dataclasses import asdict

    from karma_memory.core.embedding import default_embedder
    from karma_memory.evaluation import run_task

    task = next(t for t in _suites() if t.id == task_id)
    try:
        result = run_task(task, config, default_embedder(), StmConfig(policy=policy, capacity=capacity, window=window),
                          prior=prior)
    except Exception as err:  # a bug must not hide the other results: it is reported as a crash, never a success
        import traceback

        from karma_memory.evaluation import TaskResult

        result = TaskResult(task.id, task.category, task.scene, config, False, 0.0, 0, 0.0, 0, 0, 0, 0, 0, 0.0,
                            [f"CRASH {type(err).__name__}: {err} @ {traceback.format_exc(limit=-1).strip()}"])
    return asdict(result)


_SUITES: list | None = None


def _suites() -> list:
    global _SUITES
    if _SUITES is None:
        from karma_memory.core.tasks import load_all_suites

        _SUITES = load_all_suites()
    return _SUITES


def _plot(table: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = list(table)
    configs = ["none", "ltm", "stm", "full"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, metric, title in zip(axes, ["success_rate", "reduced_exploration", "reduced_time"],
                                 ["Success rate", "Reduced exploration vs no memory", "Reduced time vs no memory"]):
        width = 0.2
        for k, config in enumerate(configs):
            values = [table[c].get(config, {}).get(metric, float("nan")) for c in categories]
            ax.bar([i + (k - 1.5) * width for i in range(len(categories))],
                   [0 if math.isnan(v) else v for v in values], width, label=config)
        ax.set_xticks(range(len(categories)), categories)
        ax.set_title(title)
        ax.set_ylim(min(0, ax.get_ylim()[0]), 1.05)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karma bench tasks", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="none,ltm,stm,full")
    parser.add_argument("--categories", default="simple,composite,complex")
    parser.add_argument("--policy", default="wtinylfu")
    parser.add_argument("--capacity", type=int, default=10)
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--prior", choices=("map", "survey"), default="map",
                        help="long-term memory at the start: the furniture map (paper) or a prior tour's sightings")
    parser.add_argument("--limit", type=int, default=0, help="only the first N tasks per category (smoke runs)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("build/bench"))
    parser.add_argument("--verbose", action="store_true", help="print failures")
    args = parser.parse_args(argv)
    from karma_memory.evaluation import TaskResult, summarise

    categories = args.categories.split(",")
    configs = args.configs.split(",")
    tasks = []
    for category in categories:
        chosen = [t for t in _suites() if t.category == category]
        tasks += chosen[: args.limit] if args.limit else chosen
    jobs = [(t.id, c, args.policy, args.capacity, args.window, args.prior) for t in tasks for c in configs]
    start = time.perf_counter()
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            rows = list(pool.map(_worker, jobs, chunksize=4))
    else:
        rows = [_worker(job) for job in jobs]
    wall = time.perf_counter() - start
    results = [TaskResult(**row) for row in rows]
    table = summarise(results, categories)
    print(f"{len(tasks)} tasks × {len(configs)} configurations in {wall:.1f} s wall "
          f"(STM {args.policy} capacity {args.capacity}, LTM prior {args.prior})")
    header = f"{'category':10s} {'config':6s} {'SR':>5s} {'MHR':>5s} {'MRA':>5s} {'explor':>7s} {'sim s':>8s} {'RE':>6s} {'RT':>6s}"
    print(header)
    for category, by_config in table.items():
        for config, m in by_config.items():
            print(f"{category:10s} {config:6s} {m['success_rate']:5.2f} {m['memory_hit_rate']:5.2f} "
                  f"{m['retrieval_accuracy']:5.2f} {m['explorations']:7.0f} {m['sim_time_s']:8.1f} "
                  f"{m.get('reduced_exploration', float('nan')):6.3f} {m.get('reduced_time', float('nan')):6.3f}")
    if args.verbose:
        for r in results:
            if not r.success:
                print(f"FAIL {r.task_id} [{r.config}] progress {r.progress:.2f}: {'; '.join(r.failures)[:300]}")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "tasks" if args.prior == "map" else f"tasks_{args.prior}"
    (args.out / f"{stem}.json").write_text(json.dumps({"wall_time_s": wall, "summary": table, "results": rows,
                                                       "policy": args.policy, "capacity": args.capacity,
                                                       "prior": args.prior}, indent=1))
    _plot(table, args.out / f"{stem}.png")
    print(f"wrote {args.out / f'{stem}.json'} and {args.out / f'{stem}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
