"""Planner node: serves ExecuteTask with the memory-augmented agent over ExecuteSkill and the memory nodes."""

from __future__ import annotations

import threading
from typing import Any

from karma_interfaces.action import ExecuteTask
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from karma_memory.core.agent import InstructionReport, KarmaAgent, StepRecord, TaskReport
from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.planner.base import PlannerBackend
from karma_memory.core.planner.language import split_instruction
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.common import Param, ParameterSet, run_node, warm_up
from karma_memory.nodes.ros_executor import RosSkillExecutor
from karma_memory.nodes.ros_memory import RosAgentMemory

__all__ = ["PARAMETERS", "PlannerNode", "make_planner_backend", "main"]

PARAMETERS: dict[str, Param] = {
    "scene": Param("", "scene whose object types the planner may name ('' = the types in the scene graph)"),
    "backend": Param("symbolic", "planner backend: symbolic (offline, default), openai or llamacpp"),
    "llm.base_url": Param("http://127.0.0.1:8000/v1", "OpenAI-compatible server root (backend openai); the API key "
                                                     "comes from KARMA_LLM_API_KEY or OPENAI_API_KEY"),
    "llm.model": Param("", "model name the server expects (backend openai)"),
    "llm.timeout_s": Param(60.0, "limit of one LLM request, seconds"),
    "use_ltm": Param(True, "let the planner use the long-term memory (false = the paper's no-LTM ablation)"),
    "use_stm": Param(True, "let the planner use the short-term memory (false = the no-STM ablation)"),
    "warm_up": Param(True, "load the sentence embedder (semantic grounding) in the background at start",
                     read_only=True),
    "max_replans": Param(2, "replans per sub-instruction after a failed step"),
    "skill_timeout_s": Param(120.0, "longest wait for the skill server and one skill, seconds"),
    "service_timeout_s": Param(10.0, "longest wait for a memory service, seconds"),
    "sync_timeout_s": Param(2.0, "longest wait for the memories (and the post-skill view) to catch up, seconds"),
}


def make_planner_backend(values: dict[str, Any]) -> PlannerBackend:
    """The backend named by the ``backend`` parameter (symbolic, or one of the registered LLM backends).

    Raises:
        ConfigError: unknown backend or bad backend settings.
    """
    if values["backend"] == "symbolic":
        from karma_memory.core.planner.symbolic import SymbolicPlanner

        return SymbolicPlanner()
    from karma_memory.core.planner.backends import make_backend

    if values["backend"] == "openai":
        return make_backend("openai", base_url=values["llm.base_url"], model=values["llm.model"],
                            timeout_s=values["llm.timeout_s"])
    return make_backend(values["backend"])


def _build(values: dict[str, Any]) -> tuple[PlannerBackend, dict[str, Any]]:
    for name in ("skill_timeout_s", "service_timeout_s", "sync_timeout_s"):
        if not values[name] > 0:
            raise ConfigError(f"{name} must be > 0 s, got {values[name]!r}")
    if not 0 <= values["max_replans"] <= 20:
        raise ConfigError(f"max_replans must be in [0, 20], got {values['max_replans']}")
    return make_planner_backend(values), values


