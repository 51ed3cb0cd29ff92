"""Replay the fixture bags into the perception and memory nodes: the scene graph they build is the core pipeline's.

The expected memory is computed from the same bag in-process (perception → both memories, exactly the
conversions the nodes run) and must also equal the committed ``<bag>.expected.json``; a separate test
regenerates the fixtures and checks they are current (byte-identical bags, same JSON).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from karma_memory.bagio import iter_messages, open_reader, read_info
from karma_memory.bench.bags import (
    FIXTURE_SCENE,
    STAMP_BASE_S,
    NodeRig,
    camera_topics,
    compare_summaries,
    expected_from_bag,
    replay_parameters,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPLORE = FIXTURES / f"explore_{FIXTURE_SCENE}"
TASK = FIXTURES / f"task_{FIXTURE_SCENE}"


def _document(bag: Path) -> dict:
    return json.loads(bag.with_name(bag.name + ".expected.json").read_text())


@pytest.fixture(scope="module")
def expected() -> dict[str, dict]:
    """Expected memories computed now, by the core pipeline, from the committed bags.

    The nodes are held to this (not to the committed JSON), so a change in perception or the memories
    that the fixtures have not caught up with yet fails only the freshness tests below.
    """
    out = {}
    for bag in (EXPLORE, TASK):
        document = _document(bag)
        out[bag.name] = {**document, **expected_from_bag(bag, document["scene"]).summary()}
    return out


def test_committed_expected_memory_is_current(expected) -> None:
    for bag in (EXPLORE, TASK):
        document = _document(bag)
        assert (document["ltm"], document["stm"]) == (expected[bag.name]["ltm"], expected[bag.name]["stm"]), \
            f"{bag.name}.expected.json is stale (the core pipeline changed): run scripts/make_fixture_bags.py"


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    # two perception nodes load side by side, one per camera replay (2x, 5x): no restart in between
    with NodeRig(tmp_path_factory.mktemp("replay"), replay_parameters(FIXTURE_SCENE, perceptions=2)) as running:
        running.start()
        yield running


def test_fixtures_are_small_self_describing_bags() -> None:
    total = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    assert total < 3_000_000
    explore = read_info(EXPLORE)
    assert explore.storage == "mcap" and explore.compression == "mcap chunks"
    assert {t.name for t in explore.topics} == set(camera_topics().values()) | {"/base/pose"}
    assert {t.count for t in explore.topics} == {_document(EXPLORE)["frames"]}
    task = read_info(TASK)
    assert task.topic("/observations").count == _document(TASK)["observation_messages"]
    with open_reader(EXPLORE) as reader:
        (conn, _, raw), = [m for m in iter_messages(reader, ["/camera/rgb/image_raw"])][:1]
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image

    image = deserialize_message(bytes(raw), Image)
    assert (image.width, image.height, image.encoding) == (160, 120, "rgb8")


def test_expected_memory_reflects_the_scene_and_the_task(expected) -> None:
    explore = expected[EXPLORE.name]["ltm"]
    types = {o["type"] for o in explore["objects"].values()}
    assert {"Fridge", "CounterTop", "Apple", "Cabinet"} <= types and len(explore["objects"]) >= 30
    apple = next(i for i in explore["objects"] if i.startswith("Apple|"))
    assert [apple, "on", "CounterTop|-00.08|+01.15|00.00"] in explore["relations"]
    task = expected[TASK.name]
    mug = next(i for i in task["stm"] if i.startswith("Mug|"))
    assert task["stm"][mug]["relation"] == "inside CoffeeMachine|-01.98|+00.90|-00.19"
    assert [mug, "inside", "CoffeeMachine|-01.98|+00.90|-00.19"] in task["ltm"]["relations"]
    assert all(step["success"] for step in task["steps"])


RESULTS: dict[str, dict] = {}


def test_explore_replay_at_2x_builds_the_expected_graph(rig, expected) -> None:
    """Camera bag → perception → both memories: exactly what the core pipeline builds from the same frames."""
    document = expected[EXPLORE.name]
    result = rig.run_replay(EXPLORE, document, rate=2.0)
    assert result["converged"], result["acked_stamps_ns"]
    assert compare_summaries(document, result["summary"], document["position_tolerance_m"]) == []
    RESULTS["explore"] = result


def test_explore_replay_at_5x_converges_or_reports_dropped_frames(rig, expected) -> None:
    """At 5x, with a fresh perception node: the same graph as the 2x run, bit for bit, unless frames were lost,
    which the memories' acknowledgements (one per processed frame, stamped with it) then show."""
    document = expected[EXPLORE.name]
    result = rig.run_replay(EXPLORE, document, rate=5.0)
    frames = {round(STAMP_BASE_S * 1e9) + i * round(document["period_s"] * 1e9) for i in range(document["frames"])}
    for memory in ("ltm_ack", "stm_ack"):
        acked = result["acked_stamps_ns"][memory]
        assert set(acked) <= frames and len(acked) == len(set(acked))  # each processed frame once, in the bag
    dropped = frames - set(result["acked_stamps_ns"]["ltm_ack"])
    problems = compare_summaries(document, result["summary"], document["position_tolerance_m"])
    assert not problems or dropped, problems  # a wrong graph is only acceptable with the frames reported missing
    if not dropped:
        assert result["converged"] and not problems
        if "explore" in RESULTS:
            assert result["summary"] == RESULTS["explore"]["summary"]  # deterministic across runs and rates


def test_task_replay_rebuilds_both_memories_deterministically(rig, expected) -> None:
    """Observation bag (sim bridge + agent reports) → long- and short-term memory; twice, at 2x and 5x."""
    document = expected[TASK.name]
    runs = [rig.run_replay(TASK, document, rate=rate) for rate in (2.0, 5.0)]
    for result in runs:
        assert result["converged"], {k: v for k, v in result.items() if k != "summary"}  # reliable: none lost
        assert compare_summaries(document, result["summary"], document["position_tolerance_m"]) == []
        assert set(result["summary"]["stm"]) == set(document["stm"])
    assert runs[0]["summary"] == runs[1]["summary"]


def test_fixtures_regenerate_byte_identically(tmp_path) -> None:
    """scripts/make_fixture_bags.py is deterministic and the committed fixtures are current."""
    spec = importlib.util.spec_from_file_location("make_fixture_bags", FIXTURES.parent.parent / "scripts"
                                                  / "make_fixture_bags.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_fixtures(tmp_path)
    for path in sorted(p for p in FIXTURES.rglob("*") if p.is_file()):
        fresh = tmp_path / path.relative_to(FIXTURES)
        assert fresh.read_bytes() == path.read_bytes(), \
            f"{path.relative_to(FIXTURES)} differs from a fresh build: run scripts/make_fixture_bags.py"
    assert {p.relative_to(tmp_path) for p in tmp_path.rglob("*")} == \
        {p.relative_to(FIXTURES) for p in FIXTURES.rglob("*")}
