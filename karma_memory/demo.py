"""``karma demo``: a composite household task sequence on a real iTHOR kitchen, with both memories.

By default the full ROS 2 stack runs (sim_bridge, long_term_memory, short_term_memory, planner as
separate rclpy processes) and the task goes through the ExecuteTask action; ``--in-process`` runs
the same agent without ROS. Prints progress per step and a final table (success, steps,
explorations, memory hits), and writes a PNG of the scene graph and the short-term memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main", "DEMO_TASKS"]

#: The demo's instruction sequence (one session in FloorPlan1): each line is one sub-instruction.
DEMO_TASKS = (
    ("Wash the apple, slice it, put the washed fruit in the fridge",
     ("Wash the apple in the sink.", "Slice it.", "Put the washed fruit in the fridge.")),
    ("Put the mug in the microwave, heat it, then bring the heated cup to the counter",
     ("Put the mug in the microwave.", "Heat it.", "Switch the microwave off.", "Bring the heated cup to the counter.")),
    ("Throw the tomato away and turn off the light",
     ("Throw the tomato away.", "Turn off the light.")),
)


def _print_step(index: int, skill: str, args: str, success: bool, message: str) -> None:
    mark = "ok " if success else "FAIL"
    print(f"    [{index:02d}] {mark} {skill}({args}) {'' if success else '— ' + message}", flush=True)


def run_in_process(scene: str, out: Path) -> int:
    """The demo without ROS: the same agent, memories and simulator in this process."""
    from karma_memory.core.agent import KarmaAgent, StepRecord
    from karma_memory.core.embedding import default_embedder
    from karma_memory.core.long_term import LtmConfig
    from karma_memory.core.memory_access import LocalMemory
    from karma_memory.core.planner.symbolic import SymbolicPlanner
    from karma_memory.core.short_term import ShortTermMemory, StmConfig
    from karma_memory.evaluation import scene_map
    from karma_memory.sim import EmbeddedController, SimSkillExecutor

    embedder = default_embedder()
    ltm, data = scene_map(scene, LtmConfig(), embedder)
    stm = ShortTermMemory(StmConfig(capacity=10), embedder)
    controller = EmbeddedController(scene=scene, render_images=False)
    executor = SimSkillExecutor(controller, ltm.area_positions())
    counter = {"n": 0}

    def on_step(record: StepRecord) -> None:
        counter["n"] += 1
        args = ", ".join(f"{v if isinstance(v, str) else '[' + ','.join(v[:3]) + '…]'}" for v in record.call.args.values())
        _print_step(counter["n"], record.call.skill, args, record.result.success, record.result.message)

    agent = KarmaAgent(executor, SymbolicPlanner(embedder), LocalMemory(ltm, stm), data.object_types,
                       list(ltm.area_positions()), on_step=on_step)
    agent.observe()
    rows = []
    for title, subtasks in DEMO_TASKS:
        print(f"\n== {title}", flush=True)
        agent.reset_dialogue()
        for sub in subtasks:
            print(f"  - {sub}", flush=True)
            report = agent.run_instruction(sub)
            rows.append((sub, report.success, len(report.steps), report.explorations, len(report.recalled),
                         report.message))
    return _finish(rows, ltm.graph, stm.units(), out, scene)


def _finish(rows: list[tuple], graph, units, out: Path, scene: str) -> int:
    from karma_memory.viz import plot_memory

    print("\n" + f"{'instruction':52s} {'ok':>3s} {'steps':>5s} {'explor':>6s} {'mem hits':>8s}")
    for sub, ok, steps, explorations, recalled, _ in rows:
        print(f"{sub[:52]:52s} {'yes' if ok else 'NO':>3s} {steps:5d} {explorations:6d} {recalled:8d}")
    total_ok = sum(r[1] for r in rows)
    print(f"{'total':52s} {total_ok}/{len(rows)} {sum(r[2] for r in rows):5d} {sum(r[3] for r in rows):6d} "
          f"{sum(r[4] for r in rows):8d}")
    path = plot_memory(graph, units, out / "memory.png", title=f"{scene}: scene graph and short-term memory (red)")
    print(f"wrote {path}")
    failed = [r for r in rows if not r[1]]
    for sub, *_, message in failed:
        print(f"failed: {sub}: {message}", file=sys.stderr)
    return 0 if not failed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karma demo", description=__doc__.splitlines()[0])
    parser.add_argument("--scene", default="FloorPlan1")
    parser.add_argument("--in-process", action="store_true", help="run without ROS (same agent and memories)")
    parser.add_argument("--out", type=Path, default=Path("build/demo"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.in_process:
        status = run_in_process(args.scene, args.out)
    else:
        from karma_memory.demo_stack import run_stack_demo

        status = run_stack_demo(args.scene, args.out)
    print(f"demo finished in {time.perf_counter() - start:.1f} s", flush=True)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
