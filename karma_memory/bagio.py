"""Pure rosbags helpers: the self-describing karma typestore, rosbag2 writing and reading, bag summaries (no rclpy)."""

from __future__ import annotations

import os
import struct
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Iterable, Iterator, Sequence

from rosbags.interfaces import Connection, Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import Reader, ReaderError, Writer, WriterError
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, TypesysError, get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from karma_memory.core.errors import KarmaMemoryError

__all__ = [
    "BagError",
    "STORAGES",
    "DEFAULT_STORAGE",
    "INFINITE_QOS_TIME",
    "default_qos",
    "typestore",
    "package_msg_dir",
    "register_package",
    "ensure_types",
    "canonical_cdr",
    "BagWriter",
    "TopicSummary",
    "BagInfo",
    "read_info",
    "format_info",
    "open_reader",
    "iter_messages",
]

#: Storage plugins ``karma bag record --storage`` accepts (both are what ``ros2 bag`` reads).
STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
DEFAULT_STORAGE = "mcap"

#: rosbag2's spelling of an infinite QoS duration (RMW_DURATION_INFINITE = INT64_MAX ns) in metadata.yaml.
INFINITE_QOS_TIME = QosTime(9223372036, 854775807)

#: Repository root, for running from a source checkout before karma_interfaces is installed.
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


class BagError(KarmaMemoryError):
    """A bag cannot be written or read: existing output, missing or corrupt files, unknown message types."""


def default_qos(reliable: bool = True, transient_local: bool = False, depth: int = 10) -> Qos:
    """A rosbags QoS record with infinite deadline/lifespan/lease, as rosbag2 stores a default profile."""
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               INFINITE_QOS_TIME, INFINITE_QOS_TIME, QosLiveliness.AUTOMATIC, INFINITE_QOS_TIME, False)


# ------------------------------------------------------------------------------------------ typestore


def _share_prefixes() -> list[Path]:
    """Install prefixes to search for ``share/<package>/msg``: AMENT_PREFIX_PATH, then this interpreter's prefix."""
    prefixes = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return prefixes + [Path(sys.prefix)]


def package_msg_dir(package: str) -> Path | None:
    """The directory holding ``<package>``'s .msg files: an installed share dir, else a source checkout."""
    for prefix in _share_prefixes():
        candidate = prefix / "share" / package / "msg"
        if candidate.is_dir():
            return candidate
    source = _SOURCE_ROOT / package / "msg"
    return source if source.is_dir() else None


def register_package(store: Typestore, package: str) -> list[str]:
    """Register every message of ``package`` (from its .msg files) in ``store``; returns the type names added.

    Message definitions parsed from the .msg files give the same RIHS01 hashes as the generated
    type support (checked in the tests), so bags written with them are self-describing for ``ros2 bag``.

    Raises:
        BagError: the package's .msg files cannot be found or parsed.
    """
    directory = package_msg_dir(package)
    if directory is None:
        raise BagError(f"cannot find the .msg files of package {package!r} "
                       f"(searched share/{package}/msg under {[str(p) for p in _share_prefixes()]})")
    types: dict[str, Any] = {}
    try:
        for path in sorted(directory.glob("*.msg")):
            types.update(get_types_from_msg(path.read_text(), f"{package}/msg/{path.stem}"))
        store.register(types)
    except (TypesysError, OSError) as err:
        raise BagError(f"cannot register the messages of {package!r} from {directory}: {err}") from err
    return sorted(types)


@lru_cache(maxsize=1)
def typestore() -> Typestore:
    """The process-wide typestore: ROS 2 Kilted's standard messages plus karma_interfaces.

    Raises:
        BagError: karma_interfaces' .msg files cannot be found.
    """
    store = get_typestore(Stores.ROS2_KILTED)
    register_package(store, "karma_interfaces")
    return store


def ensure_types(store: Typestore, msgtypes: Iterable[str]) -> None:
    """Make sure every ``pkg/msg/Type`` is in ``store``, registering unknown packages from their .msg files.

    Raises:
        BagError: a type is malformed or its package's definitions cannot be found.
    """
    for msgtype in msgtypes:
        if msgtype in store.fielddefs:
            continue
        parts = msgtype.split("/")
        if len(parts) != 3 or parts[1] != "msg" or not all(parts):
            raise BagError(f"message type {msgtype!r} is not of the form 'package/msg/Type'")
        register_package(store, parts[0])
        if msgtype not in store.fielddefs:
            raise BagError(f"package {parts[0]!r} has no message {parts[2]!r} (type {msgtype!r})")


