"""The closed-loop agent: plan with memory, run skills, observe, correct memory, replan.

Beyond the paper's open-loop planning (karma_spec.md §4.3): after every skill the agent folds
what it sees into memory; when a skill fails, or the world contradicts memory (the object is not
where memory said), it corrects the memory and replans the sub-instruction from the current state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

from karma_memory.core.errors import KarmaMemoryError
from karma_memory.core.lexicon import capabilities
from karma_memory.core.long_term import INSIDE_RECEPTACLES, thor_object_observations
from karma_memory.core.memory_access import AgentMemory
from karma_memory.core.planner.base import Plan, PlannerBackend, PlanningContext
from karma_memory.core.skills import SkillCall, SkillCost, SkillExecutor, SkillResult
from karma_memory.core.types import ObjectObservation, ObservationKind, Relation

__all__ = ["StepRecord", "InstructionReport", "TaskReport", "KarmaAgent"]

#: appliances that heat what is inside them while on
#: remembered states the robot caused that THOR has no field for
DONE_TO = ("cleaned", "heated")
WASH_BASINS = frozenset({"SinkBasin", "Sink", "BathtubBasin"})
HEAT_SOURCES = frozenset({"Microwave", "StoveBurner", "StoveKnob", "Toaster", "CoffeeMachine"})

#: (skill, object state key, desired value): skip the call when perception already shows that state
#: skill -> (capability, state field, wanted value): a call whose object already has that state is skipped.
_IDEMPOTENT = {"OpenObject": ("openable", "isOpen", True), "CloseObject": ("openable", "isOpen", False),
               "ToggleOn": ("toggleable", "isToggled", True), "ToggleOff": ("toggleable", "isToggled", False),
               "SwitchOn": ("toggleable", "isToggled", True), "SwitchOff": ("toggleable", "isToggled", False)}


@dataclass
class StepRecord:
    """One executed (or skipped) skill."""

    call: SkillCall
    result: SkillResult
    skipped: bool = False


@dataclass
class InstructionReport:
    """What running one (sub-)instruction did."""

    instruction: str
    success: bool = False
    message: str = ""
    steps: list[StepRecord] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)
    replans: int = 0
    explorations: int = 0
    cost: SkillCost = SkillCost()
    recalled: list[str] = field(default_factory=list)
    wall_time_s: float = 0.0
    cancelled: bool = False


@dataclass
class TaskReport:
    """A high-level instruction: its sub-instructions' reports, in order."""

    instruction: str
    subtasks: list[InstructionReport] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return bool(self.subtasks) and all(s.success for s in self.subtasks)

    @property
    def steps(self) -> list[StepRecord]:
        return [step for s in self.subtasks for step in s.steps]

    @property
    def explorations(self) -> int:
        return sum(s.explorations for s in self.subtasks)

    @property
    def message(self) -> str:
        failed = [s for s in self.subtasks if not s.success]
        return failed[0].message if failed else f"{len(self.subtasks)} sub-instructions done"


