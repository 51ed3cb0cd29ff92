"""karma_interfaces: every generated type imports and serialises, constants match the core, files are documented."""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.type_support import check_for_type_support

from karma_memory.core.types import OBJECT_STATES, RELATIONS, ObservationKind

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "karma_interfaces"
VENV = ROOT / ".venv"

MSGS = ["Relation", "ObjectObservation", "ObjectObservationArray", "InstanceLabels", "MemoryUnit",
        "ShortTermMemoryState", "SceneGraphNode", "SceneGraphEdge", "SceneGraph", "SceneGraphDelta",
        "AreaScore", "StepReport", "FleetRecords"]
SRVS = ["QueryLongTermMemory", "QueryShortTermMemory", "SaveMemory", "LoadMemory", "ResetMemory"]
ACTIONS = ["ExecuteSkill", "ExecuteTask"]
FILES = [f"msg/{n}.msg" for n in MSGS] + [f"srv/{n}.srv" for n in SRVS] + [f"action/{n}.action" for n in ACTIONS]

_CONSTANT = re.compile(r"^\s*[\w/]+\s+[A-Z][A-Z0-9_]*\s*=")
_FIELD = re.compile(r"^\s*[\w/]+(\[\d*\]|\[<=\d+\])?\s+[a-z][a-z0-9_]*(\s|$)")


def _generated_types() -> list[tuple[str, type]]:
    out = [(f"msg/{n}", getattr(importlib.import_module("karma_interfaces.msg"), n)) for n in MSGS]
    for n in SRVS:
        srv = getattr(importlib.import_module("karma_interfaces.srv"), n)
        out += [(f"srv/{n}.Request", srv.Request), (f"srv/{n}.Response", srv.Response)]
    for n in ACTIONS:
        action = getattr(importlib.import_module("karma_interfaces.action"), n)
        out += [(f"action/{n}.{part}", getattr(action, part)) for part in ("Goal", "Result", "Feedback")]
    return out


def test_source_files_match_cmakelists() -> None:
    on_disk = {str(p.relative_to(PKG)) for d in ("msg", "srv", "action") for p in (PKG / d).iterdir()}
    listed = set(re.findall(r'"((?:msg|srv|action)/\w+\.(?:msg|srv|action))"', (PKG / "CMakeLists.txt").read_text()))
    assert on_disk == listed == set(FILES)


def test_package_manifest() -> None:
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(PKG / "package.xml"))
    assert pkg.name == "karma_interfaces"
    assert pkg.get_build_type() == "ament_cmake"
    assert "rosidl_interface_packages" in [g.name for g in pkg.member_of_groups]
    deps = {d.name for d in pkg.build_depends + pkg.exec_depends}
    assert {"builtin_interfaces", "std_msgs", "geometry_msgs", "rosidl_default_runtime"} <= deps
    assert re.search(r"DEPENDENCIES builtin_interfaces std_msgs geometry_msgs", (PKG / "CMakeLists.txt").read_text())


