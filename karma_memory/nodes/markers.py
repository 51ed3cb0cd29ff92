"""MarkerArray rendering of the long-term scene graph and the short-term memory (pure functions, no Node).

One renderer serves any source of graph or units (the node, a saved file, a bag), as in Hydra's
visualizer: it returns plain ADD markers with stable ids, and :func:`marker_array` prepends DELETE
markers for whatever the previous array showed and this one does not, so rviz never keeps a stale
object. Styling comes from parameters (``markers.*`` in config/karma.yaml) through :class:`MarkerStyle`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import zlib
from dataclasses import dataclass, fields
from typing import Any, Iterable, Mapping, Sequence

import networkx as nx
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from karma_memory.core import scene_graph as sg
from karma_memory.core.errors import ConfigError
from karma_memory.core.short_term import MemoryUnit
from karma_memory.nodes.conversions import MAP_FRAME, seconds_to_stamp
from karma_memory.nodes.memory_conversions import map_point, map_size

__all__ = [
    "MarkerKey",
    "MarkerStyle",
    "type_color",
    "stable_id",
    "scene_graph_markers",
    "stm_markers",
    "marker_keys",
    "marker_array",
    "delete_all",
    "NAMESPACES",
]

#: (namespace, id): what identifies a marker in rviz.
MarkerKey = tuple[str, int]

#: Namespaces the renderers use (rviz lets each be toggled).
NAMESPACES = ("objects", "object_labels", "areas", "area_labels", "navigability", "relations",
              "stm_units", "stm_labels")

_RELATION_COLORS = {"on": (0.1, 0.6, 1.0), "inside": (1.0, 0.5, 0.1), "near": (0.6, 0.6, 0.6)}


@dataclass(frozen=True)
class MarkerStyle:
    """How the memories look in rviz.

    Attributes:
        frame_id: fixed frame of every marker (positions are in the REP-103 map frame).
        text_scale: height of label text, metres.
        object_alpha: opacity of object boxes in [0, 1].
        default_size: side of the box drawn for an object of unknown size, metres.
        area_radius: radius of the area spheres, metres.
        line_width: width of navigability and relation lines, metres.
        stm_radius: radius of the highlight around a short-term memory unit, metres.
    """

    frame_id: str = MAP_FRAME
    text_scale: float = 0.12
    object_alpha: float = 0.6
    default_size: float = 0.1
    area_radius: float = 0.2
    line_width: float = 0.02
    stm_radius: float = 0.25

    def __post_init__(self) -> None:
        if not self.frame_id:
            raise ConfigError("MarkerStyle.frame_id must not be empty")
        for f in fields(self):
            if f.name == "frame_id":
                continue
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"MarkerStyle.{f.name} must be a positive number, got {value!r}")
        if self.object_alpha > 1:
            raise ConfigError(f"MarkerStyle.object_alpha must be in (0, 1], got {self.object_alpha!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> MarkerStyle:
        """A style from a mapping of field name → value (unknown keys ignored, e.g. ``enabled``)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def type_color(object_type: str, alpha: float = 1.0) -> ColorRGBA:
    """A stable colour per object type, the same as the embedded simulator's rendered images.

    >>> type_color("Apple") == type_color("Apple")
    True
    """
    digest = hashlib.sha1(object_type.encode()).digest()
    r, g, b = ((60 + digest[i] * 170 // 255) / 255.0 for i in range(3))
    return ColorRGBA(r=r, g=g, b=b, a=float(alpha))


def stable_id(text: str, used: set[int]) -> int:
    """A positive int32 marker id for ``text`` that stays the same across renders (crc32, probed on clash).

    >>> stable_id("Apple|1", set()) == stable_id("Apple|1", set())
    True
    """
    value = zlib.crc32(text.encode()) & 0x7FFFFFFF
    while value in used:
        value = (value + 1) & 0x7FFFFFFF
    used.add(value)
    return value


_TEMPLATES: dict[tuple[str, float], Marker] = {}


def _marker(style: MarkerStyle, stamp: float, ns: str, marker_id: int, kind: int, color: ColorRGBA,
            position: Point | None = None, scale: Vector3 | None = None, text: str = "") -> Marker:
    # A marker carries ~15 sub-messages; copying a template and replacing what differs is 3x faster than
    # building each from scratch (a scene with 1,000 objects renders 3,000 markers). Header and lifetime are
    # shared between markers: rclpy serializes on publish, nothing mutates them afterwards.
    template = _TEMPLATES.get((style.frame_id, stamp))
    if template is None:
        if len(_TEMPLATES) > 64:
            _TEMPLATES.clear()
        template = _TEMPLATES[(style.frame_id, stamp)] = Marker(
            header=Header(stamp=seconds_to_stamp(stamp), frame_id=style.frame_id), action=Marker.ADD,
            lifetime=Duration())
    marker = copy.copy(template)
    marker.ns, marker.id, marker.type, marker.color, marker.text = ns, marker_id, kind, color, text
    marker.pose = Pose(position=position or Point(), orientation=_IDENTITY)
    marker.scale = scale or Vector3(x=1.0, y=1.0, z=1.0)
    return marker


_IDENTITY = Quaternion(w=1.0)


def _label_point(center: Point, height: float, style: MarkerStyle) -> Point:
    return Point(x=center.x, y=center.y, z=center.z + height / 2.0 + style.text_scale)


def _object_markers(node_id: str, data: Mapping[str, Any], style: MarkerStyle, stamp: float,
                    used: dict[str, set[int]]) -> tuple[Marker, Marker]:
    center = map_point(data["position"])
    size = map_size(data["size"]) if data.get("size") is not None else None
    if size is None or min(size.x, size.y, size.z) <= 0:
        size = Vector3(x=style.default_size, y=style.default_size, z=style.default_size)
    object_type = str(data["object_type"])
    box = _marker(style, stamp, "objects", stable_id(node_id, used["objects"]), Marker.CUBE,
                  type_color(object_type, style.object_alpha), center, size)
    states = [s for s in data.get("states", ()) if s != "none"]
    text = object_type + (f" ({', '.join(states)})" if states else "")
    label = _marker(style, stamp, "object_labels", stable_id(node_id, used["object_labels"]), Marker.TEXT_VIEW_FACING,
                    ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0), _label_point(center, size.z, style),
                    Vector3(z=style.text_scale), text)
    return box, label


def scene_graph_markers(graph: nx.DiGraph, style: MarkerStyle = MarkerStyle(), stamp: float = 0.0,
                        cache: dict[str, Any] | None = None) -> list[Marker]:
    """ADD markers for a scene graph: object boxes coloured by type with labels, area spheres with labels,
    one line list of navigability edges and one of object relations (blue on, orange inside, grey near).

    Args:
        cache: optional dict kept between calls; an object whose node ``version`` did not change reuses
            its markers (clear it when the style, the stamp or the whole graph changes). Nodes render with
            stamp 0, which rviz reads as "latest transform", so cached markers never go stale.
    """
    out: list[Marker] = []
    used: dict[str, set[int]] = {ns: set() for ns in NAMESPACES}
    objects = [(n, graph.nodes[n], (n, graph.nodes[n].get("version"))) for n in sorted(sg.object_ids(graph))]
    pairs = {key: cache[key] for _, _, key in objects if key in cache} if cache is not None else {}
    for pair in pairs.values():  # reserve the ids of reused markers first, so a new object never takes one
        for marker in pair:
            used[marker.ns].add(marker.id)
    for node_id, data, key in objects:
        pair = pairs.get(key)
        if pair is None:
            pair = _object_markers(node_id, data, style, stamp, used)
        out.extend(pair)
        if cache is not None:
            pairs[key] = pair
    if cache is not None:
        cache.clear()
        cache.update(pairs)
    diameter = 2.0 * style.area_radius
    for area in sg.area_ids(graph):
        center = map_point(graph.nodes[area]["position"])
        out.append(_marker(style, stamp, "areas", stable_id(area, used["areas"]), Marker.SPHERE,
                           ColorRGBA(r=0.2, g=0.8, b=0.3, a=0.5), center, Vector3(x=diameter, y=diameter, z=diameter)))
        out.append(_marker(style, stamp, "area_labels", stable_id(area, used["area_labels"]), Marker.TEXT_VIEW_FACING,
                           ColorRGBA(r=0.6, g=1.0, b=0.6, a=1.0), _label_point(center, diameter, style),
                           Vector3(z=style.text_scale), area))
    nav, rel, rel_colors = [], [], []
    for u, v, d in graph.edges(data=True):
        relation = d.get("relation")
        if relation == sg.NAVIGABLE and str(u) < str(v):
            nav += [map_point(graph.nodes[u]["position"]), map_point(graph.nodes[v]["position"])]
        elif relation in _RELATION_COLORS and "position" in graph.nodes[v]:
            rel += [map_point(graph.nodes[u]["position"]), map_point(graph.nodes[v]["position"])]
            r, g, b = _RELATION_COLORS[relation]
            rel_colors += [ColorRGBA(r=r, g=g, b=b, a=1.0)] * 2
    width = Vector3(x=style.line_width)
    if nav:
        marker = _marker(style, stamp, "navigability", 0, Marker.LINE_LIST, ColorRGBA(r=0.2, g=0.8, b=0.3, a=0.8),
                         scale=width)
        marker.points = nav
        out.append(marker)
    if rel:
        marker = _marker(style, stamp, "relations", 0, Marker.LINE_LIST, ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0),
                         scale=width)
        marker.points, marker.colors = rel, rel_colors
        out.append(marker)
    return out


