"""Simulator coverage: can the robot see and reach every object of a scene, and does GoToObject get it there?

For every object of each scene (the task suites' scenes by default, ``--all`` for the 120 iTHOR
scenes) two checks run from the agent's start state:

- **oracle**: is there a reachable pose (a reachable grid cell, any yaw towards the object, any
  THOR horizon in [-30, 60]) from which the object is visible? Visible implies within THOR's
  interaction distance (the controller's ``visibility_distance``, 1.5 m by default, measured as
  THOR does: horizontally from the agent to the object's box). An object inside a closed
  receptacle is tested with its holders opened (as a robot would: open the fridge, then look).
  When no pose works, the reason is the most telling one met: ``no_cell_in_range`` (no reachable
  cell within interaction distance), ``out_of_view`` (in range, but no horizon puts it in the
  frustum: ``too_high`` / ``too_low`` when it is above / below every view), or ``occluded`` (with
  the objects in the way).
- **goto**: what the planner's skills do: the executor is told where memory believes the object
  is (its box centre), runs ``GoToObject(objectId)`` and must end with the object visible and
  within reach (``reach_m``, same measure). For an object inside a closed receptacle the sequence
  is GoToObject(object) → GoToObject(holder) → OpenObject(holder) → GoToObject(object).

A failure whose oracle also fails is the simulator's (``sim:`` in the totals); one the oracle
passes is the skill layer's (``executor:``).

Prints per-scene failures and totals; writes ``sim_coverage.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Mapping

__all__ = ["main", "interactable", "task_scenes", "scene_coverage", "oracle_check", "goto_check"]

#: Any of these flags makes an object something a THOR agent can act on.
_ACTION_FLAGS = ("pickupable", "receptacle", "openable", "toggleable", "sliceable", "breakable", "dirtyable",
                 "canFillWithLiquid", "cookable", "canBeUsedUp")
_ORACLE_HORIZONS = tuple(range(-30, 61, 10))


def interactable(obj: Mapping[str, Any]) -> bool:
    """Can a THOR agent act on this object at all? (The Floor is a receptacle but not a target.)

    >>> interactable({"objectType": "Apple", "pickupable": True}), interactable({"objectType": "Floor"})
    (True, False)
    """
    if obj.get("objectType") == "Floor":
        return False
    return any(obj.get(flag) for flag in _ACTION_FLAGS)


def task_scenes() -> list[str]:
    """Scenes used by the simple, composite and complex task suites, in FloorPlan order."""
    from karma_memory.core.tasks import load_all_suites

    names = {task.scene for task in load_all_suites()}
    return sorted(names, key=lambda n: int(n.replace("FloorPlan", "")))


def _centre(obj: Mapping[str, Any]) -> tuple[float, float, float]:
    c = obj["axisAlignedBoundingBox"]["center"]
    return float(c["x"]), float(c["y"]), float(c["z"])


def _closed_holders(world: Any, oid: str) -> list[str]:
    """Closed enclosing receptacles holding ``oid``, outermost first (open them in that order)."""
    from karma_memory.sim.rules import ENCLOSING_TYPES

    chain = [a for a in world.ancestors(oid) if world.objects[a]["objectType"] in ENCLOSING_TYPES
             and not world.objects[a].get("isOpen")]
    return list(reversed(chain))


def _open_all(controller: Any, holders: Iterable[str]) -> list[str]:
    opened = []
    for holder in holders:
        event = controller.step(action="OpenObject", objectId=holder, forceAction=True)
        if event.last_action_success:
            opened.append(holder)
    return opened


def _close_all(controller: Any, holders: Iterable[str]) -> None:
    for holder in reversed(list(holders)):
        controller.step(action="CloseObject", objectId=holder, forceAction=True)


def oracle_check(controller: Any, oid: str) -> dict[str, Any]:
    """Is ``oid`` visible from some reachable pose (holders opened)? With the pose, or the reason not.

    Returns:
        ``{"ok": bool, "reason": str, "pose": [x, z, yaw, horizon] | None, "occluders": [...],
        "nearest_m": float}`` (``nearest_m``: THOR's agent-to-box distance from the nearest cell).
    """
    import numpy as np

    from karma_memory.sim.geometry import aabb_of
    from karma_memory.sim.world import Pose, capsule_dist2

    world = controller._world
    opened = _open_all(controller, _closed_holders(world, oid))
    try:
        snap = world.snapshot()
        lo, hi = aabb_of(world.objects[oid])
        y = world.pose.y
        cam_dy = Pose(0.0, y, 0.0, 0.0, 0.0).camera[1] - y
        reach = controller.visibility_distance
        reach2 = reach ** 2
        cells = []
        for x, z in controller.reachable_positions():
            d2 = float(capsule_dist2(np.array([x, y, z]), lo, hi, reach)[0])
            cells.append((d2, float(x), float(z)))
        cells.sort()
        nearest = math.sqrt(cells[0][0]) if cells else math.inf
        in_range = [c for c in cells if c[0] <= reach2]
        if not in_range:
            return {"ok": False, "reason": "no_cell_in_range", "pose": None, "occluders": [],
                    "nearest_m": round(nearest, 3)}
        aspect = controller.width / controller.height
        centre = (lo + hi) / 2.0
        reasons: Counter[str] = Counter()
        occluders: Counter[str] = Counter()
        for _, x, z in in_range:
            near = np.clip(np.array([x, 0.0, z]), lo, hi)
            yaws = {round(math.degrees(math.atan2(centre[0] - x, centre[2] - z)), 3)}
            if abs(near[0] - x) + abs(near[2] - z) > 1e-6:
                yaws.add(round(math.degrees(math.atan2(near[0] - x, near[2] - z)), 3))
            for yaw in sorted(yaws):
                for horizon in _ORACLE_HORIZONS:
                    pose = Pose(x, y, z, yaw % 360.0, float(horizon))
                    if snap.visibility(pose, controller.visibility_distance, controller.fov, aspect, only=[oid])[oid]:
                        return {"ok": True, "reason": "visible", "pose": [x, z, yaw, horizon], "occluders": [],
                                "nearest_m": round(nearest, 3)}
                    why = snap.explain(pose, controller.visibility_distance, controller.fov, aspect, oid)
                    reasons[why["reason"]] += 1
                    occluders.update(why["occluders"][:3])
        if reasons["occluded"]:
            reason = "occluded"
        elif reasons["out_of_view"]:
            cam_y = y + cam_dy
            reason = "too_high" if lo[1] > cam_y else "too_low" if hi[1] < cam_y - 1.0 else "out_of_view"
        else:
            reason = reasons.most_common(1)[0][0] if reasons else "unknown"
        return {"ok": False, "reason": reason, "pose": None, "occluders": [k for k, _ in occluders.most_common(3)],
                "nearest_m": round(nearest, 3)}
    finally:
        _close_all(controller, opened)


def goto_check(controller: Any, executor_factory: Any, oid: str) -> dict[str, Any]:
    """Run the planner's skill sequence for ``oid`` from the start pose; ok when it ends visible and in reach."""
    from karma_memory.core.skills import SkillCall

    start = controller.scene.agent_start
    controller.step(action="TeleportFull", position=start["position"], rotation=start["rotation"],
                    horizon=start["horizon"])
    executor = executor_factory()
    world = controller._world
    holders = _closed_holders(world, oid)
    opened: list[str] = []
    steps = 0
    try:
        executor.remember(oid, _centre(world.objects[oid]))
        result = executor.execute(SkillCall("GoToObject", {"object": oid}))
        steps += result.cost.steps
        if not result.success:
            return {"ok": False, "reason": "goto_failed", "message": result.message, "steps": steps}
        for holder in holders:  # the planner opens the container it was told the object is in
            result = executor.execute(SkillCall("GoToObject", {"object": holder}))
            steps += result.cost.steps
            opened_result = executor.execute(SkillCall("OpenObject", {"object": holder}))
            steps += opened_result.cost.steps
            if not (result.success and opened_result.success):
                return {"ok": False, "reason": "open_failed",
                        "message": result.message if not result.success else opened_result.message, "steps": steps}
            opened.append(holder)
        if holders:
            result = executor.execute(SkillCall("GoToObject", {"object": oid}))
            steps += result.cost.steps
            if not result.success:
                return {"ok": False, "reason": "goto_failed", "message": result.message, "steps": steps}
        obj = executor._objects()[oid]
        if not obj.get("visible"):
            return {"ok": False, "reason": "not_visible_after_goto", "message": result.message, "steps": steps}
        distance = executor._surface_distance(obj)
        if distance > executor.reach_m:
            return {"ok": False, "reason": "out_of_reach", "message": f"{distance:.2f} m", "steps": steps}
        return {"ok": True, "reason": "ok", "message": result.message, "steps": steps}
    finally:
        _close_all(controller, opened)


def scene_coverage(scene: str, goto: bool = True, only_interactable: bool = True) -> dict[str, Any]:
    """Oracle (and GoToObject) checks for every object of one scene."""
    from karma_memory.sim import EmbeddedController, SimSkillExecutor
    from karma_memory.sim.scenes import default_area_positions

    controller = EmbeddedController(scene, render_images=False)
    areas = default_area_positions(controller.scene)
    rows = []
    for obj in list(controller.last_event.metadata["objects"]):
        if obj["objectType"] == "Floor" or (only_interactable and not interactable(obj)):
            continue
        oid = obj["objectId"]
        row: dict[str, Any] = {"objectId": oid, "objectType": obj["objectType"],
                               "enclosed": bool(_closed_holders(controller._world, oid))}
        row["oracle"] = oracle_check(controller, oid)
        if goto:
            row["goto"] = goto_check(controller, lambda: SimSkillExecutor(controller, areas), oid)
        rows.append(row)
    return {"scene": scene, "objects": rows}


def _summary(scenes: list[dict[str, Any]], goto: bool) -> dict[str, Any]:
    rows = [r for s in scenes for r in s["objects"]]
    out: dict[str, Any] = {"scenes": len(scenes), "objects": len(rows),
                           "oracle_ok": sum(r["oracle"]["ok"] for r in rows),
                           "oracle_reasons": dict(Counter(r["oracle"]["reason"] for r in rows
                                                          if not r["oracle"]["ok"]))}
    out["oracle_rate"] = out["oracle_ok"] / len(rows) if rows else float("nan")
    if goto:
        out["goto_ok"] = sum(r["goto"]["ok"] for r in rows)
        out["goto_rate"] = out["goto_ok"] / len(rows) if rows else float("nan")
        out["goto_reasons"] = dict(Counter(
            ("sim:" if not r["oracle"]["ok"] else "executor:") + r["goto"]["reason"]
            for r in rows if not r["goto"]["ok"]))
    types = Counter(r["objectType"] for r in rows if not r["oracle"]["ok"] or (goto and not r["goto"]["ok"]))
    out["failing_types"] = dict(types.most_common())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karma bench sim_coverage", description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default="", help="comma-separated FloorPlan names (default: the task scenes)")
    parser.add_argument("--all", action="store_true", help="all 120 iTHOR scenes")
    parser.add_argument("--no-goto", action="store_true", help="oracle only (faster)")
    parser.add_argument("--all-objects", action="store_true", help="also objects no action applies to")
    parser.add_argument("--quiet", action="store_true", help="totals only, no per-object failure lines")
    parser.add_argument("--out", default="build/bench", help="output directory for sim_coverage.json")
    args = parser.parse_args(argv)
    if args.all:
        from karma_memory.sim.scenes import list_scenes

        names = list_scenes()
    elif args.scenes:
        names = [s.strip() for s in args.scenes.split(",") if s.strip()]
    else:
        names = task_scenes()
    goto = not args.no_goto
    started = time.perf_counter()
    results = []
    print(f"=== sim coverage: {len(names)} scene(s), {'oracle + GoToObject' if goto else 'oracle only'} ===")
    for name in names:
        res = scene_coverage(name, goto=goto, only_interactable=not args.all_objects)
        results.append(res)
        rows = res["objects"]
        bad = [r for r in rows if not r["oracle"]["ok"] or (goto and not r["goto"]["ok"])]
        oracle_ok = sum(r["oracle"]["ok"] for r in rows)
        line = f"{name:<13} objects {len(rows):3d}  oracle {oracle_ok:3d}"
        if goto:
            line += f"  goto {sum(r['goto']['ok'] for r in rows):3d}"
        print(line, flush=True)
        if not args.quiet:
            for r in bad:
                o = r["oracle"]
                text = f"    FAIL {r['objectId']}{' (enclosed)' if r['enclosed'] else ''}: oracle {o['reason']}"
                if o["occluders"]:
                    text += f" by {', '.join(o['occluders'])}"
                if not o["ok"] and o["reason"] == "no_cell_in_range":
                    text += f" (nearest {o['nearest_m']:.2f} m)"
                if goto:
                    g = r["goto"]
                    text += f"; goto {g['reason']}" + (f" ({g['message']})" if not g["ok"] else "")
                print(text)
    summary = _summary(results, goto)
    summary["wall_time_s"] = round(time.perf_counter() - started, 1)
    print("--- totals ---")
    print(f"objects {summary['objects']} in {summary['scenes']} scenes; oracle visible+in reach "
          f"{summary['oracle_ok']} ({100 * summary['oracle_rate']:.2f} %)")
    if summary["oracle_reasons"]:
        print(f"  oracle failures: {summary['oracle_reasons']}")
    if goto:
        print(f"GoToObject ends visible+in reach: {summary['goto_ok']} ({100 * summary['goto_rate']:.2f} %)")
        if summary["goto_reasons"]:
            print(f"  goto failures: {summary['goto_reasons']}")
    if summary["failing_types"]:
        print(f"  failing types: {summary['failing_types']}")
    print(f"wall time {summary['wall_time_s']} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sim_coverage.json").write_text(json.dumps({"summary": summary, "scenes": results}, indent=1))
    print(f"wrote {out / 'sim_coverage.json'}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