def canonical_cdr(raw: bytes | memoryview, msgtype: str, store: Typestore | None = None) -> bytes:
    """The same message re-serialized with zeroed alignment padding.

    rclpy's serializer leaves padding bytes uninitialised, so the same message gives different bytes
    from run to run; bags meant to be byte-for-byte reproducible store this form instead.

    Raises:
        BagError: the bytes are not a valid CDR message of ``msgtype``.
    """
    store = store if store is not None else typestore()
    ensure_types(store, [msgtype])
    try:
        return bytes(store.serialize_cdr(store.deserialize_cdr(bytes(raw), msgtype), msgtype))
    except (SerdeError, TypesysError, ValueError, IndexError, AssertionError, struct.error) as err:
        raise BagError(f"invalid CDR data for {msgtype}: {err}") from err


# ------------------------------------------------------------------------------------------- writing


class BagWriter:
    """A rosbag2 directory being written: connections are added on first use of a topic.

    mcap bags are zstd-compressed per chunk (the mcap "storage" compression that ``ros2 bag`` reads
    transparently); sqlite3 bags compress each message with zstd when ``compress`` is set.
    The directory is finished (index and metadata.yaml) by :meth:`close`, also when the ``with``
    block ends with an exception, so whatever was recorded stays readable.

    Args:
        path: the bag directory to create (must not exist).
        storage: "mcap" or "sqlite3".
        compress: zstd compression as above.
        store: typestore with every type that will be written (default: :func:`typestore`).

    Raises:
        BagError: the directory exists or the storage is unknown.
    """

    def __init__(self, path: Path | str, storage: str = DEFAULT_STORAGE, compress: bool = True,
                 store: Typestore | None = None) -> None:
        if storage not in STORAGES:
            raise BagError(f"unknown storage {storage!r}; expected one of {sorted(STORAGES)}")
        self.path = Path(path)
        self.storage = storage
        self.store = store if store is not None else typestore()
        try:
            self._writer = Writer(self.path, version=Writer.VERSION_LATEST, storage_plugin=STORAGES[storage])
            if compress:
                mode = CompressionMode.STORAGE if storage == "mcap" else CompressionMode.MESSAGE
                self._writer.set_compression(mode, CompressionFormat.ZSTD)
            self._writer.open()
        except (WriterError, OSError) as err:
            raise BagError(f"cannot create bag {self.path}: {err}") from err
        self._connections: dict[str, Connection] = {}
        self.message_count = 0
        self._open = True

    def add_topic(self, topic: str, msgtype: str, qos: Sequence[Qos] = (), rihs01: str | None = None) -> Connection:
        """Declare a topic (idempotent for the same type).

        Args:
            rihs01: the type hash the publisher announced; checked against the typestore's definition.

        Raises:
            BagError: the topic is already declared with another type, the type is unknown, or the
                announced hash differs from the definition found (the bag would not be self-describing).
        """
        known = self._connections.get(topic)
        if known is not None:
            if known.msgtype != msgtype:
                raise BagError(f"topic {topic!r} is recorded as {known.msgtype}, cannot also take {msgtype}")
            return known
        ensure_types(self.store, [msgtype])
        expected = self.store.hash_rihs01(msgtype)
        if rihs01 and rihs01 != expected:
            raise BagError(f"type hash of {msgtype} on {topic!r} is {rihs01}, but the definition found here hashes "
                           f"to {expected}: the publisher was built from different .msg files")
        msgdef, _ = self.store.generate_msgdef(msgtype, ros_version=2)
        try:
            connection = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=expected,
                                                     offered_qos_profiles=list(qos))
        except WriterError as err:
            raise BagError(f"cannot add topic {topic!r} to {self.path}: {err}") from err
        self._connections[topic] = connection
        return connection

    def write(self, topic: str, timestamp_ns: int, raw: bytes | memoryview) -> None:
        """Append one serialized (CDR) message of a declared topic.

        Raises:
            BagError: the topic was not declared or the bag is closed.
        """
        connection = self._connections.get(topic)
        if connection is None or not self._open:
            raise BagError(f"cannot write to {topic!r}: " + ("bag is closed" if not self._open else "topic not added"))
        self._writer.write(connection, int(timestamp_ns), raw)
        self.message_count += 1

    def write_message(self, topic: str, msgtype: str, timestamp_ns: int, message: object,
                      qos: Sequence[Qos] = ()) -> None:
        """Serialize a rosbags message object with the typestore and append it (adding the topic if new)."""
        self.add_topic(topic, msgtype, qos)
        self.write(topic, timestamp_ns, self.store.serialize_cdr(message, msgtype))

    @property
    def topics(self) -> dict[str, str]:
        """Declared topic → message type."""
        return {t: c.msgtype for t, c in self._connections.items()}

    def close(self) -> None:
        """Finish the bag (index and metadata.yaml); idempotent."""
        if self._open:
            self._open = False
            self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