def stm_markers(units: Sequence[MemoryUnit], style: MarkerStyle = MarkerStyle(), stamp: float = 0.0,
                cache: dict[MemoryUnit, tuple[Marker, Marker]] | None = None) -> list[Marker]:
    """ADD markers highlighting resident short-term memory units: a yellow sphere per unit and a label
    ``Type hits=N (states)``, most recently seen first.

    Args:
        cache: optional dict kept between calls; units are frozen values, so an unchanged unit reuses its
            markers (clear it when the style changes).
    """
    out: list[Marker] = []
    used: dict[str, set[int]] = {"stm_units": set(), "stm_labels": set()}
    ordered = sorted(units, key=lambda u: -u.last_seen)
    pairs = {u: cache[u] for u in ordered if u in cache} if cache is not None else {}
    for pair in pairs.values():
        for marker in pair:
            used[marker.ns].add(marker.id)
    diameter = 2.0 * style.stm_radius
    for unit in ordered:
        pair = pairs.get(unit)
        if pair is None:
            center = map_point(unit.position)
            sphere = _marker(style, stamp, "stm_units", stable_id(unit.object_id, used["stm_units"]), Marker.SPHERE,
                             ColorRGBA(r=1.0, g=0.85, b=0.0, a=0.6), center,
                             Vector3(x=diameter, y=diameter, z=diameter))
            states = [s for s in unit.states if s != "none"]
            text = f"{unit.object_type} hits={unit.hits}" + (f" ({', '.join(states)})" if states else "")
            label = _marker(style, stamp, "stm_labels", stable_id(unit.object_id, used["stm_labels"]),
                            Marker.TEXT_VIEW_FACING, ColorRGBA(r=1.0, g=0.9, b=0.3, a=1.0),
                            _label_point(center, diameter, style), Vector3(z=style.text_scale), text)
            pair = pairs[unit] = (sphere, label)
        out.extend(pair)
    if cache is not None:
        cache.clear()
        cache.update(pairs)
    return out


