"""The closed-loop agent: executes validated plans, keeps memory in step with what it sees, replans on failure.

Scripted executors make each behaviour exact; one run in the embedded simulator checks the whole loop.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers import HashEmbedder, grid, obs
from karma_memory.core.agent import KarmaAgent
from karma_memory.core.errors import PlanValidationError
from karma_memory.core.long_term import LongTermMemory, LtmConfig
from karma_memory.core.memory_access import LocalMemory
from karma_memory.core.planner.base import Plan, PlanningContext
from karma_memory.core.planner.symbolic import SymbolicPlanner
from karma_memory.core.short_term import ShortTermMemory, StmConfig
from karma_memory.core.skills import SkillCall, SkillResult
from karma_memory.core.types import ObservationKind


def thor(object_id: str, **fields: Any) -> dict[str, Any]:
    """A THOR metadata dict as an executor reports it."""
    base = {"objectId": object_id, "objectType": object_id.split("|", 1)[0], "visible": True, "distance": 1.0,
            "position": {"x": 1.0, "y": 0.9, "z": 1.0}, "pickupable": True, "parentReceptacles": None}
    base.update(fields)
    return base


class ScriptedExecutor:
    """Runs every skill successfully and shows what ``sights`` says the robot sees after each call."""

    def __init__(self, sights: dict[int, list[dict[str, Any]]] | None = None,
                 failing: set[str] = frozenset()) -> None:
        self.calls: list[SkillCall] = []
        self.sights = sights or {}
        self.failing = failing
        self.seen: list[dict[str, Any]] = self.sights.get(0, [])

    def execute(self, call: SkillCall) -> SkillResult:
        self.calls.append(call)
        self.seen = self.sights.get(len(self.calls), self.seen)
        ref = str(call.args.get("object") or call.args.get("receptacle") or "")
        if ref in self.failing:
            return SkillResult(False, f"{ref} is not there")
        return SkillResult(True, f"{call.skill} done", object_id=ref if "|" in ref else None)

    def visible_objects(self) -> list[dict[str, Any]]:
        return list(self.seen)


class FixedPlans:
    """A backend that hands out the given plans in turn (the agent treats every backend alike)."""

    name = "fixed"

    def __init__(self, *plans: list[SkillCall]) -> None:
        self.plans = list(plans)

    def plan(self, context: PlanningContext) -> Plan:
        if not self.plans:
            raise PlanValidationError("no more plans")
        return Plan(tuple(self.plans.pop(0)), source=self.name)


def call(skill: str, **args: Any) -> SkillCall:
    return SkillCall(skill, args)


def agent_with(executor: ScriptedExecutor, backend: Any, stm: ShortTermMemory | None = None) -> KarmaAgent:
    memory = LocalMemory(None, stm if stm is not None else ShortTermMemory(StmConfig(capacity=5), HashEmbedder()))
    return KarmaAgent(executor, backend, memory, known_types=["Apple", "Cabinet", "StoveBurner", "Tomato"])


def test_searching_containers_stops_once_the_object_is_in_sight() -> None:
    apple = thor("Apple|1", parentReceptacles=["Cabinet|1"])
    executor = ScriptedExecutor({2: [thor("Cabinet|1", openable=True, isOpen=True), apple]})
    search = [call("GoToObject", object="Cabinet|1"), call("OpenObject", object="Cabinet|1"),
              call("GoToObject", object="Cabinet|2"), call("OpenObject", object="Cabinet|2"),
              call("Explore", object="Apple"), call("GoToObject", object="Apple"), call("PickupObject", object="Apple")]
    report = agent_with(executor, FixedPlans(search)).run_instruction("take the apple")
    assert report.success
    assert [c.args.get("object") for c in executor.calls] == ["Cabinet|1", "Cabinet|1", "Apple", "Apple", "Apple"]


def test_a_burner_is_switched_off_through_its_knob_even_though_it_reads_off() -> None:
    burner = thor("StoveBurner|1", toggleable=False, isToggled=False, pickupable=False)
    executor = ScriptedExecutor({0: [burner]})
    agent = agent_with(executor, FixedPlans([call("ToggleOff", object="StoveBurner|1")]))
    report = agent.run_instruction("turn the stove off")
    assert report.success and not report.steps[0].skipped and executor.calls


def test_a_switch_already_in_the_wanted_state_is_not_pressed_again() -> None:
    lamp = thor("DeskLamp|1", toggleable=True, isToggled=False, pickupable=False)
    executor = ScriptedExecutor({0: [lamp]})
    report = agent_with(executor, FixedPlans([call("ToggleOff", object="DeskLamp|1")])).run_instruction("lamp off")
    assert report.success and report.steps[0].skipped and not executor.calls


def test_slices_keep_what_was_done_to_the_whole() -> None:
    stm = ShortTermMemory(StmConfig(capacity=5), HashEmbedder())
    stm.observe(obs("Tomato|1", kind=ObservationKind.MOVED, states=["cleaned"], source="skill:PutObject", stamp=0.0))
    piece = thor("Tomato|1|TomatoSliced_1", objectType="TomatoSliced")
    executor = ScriptedExecutor({1: [piece]})
    agent_with(executor, FixedPlans([call("SliceObject", object="Tomato|1")]), stm).run_instruction("slice it")
    unit = next(u for u in stm.units() if u.object_id == "Tomato|1|TomatoSliced_1")
    assert "cleaned" in unit.states


def test_a_failed_step_forgets_the_belief_and_replans() -> None:
    stm = ShortTermMemory(StmConfig(capacity=5), HashEmbedder())
    stm.observe(obs("Apple|1", kind=ObservationKind.MOVED, source="skill:PutObject"))
    executor = ScriptedExecutor(failing={"Apple|1"})
    backend = FixedPlans([call("GoToObject", object="Apple|1")], [call("Explore", object="Apple")])
    report = agent_with(executor, backend, stm).run_instruction("get the apple")
    assert report.success and report.replans == 1
    assert "Apple|1" not in stm


def test_garbage_from_the_planner_fails_the_instruction_with_its_reason() -> None:
    report = agent_with(ScriptedExecutor(), FixedPlans()).run_instruction("do something")
    assert not report.success and "no more plans" in report.message


def kitchen_memory() -> LocalMemory:
    ltm = LongTermMemory(LtmConfig(), HashEmbedder())
    ltm.add_areas(grid(0, 3, 0, 3))
    for oid in ("Cabinet|1", "Cabinet|2", "CounterTop|1", "GarbageCan|1"):
        ltm.observe(obs(oid, movable=False))
    return LocalMemory(ltm, ShortTermMemory(StmConfig(capacity=5), HashEmbedder()))


def test_a_named_object_that_is_nowhere_is_never_swapped_for_another_kind() -> None:
    planner = SymbolicPlanner(HashEmbedder())
    context = PlanningContext("Throw the spray bottle away.", known_types=["SprayBottle", "SoapBottle", "GarbageCan"],
                              memory=kitchen_memory(), extra={"unavailable": {"SprayBottle"}})
    with pytest.raises(PlanValidationError, match="no spray bottle found"):
        planner.plan(context)


def test_a_searched_object_is_looked_for_in_every_likely_container() -> None:
    planner = SymbolicPlanner(HashEmbedder())
    context = PlanningContext("Put the spray bottle on the counter.",
                              known_types=["SprayBottle", "Cabinet", "CounterTop", "GarbageCan"],
                              memory=kitchen_memory(), extra={"searched": {"SprayBottle"}})
    opened = [s.args["object"] for s in planner.plan(context).steps if s.skill == "OpenObject"]
    assert {"Cabinet|1", "Cabinet|2"} <= set(opened)


def test_the_whole_loop_in_the_embedded_simulator() -> None:
    from karma_memory.core.tasks import load_all_suites
    from karma_memory.evaluation import run_task

    task = next(t for t in load_all_suites() if t.id == "composite-kitchen-04")  # pot, stove on, stove off, plate
    result = run_task(task, "full", HashEmbedder())
    assert result.success, result.failures
    assert result.explorations > 0 and result.sim_time_s > 0


def test_turning_the_tap_on_washes_what_memory_has_in_the_basin_and_it_stays_washed() -> None:
    stm = ShortTermMemory(StmConfig(capacity=5), HashEmbedder())
    stm.observe(obs("SoapBar|1", kind=ObservationKind.MOVED, relations=[("inside", "Sink|1|SinkBasin")],
                    source="skill:PutObject", stamp=0.0))
    soap = thor("SoapBar|1", isDirty=False, parentReceptacles=["Sink|1|SinkBasin"])
    executor = ScriptedExecutor({1: [], 3: [soap]})  # deep in the basin: not in sight when the tap goes on
    plans = FixedPlans([call("ToggleOn", object="Faucet|1")], [call("ToggleOff", object="Faucet|1"),
                                                                call("GoToObject", object="SoapBar|1")])
    agent = agent_with(executor, plans, stm)
    agent.run_instruction("wash the soap")
    assert "cleaned" in next(u for u in stm.units() if u.object_id == "SoapBar|1").states
    agent.run_instruction("turn the water off and look at the soap")
    assert "cleaned" in next(u for u in stm.units() if u.object_id == "SoapBar|1").states


def test_a_prior_tour_fills_the_scene_graph_with_what_was_in_view_only() -> None:
    from karma_memory.core.tasks import load_all_suites
    from karma_memory.evaluation import run_task, scene_map, survey

    ltm, data = scene_map("FloorPlan1", LtmConfig(), HashEmbedder())
    seen = survey("FloorPlan1", ltm.area_positions())
    hidden = {o["objectId"] for o in data.objects if any(p.split("|", 1)[0] in ("Fridge", "Drawer", "Cabinet")
                                                         for p in o.get("parentReceptacles") or [])}
    ids = {o["objectId"] for o in seen}
    assert any(o.get("pickupable") for o in seen) and not ids & hidden  # closed containers stay unseen
    task = next(t for t in load_all_suites() if t.scene == "FloorPlan1" and t.category == "simple")
    toured, mapped = (run_task(task, "full", HashEmbedder(), prior=p) for p in ("survey", "map"))
    assert toured.success and toured.explorations <= mapped.explorations
    with pytest.raises(ValueError, match="prior"):
        run_task(load_all_suites()[0], "full", HashEmbedder(), prior="psychic")
