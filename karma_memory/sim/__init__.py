"""Embedded AI2-THOR-compatible simulator: real iTHOR scenes, THOR actions and metadata, skills, rendering."""

from __future__ import annotations

from karma_memory.sim.scenes import SceneData, list_scenes, load_scene

__all__ = ["EmbeddedController", "SimSkillExecutor", "SceneData", "load_scene", "list_scenes"]


def __getattr__(name: str):  # the controller and executor load lazily: scene helpers stay light
    if name == "EmbeddedController":
        from karma_memory.sim.controller import EmbeddedController

        return EmbeddedController
    if name == "SimSkillExecutor":
        from karma_memory.sim.executor import SimSkillExecutor

        return SimSkillExecutor
    raise AttributeError(f"module 'karma_memory.sim' has no attribute {name!r}")
