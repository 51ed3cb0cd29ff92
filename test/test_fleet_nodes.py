"""Fleet memory through ROS: long-term memory nodes in /robot1 and /robot2 share one real Chroma server."""

from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from typing import Iterator

import pytest
from chroma_server import chroma_server, raw_collection  # noqa: F401 (fixture)
from geometry_msgs.msg import Point
from karma_interfaces.msg import (
    FleetRecords, ObjectObservation, ObjectObservationArray, SceneGraph, SceneGraphDelta,
)
from std_msgs.msg import Header, String

from karma_memory.core.errors import ConfigError
from karma_memory.core.fleet import ChromaConfig, FleetStatus
from karma_memory.core.fleet.records import FIELDS, ObjectRecord, to_wire
from karma_memory.core.fleet.settings import backend_settings, default_robot_id, fleet_parameters, status_dict
from karma_memory.core.long_term import LongTermMemory
from karma_memory.launcher import coerce_overrides
from karma_memory.nodes.conversions import seconds_to_stamp
from karma_memory.nodes.qos import EVENTS, LATCHED
from ros_fixtures import Probe, StackProcess, ros_session, start_stack

ROBOTS = ("robot1", "robot2")
COLLECTION = "ros-fleet"


# ---- settings: no ROS, no server ------------------------------------------------------------------------
def test_every_chroma_setting_is_a_fleet_parameter_with_its_default() -> None:
    params = fleet_parameters()
    assert params["ltm_backend"][0] == "local"
    for name, value in vars(ChromaConfig("r")).items():
        assert params[f"fleet.{name}"][0] == ("" if name == "robot_id" else value), name
    assert params["fleet.poll_interval_s"][0] > 0 and params["fleet.status_interval_s"][0] > 0


def test_backend_settings_from_parameters() -> None:
    values = {name: default for name, (default, _) in fleet_parameters().items()}
    assert backend_settings(values, "/robot1")[:2] == ("local", None)
    values.update({"ltm_backend": "chroma", "fleet.port": 9100, "fleet.batch_size": 64})
    name, config, node = backend_settings(values, "/robot1")
    assert (name, config.robot_id, config.port, config.batch_size) == ("chroma", "robot1", 9100, 64)
    assert node == {"poll_interval_s": 0.05, "status_interval_s": 1.0, "live_topic": "/fleet/records"}
    assert backend_settings(dict(values, **{"fleet.live_topic": ""}), "/robot1")[2]["live_topic"] == ""
    assert backend_settings(dict(values, **{"fleet.robot_id": "scout"}), "/robot1")[1].robot_id == "scout"
    assert default_robot_id("/site/robot 2") == "site_robot_2" and default_robot_id("/", "host-7") == "host-7"
    for bad, reason in [({"ltm_backend": "cloud"}, "ltm_backend must be one of"),
                        ({"fleet.port": 70000}, "port must be in"),
                        ({"fleet.pull_interval_s": 0.0}, "pull_interval_s must be a positive"),
                        ({"fleet.embedder": "bert"}, "embedder must be one of"),
                        ({"fleet.poll_interval_s": -1.0}, "poll_interval_s must be a positive"),
                        ({"fleet.live_topic": "fleet/records"}, "absolute topic name"),
                        ({"fleet.live_topic": 3}, "absolute topic name"),
                        ({"fleet.robot_id": "a@b"}, "without '@'")]:
        with pytest.raises(ConfigError, match=reason):
            backend_settings(dict(values, **bad), "/robot1")
    status = status_dict(FleetStatus("chroma", "robot1", online=True, pending=3))
    assert json.loads(json.dumps(status))["push_ms_p50"] is None and status["pending"] == 3


def test_launcher_passes_fleet_parameters_with_their_declared_types() -> None:
    got = coerce_overrides({"long_term_memory": {"ltm_backend": "chroma", "fleet.port": 9100,
                                                 "fleet.pull_interval_s": 1, "fleet.durable": False, "nope": 3}})
    assert got == {"long_term_memory": {"ltm_backend": "chroma", "fleet.port": 9100, "fleet.pull_interval_s": 1.0,
                                        "fleet.durable": False, "nope": 3}}
    assert type(got["long_term_memory"]["fleet.pull_interval_s"]) is float


