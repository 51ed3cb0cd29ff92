"""rosbag2 writing and reading with rosbags: bags the tests build in tmp_path, the karma typestore, bag errors."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import yaml
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, Writer
from rosbags.rosbag2.enums import StoragePlugin
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import Image

import karma_memory.bag as bag_cli
from karma_memory.bagio import (
    BagError,
    BagWriter,
    canonical_cdr,
    default_qos,
    ensure_types,
    format_info,
    iter_messages,
    open_reader,
    read_info,
    register_package,
    typestore,
)
from karma_memory.core.types import ObjectObservation, ObservationKind, Relation
from karma_memory.nodes import conversions as cv

OBS = [ObjectObservation("Apple|1", "Apple", (1.0, 0.9, -0.5), ObservationKind.MOVED, states=("sliced",),
                         relations=(Relation("on", "CounterTop|1"),), stamp=3.5, source="test"),
       ObjectObservation("Fridge|1", "Fridge", (-2.0, 0.0, 1.0), movable=False, stamp=3.5)]


def test_doctests_of_the_cli_module() -> None:
    assert doctest.testmod(bag_cli, raise_on_error=True).attempted >= 1


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_rosbags_writer_round_trip_with_standard_and_custom_types(tmp_path, storage) -> None:
    """A bag written with rosbags.rosbag2.Writer reads back message for message, stamps and all."""
    store = typestore()
    String = store.types["std_msgs/msg/String"]
    path = tmp_path / "bag"
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=storage) as writer:
        text = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=store)
        custom = writer.add_connection("/observations", "karma_interfaces/msg/ObjectObservationArray",
                                       typestore=store)
        for i in range(5):
            writer.write(text, 1_000 + i, store.serialize_cdr(String(data=f"hello {i}"), "std_msgs/msg/String"))
            msg = cv.observations_to_msg(OBS, 3.5 + i)  # an rclpy message, serialized by rclpy
            writer.write(custom, 1_000 + i, serialize_message(msg))
    with Reader(path) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == {"/chatter": 5, "/observations": 5}
        got = list(reader.messages())
    assert [t for _, t, _ in got] == sorted(t for _, t, _ in got)
    texts = [store.deserialize_cdr(raw, "std_msgs/msg/String").data for c, _, raw in got if c.topic == "/chatter"]
    assert texts == [f"hello {i}" for i in range(5)]
    arrays = [store.deserialize_cdr(raw, c.msgtype) for c, _, raw in got if c.topic == "/observations"]
    assert [a.header.stamp.sec for a in arrays] == [3, 4, 5, 6, 7]
    first = arrays[0].observations[0]
    assert (first.object_id, first.kind, list(first.states), first.relations[0].target_id) == \
        ("Apple|1", 2, ["sliced"], "CounterTop|1")
    assert first.movable is True and arrays[0].observations[1].movable is False
    # rclpy reads rosbags' bytes and the other way round
    back = deserialize_message(bytes(store.serialize_cdr(arrays[0], "karma_interfaces/msg/ObjectObservationArray")),
                               type(cv.observations_to_msg(OBS, 0.0)))
    assert [o.object_id for o in cv.observations_from_msg(back)] == ["Apple|1", "Fridge|1"]


def test_custom_types_hash_like_the_generated_type_support() -> None:
    """Definitions from the .msg files hash (RIHS01) as rclpy announces them: the bags are self-describing."""
    import rclpy
    from karma_interfaces.msg import MemoryUnit, ObjectObservationArray, SceneGraph, SceneGraphDelta
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = rclpy.create_node("hash_probe", context=context)
        store = typestore()
        for cls in (ObjectObservationArray, SceneGraph, SceneGraphDelta, MemoryUnit, Image):
            name = f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
            node.create_publisher(cls, f"/hash_probe/{cls.__name__}", 1)
            (info,) = node.get_publishers_info_by_topic(f"/hash_probe/{cls.__name__}")
            assert info.topic_type == name
            assert str(info.topic_type_hash) == store.hash_rihs01(name)
        node.destroy_node()
    finally:
        context.try_shutdown()
    msgdef, _ = store.generate_msgdef("karma_interfaces/msg/ObjectObservationArray", ros_version=2)
    assert "MSG: karma_interfaces/Relation" in msgdef and "bool movable" in msgdef


def test_bag_writer_declares_topics_once_and_closes_on_error(tmp_path) -> None:
    path = tmp_path / "b"
    with pytest.raises(RuntimeError):
        with BagWriter(path, "mcap") as bag:
            bag.add_topic("/image", "sensor_msgs/msg/Image", [default_qos(reliable=False)])
            assert bag.add_topic("/image", "sensor_msgs/msg/Image").topic == "/image"  # idempotent
            with pytest.raises(BagError, match="cannot also take"):
                bag.add_topic("/image", "std_msgs/msg/String")
            image = Image(height=2, width=3, encoding="mono8", step=3, data=list(range(6)))
            bag.write("/image", 5_000_000_000, serialize_message(image))
            with pytest.raises(BagError, match="topic not added"):
                bag.write("/nope", 1, b"")
            raise RuntimeError("recording interrupted")
    info = read_info(path)  # finished despite the exception: readable, with its metadata
    assert (info.message_count, info.storage, info.topic("/image").count) == (1, "mcap", 1)
    assert info.topic("/image").qos[0].reliability.name == "BEST_EFFORT"
    with open_reader(path) as reader:
        (_, stamp, raw), = list(iter_messages(reader, ["/image"]))
    assert stamp == 5_000_000_000 and list(deserialize_message(raw, Image).data) == list(range(6))
    with pytest.raises(BagError, match="bag is closed"):
        bag.write("/image", 1, b"")


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_compressed_bags_are_smaller_and_read_back(tmp_path, storage) -> None:
    image = Image(height=60, width=80, encoding="mono8", step=80, data=np.zeros(4800, np.uint8).tobytes())
    sizes = {}
    for compress in (False, True):
        path = tmp_path / f"{storage}-{compress}"
        with BagWriter(path, storage, compress=compress) as bag:
            bag.add_topic("/image", "sensor_msgs/msg/Image")
            for i in range(20):
                bag.write("/image", i, serialize_message(image))
        sizes[compress] = sum(f.stat().st_size for f in path.iterdir())
        with open_reader(path) as reader:
            assert sum(1 for _ in iter_messages(reader)) == 20
    assert sizes[True] < sizes[False] / 3


def test_metadata_is_rosbag2_v9_with_type_hashes(tmp_path) -> None:
    path = tmp_path / "b"
    with BagWriter(path) as bag:
        bag.add_topic("/observations", "karma_interfaces/msg/ObjectObservationArray")
        bag.write("/observations", 7, serialize_message(cv.observations_to_msg(OBS, 1.0)))
    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 9 and meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == ["b.mcap"] and (path / "b.mcap").is_file()
    topic = meta["topics_with_message_count"][0]["topic_metadata"]
    assert topic["type"] == "karma_interfaces/msg/ObjectObservationArray"
    assert topic["type_description_hash"] == typestore().hash_rihs01(topic["type"])
    # the mcap file carries the full definition (a plain ROS install can decode without karma_interfaces)
    assert b"MSG: karma_interfaces/ObjectObservation" in (path / "b.mcap").read_bytes()


def test_bag_writer_rejects_bad_requests(tmp_path) -> None:
    (tmp_path / "exists").mkdir()
    with pytest.raises(BagError, match="exists"):
        BagWriter(tmp_path / "exists")
    with pytest.raises(BagError, match="unknown storage 'rosbag1'"):
        BagWriter(tmp_path / "x", storage="rosbag1")
    with BagWriter(tmp_path / "y") as bag:
        with pytest.raises(BagError, match="not of the form"):
            bag.add_topic("/a", "std_msgs/String")
        with pytest.raises(BagError, match="no_such_pkg"):
            bag.add_topic("/a", "no_such_pkg/msg/Thing")
        with pytest.raises(BagError, match="has no message 'Nope'"):
            bag.add_topic("/a", "karma_interfaces/msg/Nope")
        with pytest.raises(BagError, match="different .msg files"):
            bag.add_topic("/a", "std_msgs/msg/String", rihs01="RIHS01_" + "0" * 64)


def test_reading_missing_or_broken_bags_raises_bag_error(tmp_path) -> None:
    with pytest.raises(BagError, match="does not exist"):
        read_info(tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "metadata.yaml").write_text("rosbag2_bagfile_information: {version: 99}\n")
    with pytest.raises(BagError, match="cannot open bag"):
        read_info(broken)
    path = tmp_path / "ok"
    with BagWriter(path) as bag:
        bag.add_topic("/a", "std_msgs/msg/String")
    with open_reader(path) as reader:
        with pytest.raises(BagError, match=r"no topic\(s\) \['/b'\]"):
            list(iter_messages(reader, ["/b"]))


def test_info_formats_topics_and_counts(tmp_path) -> None:
    path = tmp_path / "b"
    with BagWriter(path, "sqlite3") as bag:
        bag.add_topic("/observations", "karma_interfaces/msg/ObjectObservationArray")
        for i in range(3):
            bag.write("/observations", 1_000_000_000 * (i + 1), serialize_message(cv.observations_to_msg(OBS, i)))
    text = format_info(read_info(path))
    assert "Storage id:        sqlite3" in text and "Duration:          2.000 s" in text
    assert "/observations  karma_interfaces/msg/ObjectObservationArray  count=3" in text
    assert bag_cli.main(["info", str(path)]) == 0
    assert bag_cli.main(["info", str(tmp_path / "nope")]) == 1


def test_canonical_cdr_zeroes_padding_and_rejects_garbage() -> None:
    msg = cv.observations_to_msg(OBS, 2.0)
    raw = serialize_message(msg)
    name = "karma_interfaces/msg/ObjectObservationArray"
    canonical = canonical_cdr(raw, name)
    assert canonical == canonical_cdr(canonical, name)  # a fixed point
    assert [o.object_id for o in cv.observations_from_msg(deserialize_message(canonical, type(msg)))] == \
        ["Apple|1", "Fridge|1"]
    with pytest.raises(BagError, match="invalid CDR data"):
        canonical_cdr(b"\x00\x01\x00\x00\xff\xff", name)


def test_typestore_registration_of_other_packages() -> None:
    store = get_typestore(Stores.ROS2_KILTED)
    assert "karma_interfaces/msg/SceneGraph" not in store.fielddefs
    added = register_package(store, "karma_interfaces")
    assert "karma_interfaces/msg/SceneGraph" in added and "karma_interfaces/msg/SceneGraph" in store.fielddefs
    ensure_types(store, ["std_msgs/msg/String", "karma_interfaces/msg/MemoryUnit"])
    with pytest.raises(BagError, match="cannot find the .msg files of package 'not_a_package'"):
        register_package(store, "not_a_package")


def test_playback_clock_scales_pauses_and_skips() -> None:
    now = [10.0]
    clock = bag_cli.PlaybackClock(rate=2.0, now=lambda: now[0])
    clock.start(1_000_000_000)
    assert clock.due(3_000_000_000) == pytest.approx(11.0)  # 2 s of bag at 2x = 1 s of wall time
    now[0] = 10.5
    clock.pause()
    assert clock.paused and clock.due(3_000_000_000) == float("inf")
    assert clock.bag_time() == 2_000_000_000
    now[0] = 20.5  # ten seconds paused
    assert clock.bag_time() == 2_000_000_000
    clock.resume()
    assert clock.due(3_000_000_000) == pytest.approx(21.0)
    clock.skip_to(5_000_000_000)
    assert clock.due(5_000_000_000) == pytest.approx(20.5)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(BagError, match="positive finite"):
            bag_cli.PlaybackClock(rate=bad)


def test_cli_rejects_a_bad_rate_and_a_missing_bag(tmp_path, capsys) -> None:
    assert bag_cli.main(["play", str(tmp_path), "--rate", "0"]) == 1
    assert "positive finite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bag_cli.main(["record", "--storage", "rosbag1"])


def test_message_class_resolves_installed_types_only() -> None:
    from karma_interfaces.msg import SceneGraph

    assert bag_cli.message_class("karma_interfaces/msg/SceneGraph") is SceneGraph
    with pytest.raises(BagError, match="not available here"):
        bag_cli.message_class("nowhere_msgs/msg/Thing")
