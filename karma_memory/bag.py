"""The ``karma bag`` command: record, play and inspect rosbag2 directories (mcap or sqlite3) with rclpy and rosbags.

Bags are real rosbag2 directories (``metadata.yaml`` v9 plus one ``.mcap`` or ``.db3`` file) that
``ros2 bag play``/``ros2 bag info`` on a ROS install read as they are: custom karma_interfaces types are
stored with their full definitions and RIHS01 hashes. Recording subscribes with ``raw=True`` to the
topics found in the graph (no deserialisation); playback publishes the stored CDR bytes, keeping the
recorded spacing divided by ``--rate``. rclpy is imported only by record/play, so ``karma bag info``
works without ROS.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

from karma_memory.bagio import (
    DEFAULT_STORAGE,
    STORAGES,
    BagError,
    BagWriter,
    format_info,
    iter_messages,
    open_reader,
    read_info,
)

if TYPE_CHECKING:
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from rosbags.interfaces import Qos

__all__ = ["main", "PlaybackClock", "PlayOptions", "Recorder", "Player", "message_class", "parse_remaps",
           "DEFAULT_EXCLUDED"]

#: Topics every ROS process has; recorded only when named explicitly (as ``ros2 bag record --all`` skips nothing,
#: but replaying them would fake log lines and parameter events from nodes that do not exist).
DEFAULT_EXCLUDED = frozenset({"/rosout", "/parameter_events"})

#: Seconds the player stays up after the last message, so best-effort subscribers (which never
#: acknowledge) receive the fragments of large messages still in flight.
LINGER_S = 0.5


def parse_remaps(rules: Sequence[str]) -> dict[str, str]:
    """``OLD:=NEW`` topic rules (absolute names) as a mapping.

    >>> parse_remaps(["/camera/rgb:=/robot1/camera/rgb"])
    {'/camera/rgb': '/robot1/camera/rgb'}

    Raises:
        BagError: a rule is not ``/old:=/new``.
    """
    out = {}
    for rule in rules:
        old, sep, new = rule.partition(":=")
        if not sep or not old.startswith("/") or not new.startswith("/") or len(new) < 2:
            raise BagError(f"remap rule {rule!r} must look like /old/topic:=/new/topic")
        out[old] = new
    return out


def message_class(msgtype: str) -> type:
    """The generated Python class of ``pkg/msg/Type`` (rclpy has no dynamic message types).

    Raises:
        BagError: the type's package is not installed in this environment.
    """
    package, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise BagError(f"message type {msgtype!r} is not available here (is package {package!r} built and "
                       f"installed?): {err}") from err


# ---------------------------------------------------------------------------------------------- QoS


def _qos_to_bag(profile: QoSProfile) -> Qos:
    """An rclpy QoS profile (as a publisher offered it) in rosbags' form, for metadata.yaml."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def when(duration: Any) -> QosTime:
        ns = int(duration.nanoseconds)
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)

    def enum(kind: Any, value: Any) -> Any:
        try:
            return kind(int(value))
        except ValueError:
            return kind.UNKNOWN

    return Qos(enum(QosHistory, profile.history), int(profile.depth), enum(QosReliability, profile.reliability),
               enum(QosDurability, profile.durability), when(profile.deadline), when(profile.lifespan),
               enum(QosLiveliness, profile.liveliness), when(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


def _adapted_qos(reliable: bool, transient_local: bool, depth: int) -> QoSProfile:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE)


def _recording_qos(offered: Sequence[QoSProfile]) -> QoSProfile:
    """Subscription QoS that matches every publisher: best effort if any offers it; latched if all are latched."""
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    reliable = all(p.reliability == ReliabilityPolicy.RELIABLE for p in offered)
    latched = bool(offered) and all(p.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in offered)
    return _adapted_qos(reliable, latched, 100)


def _playback_qos(offered: Sequence[Qos]) -> QoSProfile:
    """Publisher QoS from the profiles stored in the bag: reliable unless all were best effort; latched if all were.

    Volatile topics get a deep history (a burst at high rate is not overwritten before it is sent);
    latched ones keep what the original publisher kept for late joiners.
    """
    from rosbags.interfaces import QosDurability, QosReliability

    reliable = not offered or any(q.reliability != QosReliability.BEST_EFFORT for q in offered)
    latched = bool(offered) and all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    depth = max((q.depth for q in offered), default=1) if latched else 100
    return _adapted_qos(reliable, latched, max(depth, 1))


# ------------------------------------------------------------------------------------------- record


class Recorder:
    """Subscribes raw to the topics found in the graph and writes every message into a bag.

    Topics are looked up every ``discovery_period_s``; a topic is taken once it has a publisher
    (its offered QoS, type and type hash come from the graph). Timestamps are receive times.

    Args:
        node: the node that subscribes.
        writer: the open bag.
        topics: names to record (None = all but DEFAULT_EXCLUDED and hidden topics).
    """

    def __init__(self, node: Node, writer: BagWriter, topics: Iterable[str] | None = None,
                 discovery_period_s: float = 0.2) -> None:
        self.node, self.writer = node, writer
        self.wanted = None if topics is None else {self._absolute(t) for t in topics}
        self.counts: dict[str, int] = {}
        self._subscriptions: dict[str, Any] = {}
        self._warned: set[str] = set()
        self.discover()
        node.create_timer(discovery_period_s, self.discover)

    @staticmethod
    def _absolute(topic: str) -> str:
        return topic if topic.startswith("/") else "/" + topic

    def _wants(self, topic: str) -> bool:
        if self.wanted is not None:
            return topic in self.wanted
        hidden = any(part.startswith("_") for part in topic.split("/"))
        return topic not in DEFAULT_EXCLUDED and not hidden

    def discover(self) -> None:
        """Subscribe to wanted topics that appeared since the last look."""
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self._subscriptions or not self._wants(topic):
                continue
            if len(types) != 1:
                self._warn(topic, f"topic {topic} has several types {types}; not recorded")
                continue
            publishers = self.node.get_publishers_info_by_topic(topic)
            if not publishers:
                continue
            try:
                self._subscribe(topic, types[0], publishers)
            except BagError as err:
                self._warn(topic, f"not recording {topic}: {err}")

    def _warn(self, topic: str, text: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            self.node.get_logger().warning(text)

    def _subscribe(self, topic: str, msgtype: str, publishers: Sequence[Any]) -> None:
        cls = message_class(msgtype)
        offered = [p.qos_profile for p in publishers]
        type_hash = str(publishers[0].topic_type_hash)
        self.writer.add_topic(topic, msgtype, [_qos_to_bag(q) for q in offered],
                              rihs01=type_hash if type_hash.startswith("RIHS01_") else None)
        self.counts[topic] = 0

        def on_message(raw: bytes, info: dict) -> None:
            stamp = info.get("received_timestamp") or time.time_ns()
            self.writer.write(topic, stamp, raw)
            self.counts[topic] += 1

        self._subscriptions[topic] = self.node.create_subscription(cls, topic, on_message,
                                                                   _recording_qos(offered), raw=True)
        self.node.get_logger().info(f"recording {topic} [{msgtype}]")


def record(args: argparse.Namespace) -> int:
    """``karma bag record``: until SIGINT/SIGTERM or ``--duration``; the bag is always finished cleanly."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node

    output = Path(args.output or datetime.now().strftime("rosbag2_%Y_%m_%d-%H_%M_%S"))
    writer = BagWriter(output, storage=args.storage, compress=not args.no_compression)
    rclpy.init(args=None)
    _sigterm_as_interrupt()
    node = Node("rosbag2_recorder")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    recorder = Recorder(node, writer, args.topics or None)
    deadline = time.monotonic() + args.duration if args.duration else None
    try:
        while rclpy.ok() and (deadline is None or time.monotonic() < deadline):
            left = 0.05 if deadline is None else deadline - time.monotonic()
            executor.spin_once(timeout_sec=max(0.0, min(0.05, left)))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        writer.close()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    total = sum(recorder.counts.values())
    print(f"recorded {total} messages on {len(recorder.counts)} topics into {output}")
    for topic, count in sorted(recorder.counts.items()):
        print(f"  {topic}: {count}")
    return 0


# --------------------------------------------------------------------------------------------- play


@dataclass
class PlaybackClock:
    """Maps bag time to wall time at a rate, with pause and resume (pure; ``now`` is injectable for tests).

    A message stamped ``t`` (ns) is due at ``origin + (t - t0) / rate`` wall seconds, where time spent
    paused is added to ``origin``.

    >>> clock = PlaybackClock(rate=2.0, now=lambda: 100.0)
    >>> clock.start(5_000_000_000)
    >>> clock.due(7_000_000_000)
    101.0
    """

    rate: float = 1.0
    now: Callable[[], float] = time.monotonic
    _origin: float = 0.0
    _t0: int = 0
    _paused_at: float | None = None
    started: bool = False

    def __post_init__(self) -> None:
        if not self.rate > 0 or self.rate != self.rate or self.rate == float("inf"):
            raise BagError(f"playback rate must be a positive finite number, got {self.rate!r}")

    def start(self, t0_ns: int, paused: bool = False) -> None:
        """Bag time ``t0_ns`` is due now."""
        self._origin, self._t0 = self.now(), int(t0_ns)
        self._paused_at = self._origin if paused else None
        self.started = True

    def due(self, t_ns: int) -> float:
        """Wall time (``now`` units) at which a message stamped ``t_ns`` is due (inf while paused)."""
        if self._paused_at is not None:
            return float("inf")
        return self._origin + (int(t_ns) - self._t0) / 1e9 / self.rate

    def bag_time(self) -> int:
        """The bag time (ns) that corresponds to now (frozen while paused)."""
        at = self._paused_at if self._paused_at is not None else self.now()
        return self._t0 + int((at - self._origin) * self.rate * 1e9)

    @property
    def paused(self) -> bool:
        return self._paused_at is not None

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = self.now()

    def resume(self) -> None:
        if self._paused_at is not None:
            self._origin += self.now() - self._paused_at
            self._paused_at = None

    def skip_to(self, t_ns: int) -> None:
        """Make ``t_ns`` due now (used by play_next while paused, keeping the pause)."""
        at = self._paused_at if self._paused_at is not None else self.now()
        self._origin = at - (int(t_ns) - self._t0) / 1e9 / self.rate


@dataclass
class PlayOptions:
    """Options of ``karma bag play`` (see the argument help)."""

    rate: float = 1.0
    loop: bool = False
    topics: list[str] | None = None
    start_paused: bool = False
    delay_s: float = 0.0
    wait_for_subscribers_s: float = 0.0
    clock_hz: float = 0.0
    remap: dict[str, str] = field(default_factory=dict)


@dataclass
class _Control:
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    step: int = 0


class Player:
    """Publishes a bag's raw messages on their topics with the recorded timing scaled by ``rate``.

    Services (std_srvs/Trigger) under the node, as rosbag2's player offers: ``~/pause``, ``~/resume``,
    ``~/toggle_paused`` and ``~/play_next`` (publish the next message now while paused).
    """

    def __init__(self, node: Node, path: Path | str, options: PlayOptions) -> None:
        from std_srvs.srv import Trigger

        self.node, self.path, self.options = node, Path(path), options
        self.clock = PlaybackClock(options.rate)
        self.published = 0
        self.started_wall: float | None = None  # time.time() when playback began (after the waits)
        self._control = _Control()
        with open_reader(self.path) as reader:
            connections = [c for c in reader.connections if options.topics is None or c.topic in options.topics]
            missing = set(options.topics or ()) - {c.topic for c in reader.connections}
            if missing:
                raise BagError(f"bag {self.path} has no topic(s) {sorted(missing)}")
            self.start_ns, self.end_ns = reader.start_time, reader.end_time
        self.publishers: dict[str, Any] = {}
        for conn in connections:
            if conn.topic not in self.publishers:
                qos = _playback_qos(conn.ext.offered_qos_profiles)
                name = options.remap.get(conn.topic, conn.topic)
                self.publishers[conn.topic] = node.create_publisher(message_class(conn.msgtype), name, qos)
        self.topics = sorted(self.publishers)
        for name, handler in (("pause", self._pause), ("resume", self._resume),
                              ("toggle_paused", self._toggle), ("play_next", self._play_next)):
            node.create_service(Trigger, f"~/{name}", handler)
        self._clock_pub = None
        if options.clock_hz > 0:
            from rosgraph_msgs.msg import Clock

            self._clock_pub = node.create_publisher(Clock, "/clock", 10)
            node.create_timer(1.0 / options.clock_hz, self._publish_clock)

    # ---- services ---------------------------------------------------------------------------------
    def _reply(self, response: Any, text: str) -> Any:
        response.success, response.message = True, text
        self._control.wake.set()
        return response

    def _pause(self, request: Any, response: Any) -> Any:
        with self._control.lock:
            self.clock.pause()
        return self._reply(response, "paused")

    def _resume(self, request: Any, response: Any) -> Any:
        with self._control.lock:
            self.clock.resume()
        return self._reply(response, "playing")

    def _toggle(self, request: Any, response: Any) -> Any:
        with self._control.lock:
            if self.clock.paused:
                self.clock.resume()
            else:
                self.clock.pause()
            text = "paused" if self.clock.paused else "playing"
        return self._reply(response, text)

    def _play_next(self, request: Any, response: Any) -> Any:
        with self._control.lock:
            if not self.clock.paused:
                response.success, response.message = False, "play_next works only while paused"
                return response
            self._control.step += 1
        return self._reply(response, "publishing the next message")

    def _publish_clock(self) -> None:
        from builtin_interfaces.msg import Time
        from rosgraph_msgs.msg import Clock

        with self._control.lock:
            if not self.clock.started:  # still waiting for subscribers: no bag time yet
                return
            ns = self.clock.bag_time()
        assert self._clock_pub is not None
        self._clock_pub.publish(Clock(clock=Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)))

    # ---- playback ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask :meth:`run` to return after the message in flight."""
        self._control.stop.set()
        self._control.wake.set()

    def wait_for_subscribers(self, timeout_s: float, settle_s: float = 1.0) -> list[str]:
        """Wait until every topic has a subscription and all that the graph knows of are matched.

        The condition must hold for ``settle_s``: a second subscriber may still be being discovered (both
        memories on /observations), and a best-effort reader drops samples from a writer it has not
        matched yet, although the writer already counts it.

        Returns:
            The topics still without a matched subscriber at the timeout.
        """
        deadline = time.monotonic() + timeout_s
        since: float | None = None
        while True:
            lonely = [p.topic_name for p in self.publishers.values()
                      if p.get_subscription_count() < max(1, self.node.count_subscribers(p.topic_name))]
            now = time.monotonic()
            since = None if lonely else (since if since is not None else now)
            if since is not None and now - since >= settle_s:
                return []
            if now >= deadline or self._control.stop.is_set() or not self.node.context.ok():
                return lonely
            self._control.stop.wait(0.02)

    def _wait_until_due(self, t_ns: int) -> bool:
        """Sleep until the message is due, honouring pause/resume/play_next; False when stopped."""
        control = self._control
        while not control.stop.is_set() and self.node.context.ok():
            with control.lock:
                if control.step:
                    control.step -= 1
                    self.clock.skip_to(t_ns)
                    return True
                remaining = self.clock.due(t_ns) - self.clock.now()
            if remaining <= 0:
                return True
            control.wake.clear()
            control.wake.wait(min(remaining, 0.5))
        return False

    def run(self) -> int:
        """Play once (or until stopped when looping); returns the number of messages published."""
        options = self.options
        if options.wait_for_subscribers_s > 0:
            lonely = self.wait_for_subscribers(options.wait_for_subscribers_s)
            if lonely:
                self.node.get_logger().warning(f"no subscribers after {options.wait_for_subscribers_s} s on {lonely}")
        if options.delay_s > 0 and self._control.stop.wait(options.delay_s):
            return self.published
        self.started_wall = time.time()
        self.node.get_logger().info(f"playback started: {len(self.topics)} topics at rate {options.rate:g}"
                                    + (" (paused)" if options.start_paused else ""))
        paused = options.start_paused
        while not self._control.stop.is_set():
            with self._control.lock:
                self.clock.start(self.start_ns, paused=paused or self.clock.paused)
            with open_reader(self.path) as reader:
                for conn, t_ns, raw in iter_messages(reader, self.topics):
                    if not self._wait_until_due(t_ns) or not self._publish(conn.topic, raw):
                        break
            if not options.loop:
                break
            paused = False
        if self.node.context.ok():
            # Let subscribers receive the tail before the publishers go: reliable ones acknowledge (acks
            # follow heartbeats, up to ~1 s); best-effort ones never do, so every player also lingers.
            deadline = time.monotonic() + 3.0
            for publisher in self.publishers.values():
                publisher.wait_for_all_acked(_seconds(max(0.0, deadline - time.monotonic())))
            self._control.stop.wait(LINGER_S)
        return self.published

    def _publish(self, topic: str, raw: bytes | memoryview) -> bool:
        """Publish one raw message; False when ROS is shutting down (SIGINT raced the publish)."""
        from rclpy._rclpy_pybind11 import RCLError

        try:
            self.publishers[topic].publish(bytes(raw))
        except RCLError:
            if self.node.context.ok():
                raise
            return False
        self.published += 1
        return True


def _seconds(value: float) -> Any:
    from rclpy.duration import Duration

    return Duration(nanoseconds=int(value * 1e9))


def play(args: argparse.Namespace) -> int:
    """``karma bag play``: services spin in a background thread, the main thread keeps the timing."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
    from rclpy.node import Node

    options = PlayOptions(rate=args.rate, loop=args.loop, topics=args.topics or None, start_paused=args.start_paused,
                          delay_s=args.delay, wait_for_subscribers_s=args.wait_for_subscribers, clock_hz=args.clock,
                          remap=parse_remaps(args.remap or []))
    PlaybackClock(options.rate)  # validate the rate before starting ROS
    rclpy.init(args=None)
    _sigterm_as_interrupt()
    node = Node("rosbag2_player")
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    player: Player | None = None
    spinner: threading.Thread | None = None
    started = time.monotonic()
    try:
        player = Player(node, args.bag, options)
        # when the context is shut down (by rclpy's SIGINT handler, from C: Python on_shutdown callbacks
        # do not run), the spinning thread sees it first and stops the player
        spinner = threading.Thread(target=_spin_quietly, args=(executor, player.stop), daemon=True)
        spinner.start()
        player.run()
    except (KeyboardInterrupt, ExternalShutdownException):
        if player is not None:
            player.stop()
    finally:
        if player is not None:
            print(f"played {player.published} messages from {args.bag} in {time.monotonic() - started:.2f} s "
                  f"(rate {options.rate:g})", flush=True)
        executor.shutdown(timeout_sec=1.0)
        if spinner is not None and spinner.is_alive():
            spinner.join(timeout=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _sigterm_as_interrupt() -> None:
    """Make SIGTERM end record/play exactly like SIGINT (a KeyboardInterrupt in the main thread).

    rclpy's own SIGTERM handling shuts the context down from C, which we observed not to happen
    reliably while the main thread is busy in Python (the player then never stopped); a Python handler
    always runs in the main thread, whose ``finally`` blocks finish the bag and the node.
    """
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def _spin_quietly(executor: Any, on_exit: Callable[[], None]) -> None:
    from rclpy.executors import ExternalShutdownException

    try:
        executor.spin()
    except (ExternalShutdownException, KeyboardInterrupt):
        pass
    finally:
        on_exit()


# ---------------------------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="karma bag", description="Record, play and inspect rosbag2 directories "
                                     "(readable by `ros2 bag` on a ROS install).")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="record topics into a new bag directory")
    rec.add_argument("-o", "--output", help="bag directory to create (default: rosbag2_<date>-<time>)")
    rec.add_argument("-s", "--storage", choices=sorted(STORAGES), default=DEFAULT_STORAGE, help="storage plugin")
    rec.add_argument("--topics", nargs="+", metavar="TOPIC",
                     help="topics to record (default: all but /rosout, /parameter_events and hidden ones)")
    rec.add_argument("-d", "--duration", type=float, default=0.0, help="stop after this many seconds (0 = until ^C)")
    rec.add_argument("--no-compression", action="store_true", help="do not zstd-compress chunks/messages")
    ply = sub.add_parser("play", help="publish a bag's messages with their recorded timing")
    ply.add_argument("bag", help="bag directory")
    ply.add_argument("-r", "--rate", type=float, default=1.0, help="time scale: 2 = twice as fast")
    ply.add_argument("-l", "--loop", action="store_true", help="start again at the end, until ^C")
    ply.add_argument("--topics", nargs="+", metavar="TOPIC", help="play only these topics")
    ply.add_argument("-p", "--start-paused", action="store_true",
                     help="start paused (services ~/resume, ~/toggle_paused, ~/play_next)")
    ply.add_argument("-d", "--delay", type=float, default=0.0, help="seconds to wait before the first message")
    ply.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="TIMEOUT",
                     help="first wait up to TIMEOUT s until every topic has a subscriber")
    ply.add_argument("--clock", type=float, default=0.0, metavar="HZ", help="publish /clock at HZ (0 = off)")
    ply.add_argument("-m", "--remap", nargs="+", metavar="OLD:=NEW", help="publish topic OLD on NEW")
    info = sub.add_parser("info", help="print a bag's storage, duration and topics")
    info.add_argument("bag", help="bag directory")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``karma bag``."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "record":
            return record(args)
        if args.command == "play":
            return play(args)
        print(format_info(read_info(args.bag)))
        return 0
    except BagError as err:
        print(f"karma bag {args.command}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