def marker_keys(markers: Iterable[Marker]) -> set[MarkerKey]:
    """The (namespace, id) of every ADD marker."""
    return {(m.ns, m.id) for m in markers if m.action == Marker.ADD}


def delete_all(style: MarkerStyle = MarkerStyle(), stamp: float = 0.0) -> Marker:
    """A DELETEALL marker: clears everything this publisher showed (used after a memory reset or load)."""
    return Marker(header=Header(stamp=seconds_to_stamp(stamp), frame_id=style.frame_id), action=Marker.DELETEALL)


def marker_array(markers: Sequence[Marker], previous: set[MarkerKey] | None = None, *,
                 clear: bool = False) -> MarkerArray:
    """A MarkerArray that brings rviz from ``previous`` to exactly ``markers``.

    Args:
        markers: the ADD markers of the new render.
        previous: keys shown by the last published array; those missing now get a DELETE first.
        clear: start with DELETEALL instead (after a reset or load, or for a late-joining viewer).
    """
    out = MarkerArray()
    header = markers[0].header if markers else Header(frame_id=MAP_FRAME)
    if clear:
        out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    elif previous:
        for ns, marker_id in sorted(previous - marker_keys(markers)):
            out.markers.append(Marker(header=header, ns=ns, id=marker_id, action=Marker.DELETE))
    out.markers.extend(markers)
    return out