class PlannerNode(Node):
    """ExecuteTask server: plans with memory, runs skills through ExecuteSkill, replans on failure."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("planner", **kwargs)
        self.params = ParameterSet(self, PARAMETERS, _build, self._on_params)
        _, v = self.params.config
        group = ReentrantCallbackGroup()
        self.skills = RosSkillExecutor(self, timeout_s=v["skill_timeout_s"], observation_timeout_s=v["sync_timeout_s"],
                                       callback_group=group)
        self.memory = RosAgentMemory(self, v["use_ltm"], v["use_stm"], v["service_timeout_s"], v["sync_timeout_s"],
                                     callback_group=group)
        self.busy = threading.Lock()
        if v["warm_up"] and v["backend"] == "symbolic":
            warm_up(self.get_logger())
        ActionServer(self, ExecuteTask, "execute_task", self._execute, callback_group=group,
                     cancel_callback=lambda _goal: CancelResponse.ACCEPT)  # stops before the next skill
        self.get_logger().info(f"planner ready: backend {v['backend']}, scene {v['scene'] or '(from memory)'}")

    def _on_params(self, config: tuple[PlannerBackend, dict[str, Any]], changed: dict[str, Any]) -> None:
        """The backend and scene are read per task; the rest goes to the executor and memory now."""
        _, v = config
        self.memory.use_ltm, self.memory.use_stm = v["use_ltm"], v["use_stm"]
        self.memory.timeout_s, self.memory.sync_timeout_s = v["service_timeout_s"], v["sync_timeout_s"]
        self.skills.timeout_s, self.skills.observation_timeout_s = v["skill_timeout_s"], v["sync_timeout_s"]

    def _known_types(self, scene: str) -> list[str]:
        types = set(self.memory.mirror.object_types())
        if scene:
            from karma_memory.sim.scenes import load_scene

            types |= set(load_scene(scene).object_types)
        return sorted(types)

    def _believed_world(self, scene: str) -> list[dict[str, Any]]:
        """The scene's objects as the robot believes them: the map's metadata overlaid with what it observed."""
        world: dict[str, dict[str, Any]] = {}
        if scene:
            from karma_memory.sim.scenes import load_scene

            world = {o["objectId"]: dict(o) for o in load_scene(scene).objects}
        for oid, seen in list(self.skills.world.items()):
            world[oid] = {**world.get(oid, {}), **seen}
        return list(world.values())

    def _run_subtasks(self, agent: KarmaAgent, instruction: str) -> tuple[TaskReport, int, int]:
        """Run the sub-instructions in order (as KarmaAgent.run_task) and count the paper's memory queries.

        A sub-instruction that acts again on an object an earlier one acted on needed it from memory: one
        query, and a hit when that object was resident in the short-term memory before the sub-instruction.
        """
        agent.reset_dialogue()
        report, queries, hits = TaskReport(instruction), 0, 0
        try:
            parts = split_instruction(instruction)
        except KarmaMemoryError as err:
            report.subtasks.append(InstructionReport(instruction, False, f"planning failed: {err}"))
            return report, 0, 0
        handled: set[str] = set()
        for part in parts:
            resident = {u.object_id for u in self.memory.stm_units()}
            sub = agent.run_instruction(part)
            report.subtasks.append(sub)
            acted = {r.result.object_id for r in sub.steps if r.result.success and r.result.object_id
                     and r.call.skill not in ("Explore", "GoToObject")}
            queries += len(acted & handled)
            hits += len(acted & handled & resident)
            handled |= acted
            if not sub.success or sub.cancelled:
                break
        return report, queries, hits

    def _execute(self, goal_handle: Any) -> ExecuteTask.Result:
        goal, result = goal_handle.request, ExecuteTask.Result()
        backend, v = self.params.config
        scene = goal.scene or v["scene"]
        if goal.scene and v["scene"] and goal.scene != v["scene"]:
            result.message = f"this stack runs {v['scene']!r}, not {goal.scene!r}"
            goal_handle.abort()
            return result
        if not self.busy.acquire(blocking=False):
            result.message = "another task is running"
            goal_handle.abort()
            return result
        try:
            return self._run(goal_handle, goal, result, backend, v, scene)
        except KarmaMemoryError as err:
            self.get_logger().error(f"task {goal.instruction!r} failed: {err}")
            result.success, result.message = False, str(err)
            goal_handle.abort()
            return result
        finally:
            self.busy.release()

    def _run(self, goal_handle: Any, goal: Any, result: Any, backend: PlannerBackend, v: dict[str, Any],
             scene: str) -> ExecuteTask.Result:
        from karma_memory.core.goals import GoalTracker, parse_goals

        tracker = None
        if goal.goal_conditions.strip():
            tracker = GoalTracker([parse_goals(goal.goal_conditions)], self._believed_world(scene),
                                  mode="end_state", held_object_id=self.skills.held)
        steps: list[StepRecord] = []

        def on_step(record: StepRecord) -> None:
            report = cv.step_report_to_msg(len(steps), record.call, record.result)
            steps.append(record)
            if tracker is not None:
                tracker.update(self._believed_world(scene), self.skills.held)
            goal_handle.publish_feedback(ExecuteTask.Feedback(current_step=report.index, step=report))

        clock = lambda: self.get_clock().now().nanoseconds * 1e-9  # noqa: E731 - memories order by ROS time
        agent = KarmaAgent(self.skills, backend, self.memory, self._known_types(scene), self.memory.mirror.area_ids(),
                           max_replans=v["max_replans"], on_step=on_step, clock=clock,
                           should_stop=lambda: goal_handle.is_cancel_requested)
        self.get_logger().info(f"task: {goal.instruction!r}")
        report, result.memory_queries, result.memory_hits = self._run_subtasks(agent, goal.instruction)
        result.steps = [cv.step_report_to_msg(i, r.call, r.result) for i, r in enumerate(steps)]
        result.explorations = report.explorations
        result.sim_time_s = float(sum(r.result.cost.sim_time_s for r in steps))
        result.success = tracker.satisfied if tracker is not None else report.success
        result.message = report.message if tracker is None else (
            f"{report.message}; goal conditions {'met' if tracker.satisfied else 'not met'} "
            f"({tracker.progress:.0%})")
        if any(s.cancelled for s in report.subtasks):
            result.success, result.message = False, f"cancelled after {len(steps)} steps"
            goal_handle.canceled()
        elif result.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self.get_logger().info(f"task done: success={result.success}: {result.message}")
        return result


def main(args: list[str] | None = None) -> int:
    """Console script ``planner``."""
    return run_node(PlannerNode, args, threads=4)


if __name__ == "__main__":
    raise SystemExit(main())