@pytest.mark.parametrize("name,cls", _generated_types(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_generated_type_imports_and_serialises(name: str, cls: type) -> None:
    msg = cls()
    check_for_type_support(cls)
    back = deserialize_message(serialize_message(msg), cls)
    assert back == msg, name


def test_actions_and_services_have_type_support() -> None:
    import karma_interfaces.action as action
    import karma_interfaces.srv as srv

    for n in SRVS:
        check_for_type_support(getattr(srv, n))
    for n in ACTIONS:
        check_for_type_support(getattr(action, n))


def test_nested_message_survives_the_wire() -> None:
    from geometry_msgs.msg import Point
    from karma_interfaces.action import ExecuteTask
    from karma_interfaces.msg import SceneGraph, SceneGraphEdge, SceneGraphNode, StepReport

    graph = SceneGraph(version=7, nodes=[
        SceneGraphNode(id="area_1", level=SceneGraphNode.AREA, position=Point(x=1.0, y=-2.0, z=0.0)),
        SceneGraphNode(id="Fridge|1", level=SceneGraphNode.OBJECT, object_type="Fridge", parent_id="area_1",
                       states=["closed"])],
        edges=[SceneGraphEdge(source="area_1", target="Fridge|1", relation=SceneGraphEdge.CONTAINS)])
    graph.header.frame_id = "map"
    assert deserialize_message(serialize_message(graph), SceneGraph) == graph
    step = StepReport(index=0, skill="Explore", args_json='{"object": "Apple"}')
    result = ExecuteTask.Result(success=True, steps=[step], explorations=3, memory_hits=1, memory_queries=2,
                                sim_time_s=12.5)
    assert deserialize_message(serialize_message(result), ExecuteTask.Result) == result


def test_constants_match_the_core() -> None:
    from karma_interfaces.msg import ObjectObservation, Relation, SceneGraphEdge, SceneGraphNode
    from karma_interfaces.srv import QueryLongTermMemory

    kinds = {k.name: getattr(ObjectObservation, k.name) for k in ObservationKind}
    assert sorted(kinds.values()) == list(range(len(ObservationKind)))
    assert {Relation.ON, Relation.INSIDE, Relation.NEAR} == set(RELATIONS)
    edge = {SceneGraphEdge.CONTAINS, SceneGraphEdge.NAVIGABLE, SceneGraphEdge.ON, SceneGraphEdge.INSIDE,
            SceneGraphEdge.NEAR}
    assert edge == {"contains", "navigable"} | set(RELATIONS)
    assert [SceneGraphNode.FLOOR, SceneGraphNode.AREA, SceneGraphNode.OBJECT] == [0, 1, 2]
    req = QueryLongTermMemory.Request
    assert len({req.RANK_AREAS, req.GET_OBJECT, req.FIND_BY_TYPE}) == 3


def test_field_types_and_defaults() -> None:
    from karma_interfaces.msg import InstanceLabels, MemoryUnit, ObjectObservation, ShortTermMemoryState

    fields = ObjectObservation.get_fields_and_field_types()
    assert fields["header"] == "std_msgs/Header"
    assert fields["position"] == "geometry_msgs/Point" and fields["size"] == "geometry_msgs/Vector3"
    assert fields["states"] == "sequence<string>"
    assert fields["relations"] == "sequence<karma_interfaces/Relation>"
    assert fields["kind"] == "uint8" and fields["confidence"] == "float" and fields["has_size"] == "boolean"
    obs = ObjectObservation()
    assert obs.confidence == 1.0 and obs.movable is True and obs.kind == ObjectObservation.SEEN
    assert MemoryUnit.get_fields_and_field_types()["last_seen"] == "builtin_interfaces/Time"
    assert MemoryUnit.get_fields_and_field_types()["hits"] == "uint32"
    assert ShortTermMemoryState.get_fields_and_field_types()["hit_rate"] == "double"
    assert InstanceLabels.get_fields_and_field_types()["instance_ids"] == "sequence<int32>"
    # the state vocabulary named in the comments is the core's
    text = (PKG / "msg" / "ObjectObservation.msg").read_text()
    assert all(state in text for state in OBJECT_STATES)


def _declarations(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    return [(i, line) for i, line in enumerate(lines)
            if line.strip() and not line.lstrip().startswith("#") and line.strip() != "---"]


@pytest.mark.parametrize("rel", FILES)
def test_every_file_and_declaration_is_commented(rel: str) -> None:
    path = PKG / rel
    lines = path.read_text().splitlines()
    assert lines and lines[0].startswith("# ") and len(lines[0]) > 20, f"{rel}: no header comment"
    for i, line in _declarations(path):
        assert _FIELD.match(line) or _CONSTANT.match(line), f"{rel}:{i + 1}: not a field or constant: {line!r}"
        if "#" in line:  # an inline comment documents the declaration
            continue
        j = i - 1
        if _CONSTANT.match(line):  # a group of constants shares the comment above the group
            while j >= 0 and _CONSTANT.match(lines[j]):
                j -= 1
        assert j >= 0 and lines[j].lstrip().startswith("#"), f"{rel}:{i + 1}: {line.strip()!r} has no comment"


@pytest.mark.parametrize("rel", FILES)
def test_installed_definitions_are_current(rel: str) -> None:
    """The venv holds what `ros2 interface show` would print: the source file, unchanged."""
    installed = VENV / "share" / "karma_interfaces" / rel
    assert installed.exists(), f"{installed} missing: run scripts/setup_venv.sh"
    assert installed.read_text() == (PKG / rel).read_text(), f"{rel} changed since the build: run scripts/setup_venv.sh"


def test_ament_index_lists_every_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    from ament_index_python.packages import get_package_share_directory
    from ament_index_python.resources import get_resource

    monkeypatch.setenv("AMENT_PREFIX_PATH", os.environ.get("AMENT_PREFIX_PATH", str(VENV)))
    assert Path(get_package_share_directory("karma_interfaces")).is_dir()
    content, _ = get_resource("rosidl_interfaces", "karma_interfaces")
    listed = set(content.split())
    for rel in FILES:
        assert rel in listed, rel