def test_fleet_up_ros_gives_each_robot_a_namespaced_stack_on_the_shared_server(tmp_path: Path, capsys) -> None:
    from karma_memory.fleet import stack_arguments
    from karma_memory.launcher import main as stack_main
    from karma_memory.launcher import parse_overrides

    args = stack_arguments("robot_1", "FloorPlan1", 9100, "fleet-FloorPlan1", tmp_path / "robot_1",
                           ["planner.use_stm=false"])
    overrides = parse_overrides(args[i + 1] for i, a in enumerate(args) if a == "-p")
    assert overrides["long_term_memory"] == {"ltm_backend": "chroma", "fleet.port": 9100,
                                             "fleet.collection": "fleet-FloorPlan1", "fleet.robot_id": "robot_1",
                                             "memory_dir": str(tmp_path / "robot_1"), "scene_objects": False}
    assert overrides["planner"] == {"use_stm": False}
    assert stack_main(["--dry-run", *args]) == 0
    out = capsys.readouterr()
    assert all("__ns:=/robot_1" in line for line in out.out.splitlines())
    assert "ltm_backend: chroma" in out.err and "fleet.port: 9100" in out.err  # the overrides file passed on


# ---- two memory nodes, two namespaces, one server -------------------------------------------------------------
def _params(port: int, memory_dir: Path) -> dict:
    """A long-term memory node on the fleet backend (fast sync intervals; no sentence model needed)."""
    return {"long_term_memory.ltm_backend": "chroma", "long_term_memory.fleet.port": port,
            "long_term_memory.fleet.collection": COLLECTION, "long_term_memory.fleet.embedder": "type_hash",
            "long_term_memory.fleet.flush_interval_s": 0.05, "long_term_memory.fleet.pull_interval_s": 0.05,
            "long_term_memory.fleet.status_interval_s": 0.2, "long_term_memory.memory_dir": memory_dir,
            "long_term_memory.warm_up": False, "long_term_memory.semantic_weight": 0.0}


@pytest.fixture(scope="module")
def ros() -> Iterator[None]:
    yield from ros_session()


@pytest.fixture(scope="module")
def stacks(ros: None, chroma_server, tmp_path_factory: pytest.TempPathFactory  # noqa: F811
           ) -> Iterator[dict[str, tuple[StackProcess, Path]]]:
    running: dict[str, tuple[StackProcess, Path]] = {}
    try:
        for robot in ROBOTS:
            memory_dir = tmp_path_factory.mktemp(f"{robot}_memory")
            running[robot] = (start_stack(tmp_path_factory.mktemp(robot), ["long_term_memory"],
                                          _params(chroma_server.port, memory_dir), namespace=robot), memory_dir)
        yield running
    finally:
        for process, _ in running.values():
            process.stop()


@pytest.fixture(scope="module")
def probe(stacks: dict[str, tuple[StackProcess, Path]]) -> Iterator[Probe]:
    probe = Probe("fleet_probe")
    for robot in ROBOTS:
        probe.subscribe(SceneGraph, f"/{robot}/scene_graph", LATCHED)
        probe.subscribe(SceneGraphDelta, f"/{robot}/scene_graph/delta", EVENTS)
        probe.subscribe(String, f"/{robot}/long_term_memory/fleet_status", LATCHED)
    for robot in ROBOTS:
        logs = stacks[robot][0].text()
        assert probe.wait_for(lambda r=robot: _status(probe, r).get("online") is True, 60.0), logs[-3000:]
    yield probe
    probe.close()


def _status(probe: Probe, robot: str) -> dict:
    msg = probe.latest(f"/{robot}/long_term_memory/fleet_status")
    return json.loads(msg.data) if msg is not None else {}


def _node(probe: Probe, robot: str, object_id: str):  # noqa: ANN202 — a SceneGraphNode message or None
    graph = probe.latest(f"/{robot}/scene_graph")
    return next((n for n in graph.nodes if n.id == object_id), None) if graph is not None else None