class KarmaAgent:
    """Runs instructions on a SkillExecutor with a planner backend and (optional) memories.

    Args:
        executor: where skills run (embedded simulator, AI2-THOR, or a ROS action client).
        backend: the planner (symbolic by default).
        memory: both memories behind AgentMemory (ablations disable either).
        known_types: the scene's object types, given to the planner (as SMART-LLM/LoTa-Bench do).
        max_replans: replans allowed per sub-instruction after a failed step.
        on_step: called after every executed skill (the benchmark updates its goal tracker here).
    """

    def __init__(self, executor: SkillExecutor, backend: PlannerBackend, memory: AgentMemory,
                 known_types: Sequence[str], area_ids: Sequence[str] = (), max_replans: int = 2,
                 on_step: Callable[[StepRecord], None] | None = None, clock: Callable[[], float] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> None:
        self.executor, self.backend, self.memory = executor, backend, memory
        self.known_types = list(known_types)
        self.area_ids = list(area_ids)
        self.max_replans = max_replans
        self.on_step = on_step
        self.completed: list[str] = []
        self._sim_time = 0.0
        self._clock = clock
        self.should_stop = should_stop  # polled between skills: a cancelled task stops at the next skill

    # ---- observation --------------------------------------------------------------------------------
    def _stamp(self) -> float:
        return self._clock() if self._clock else self._sim_time

    def held_object(self) -> str | None:
        """The object id in the robot's hand, from what it perceives."""
        for obj in self.executor.visible_objects():
            if obj.get("isPickedUp"):
                return str(obj["objectId"])
        return None

    def observe(self, acted: set[str] = frozenset(), derived: dict[str, tuple[str, ...]] | None = None,
                skill: str = "") -> None:
        """Fold what the robot sees into memory; objects it acted on count as used (STM material)."""
        visible = self.executor.visible_objects()
        derived = dict(derived or {})
        remembered = {u.object_id: u.states for u in self.memory.stm_units()}
        kept = self._done_to(visible, remembered)
        for object_id, states in kept.items():  # a new slice: remembered like something the robot made
            if object_id not in remembered:
                derived[object_id] = derived.get(object_id, ()) + states
        observations: list[ObjectObservation] = []
        for obs in thor_object_observations(visible, stamp=self._stamp(), source="perception"):
            if obs.object_id in kept:
                obs = replace(obs, states=tuple(dict.fromkeys(s for s in obs.states + kept[obs.object_id]
                                                              if s != "none")))
            if obs.object_id in acted or (derived and obs.object_id in derived):
                states = tuple(dict.fromkeys(s for s in obs.states + (derived or {}).get(obs.object_id, ())
                                             if s != "none"))
                obs = ObjectObservation(obs.object_id, obs.object_type, obs.position, ObservationKind.MOVED,
                                        obs.size, states, obs.relations, obs.movable, obs.stamp,
                                        f"skill:{skill}", obs.robot_id, obs.confidence)
            observations.append(obs)
        self.memory.observe(observations)

    @staticmethod
    def _done_to(visible: list[dict], remembered: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        """States THOR cannot show that memory (``remembered``: STM unit id → states) holds of what is in
        sight: washed and heated stay true of an object (and of its slices) after the tap is off or it
        cooled, until it is seen dirty."""
        out: dict[str, tuple[str, ...]] = {}
        for obj in visible:
            object_id = str(obj["objectId"])
            states = remembered.get(object_id) or remembered.get(object_id.rsplit("|", 1)[0], ())
            done = tuple(s for s in states if s in DONE_TO and not (s == "cleaned" and obj.get("isDirty")))
            if done:
                out[object_id] = done
        return out

    def _changed_in_memory(self, call: SkillCall, result: SkillResult) -> None:
        """Turning on a heat source heats what memory says is inside it, and turning on a tap washes what is
        in the basins, even where the robot can't see it (a closed microwave, a soap bar deep in the sink)."""
        if call.skill not in ("ToggleOn", "SwitchOn") or not result.success:
            return
        source = str(result.object_id or call.args.get("object", ""))
        kind = source.split("|", 1)[0]
        if kind not in HEAT_SOURCES and kind != "Faucet":
            return
        observations = []
        for unit in self.memory.stm_units():
            target = unit.relation.split(" ", 1)[1] if " " in unit.relation else ""
            if kind == "Faucet":
                change = ["cleaned"] if {target.split("|")[0], target.split("|")[-1]} & WASH_BASINS else []
            elif target == source or ("|" not in source and target.split("|", 1)[0] == source):
                change = ["heated", "cooked"] if "cookable" in capabilities(unit.object_type) else ["heated"]
            else:
                change = []
            if change:
                states = tuple(dict.fromkeys([s for s in unit.states if s != "none"] + change))
                observations.append(ObjectObservation(
                    unit.object_id, unit.object_type, unit.position, ObservationKind.STATE_CHANGED, None, states,
                    (Relation(*unit.relation.split(" ", 1)),), True, self._stamp(), f"skill:{call.skill}"))
        self.memory.observe(observations)

    def _placed(self, object_id: str, call: SkillCall) -> None:
        """The robot knows where it put something even when it cannot see it there (inside a fridge)."""
        visible = self.executor.visible_objects()
        if any(o["objectId"] == object_id for o in visible):
            return  # perception already reported it
        wanted = str(call.args.get("receptacle") or "GarbageCan")
        holder = next((o for o in visible if o["objectId"] == wanted), None) or min(
            (o for o in visible if o["objectType"] == wanted.split("|", 1)[0]),
            key=lambda o: o.get("distance", 0.0), default=None)
        if holder is None:
            return
        position = holder["position"]
        predicate = "inside" if holder["objectType"] in INSIDE_RECEPTACLES else "on"
        self.memory.observe([ObjectObservation(
            object_id, object_id.split("|", 1)[0], (position["x"], position["y"], position["z"]),
            ObservationKind.MOVED, relations=(Relation(predicate, holder["objectId"]),), movable=True,
            stamp=self._stamp(), source=f"skill:{call.skill}")])

    def _washed(self) -> dict[str, tuple[str, ...]]:
        """Objects in a sink basin under a running faucet: washed (THOR has no state for a washed apple)."""
        visible = self.executor.visible_objects()
        if not any(o.get("objectType") == "Faucet" and o.get("isToggled") for o in visible):
            return {}
        return {o["objectId"]: ("cleaned",) for o in visible
                if any(p.split("|", 1)[0] in WASH_BASINS for p in o.get("parentReceptacles") or [])}

    # ---- execution ------------------------------------------------------------------------------------
    def _state_already(self, call: SkillCall) -> bool:
        wanted = _IDEMPOTENT.get(call.skill)
        if wanted is None:
            return False
        ref = str(call.args.get("object", ""))
        capability, key, value = wanted
        for obj in self.executor.visible_objects():
            if obj.get("objectId") == ref or ("|" not in ref and obj.get("objectType") == ref):
                # a stove burner is not itself toggleable (its knob is): its own isToggled says nothing
                return bool(obj.get(capability, True)) and bool(obj.get(key)) == value and obj.get("visible", True)
        return False

    def _share_belief(self, call: SkillCall) -> None:
        """Tell the skill layer where memory believes a named object is, so GoToObject drives there."""
        remember = getattr(self.executor, "remember", None)
        ref = call.args.get("object")
        if remember is None or not isinstance(ref, str) or "|" not in ref:
            return
        unit = next((u for u in self.memory.stm_units() if u.object_id == ref), None)
        position = unit.position if unit is not None else None
        if position is None:
            record = self.memory.ltm_object(ref)
            position = record["position"] if record else None
        if position is not None:
            remember(ref, position)

    def _run_step(self, call: SkillCall, report: InstructionReport) -> StepRecord:
        if self._state_already(call):
            record = StepRecord(call, SkillResult(True, "already in that state"), skipped=True)
        else:
            held_before = self.held_object()
            self._share_belief(call)
            result = self.executor.execute(call)
            self._sim_time += result.cost.sim_time_s
            report.cost = report.cost + result.cost
            if call.skill == "Explore":
                report.explorations += result.areas_visited
            record = StepRecord(call, result)
            acted = {i for i in (result.object_id, held_before) if i}
            self.observe(acted if result.success else set(), self._washed(), call.skill)
            self._changed_in_memory(call, result)
            if result.success and held_before and call.skill in ("PutObject", "ThrowObject"):
                self._placed(held_before, call)
        report.steps.append(record)
        if self.on_step is not None:
            self.on_step(record)
        return record

    def _skip_finished_search(self, steps: Sequence[SkillCall], index: int) -> int:
        """Searching containers (go to, open, …, then Explore for X): once X is in sight, stop opening more."""
        end = index
        while end < len(steps) and steps[end].skill in ("GoToObject", "OpenObject"):
            end += 1
        if end == index or end == len(steps) or steps[end].skill != "Explore":
            return index
        wanted = str(steps[end].args.get("object", ""))
        if any(o.get("objectId") == wanted or o.get("objectType") == wanted for o in self.executor.visible_objects()
               if o.get("visible", True)):
            return end
        return index

    def _correct_memory(self, call: SkillCall, unavailable: set[str], searched: set[str],
                        failed_ids: set[str]) -> None:
        """A failed step means memory was wrong about that object: forget it so replanning explores."""
        ref = str(call.args.get("object") or call.args.get("receptacle") or "")
        if call.skill == "Explore" and "|" not in ref:
            if ref in searched:  # not even inside the usual containers: ground the phrase differently
                unavailable.add(ref)
            searched.add(ref)
        if "|" in ref:
            failed_ids.add(ref)  # the planner must not send the robot to the same place again
            self.memory.stm_forget(ref)
            if call.skill in ("GoToObject", "PickupObject"):
                visible_ids = {o["objectId"] for o in self.executor.visible_objects()}
                if ref not in visible_ids:
                    self.memory.ltm_forget(ref)

    def _messages(self, instruction: str) -> tuple:
        """The paper's memory-augmented chat prompt, for text backends (the symbolic one reads memory directly)."""
        if getattr(self.backend, "name", "") == "symbolic":
            return ()
        from karma_memory.core.planner.prompt import build_messages

        stm_text, ltm_text, ranking = self.memory.prompt_texts(instruction)
        return build_messages(instruction, stm_text=stm_text, ltm_text=ltm_text, area_ranking=ranking or None,
                              completed=list(self.completed), examples=None, held_object=self.held_object())

    def run_instruction(self, instruction: str) -> InstructionReport:
        """Plan and execute one (sub-)instruction, replanning after failures."""
        start = time.perf_counter()
        report = InstructionReport(instruction)
        attempts = 0
        unavailable: set[str] = set()
        searched: set[str] = set()
        failed_ids: set[str] = set()
        while True:
            context = PlanningContext(instruction=instruction, messages=self._messages(instruction),
                                      known_types=self.known_types, area_ids=self.area_ids,
                                      completed=list(self.completed), memory=self.memory,
                                      held_object=self.held_object(), extra={"unavailable": set(unavailable),
                                                                              "searched": set(searched),
                                                                              "failed_ids": set(failed_ids)})
            try:
                plan = self.backend.plan(context)
            except KarmaMemoryError as err:
                report.message = f"planning failed: {err}"
                break
            report.plans.append(plan)
            report.recalled += list(getattr(self.backend, "recalled", []))
            failed = None
            index = 0
            while index < len(plan.steps):
                if self.should_stop is not None and self.should_stop():
                    report.cancelled = True
                    break
                index = self._skip_finished_search(plan.steps, index)
                record = self._run_step(plan.steps[index], report)
                if not record.result.success:
                    failed = record
                    break
                index += 1
            if report.cancelled:
                report.message = f"cancelled after {len(report.steps)} steps"
                break
            if failed is None:
                report.success = True
                report.message = f"done in {len(report.steps)} steps"
                break
            self._correct_memory(failed.call, unavailable, searched, failed_ids)
            rollback = getattr(self.backend, "rollback", None)
            if callable(rollback):
                rollback()
            attempts += 1
            if attempts > self.max_replans:
                report.message = f"{failed.call} failed: {failed.result.message} (after {attempts - 1} replans)"
                break
            report.replans += 1
        self.completed.append(instruction)
        report.wall_time_s = time.perf_counter() - start
        return report

    def run_task(self, instruction: str, stop_on_failure: bool = True) -> TaskReport:
        """Run a high-level instruction sub-instruction by sub-instruction (dialogue context kept)."""
        from karma_memory.core.planner.language import split_instruction

        self.reset_dialogue()
        report = TaskReport(instruction)
        try:
            parts = split_instruction(instruction)
        except KarmaMemoryError as err:
            report.subtasks.append(InstructionReport(instruction, False, f"planning failed: {err}"))
            return report
        for part in parts:
            sub = self.run_instruction(part)
            report.subtasks.append(sub)
            if sub.cancelled or (not sub.success and stop_on_failure):
                break
        return report

    def reset_dialogue(self) -> None:
        """A new high-level instruction starts: forget pronoun context (not memory)."""
        self.completed.clear()
        reset = getattr(self.backend, "reset", None)
        if callable(reset):
            reset()

