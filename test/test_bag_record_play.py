"""``karma bag record`` / ``karma bag play`` end to end: real processes, raw CDR, timing, SIGINT, pause services."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image
from std_msgs.msg import String
from rosgraph_msgs.msg import Clock
from std_srvs.srv import Trigger

from karma_memory.bag import Player, PlayOptions
from karma_memory.bagio import BagWriter, iter_messages, open_reader, read_info
from karma_memory.bench.bags import ros_env
from karma_memory.core.types import ObjectObservation
from karma_memory.nodes import conversions as cv

N = 10
PERIOD_NS = 100_000_000
T0 = 2_000_000_000


def _source_bag(path: Path, prefix: str) -> dict[str, list[bytes]]:
    """A bag with a string, an image and a custom-type topic, one message of each every 100 ms."""
    sent: dict[str, list[bytes]] = {f"/{prefix}/chatter": [], f"/{prefix}/image": [], f"/{prefix}/observations": []}
    with BagWriter(path) as bag:
        bag.add_topic(f"/{prefix}/chatter", "std_msgs/msg/String")
        bag.add_topic(f"/{prefix}/image", "sensor_msgs/msg/Image")
        bag.add_topic(f"/{prefix}/observations", "karma_interfaces/msg/ObjectObservationArray")
        for i in range(N):
            t = T0 + i * PERIOD_NS
            pixels = np.full((12, 16), i, np.uint8)
            obs = [ObjectObservation(f"Apple|{i}", "Apple", (0.1 * i, 0.9, 0.0), stamp=t / 1e9)]
            for topic, msg in ((f"/{prefix}/chatter", String(data=f"message {i}")),
                               (f"/{prefix}/image", Image(height=12, width=16, encoding="mono8", step=16,
                                                          data=pixels.tobytes())),
                               (f"/{prefix}/observations", cv.observations_to_msg(obs, t / 1e9))):
                raw = serialize_message(msg)
                bag.write(topic, t, raw)
                sent[topic].append(raw)
    return sent


def _karma_bag(*args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "karma_memory.bag", *args], env=ros_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT, timeout: float = 10.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def _decoded(topic: str, raw: bytes) -> object:
    kind = {"chatter": String, "image": Image}.get(topic.rsplit("/", 1)[1])
    if kind is None:
        from karma_interfaces.msg import ObjectObservationArray as kind  # noqa: N813
    return deserialize_message(bytes(raw), kind)


def test_record_what_play_publishes_with_scaled_timing(tmp_path) -> None:
    """play at 2x into record: every message arrives intact, 50 ms apart, in a self-describing mcap bag."""
    sent = _source_bag(tmp_path / "source", "rp1")
    recorder = _karma_bag("record", "-o", str(tmp_path / "recorded"), "--topics", *sent, log=tmp_path / "rec.log")
    player = None
    try:
        player = _karma_bag("play", str(tmp_path / "source"), "--rate", "2", "--wait-for-subscribers", "20",
                            log=tmp_path / "play.log")
        assert player.wait(timeout=60) == 0, (tmp_path / "play.log").read_text()
        assert f"played {3 * N} messages" in (tmp_path / "play.log").read_text()
    finally:
        if player is not None and player.poll() is None:
            _stop(player, signal.SIGKILL)
        status = _stop(recorder)  # SIGINT: the normal end of a recording
    log = (tmp_path / "rec.log").read_text()
    assert status == 0, log
    assert f"recorded {3 * N} messages on 3 topics" in log
    info = read_info(tmp_path / "recorded")
    assert info.storage == "mcap" and {t.name: t.count for t in info.topics} == {t: N for t in sent}
    assert info.topic("/rp1/observations").msgtype == "karma_interfaces/msg/ObjectObservationArray"
    with open_reader(tmp_path / "recorded") as reader:
        got: dict[str, list[tuple[int, bytes]]] = {}
        for conn, stamp, raw in iter_messages(reader):
            got.setdefault(conn.topic, []).append((stamp, bytes(raw)))
    for topic, raws in sent.items():
        assert [_decoded(topic, r) for _, r in got[topic]] == [_decoded(topic, r) for r in raws]
        gaps = np.diff([s for s, _ in got[topic]]) / 1e6
        assert np.median(gaps) == pytest.approx(50.0, abs=10.0), gaps  # 100 ms at rate 2
    assert b"MSG: karma_interfaces/Relation" in next((tmp_path / "recorded").glob("*.mcap")).read_bytes()


def test_sqlite3_recording_with_duration_and_looping_player_stopped_by_sigterm(tmp_path) -> None:
    sent = _source_bag(tmp_path / "source", "rp2")
    player = _karma_bag("play", str(tmp_path / "source"), "--loop", "--rate", "4", log=tmp_path / "play.log")
    try:
        deadline = time.monotonic() + 30
        while "playback started" not in (tmp_path / "play.log").read_text():
            assert time.monotonic() < deadline and player.poll() is None, (tmp_path / "play.log").read_text()
            time.sleep(0.05)
        recorder = _karma_bag("record", "-o", str(tmp_path / "rec"), "-s", "sqlite3", "--duration", "4",
                              "--topics", "/rp2/chatter", log=tmp_path / "rec.log")
        try:
            assert recorder.wait(timeout=30) == 0, (tmp_path / "rec.log").read_text()
        finally:
            if recorder.poll() is None:
                _stop(recorder, signal.SIGKILL)
    finally:
        status = _stop(player, signal.SIGTERM)  # as a process manager stops it
    assert status == 0, (tmp_path / "play.log").read_text()
    assert "played" in (tmp_path / "play.log").read_text()  # the player reports even when interrupted
    info = read_info(tmp_path / "rec")
    assert info.storage == "sqlite3" and any((tmp_path / "rec").glob("*.db3"))
    assert [t.name for t in info.topics] == ["/rp2/chatter"]
    assert info.message_count > N  # the loop went round more than once (0.25 s per round at 4x)
    with open_reader(tmp_path / "rec") as reader:
        texts = [deserialize_message(bytes(raw), String).data for _, _, raw in iter_messages(reader)]
    assert set(texts) <= {f"message {i}" for i in range(N)} and len(set(texts)) == N
    del sent


def test_recorder_refuses_an_existing_output(tmp_path) -> None:
    (tmp_path / "out").mkdir()
    proc = _karma_bag("record", "-o", str(tmp_path / "out"), "--duration", "1", log=tmp_path / "rec.log")
    try:
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            _stop(proc, signal.SIGKILL)
    assert "exists" in (tmp_path / "rec.log").read_text()


@pytest.fixture
def ros_context():
    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    yield context
    context.try_shutdown()


def test_player_pause_step_resume_services(tmp_path, ros_context) -> None:
    """Start paused: nothing is published until play_next (one message) and resume (the rest)."""
    _source_bag(tmp_path / "source", "rp3")
    node = rclpy.create_node("rosbag2_player", context=ros_context)
    received: list[str] = []
    clock: list[int] = []
    node.create_subscription(String, "/rp3/chatter", lambda m: received.append(m.data), 100)
    node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec * 10**9 + m.clock.nanosec), 100)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    player = Player(node, tmp_path / "source", PlayOptions(rate=1.0, topics=["/rp3/chatter"], start_paused=True,
                                                           wait_for_subscribers_s=5.0, clock_hz=50.0))
    services = {name for name, _ in node.get_service_names_and_types()}
    assert {"/rosbag2_player/pause", "/rosbag2_player/resume", "/rosbag2_player/toggle_paused",
            "/rosbag2_player/play_next"} <= services
    runner = threading.Thread(target=player.run, daemon=True)
    runner.start()
    try:
        time.sleep(1.6)  # subscriber matching (1 s settle) and then paused
        assert received == [] and player.clock.paused
        assert player._play_next(Trigger.Request(), Trigger.Response()).success
        deadline = time.monotonic() + 5
        while len(received) < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        assert received == ["message 0"]
        paused_clock = clock[-5:]
        assert len(set(paused_clock)) == 1 and paused_clock[0] == T0  # /clock stands still while paused
        assert player._toggle(Trigger.Request(), Trigger.Response()).message == "playing"
        assert not player._play_next(Trigger.Request(), Trigger.Response()).success  # only while paused
        runner.join(timeout=10)
        assert not runner.is_alive()
        assert received == [f"message {i}" for i in range(N)] and player.published == N
        assert clock == sorted(clock) and clock[-1] >= T0 + (N - 1) * PERIOD_NS  # bag time, advancing
    finally:
        player.stop()
        runner.join(timeout=5)
        executor.shutdown(timeout_sec=1.0)
        spinner.join(timeout=2)
        node.destroy_node()
