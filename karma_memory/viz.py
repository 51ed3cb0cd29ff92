"""Top-down PNG of the memories: areas and navigability, objects by type, STM units highlighted."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Iterable

import networkx as nx

from karma_memory.core import scene_graph as sg
from karma_memory.core.short_term import MemoryUnit

__all__ = ["plot_memory"]


def _colour(object_type: str) -> tuple[float, float, float]:
    """A stable colour per type (same hash as the rviz markers use)."""
    h = zlib.crc32(object_type.encode())
    return (0.25 + 0.7 * ((h >> 0) & 255) / 255, 0.25 + 0.7 * ((h >> 8) & 255) / 255, 0.25 + 0.7 * ((h >> 16) & 255) / 255)


def plot_memory(graph: nx.DiGraph, stm_units: Iterable[MemoryUnit], path: Path | str, title: str = "") -> Path:
    """Draw the scene graph (x–z plane, THOR frame) with the STM's units ringed in red; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 8))
    positions = {a: graph.nodes[a]["position"] for a in sg.area_ids(graph)}
    for u, v, data in graph.edges(data=True):
        if data.get("relation") == "navigable" and u < v:
            (x1, _, z1), (x2, _, z2) = positions[u], positions[v]
            ax.plot([x1, x2], [z1, z2], color="0.8", lw=1, zorder=1)
    for area, (x, _, z) in positions.items():
        ax.scatter([x], [z], s=60, color="0.55", zorder=2)
        ax.annotate(area.replace("area_", "a"), (x, z), fontsize=6, color="0.4", xytext=(3, 3),
                    textcoords="offset points")
    for obj in sg.object_ids(graph):
        data = graph.nodes[obj]
        x, _, z = data["position"]
        ax.scatter([x], [z], s=26 if data["movable"] else 60, marker="o" if data["movable"] else "s",
                   color=_colour(data["object_type"]), edgecolors="k", linewidths=0.3, zorder=3)
        if not data["movable"]:
            ax.annotate(data["object_type"], (x, z), fontsize=5, xytext=(2, -7), textcoords="offset points")
    units = list(stm_units)
    labelled: set[str] = set()
    for unit in units:
        x, _, z = unit.position
        ax.scatter([x], [z], s=220, facecolors="none", edgecolors="red", linewidths=1.8, zorder=4)
        if unit.object_type in labelled:  # eight apple slices in one spot: one label
            continue
        labelled.add(unit.object_type)
        states = [s for s in unit.states if s != "none"]
        label = unit.object_type + (f" ({', '.join(states)})" if states else "")
        ax.annotate(label, (x, z), fontsize=7, color="red", xytext=(6, 6), textcoords="offset points")
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, THOR)")
    ax.set_ylabel("z (m, THOR)")
    ax.set_title(title or f"scene graph: {len(positions)} areas, {len(sg.object_ids(graph))} objects; "
                          f"red: {len(units)} short-term memory units")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
