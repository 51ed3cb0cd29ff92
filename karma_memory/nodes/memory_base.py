"""The base both memory nodes share: persistence, save/load/reset, acknowledged inputs, coalesced publishing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from karma_interfaces.msg import ObjectObservationArray
from karma_interfaces.srv import LoadMemory, ResetMemory, SaveMemory
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from karma_memory.core.errors import ConfigError, KarmaMemoryError
from karma_memory.core.types import ObjectObservation
from karma_memory.nodes import conversions as cv
from karma_memory.nodes.common import (MALFORMED, Coalescer, Param, ParameterSet, load_at_start, memory_directory,
                                      warm_up)
from karma_memory.nodes.markers import marker_array, marker_keys
from karma_memory.nodes.qos import EVENTS, LATCHED

__all__ = ["MEMORY_PARAMETERS", "check_memory_parameters", "MemoryNode"]

#: Parameters of every memory node (each adds its own).
MEMORY_PARAMETERS: dict[str, Param] = {
    "memory_dir": Param("", "directory the memory loads at start and saves to; '' = no persistence", read_only=True),
    "load_at_start": Param(True, "load memory_dir at start (false = start fresh, as the paper refreshes the STM)",
                           read_only=True),
    "flush_interval_s": Param(30.0, "save to memory_dir this often when changed, seconds (0 = only at shutdown)",
                              read_only=True),
    "publish_min_interval_s": Param(0.1, "minimum seconds between state snapshots (deltas are not limited)"),
    "max_observations": Param(2000, "observations per message above which the whole message is rejected"),
    "observations_depth": Param(1000, "observation messages queued while the node is busy (the oldest are lost "
                                "beyond it): ~10 s of a 1,000 obs/s stream in messages of 10", read_only=True),
    "warm_up": Param(True, "load the sentence embedder in the background at start (else at the first query)",
                     read_only=True),
    "markers.enabled": Param(True, "publish <node>/markers for rviz"),
    "markers.min_interval_s": Param(1.0, "minimum seconds between marker arrays (rendering is for people)"),
}


def check_memory_parameters(values: Mapping[str, Any]) -> None:
    """Validate the shared parameters.

    Raises:
        ConfigError: naming the bad value.
    """
    for name in ("publish_min_interval_s", "markers.min_interval_s"):
        if not values[name] > 0:
            raise ConfigError(f"{name} must be > 0 s, got {values[name]!r}")
    if values["flush_interval_s"] < 0:
        raise ConfigError(f"flush_interval_s must be >= 0 s, got {values['flush_interval_s']!r}")
    if values["max_observations"] < 1:
        raise ConfigError(f"max_observations must be >= 1, got {values['max_observations']!r}")
    if values["observations_depth"] < 1:
        raise ConfigError(f"observations_depth must be >= 1, got {values['observations_depth']!r}")


class MemoryNode(Node):
    """A node that owns one memory object (``self.memory`` with save/load/__len__) and serves it.

    Topics and services are named after the node (relative, so namespaces work): it listens on
    ``observations`` and ``<name>/observations`` (input meant for this memory only), acknowledges every
    message on ``<name>/processed`` (a Header with the message's stamp and :meth:`ack_token`), and
    serves ``<name>/save``, ``<name>/load`` and ``<name>/reset``. Subclasses implement the hooks below.
    """

    file_name = ""

    def __init__(self, name: str, spec: Mapping[str, Param], build: Callable[[dict[str, Any]], Any],
                 **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.params = ParameterSet(self, spec, build, self._on_params)
        values = self.params.values
        self.directory = memory_directory(values["memory_dir"])
        self.autosave, self.saved_token, self.shown = True, None, set()
        self.marker_pub = self.create_publisher(MarkerArray, f"{name}/markers", LATCHED)
        self.ack_pub = self.create_publisher(Header, f"{name}/processed", EVENTS)
        self.state = Coalescer(self, values["publish_min_interval_s"], self.publish_state)
        self.markers = Coalescer(self, values["markers.min_interval_s"], self.publish_markers)
        if values["warm_up"]:
            warm_up(self.get_logger(), chroma=self.uses_chroma)
        if self.directory is not None and values["flush_interval_s"] > 0:
            self.create_timer(values["flush_interval_s"], self.flush)

    def start(self) -> None:
        """Load the memory, open the inputs and services, publish the first state (end of subclass __init__)."""
        name, values = self.get_name(), self.params.values
        if self.directory is not None and values["load_at_start"]:
            self.autosave = load_at_start(self.memory.load, self.directory / self.file_name, self.get_logger())
            if self.loaded():
                self.saved_token = self.change_token()
                self.after_load()
        if not self.loaded():
            self.start_fresh()
        queue = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=values["observations_depth"],
                           reliability=EVENTS.reliability, durability=EVENTS.durability)  # EVENTS, deeper
        for topic in ("observations", f"{name}/observations"):
            self.create_subscription(ObjectObservationArray, topic, self._on_observations, queue)
        self.create_service(SaveMemory, f"{name}/save", self._on_save)
        self.create_service(LoadMemory, f"{name}/load", self._on_load)
        self.create_service(ResetMemory, f"{name}/reset", self._on_reset)
        self.replaced()

    # ---- hooks ----------------------------------------------------------------------------------------
    uses_chroma = False
    memory: Any

    def apply(self, observations: list[ObjectObservation]) -> bool:
        """Fold a validated batch in (raise KarmaMemoryError to reject it whole); return whether it changed."""
        raise NotImplementedError

    def loaded(self) -> bool:
        """Whether the memory holds anything after the start-up load."""
        return len(self.memory) > 0

    def start_fresh(self) -> None:
        """Nothing was loaded at start: build the initial memory (the default keeps the empty one)."""

    def change_token(self) -> object:
        """Changes whenever the memory does (a version or a counter): decides whether to save."""
        raise NotImplementedError

    def ack_token(self) -> str:
        """What the acknowledgement's frame_id carries (e.g. the graph version)."""
        return str(self.change_token())

    def publish_state(self) -> None:
        raise NotImplementedError

    def render_markers(self) -> list[Marker]:
        raise NotImplementedError

    def reset_memory(self) -> str:
        """Empty the memory; return what was done."""
        raise NotImplementedError

    def on_params(self, config: Any, changed: dict[str, Any]) -> None:
        """Apply an accepted parameter change (the config built by the node's build function)."""

    def after_load(self) -> None:
        """The memory was just replaced by a successful load: re-derive what depends on its content.

        Called at start-up when ``memory_dir`` was loaded (not when the node starts fresh) and after every
        successful ``<name>/load``, in both cases before :meth:`replaced` publishes the new state. A load
        that fails leaves the memory unchanged and does not call it; a reset is not a load either (do
        that work in :meth:`reset_memory`). The default does nothing.
        """

    def replaced(self) -> None:
        """The whole memory changed (start, load, reset): publish state and a cleared marker set."""
        self.state.flush()
        self.publish_markers(clear=True)

    # ---- shared behaviour -----------------------------------------------------------------------------
    def _on_params(self, config: Any, changed: dict[str, Any]) -> None:
        self.state.min_interval_s = self.params["publish_min_interval_s"]
        self.markers.min_interval_s = self.params["markers.min_interval_s"]
        self.on_params(config, changed)
        self.publish_markers(clear=True)

    def changed(self) -> None:
        """The memory changed: publish state and markers (coalesced)."""
        self.state.mark()
        self.markers.mark()

    def publish_markers(self, clear: bool = False) -> None:
        if self.params["markers.enabled"]:
            markers = self.render_markers()
            self.marker_pub.publish(marker_array(markers, self.shown, clear=clear))
            self.shown = marker_keys(markers)

    def _on_observations(self, msg: ObjectObservationArray) -> None:
        try:
            observations = cv.observations_from_msg(msg, cv.Limits(max_observations=self.params["max_observations"]))
            if self.apply(observations):
                self.changed()
        except KarmaMemoryError as err:
            self.get_logger().error(f"rejected observations, memory unchanged: {err}")
        self.ack_pub.publish(Header(stamp=msg.header.stamp, frame_id=self.ack_token()))

    def _target(self, directory: str) -> Path | None:
        return Path(directory).expanduser() if directory.strip() else self.directory

    def _on_save(self, request: SaveMemory.Request, response: SaveMemory.Response) -> SaveMemory.Response:
        target = self._target(request.directory)
        token = self.change_token()
        try:
            response.path = str(self.memory.save(target))
        except (KarmaMemoryError, OSError) as err:
            response.success, response.message = False, f"save failed: {err}"
            return response
        if target == self.directory:
            self.saved_token, self.autosave = token, True
        response.success, response.message = True, f"saved {len(self.memory)} objects"
        return response

    def _on_load(self, request: LoadMemory.Request, response: LoadMemory.Response) -> LoadMemory.Response:
        try:
            used = self.memory.load(self._target(request.directory))
        except (KarmaMemoryError, OSError, *MALFORMED) as err:
            response.success, response.message = False, f"load failed, memory unchanged: {err}"
            return response
        self.after_load()
        self.replaced()
        response.success, response.message, response.objects_loaded = True, f"loaded {used}", len(self.memory)
        return response

    def _on_reset(self, request: ResetMemory.Request, response: ResetMemory.Response) -> ResetMemory.Response:
        response.message = self.reset_memory()
        self.replaced()
        response.success = True
        return response

    def flush(self) -> None:
        """Save to memory_dir when the memory changed since the last save (and autosave is on)."""
        if self.directory is None or not self.autosave or self.change_token() == self.saved_token:
            return
        token = self.change_token()
        try:
            self.memory.save()
            self.saved_token = token
        except (KarmaMemoryError, OSError) as err:
            self.get_logger().error(f"saving to {self.directory} failed: {err}")

    def close(self) -> None:
        """Flush at shutdown."""
        self.flush()