def test_an_observation_on_robot1_reaches_robot2s_scene_graph(probe: Probe, chroma_server,  # noqa: F811
                                                              stacks: dict[str, tuple[StackProcess, Path]]) -> None:
    assert _status(probe, "robot1")["robot_id"] == "robot1" and _status(probe, "robot2")["robot_id"] == "robot2"
    assert _status(probe, "robot1")["backend"] == "chroma"
    observation = ObjectObservation(object_id="Apple|7", object_type="Apple", kind=ObjectObservation.ADDED,
                                    position=Point(x=1.5, y=-0.25, z=0.9), source="test", movable=True)
    observation.header.frame_id = "map"
    observation.header.stamp = seconds_to_stamp(1.7e9)
    msg = ObjectObservationArray(header=Header(stamp=seconds_to_stamp(1.7e9), frame_id="map"),
                                 observations=[observation])
    deltas = probe.messages["/robot2/scene_graph/delta"]
    seen_deltas = len(deltas)
    started = time.monotonic()
    probe.publish(ObjectObservationArray, "/robot1/observations", msg, EVENTS)
    assert probe.wait_for(lambda: _node(probe, "robot2", "Apple|7") is not None, 15.0), \
        stacks["robot2"][0].text()[-3000:]
    lag = time.monotonic() - started
    mine, theirs = _node(probe, "robot1", "Apple|7"), _node(probe, "robot2", "Apple|7")
    assert theirs.robot_id == "robot1" and theirs.object_type == "Apple" and theirs.movable
    for axis in "xyz":
        assert math.isclose(getattr(theirs.position, axis), getattr(mine.position, axis), abs_tol=1e-6)
    assert theirs.position.x == pytest.approx(1.5)
    # published like a local change: a delta, then the latched snapshot
    assert any("Apple|7" in [n.id for n in d.upserted_nodes] for d in deltas[seen_deltas:])
    records = raw_collection(chroma_server, COLLECTION).get(where={"robot_id": "robot1"}, include=["metadatas"])
    assert records["ids"] == ["Apple|7@robot1"]  # once, written by robot1 only
    assert probe.wait_for(lambda: _status(probe, "robot2")["merged"] >= 1 and _status(probe, "robot1")["pushed"] >= 1
                          and _status(probe, "robot1")["pending"] == 0, 5.0)
    assert lag < 10.0


def test_the_live_topic_carries_records_and_bad_messages_are_dropped(probe: Probe,  # noqa: F811
                                                                    stacks: dict[str, tuple[StackProcess, Path]]
                                                                    ) -> None:
    # what robot1 sends before DDS matched robot2's reader is lost on the topic (the pull brings it): a few
    # objects, until one came live
    received = _status(probe, "robot2")["live_received"]
    for k in range(10):
        _observe(probe, "robot1", f"Mug|{40 + k}", 1.0, 1.7e9 + 5 + k / 100)
        assert probe.wait_for(lambda k=k: _node(probe, "robot2", f"Mug|{40 + k}") is not None, 15.0)
        if probe.wait_for(lambda: _status(probe, "robot2")["live_received"] > received, 2.0):
            break
    assert _status(probe, "robot2")["live_received"] > received and _status(probe, "robot1")["live_sent"] >= 1
    # malformed messages on the fleet's topic: logged, dropped, never merged; the nodes keep serving
    rid, meta, _ = to_wire(ObjectRecord("Ghost|1", "robot1", 1, True, "Ghost", (1.0, 0.9, 1.0),
                                        fields={f: (1.7e9 + 6, "robot1", 1) for f in FIELDS}))
    bad = [FleetRecords(robot_id="robot1", record_ids=[rid], records=["{not json"]),
           FleetRecords(robot_id="robot1", record_ids=[rid, rid], records=[json.dumps(meta)]),
           FleetRecords(robot_id="robot1", record_ids=[rid], records=[json.dumps(dict(meta, schema_version=99))]),
           FleetRecords(robot_id="intruder", record_ids=[rid], records=[json.dumps(meta)])]
    for msg in bad:
        probe.publish(FleetRecords, "/fleet/records", msg, EVENTS)
    assert probe.wait_for(lambda: _status(probe, "robot2")["rejected"] >= 2, 10.0)
    _observe(probe, "robot1", "Mug|5", 1.2, 1.7e9 + 7)  # still merging what is valid
    assert probe.wait_for(lambda: _node(probe, "robot2", "Mug|5") is not None, 15.0)
    assert all(_node(probe, r, "Ghost|1") is None for r in ROBOTS)
    logs = stacks["robot2"][0].text()
    for reason in ("not JSON", "2 ids but 1 records", "unknown schema version 99", "not from its writer"):
        assert reason in logs, reason
    assert all(process.proc.poll() is None for process, _ in stacks.values())


