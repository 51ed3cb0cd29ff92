"""Plumbing every node shares: parameters mirrored from a typed config, coalesced publishing, spin/shutdown."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Mapping, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from karma_memory.core.errors import ConfigError, KarmaMemoryError, SchemaVersionError

__all__ = ["Param", "ParameterSet", "Coalescer", "MALFORMED", "memory_directory", "load_at_start", "warm_up",
           "run_node"]

#: What a loader may raise on a well-checksummed but malformed file besides MemoryFileError (a core loader
#: that misses a case); treated as a corrupt file, so one bad file never takes a node down.
MALFORMED: tuple[type[Exception], ...] = (ValueError, TypeError, KeyError, AttributeError, IndexError)

T = TypeVar("T")


@dataclass(frozen=True)
class Param:
    """One ROS parameter: its default (which fixes its type), a description, and whether it may change at runtime."""

    default: Any
    description: str
    read_only: bool = False


class ParameterSet(Generic[T]):
    """Declares a node's parameters once and keeps a typed config built from them.

    ``build`` turns the parameter values into the node's config (usually a frozen core dataclass
    whose ``__post_init__`` raises ConfigError). A runtime change is validated by building a
    candidate config; on error the change is rejected with the reason, so ``ros2 param set``
    prints it and the node keeps its old config. Accepted changes reach ``on_change`` after they
    are set.

    Raises:
        ConfigError: at construction, when the parameters (e.g. from the YAML file) are invalid.
    """

    def __init__(self, node: Node, spec: Mapping[str, Param], build: Callable[[dict[str, Any]], T],
                 on_change: Callable[[T, dict[str, Any]], None] | None = None) -> None:
        self._node, self._spec, self._build, self._on_change = node, dict(spec), build, on_change
        for name, param in self._spec.items():
            node.declare_parameter(name, param.default, ParameterDescriptor(
                description=param.description, read_only=param.read_only))
        self.values: dict[str, Any] = {name: node.get_parameter(name).value for name in self._spec}
        try:
            self.config: T = build(dict(self.values))
        except (KarmaMemoryError, ValueError, TypeError) as err:
            raise ConfigError(f"{node.get_name()}: invalid parameters: {err}") from err
        self._pending: tuple[T, dict[str, Any]] | None = None
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def _validate(self, params: list[Parameter]) -> SetParametersResult:
        candidate = dict(self.values)
        candidate.update({p.name: p.value for p in params if p.name in self._spec})
        try:
            config = self._build(dict(candidate))
        except (KarmaMemoryError, ValueError, TypeError) as err:
            self._node.get_logger().warning(f"rejected parameter change {[p.name for p in params]}: {err}")
            return SetParametersResult(successful=False, reason=str(err))
        self._pending = (config, candidate)
        return SetParametersResult(successful=True)

    def _apply(self, params: list[Parameter]) -> None:
        if self._pending is None:
            return
        self.config, self.values = self._pending
        self._pending = None
        if self._on_change is not None:
            self._on_change(self.config, {p.name: p.value for p in params if p.name in self._spec})


class Coalescer:
    """Runs ``publish`` on change but at most once per interval (leading and trailing edge).

    A change after a quiet period is published at once (low latency); changes inside the interval
    are folded into one publication when it ends. No timer runs while nothing changes, so an idle
    node costs no CPU. The interval is ``min_interval_s``, stretched so that publishing takes at most
    ``max_duty`` of the thread's time (but never beyond ``max_interval_s``): a snapshot of a large graph
    that costs 20 ms of CPU then goes out every 0.4 s at 5 %, and a node under a high observation rate
    keeps its CPU for the observations. The cost is a running average, so one slow publication (a
    garbage collection) does not stretch the next interval much.
    """

    def __init__(self, node: Node, min_interval_s: float, publish: Callable[[], None],
                 max_duty: float = 0.05, max_interval_s: float = 5.0) -> None:
        if not 0 < max_duty <= 1:
            raise ConfigError(f"max_duty must be in (0, 1], got {max_duty!r}")
        self._publish = publish
        self._min_interval_s = max(float(min_interval_s), 1e-3)
        self.max_duty, self.max_interval_s = max_duty, max_interval_s
        self.cost_s = 0.0  # CPU seconds a publication takes (running average)
        self._published = False
        self._last = -math.inf
        self._timer = node.create_timer(self._min_interval_s, self._on_timer, autostart=False)

    @property
    def min_interval_s(self) -> float:
        """The shortest interval (a runtime parameter change sets it)."""
        return self._min_interval_s

    @min_interval_s.setter
    def min_interval_s(self, value: float) -> None:
        self._min_interval_s = max(float(value), 1e-3)
        self._timer.timer_period_ns = int(self._min_interval_s * 1e9)

    @property
    def interval_s(self) -> float:
        """The current interval: ``min_interval_s``, or longer when publishing is costly."""
        return max(self.min_interval_s, min(self.cost_s / self.max_duty, self.max_interval_s))

    def _due(self) -> bool:
        return time.monotonic() - self._last >= self.interval_s - 1e-3

    def mark(self) -> None:
        """Something changed: publish now, or when the interval since the last publication ends."""
        if self._due():
            self.flush()
        elif self._timer.is_canceled():
            self._timer.reset()

    def flush(self) -> None:
        """Publish now regardless of the interval."""
        self._timer.cancel()
        self._last = time.monotonic()
        started = time.thread_time()
        try:
            self._publish()
        finally:
            cost = time.thread_time() - started
            self.cost_s = 0.5 * (self.cost_s + cost) if self._published else cost
            self._published = True

    def _on_timer(self) -> None:
        if self._due():  # else the timer fires again after min_interval_s, until the stretched interval ends
            self.flush()


def memory_directory(value: str) -> Path | None:
    """The memory directory of a ``memory_dir`` parameter ("" = no persistence; ``~`` expanded)."""
    return Path(value).expanduser() if value.strip() else None


def load_at_start(load: Callable[[], Path], path: Path, logger: Any) -> bool:
    """Load a memory file at node start without ever letting a later save destroy good data.

    A corrupt main file falls back to its ``.prev`` backup inside ``load``. When both are unusable,
    the main file is renamed to ``<name>.corrupt-<unix time>`` (kept for inspection) and the node
    starts fresh. A file written by a newer schema is good data this release cannot read: it is
    left alone and autosave is turned off.

    Returns:
        Whether autosave may write ``path``.
    """
    if not (path.exists() or path.with_name(path.name + ".prev").exists()):
        return True
    try:
        used = load()
    except SchemaVersionError as err:
        logger.error(f"{err}; starting without it and with autosave off (save explicitly to overwrite)")
        return False
    except (KarmaMemoryError, *MALFORMED) as err:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        if path.exists():
            path.rename(aside)
        logger.error(f"cannot load {path}: {err}; moved it to {aside.name} and starting fresh")
        return True
    logger.info(f"loaded memory from {used}")
    return True


def warm_up(logger: Any, chroma: bool = False) -> threading.Thread:
    """Load the sentence embedder (and chromadb) in the background, so the first query does not wait ~10 s.

    Only process-wide, thread-safe loaders run here; no memory object is touched.
    """
    def load() -> None:
        start = time.monotonic()
        try:
            if chroma:
                import chromadb  # noqa: F401 - the import is the slow part
            from karma_memory.core.embedding import default_embedder

            default_embedder().embed(["warm up"])
        except (KarmaMemoryError, ImportError, OSError) as err:
            logger.warning(f"embedder warm-up failed (queries will load it): {err}")
            return
        logger.info(f"embedder ready after {time.monotonic() - start:.1f} s")

    thread = threading.Thread(target=load, name="warm_up", daemon=True)
    thread.start()
    return thread


def run_node(factory: Callable[[], Node], args: list[str] | None = None, threads: int = 1) -> int:
    """Create a node, spin it until SIGINT/SIGTERM, then flush its state and shut down cleanly.

    SIGTERM (systemd, ``docker stop``, launchers) is handled exactly like Ctrl-C: rclpy's handlers
    (installed here for both signals) shut the context down, which ends the spin
    (ExternalShutdownException; KeyboardInterrupt likewise). The node's ``close()`` (when it has one)
    then runs in every case, so persisted memories are flushed. A signal while the node is still
    being built is a normal exit too (nothing to flush yet). A KarmaMemoryError while building the
    node (e.g. a bad parameter file) is logged and gives exit status 1; a second Ctrl-C during
    ``close()`` abandons the final save (the last saved file stays intact) with status 130.

    Returns:
        The process exit status.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.ALL)
    node: Node | None = None
    status = 0
    log = rclpy.logging.get_logger("karma_memory")
    try:
        node = factory()
        executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except KarmaMemoryError as err:
        log.fatal(f"cannot start: {err}")
        status = 1
    except Exception:  # a signal during start-up shuts the context down under the node being built
        if node is not None or rclpy.ok():
            raise
        log.info("stopped by a signal while starting")
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if callable(close):
                try:
                    close()
                except KarmaMemoryError as err:
                    rclpy.logging.get_logger(node.get_name()).error(f"shutdown: {err}")
                    status = status or 1
                except KeyboardInterrupt:
                    rclpy.logging.get_logger(node.get_name()).error(
                        "shutdown interrupted: the final save was abandoned (the last saved file is intact)")
                    status = 130
            node.destroy_node()
        rclpy.try_shutdown()
    return status
