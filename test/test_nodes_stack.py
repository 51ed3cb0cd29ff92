"""Multi-process integration: the real nodes started by `karma stack` in a namespace, driven through ROS only."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Iterator

import pytest
from action_msgs.msg import GoalStatus
from geometry_msgs.msg import Point
from karma_interfaces.action import ExecuteSkill, ExecuteTask
from karma_interfaces.msg import ObjectObservation, ObjectObservationArray, SceneGraph, ShortTermMemoryState
from karma_interfaces.srv import QueryLongTermMemory, QueryShortTermMemory, SaveMemory
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from karma_memory.core.long_term import LongTermMemory
from karma_memory.core.short_term import ShortTermMemory
from karma_memory.nodes.conversions import seconds_to_stamp
from karma_memory.nodes.qos import EVENTS, LATCHED
from ros_fixtures import Probe, StackProcess, ros_session, start_stack

NS = "/robot1"
NODES = ["sim_bridge", "long_term_memory", "short_term_memory", "planner"]


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    yield from ros_session()


@pytest.fixture(scope="module")
def memory_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("memory")


@pytest.fixture(scope="module")
def stack(ros: None, tmp_path_factory: pytest.TempPathFactory, memory_dir: Path) -> Iterator[StackProcess]:
    params = {
        "sim_bridge.rate_hz": 2.0,
        "long_term_memory.memory_dir": memory_dir, "short_term_memory.memory_dir": memory_dir,
        "long_term_memory.max_observations": 50, "short_term_memory.max_observations": 50,
        # no sentence embedder in this test: area ranking without the semantic term, symbolic planning lexical
        "long_term_memory.semantic_weight": 0.0, "long_term_memory.warm_up": False,
        "short_term_memory.warm_up": False, "planner.warm_up": False,
        "long_term_memory.markers.min_interval_s": 0.05,
    }
    process = start_stack(tmp_path_factory.mktemp("stack"), NODES, params, namespace="robot1")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def probe(stack: StackProcess) -> Iterator[Probe]:
    probe = Probe("test_probe")
    probe.subscribe(SceneGraph, f"{NS}/scene_graph", LATCHED)
    probe.subscribe(ShortTermMemoryState, f"{NS}/short_term_memory/state", LATCHED)
    probe.subscribe(MarkerArray, f"{NS}/long_term_memory/markers", LATCHED)
    probe.subscribe(MarkerArray, f"{NS}/short_term_memory/markers", LATCHED)
    probe.subscribe(Header, f"{NS}/long_term_memory/processed", EVENTS)
    probe.subscribe(Header, f"{NS}/short_term_memory/processed", EVENTS)
    assert probe.wait_for(lambda: probe.latest(f"{NS}/scene_graph") is not None, 30.0), stack.text()
    probe.wait_for_action(ExecuteSkill, f"{NS}/execute_skill", 30.0)
    probe.wait_for_action(ExecuteTask, f"{NS}/execute_task", 30.0)
    yield probe
    probe.close()


def _graph(probe: Probe) -> SceneGraph:
    return probe.latest(f"{NS}/scene_graph")


def _stm(probe: Probe) -> ShortTermMemoryState:
    return probe.latest(f"{NS}/short_term_memory/state")


def _settled(probe: Probe, quiet_s: float = 0.5) -> int:
    """Wait until the latched graph shows the version the LTM last acknowledged and nothing arrives for a while."""
    acks = probe.messages[f"{NS}/long_term_memory/processed"]
    while True:
        seen = len(probe.messages[f"{NS}/scene_graph"]), len(acks)
        assert probe.wait_for(lambda: not acks or acks[-1].frame_id == str(_graph(probe).version), 20.0)
        time.sleep(quiet_s)
        if (len(probe.messages[f"{NS}/scene_graph"]), len(acks)) == seen:
            return _graph(probe).version


def test_latched_state_and_markers_reach_a_late_subscriber(probe: Probe) -> None:
    graph = _graph(probe)
    levels = [n.level for n in graph.nodes]
    assert graph.header.frame_id == "map" and levels.count(2) > 50 and levels.count(1) > 3  # FloorPlan1
    assert any(e.relation == "navigable" for e in graph.edges)
    assert probe.wait_for(lambda: _stm(probe) is not None)
    assert (_stm(probe).policy, _stm(probe).capacity) == ("wtinylfu", 10)
    assert probe.wait_for(lambda: probe.latest(f"{NS}/long_term_memory/markers") is not None)
    namespaces = {m.ns for m in probe.latest(f"{NS}/long_term_memory/markers").markers}
    assert {"objects", "object_labels", "areas", "navigability", "relations"} <= namespaces


def test_a_late_subscriber_gets_the_current_view_without_waiting_for_a_change(probe: Probe) -> None:
    # the sim bridge sends observations on change only; nothing has changed since it started
    late = probe.subscribe(ObjectObservationArray, f"{NS}/observations", EVENTS)
    assert probe.wait_for(lambda: bool(late), 15.0)
    assert {o.source for o in late[0].observations} == {"sim_metadata"} and len(late[0].observations) > 3


def test_execute_skill_moves_the_robot_and_updates_the_graph(probe: Probe, stack: StackProcess) -> None:
    before = _graph(probe).version
    status, result, feedback = probe.run_action(ExecuteSkill, f"{NS}/execute_skill",
                                                ExecuteSkill.Goal(skill="GoToObject", args_json='{"object": "Fridge"}'))
    assert result.success, result.message
    assert result.object_id.startswith("Fridge|") and result.steps > 0 and result.sim_time_s > 0, result
    # feedback and result travel separately (no order between them): the last feedback may follow the result
    assert probe.wait_for(lambda: len(feedback) >= 2, 5.0)
    assert [f.status.split(" ")[0] for f in feedback] == ["running", "finished"], feedback
    # snapshots are throttled to a CPU duty (seconds apart on a loaded machine); every observation bumps the version
    assert probe.wait_for(lambda: _graph(probe).version > before, 20.0), (before, stack.text()[-3000:])
    status, result, _ = probe.run_action(ExecuteSkill, f"{NS}/execute_skill",
                                         ExecuteSkill.Goal(skill="Fly", args_json="{}"))
    assert not result.success and "unknown skill 'Fly'" in result.message
    assert stack.proc.poll() is None


def test_execute_task_plans_acts_and_fills_both_memories(probe: Probe) -> None:
    goal = ExecuteTask.Goal(instruction="Pick up the apple, then put it in the fridge.",
                            goal_conditions="INSIDE(Apple, Fridge): 1")
    status, result, feedback = probe.run_action(ExecuteTask, f"{NS}/execute_task", goal, timeout=60.0)
    skills = [s.skill for s in result.steps]
    assert result.success, (result.message, skills)
    assert {"PickupObject", "PutObject"} <= set(skills) and all(s.success for s in result.steps)
    assert probe.wait_for(lambda: len(feedback) >= len(skills), 5.0), (feedback, skills)  # may trail the result
    assert [f.step.skill for f in feedback] == skills and [f.current_step for f in feedback] == list(range(len(skills)))
    assert result.sim_time_s == pytest.approx(sum(s.sim_time_s for s in result.steps))
    assert json.loads(result.steps[skills.index("PickupObject")].args_json)["object"].startswith("Apple")
    # the second sub-instruction acted again on the apple, which the first had put in short-term memory
    assert (result.memory_queries, result.memory_hits) == (1, 1)
    # the pick-up was reported as an interaction: the apple is a short-term memory unit now
    assert probe.wait_for(lambda: any(u.object_type == "Apple" for u in _stm(probe).units), 5.0)
    assert probe.wait_for(lambda: any(m.ns == "stm_units" for m in
                                      probe.latest(f"{NS}/short_term_memory/markers").markers), 5.0)
    apple = next(u.object_id for u in _stm(probe).units if u.object_type == "Apple")
    found = probe.call(QueryShortTermMemory, f"{NS}/short_term_memory/query",
                       QueryShortTermMemory.Request(object_type="Apple", needed_object_id=apple))
    assert found.success and found.hit and found.units[0].object_type == "Apple"


@pytest.mark.parametrize("goal, reason", [
    (ExecuteTask.Goal(instruction="Put the apple in the fridge.", goal_conditions="INSIDE((Apple"), "goal"),
    (ExecuteTask.Goal(instruction="Put the apple in the fridge.", scene="FloorPlan2"), "FloorPlan2"),
    (ExecuteTask.Goal(instruction="Sing a song."), "planning failed"),
])
def test_bad_tasks_fail_with_a_reason_and_the_planner_keeps_serving(probe: Probe, stack: StackProcess,
                                                                     goal: ExecuteTask.Goal, reason: str) -> None:
    status, result, _ = probe.run_action(ExecuteTask, f"{NS}/execute_task", goal, timeout=30.0)
    assert not result.success and reason in result.message, result.message
    assert stack.proc.poll() is None


def test_a_cancelled_task_stops_before_its_next_skill(probe: Probe, stack: StackProcess) -> None:
    goal = ExecuteTask.Goal(instruction="Pick up the apple, then put it in the fridge, then open the microwave.")
    status, result, feedback = probe.run_action(ExecuteTask, f"{NS}/execute_task", goal, timeout=60.0,
                                                cancel_when=lambda fb: len(fb) >= 1)
    assert status == GoalStatus.STATUS_CANCELED and "cancelled" in result.message, result.message
    assert 1 <= len(result.steps) < 6
    status, result, _ = probe.run_action(ExecuteTask, f"{NS}/execute_task",
                                         ExecuteTask.Goal(instruction="Open the microwave."), timeout=60.0)
    assert status == GoalStatus.STATUS_SUCCEEDED and stack.proc.poll() is None


def _obs(object_id: str, x: float = 1.0, frame: str = "map", movable: bool = True) -> ObjectObservation:
    msg = ObjectObservation(object_id=object_id, object_type=object_id.split("|")[0], kind=ObjectObservation.ADDED,
                            position=Point(x=x, y=0.5, z=0.9), source="test", movable=movable)
    msg.header.frame_id = frame
    msg.header.stamp = seconds_to_stamp(2e9)  # newer than anything the stack saw
    return msg


@pytest.mark.parametrize("case, observations, frame, reason", [
    ("nan", [_obs("Ghost|1"), _obs("Ghost|2", x=math.nan)], "map", "must be finite"),
    ("area id", [_obs("area_0", movable=False)], "map", "names a area node"),
    ("frame", [_obs("Ghost|3")], "odom", "expected 'map'"),
    ("element frame", [_obs("Ghost|4", frame="base_link")], "map", "frame_id 'base_link'"),
    ("oversized", [_obs(f"Ghost|{i}") for i in range(51)], "map", "the limit is 50"),
])
def test_bad_observations_are_rejected_and_memory_is_unchanged(probe: Probe, stack: StackProcess, case: str,
                                                                observations: list, frame: str, reason: str) -> None:
    version, units = _settled(probe), [u.object_id for u in _stm(probe).units]
    acks = probe.messages[f"{NS}/long_term_memory/processed"], probe.messages[f"{NS}/short_term_memory/processed"]
    counts = [len(a) for a in acks]
    stamp = seconds_to_stamp(2e9 + len(probe.messages[f"{NS}/long_term_memory/processed"]))
    msg = ObjectObservationArray(header=Header(stamp=stamp, frame_id=frame), observations=observations)
    probe.publish(ObjectObservationArray, f"{NS}/observations", msg, EVENTS)
    assert probe.wait_for(lambda: all(len(a) > c for a, c in zip(acks, counts)), 5.0), "memories did not process it"
    assert stack.wait_for_log(f"rejected observations, memory unchanged: .*{reason}", 5.0), stack.text()[-3000:]
    assert _graph(probe).version == version and [u.object_id for u in _stm(probe).units] == units
    assert all(a[-1].frame_id == str(version) for a in acks[:1])  # the LTM acknowledged at the same version
    assert stack.proc.poll() is None


def test_memories_keep_working_after_bad_input(probe: Probe) -> None:
    before = _settled(probe)
    msg = ObjectObservationArray(header=Header(stamp=seconds_to_stamp(2.05e9), frame_id="map"),
                                 observations=[_obs("Ghost|9")])
    probe.publish(ObjectObservationArray, f"{NS}/observations", msg, EVENTS)
    assert probe.wait_for(lambda: _graph(probe).version > before, 5.0)
    got = probe.call(QueryLongTermMemory, f"{NS}/long_term_memory/query",
                     QueryLongTermMemory.Request(kind=QueryLongTermMemory.Request.GET_OBJECT, object_id="Ghost|9"))
    assert got.success and got.objects[0].position.x == pytest.approx(1.0)
    missing = probe.call(QueryLongTermMemory, f"{NS}/long_term_memory/query",
                         QueryLongTermMemory.Request(kind=QueryLongTermMemory.Request.GET_OBJECT, object_id="Nope|1"))
    assert not missing.success and "Nope|1" in missing.message
    bad_kind = probe.call(QueryLongTermMemory, f"{NS}/long_term_memory/query", QueryLongTermMemory.Request(kind=7))
    assert not bad_kind.success and "unknown query kind 7" in bad_kind.message
    ranked = probe.call(QueryLongTermMemory, f"{NS}/long_term_memory/query",
                        QueryLongTermMemory.Request(kind=QueryLongTermMemory.Request.RANK_AREAS, object_type="Apple",
                                                    max_results=3))
    assert ranked.success and len(ranked.areas) == 3 and ranked.areas[0].score >= ranked.areas[-1].score
    stm = probe.call(QueryShortTermMemory, f"{NS}/short_term_memory/query",
                     QueryShortTermMemory.Request(object_id="Nope|1"))
    assert not stm.success and "Nope|1" in stm.message


def _set(probe: Probe, node: str, name: str, value: object) -> tuple[bool, str]:
    kind = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
            float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}[type(value)]
    field = {bool: "bool_value", int: "integer_value", float: "double_value", str: "string_value"}[type(value)]
    param = Parameter(name=name, value=ParameterValue(type=kind, **{field: value}))
    response = probe.call(SetParameters, f"{NS}/{node}/set_parameters", SetParameters.Request(parameters=[param]))
    return response.results[0].successful, response.results[0].reason


def test_runtime_parameter_changes_are_validated(probe: Probe) -> None:
    ok, reason = _set(probe, "short_term_memory", "capacity", 0)
    assert not ok and "capacity" in reason
    ok, reason = _set(probe, "short_term_memory", "policy", "random")
    assert not ok and "random" in reason
    ok, reason = _set(probe, "long_term_memory", "move_threshold", -1.0)
    assert not ok and "move_threshold" in reason
    ok, _ = _set(probe, "long_term_memory", "area_spacing", 3.0)
    assert not ok  # read-only: the areas are built from it
    ok, reason = _set(probe, "short_term_memory", "capacity", 5)
    assert ok, reason
    assert probe.wait_for(lambda: _stm(probe).capacity == 5, 5.0)
    ok, reason = _set(probe, "short_term_memory", "policy", "lru")
    assert ok, reason
    assert probe.wait_for(lambda: _stm(probe).policy == "lru", 5.0)


def test_save_service_and_shutdown_flush(probe: Probe, stack: StackProcess, memory_dir: Path, tmp_path: Path) -> None:
    saved = probe.call(SaveMemory, f"{NS}/long_term_memory/save", SaveMemory.Request(directory=str(tmp_path)))
    assert saved.success and Path(saved.path).is_file()
    probe.close()
    assert stack.stop() == 0, stack.text()[-3000:]
    ltm = LongTermMemory(directory=memory_dir)
    ltm.load()
    assert "Ghost|9" in ltm.graph
    apple = next(o for o in ltm.objects_of_type("Apple"))
    assert ltm.get_object(apple)["last_seen"] > 1e9  # stamped with ROS time by the sim bridge / agent
    stm = ShortTermMemory(directory=memory_dir)
    stm.load()
    assert any(u.object_type == "Apple" for u in stm.units())