# ------------------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TopicSummary:
    """One topic of a bag: its type, message count and the QoS its publishers offered."""

    name: str
    msgtype: str
    count: int
    qos: tuple[Qos, ...]


@dataclass(frozen=True)
class BagInfo:
    """What ``karma bag info`` prints: storage, time span and topics of a bag."""

    path: Path
    storage: str
    compression: str
    start_ns: int
    duration_ns: int
    message_count: int
    topics: tuple[TopicSummary, ...]

    def topic(self, name: str) -> TopicSummary:
        """The summary of one topic (raises BagError when the bag does not have it)."""
        for summary in self.topics:
            if summary.name == name:
                return summary
        raise BagError(f"bag {self.path} has no topic {name!r}; it has {[t.name for t in self.topics]}")


@contextmanager
def open_reader(path: Path | str) -> Iterator[Reader]:
    """Context manager: an opened rosbags Reader, closed at the end of the block.

    Raises:
        BagError: the path is missing, has no metadata.yaml, or its files are unreadable.
    """
    path = Path(path)
    try:
        reader = Reader(path)
        reader.open()
    except FileNotFoundError as err:
        raise BagError(f"bag {path} does not exist or has no metadata.yaml: {err}") from err
    except (ReaderError, OSError, KeyError, ValueError, TypeError) as err:
        raise BagError(f"cannot open bag {path}: {err}") from err
    try:
        yield reader
    finally:
        reader.close()


def _storage_of(path: Path) -> str:
    if path.is_file():
        return "mcap" if path.suffix == ".mcap" else "sqlite3"
    if any(path.glob("*.mcap*")):
        return "mcap"
    return "sqlite3"


def read_info(path: Path | str) -> BagInfo:
    """Summarise a bag without reading its messages.

    Raises:
        BagError: see :func:`open_reader`.
    """
    path = Path(path)
    with open_reader(path) as reader:
        topics = tuple(
            TopicSummary(name, info.msgtype or "?", info.msgcount,
                         tuple(q for c in info.connections for q in getattr(c.ext, "offered_qos_profiles", ())))
            for name, info in sorted(reader.topics.items()))
        count = reader.message_count
        start = reader.start_time if count else 0
        compression = " ".join(x for x in (reader.compression_mode, reader.compression_format) if x)
        storage = _storage_of(path)
        if storage == "mcap" and not compression:
            compression = "mcap chunks"
        return BagInfo(path, storage, compression or "none", start, reader.duration if count else 0, count, topics)


def format_info(info: BagInfo) -> str:
    """Human-readable summary, in the spirit of ``ros2 bag info``."""
    lines = [
        f"Files:             {info.path}",
        f"Storage id:        {info.storage}",
        f"Compression:       {info.compression}",
        f"Duration:          {info.duration_ns / 1e9:.3f} s",
        f"Start:             {info.start_ns / 1e9:.3f} s",
        f"Messages:          {info.message_count}",
        "Topic information:",
    ]
    width = max((len(t.name) for t in info.topics), default=0)
    for t in info.topics:
        lines.append(f"  {t.name:<{width}}  {t.msgtype}  count={t.count}")
    return "\n".join(lines)


def iter_messages(reader: Reader, topics: Iterable[str] | None = None, start_ns: int | None = None,
                  stop_ns: int | None = None) -> Iterator[tuple[Connection, int, bytes]]:
    """(connection, timestamp ns, raw CDR bytes) in timestamp order, optionally only some topics.

    Raises:
        BagError: a requested topic is not in the bag, or the bag's data is corrupt.
    """
    connections = list(reader.connections)
    if topics is not None:
        wanted = set(topics)
        missing = wanted - {c.topic for c in connections}
        if missing:
            raise BagError(f"bag has no topic(s) {sorted(missing)}; it has {sorted({c.topic for c in connections})}")
        connections = [c for c in connections if c.topic in wanted]
        if not connections:
            return
    try:
        yield from reader.messages(connections=connections, start=start_ns, stop=stop_ns)
    except (ReaderError, OSError, ValueError, KeyError) as err:
        raise BagError(f"cannot read messages: {err}") from err