ROBOT1_OBJECTS = {"Apple|7"}  # what the tests had robot1 observe (its records on the server)


def _observe(probe: Probe, robot: str, object_id: str, x: float, stamp: float) -> None:
    if robot == "robot1":
        ROBOT1_OBJECTS.add(object_id)
    observation = ObjectObservation(object_id=object_id, object_type=object_id.split("|")[0],
                                    kind=ObjectObservation.ADDED, position=Point(x=x, y=-0.25, z=0.9), source="test",
                                    movable=True)
    observation.header.frame_id = "map"
    observation.header.stamp = seconds_to_stamp(stamp)
    msg = ObjectObservationArray(header=Header(stamp=seconds_to_stamp(stamp), frame_id="map"),
                                 observations=[observation])
    probe.publish(ObjectObservationArray, f"/{robot}/observations", msg, EVENTS)


def test_kill_9_memory_node_restarts_from_its_copy_and_the_server(probe: Probe, chroma_server,  # noqa: F811
                                                                   stacks: dict[str, tuple[StackProcess, Path]],
                                                                   tmp_path: Path) -> None:
    process, memory_dir = stacks["robot1"]
    acks = probe.subscribe(Header, "/robot1/long_term_memory/processed", EVENTS)
    _observe(probe, "robot1", "Apple|8", 2.0, 1.7e9 + 10)
    assert probe.wait_for(lambda: any(a.stamp == seconds_to_stamp(1.7e9 + 10) for a in acks), 10.0)
    os.kill(process.child_pids()[0], signal.SIGKILL)  # right after the observation: maybe before its upload
    process.stop()
    _observe(probe, "robot2", "Bowl|3", 0.5, 1.7e9 + 20)  # seen by robot2 while robot1 is down
    assert probe.wait_for(lambda: _node(probe, "robot2", "Bowl|3") is not None, 10.0)
    restarted = start_stack(tmp_path, ["long_term_memory"], _params(chroma_server.port, memory_dir), "robot1")
    stacks["robot1"] = (restarted, memory_dir)
    wanted = ("Apple|7", "Apple|8", "Bowl|3")
    assert probe.wait_for(lambda: all(_node(probe, "robot1", o) is not None for o in wanted), 30.0), \
        restarted.text()[-3000:]
    assert probe.wait_for(lambda: _node(probe, "robot2", "Apple|8") is not None, 10.0)
    assert _node(probe, "robot1", "Bowl|3").robot_id == "robot2"
    records = raw_collection(chroma_server, COLLECTION).get(where={"robot_id": "robot1"}, include=["metadatas"])
    assert sorted(records["ids"]) == sorted(f"{o}@robot1" for o in ROBOT1_OBJECTS)  # each once, however often replayed


def test_shutdown_flushes_and_saves_the_fleet_watermarks(probe: Probe,
                                                         stacks: dict[str, tuple[StackProcess, Path]]) -> None:
    assert probe.wait_for(lambda: _node(probe, "robot2", "Apple|7") is not None, 15.0)
    process, memory_dir = stacks["robot2"]
    assert process.stop() == 0, process.text()[-3000:]
    saved = LongTermMemory(directory=memory_dir)
    saved.load()
    assert "Apple|7" in saved.graph
    assert saved.graph.graph["fleet"]["watermarks"]["robot1"] > 0  # a restart continues from here, not from zero
