"""Persistence under failure: kill -9 of the memory nodes mid-save, restart, and validation of memory files."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from karma_interfaces.msg import ObjectObservationArray

from karma_memory.bench.bags import NodeRig, replay_parameters
from karma_memory.core.errors import MemoryFileError, SchemaVersionError
from karma_memory.core.long_term import GRAPH_FILE, KIND as LTM_KIND, LongTermMemory
from karma_memory.core.persistence import read_envelope, write_envelope
from karma_memory.core.short_term import STM_FILE, MemoryUnit, ShortTermMemory, StmConfig
from karma_memory.core.types import ObjectObservation, ObservationKind
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.qos import EVENTS

FLUSH_S = 0.5
PER_MESSAGE = 10
RATE_HZ = 25.0  # x PER_MESSAGE = 250 observations/s: the nodes keep up, so ages measure persistence
STAMP0 = 1000.0


def _ids(k: int) -> list[str]:
    return [f"Apple|{k:05d}|{j:02d}" for j in range(PER_MESSAGE)]


def _message(k: int) -> ObjectObservationArray:
    """Message k: PER_MESSAGE new apples the robot just put down (LTM objects and STM units alike)."""
    stamp = STAMP0 + k * 1e-3
    return cv.observations_to_msg([
        ObjectObservation(oid, "Apple", (0.01 * (k % 500), 0.9, 0.1 * j), ObservationKind.MOVED, stamp=stamp,
                          source="skill:PutObject") for j, oid in enumerate(_ids(k))], stamp)


def _index(stamp_ns: int) -> int:
    return round((stamp_ns / 1e9 - STAMP0) * 1e3)


class _Stream(threading.Thread):
    """Publishes message 0, 1, 2, ... at RATE_HZ from the rig's listener until stopped."""

    def __init__(self, rig: NodeRig, start: int = 0) -> None:
        super().__init__(daemon=True)
        self.pub = rig.node.create_publisher(ObjectObservationArray, "/observations", EVENTS)
        self.next, self.stop = start, threading.Event()

    def wait_matched(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.pub.get_subscription_count() < count:
            assert time.monotonic() < deadline, "memory nodes did not subscribe to /observations"
            time.sleep(0.05)
        time.sleep(0.5)  # and let them match us

    def run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            self.pub.publish(_message(self.next))
            self.next += 1
            self.stop.wait(max(0.0, t0 + self.next / RATE_HZ - time.monotonic()))


def _saving(directory: Path, name: str) -> bool:
    """True while write_envelope has its temporary file open (between mkstemp and the rename)."""
    with os.scandir(directory) as entries:
        return any(e.name.startswith(f".{name}.") and e.name.endswith(".tmp") for e in entries)


def _ltm_objects(rig: NodeRig) -> set[str]:
    return set(rig.summary()["ltm"]["objects"])


def _stm_units(rig: NodeRig) -> set[str]:
    with rig.lock:
        return {u.object_id for u in rig.latest["stm"].msg.units}


def _acked(rig: NodeRig, key: str) -> dict[int, float]:
    """Message index -> time.time() its acknowledgement (sent after processing) reached the listener."""
    with rig.lock:
        return {_index(s): t for s, t in zip(rig.latest[key].stamps, rig.latest[key].times)}


def _check_recovered(name: str, loaded: set[str], acked: dict[int, float], killed_at: float) -> float:
    """The reloaded memory is one consistent snapshot (messages 0..k, nothing else) that lacks nothing the
    node had processed more than the flush interval (+ the interrupted save) before the kill.

    Returns:
        How long before the kill the oldest lost message had been processed (0 if none).
    """
    assert loaded, f"{name} came back empty"
    last = max(int(oid.split("|")[1]) for oid in loaded)
    expected = {oid for k in range(last + 1) for oid in _ids(k)}  # reliable and in order: a prefix of the stream
    assert loaded == expected, (f"{name}: reloaded memory is not a snapshot of messages 0..{last}: "
                                f"missing {sorted(expected - loaded)[:4]}, extra {sorted(loaded - expected)[:4]}")
    # the last acknowledgements may not have left the node before SIGKILL: processed >= acknowledged
    lost = [t for k, t in acked.items() if k > last]
    oldest_lost_age = killed_at - min(lost) if lost else 0.0
    assert oldest_lost_age <= FLUSH_S + 0.25, f"{name} lost what it processed {oldest_lost_age:.2f} s before"
    return oldest_lost_age


def test_kill_9_mid_save_then_restart_loads_the_last_good_memory(tmp_path) -> None:
    """Both memory nodes with persistence on, under a stream of observations; each is killed with SIGKILL while
    its save is being written; restarted, it serves the last complete save and carries on."""
    params = replay_parameters("", tmp_path, flush_interval_s=FLUSH_S, perceptions=0)
    params["short_term_memory"].update(policy="lru", capacity=100_000)
    dirs = {"long_term_memory": (tmp_path / "ltm", GRAPH_FILE), "short_term_memory": (tmp_path / "stm", STM_FILE)}
    with NodeRig(tmp_path / "rig", params) as rig:
        rig.start()
        rig.wait_ready(60.0)
        stream = _Stream(rig)
        stream.wait_matched(2)
        stream.start()
        killed: dict[str, float] = {}
        deadline = time.monotonic() + 30.0
        try:
            while len(killed) < 2 and time.monotonic() < deadline:
                for name, (directory, file) in dirs.items():  # after 1 s and two saves, strike during a save
                    ready = stream.next >= RATE_HZ and (directory / f"{file}.prev").exists()
                    if name not in killed and ready and _saving(directory, file):
                        killed[name] = rig.kill(name)
                time.sleep(2e-4)  # let the stream and the listener have the GIL
        finally:
            stream.stop.set()
            stream.join()
        assert set(killed) == set(dirs), f"never caught a save in progress: killed {killed}"
        acked = {"long_term_memory": _acked(rig, "ltm_ack"), "short_term_memory": _acked(rig, "stm_ack")}
        leftovers = {n: sorted(p.name for p in d.iterdir()) for n, (d, _) in dirs.items()}
        with rig.lock:
            rig.latest["scene_graph"].msg = rig.latest["stm"].msg = None
        rig.start(*dirs)
        rig.wait_ready(60.0)
        for name, loaded in (("long_term_memory", _ltm_objects(rig)), ("short_term_memory", _stm_units(rig))):
            age = _check_recovered(name, loaded, acked[name], killed[name])
            print(f"{name}: killed mid-save after processing {len(acked[name])} messages; reloaded {len(loaded)} "
                  f"objects; oldest lost message was processed {age * 1e3:.0f} ms before the kill "
                  f"(flush interval {FLUSH_S * 1e3:.0f} ms); files: {leftovers[name]}")
            assert f"loaded memory from" in rig.log(name) or "objects from" in rig.log(name)
        # it resumes: new observations are taken, shown and, one flush later, on disk again
        before = rig.acks("ltm_ack"), rig.acks("stm_ack")
        resume = _Stream(rig, start=stream.next + 10)
        resume.wait_matched(2)
        for _ in range(3):
            resume.pub.publish(_message(resume.next))
            resume.next += 1
        rig.wait_for(lambda r: r.acks("ltm_ack") >= before[0] + 3 and r.acks("stm_ack") >= before[1] + 3, 20.0,
                     "acks after the restart")
        fresh = set(_ids(resume.next - 1))
        rig.wait_for(lambda r: fresh <= _ltm_objects(r) and fresh <= _stm_units(r), 10.0, "new objects shown")
        time.sleep(FLUSH_S + 0.5)
        on_disk = LongTermMemory(directory=dirs["long_term_memory"][0])
        on_disk.load()
        assert fresh <= set(on_disk.graph.nodes)
        stm = ShortTermMemory(StmConfig(policy="lru", capacity=100_000), directory=dirs["short_term_memory"][0])
        stm.load()
        assert fresh <= {u.object_id for u in stm.units()}


def test_nodes_refuse_newer_schema_files_and_fall_back_to_prev(tmp_path) -> None:
    """At start, LTM: a scene graph from a newer release is reported and never overwritten (autosave off).
    STM: a corrupt file (checksum) is replaced by its .prev backup. Nodes built in-process, not spun."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from karma_memory.nodes.long_term_memory_node import LongTermMemoryNode
    from karma_memory.nodes.short_term_memory_node import ShortTermMemoryNode

    ltm_dir, stm_dir = tmp_path / "ltm", tmp_path / "stm"
    newer = write_envelope(ltm_dir / GRAPH_FILE, LTM_KIND, 99, {"from": "the future"})
    newer_bytes = newer.read_bytes()
    stm = ShortTermMemory(StmConfig(policy="lru", capacity=50), directory=stm_dir)
    stm.put(MemoryUnit("Mug|1", "Mug", (1.0, 0.9, 0.0), ("cleaned",), 5.0, "on CounterTop|1"))
    stm.save()
    stm.put(MemoryUnit("Apple|2", "Apple", (0.0, 0.9, 1.0), (), 6.0))
    stm.save()  # main holds Mug + Apple, .prev holds Mug
    main = stm_dir / STM_FILE
    raw = bytearray(main.read_bytes())
    raw[raw.index(b'"Apple|2"') + 2] ^= 0x01  # one flipped bit inside the payload: checksum mismatch
    main.write_bytes(bytes(raw))
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    try:
        common = [Parameter("warm_up", value=False), Parameter("markers.enabled", value=False),
                  Parameter("flush_interval_s", value=0.2)]
        ltm = LongTermMemoryNode(context=context, parameter_overrides=common + [
            Parameter("memory_dir", value=str(ltm_dir))])
        stm_node = ShortTermMemoryNode(context=context, parameter_overrides=common + [
            Parameter("memory_dir", value=str(stm_dir)), Parameter("policy", value="lru"),
            Parameter("capacity", value=50)])
        assert not ltm.autosave and len(ltm.memory) == 0  # started empty, newer file kept
        ltm._on_observations(_message(0))
        ltm.flush()
        ltm.close()
        assert newer.read_bytes() == newer_bytes and set(_ids(0)) <= set(ltm.memory.graph)
        assert [u.object_id for u in stm_node.memory.units()] == ["Mug|1"]  # from .prev
        stm_node._on_observations(_message(1))
        stm_node.flush()
        reloaded = ShortTermMemory(StmConfig(policy="lru", capacity=50), directory=stm_dir)
        reloaded.load()
        assert {u.object_id for u in reloaded.units()} == set(_ids(1)) | {"Mug|1"}  # autosave resumed
        for node in (ltm, stm_node):
            node.destroy_node()
    finally:
        context.try_shutdown()


# ---- the loaders themselves ---------------------------------------------------------------------------


@pytest.fixture
def ltm_dir(tmp_path) -> Path:
    memory = LongTermMemory(directory=tmp_path)
    memory.observe(ObjectObservation("Fridge|1", "Fridge", (-2.0, 0.0, 1.0), movable=False))
    memory.save()
    memory.observe(ObjectObservation("Apple|1", "Apple", (1.0, 0.9, 0.0)))
    memory.save()
    return tmp_path


def test_ltm_load_validates_checksum_and_uses_prev(ltm_dir) -> None:
    path = ltm_dir / GRAPH_FILE
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"Apple|1") + 1] ^= 0x20
    path.write_bytes(bytes(raw))
    with pytest.raises(MemoryFileError, match="fails its checksum"):
        read_envelope(path, LTM_KIND, 1)
    memory = LongTermMemory(directory=ltm_dir)
    assert memory.load().name == f"{GRAPH_FILE}.prev"
    assert "Fridge|1" in memory.graph and "Apple|1" not in memory.graph


def test_ltm_load_of_newer_schema_is_a_clear_error_and_keeps_memory(ltm_dir) -> None:
    memory = LongTermMemory(directory=ltm_dir)
    memory.load()
    write_envelope(ltm_dir / GRAPH_FILE, LTM_KIND, 7, {"nodes": []})
    with pytest.raises(SchemaVersionError, match=r"schema version 7, newer than this karma_memory reads \(1\)"):
        memory.load()
    assert {"Fridge|1", "Apple|1"} <= set(memory.graph)  # the loaded memory is intact


def test_ltm_load_rejects_truncated_and_foreign_files(ltm_dir) -> None:
    path = ltm_dir / GRAPH_FILE
    good = path.read_bytes()
    (ltm_dir / f"{GRAPH_FILE}.prev").unlink()
    path.write_bytes(good[: len(good) // 2])
    memory = LongTermMemory(directory=ltm_dir)
    with pytest.raises(MemoryFileError, match="corrupt or truncated"):
        memory.load()
    stm = ShortTermMemory(directory=ltm_dir)
    stm.save()
    os.replace(ltm_dir / STM_FILE, path)
    with pytest.raises(MemoryFileError, match="holds 'karma_memory/short_term_memory'"):
        memory.load()
    envelope = json.loads(good)
    envelope["schema_version"] = "1"
    path.write_text(json.dumps(envelope))
    with pytest.raises(MemoryFileError, match="invalid schema_version '1'"):
        memory.load()
