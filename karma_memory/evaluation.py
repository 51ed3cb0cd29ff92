"""Run task suites in the embedded simulator under memory configurations and compute the paper's metrics.

Configurations (karma_spec.md §2.5 ablations):
- ``none``: no memory (the LoTa-Bench-like baseline): every object is found by systematic exploration;
- ``ltm``: long-term memory only (the scene graph of the furniture, updated with what the robot sees);
- ``stm``: short-term memory only;
- ``full``: KARMA, both memories.
The STM is refreshed at the start of every high-level instruction (paper §3.4); the LTM starts from
the scene's map (immovable objects over the reachable grid, as a prior mapping run would leave it).

Metrics per category (karma_spec.md §2.2): success rate (all goal conditions, checked after every skill);
memory hit rate (queries whose needed unit was resident in the STM) and memory retrieval accuracy
(queries whose needed unit the planner actually retrieved) over sub-tasks that act again on an object
the robot handled earlier; explorations (areas visited by Explore) and simulated time; reduced
exploration/time = (baseline − method) / baseline, baseline = ``none``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from karma_memory.core.agent import KarmaAgent, StepRecord
from karma_memory.core.embedding import Embedder
from karma_memory.core.goals import GoalTracker
from karma_memory.core.lexicon import PIECE_BASES
from karma_memory.core.long_term import LongTermMemory, LtmConfig, thor_object_observations
from karma_memory.core.memory_access import LocalMemory
from karma_memory.core.planner.symbolic import SymbolicPlanner
from karma_memory.core.short_term import ShortTermMemory, StmConfig
from karma_memory.core.tasks import Task

__all__ = ["CONFIGS", "PRIORS", "TaskResult", "run_task", "summarise", "survey"]

CONFIGS = ("none", "ltm", "stm", "full")


@dataclass
class TaskResult:
    """Outcome of one task under one configuration."""

    task_id: str
    category: str
    scene: str
    config: str
    success: bool
    progress: float
    explorations: int
    sim_time_s: float
    steps: int
    replans: int
    memory_queries: int
    memory_hits: int
    retrieved_needed: int
    wall_time_s: float
    failures: list[str] = field(default_factory=list)


def _goal_types(task_subtask: Any) -> set[str]:
    types = set()
    for cond in task_subtask.goals:
        for name in (cond.obj, cond.target):
            if name:
                types.add(name.lower())
    return types


def scene_map(scene: str, config: LtmConfig, embedder: Embedder | None) -> tuple[LongTermMemory, Any]:
    """The LTM a prior mapping run leaves: areas over the reachable grid + the immovable objects."""
    from karma_memory.sim.scenes import load_scene

    data = load_scene(scene)
    memory = LongTermMemory(config, embedder)
    memory.add_areas(data.reachable)
    memory.observe_many(o for o in thor_object_observations(data.objects, source="map") if not o.movable)
    return memory, data


#: what the long-term memory holds when a task starts (karma_spec.md §1.2 leaves it open)
PRIORS = ("map", "survey")
_SURVEYS: dict[str, list[dict[str, Any]]] = {}


def survey(scene: str, area_positions: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """What a robot saw touring the scene once before the tasks (cached per scene: it is deterministic)."""
    if scene not in _SURVEYS:
        from karma_memory.sim import EmbeddedController, SimSkillExecutor

        controller = EmbeddedController(scene=scene, render_images=False)
        _SURVEYS[scene] = SimSkillExecutor(controller, area_positions).survey()
    return _SURVEYS[scene]


def run_task(task: Task, config: str, embedder: Embedder | None = None, stm_config: StmConfig | None = None,
             ltm_config: LtmConfig | None = None, max_replans: int = 2, prior: str = "map") -> TaskResult:
    """Run one task from a fresh simulator under one memory configuration.

    Args:
        prior: what the long-term memory knows at the start: ``map`` = the furniture on the reachable
            grid (the paper's construction); ``survey`` = also every object a tour of the scene saw.
    """
    from karma_memory.sim import EmbeddedController, SimSkillExecutor

    if config not in CONFIGS:
        raise ValueError(f"unknown memory configuration {config!r}; expected one of {CONFIGS}")
    if prior not in PRIORS:
        raise ValueError(f"unknown long-term memory prior {prior!r}; expected one of {PRIORS}")
    start = time.perf_counter()
    ltm_config = ltm_config or LtmConfig()
    ltm, data = scene_map(task.scene, ltm_config, embedder)
    if prior == "survey":
        ltm.observe_many(thor_object_observations(survey(task.scene, ltm.area_positions()), source="survey"))
    controller = EmbeddedController(scene=task.scene, render_images=False)
    executor = SimSkillExecutor(controller, ltm.area_positions())
    use_ltm = config in ("ltm", "full")
    use_stm = config in ("stm", "full")
    stm = ShortTermMemory(stm_config or StmConfig(), embedder) if use_stm else None
    memory = LocalMemory(ltm if use_ltm else None, stm)
    objects = controller.last_event.metadata["objects"]
    tracker = GoalTracker([list(s.goals) for s in task.subtasks], objects, mode=task.evaluation)

    def on_step(record: StepRecord) -> None:
        event = controller.last_event
        held = next((o["objectId"] for o in event.metadata["objects"] if o.get("isPickedUp")), None)
        tracker.update(event.metadata["objects"], held)

    agent = KarmaAgent(executor, SymbolicPlanner(embedder), memory, known_types=data.object_types,
                       area_ids=list(ltm.area_positions()), max_replans=max_replans, on_step=on_step)
    agent.reset_dialogue()
    agent.observe()  # what the robot sees from where it starts
    handled: dict[str, str] = {}  # object type (lower) -> last object id the robot acted on
    queries = hits = retrieved = 0
    explorations = steps = replans = 0
    sim_time = 0.0
    failures: list[str] = []
    for subtask in task.subtasks:
        needed = [handled[t] for t in sorted(_goal_types(subtask)) if t in handled]
        report = agent.run_instruction(subtask.instruction)
        for object_id in needed:  # paper §3.6: a query needs a unit; a hit if it is resident
            queries += 1
            if stm is not None and object_id in stm:
                hits += 1
            if object_id in report.recalled:
                retrieved += 1
        for record in report.steps:
            acted = record.result.object_id
            if record.result.success and acted and record.call.skill not in ("Explore", "GoToObject"):
                object_type = acted.split("|", 1)[0]
                handled[object_type.lower()] = acted
                base = PIECE_BASES.get(object_type)
                if base:
                    handled[base.lower()] = acted
        explorations += report.explorations
        sim_time += report.cost.sim_time_s
        steps += len(report.steps)
        replans += report.replans
        if not report.success:
            failures.append(f"{subtask.instruction}: {report.message}")
    return TaskResult(task.id, task.category, task.scene, config, tracker.satisfied, tracker.progress, explorations,
                      sim_time, steps, replans, queries, hits, retrieved, time.perf_counter() - start, failures)


def summarise(results: Iterable[TaskResult], categories: Sequence[str] = ("simple", "composite", "complex")
              ) -> dict[str, dict[str, dict[str, float]]]:
    """category -> config -> metrics, with RE/RT against the ``none`` baseline of the same category."""
    results = list(results)
    table: dict[str, dict[str, dict[str, float]]] = {}
    for category in categories:
        table[category] = {}
        for config in CONFIGS:
            rows = [r for r in results if r.category == category and r.config == config]
            if not rows:
                continue
            queries = sum(r.memory_queries for r in rows)
            table[category][config] = {
                "tasks": len(rows),
                "success_rate": sum(r.success for r in rows) / len(rows),
                "progress": sum(r.progress for r in rows) / len(rows),
                "explorations": float(sum(r.explorations for r in rows)),
                "sim_time_s": sum(r.sim_time_s for r in rows),
                "memory_queries": float(queries),
                "memory_hit_rate": sum(r.memory_hits for r in rows) / queries if queries else float("nan"),
                "retrieval_accuracy": sum(r.retrieved_needed for r in rows) / queries if queries else float("nan"),
                "wall_time_s": sum(r.wall_time_s for r in rows),
            }
        base = table[category].get("none")
        for config, metrics in table[category].items():
            if base and base["explorations"] > 0:
                metrics["reduced_exploration"] = (base["explorations"] - metrics["explorations"]) / base["explorations"]
            if base and base["sim_time_s"] > 0:
                metrics["reduced_time"] = (base["sim_time_s"] - metrics["sim_time_s"]) / base["sim_time_s"]
    return table


def result_rows(results: Iterable[TaskResult]) -> list[dict[str, Any]]:
    """JSON-ready rows."""
    return [asdict(r) for r in results]
