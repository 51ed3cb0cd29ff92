"""Perception over real frames of the embedded simulator (iTHOR FloorPlan1): accuracy, moves and removals."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from karma_memory.bench.perception import _same_receptacle, sweep_poses
from karma_memory.core.perception import SceneGraphBuilder, thor_camera_pose
from karma_memory.core.types import InstanceLabel, ObjectObservation, ObservationKind
from karma_memory.sim import EmbeddedController
from karma_memory.sim.geometry import world_from_camera

SCENE = "FloorPlan1"


@pytest.fixture(scope="module")
def controller() -> EmbeddedController:
    return EmbeddedController(scene=SCENE, width=320, height=240)


def _teleport(ctrl: EmbeddedController, pose):
    x, z, yaw, horizon = pose
    y = ctrl.last_event.metadata["agent"]["position"]["y"]
    event = ctrl.step("Teleport", position={"x": x, "y": y, "z": z}, rotation=yaw, horizon=horizon)
    assert event.last_action_success, event.error_message
    return event


@pytest.fixture(scope="module")
def sweep(controller: EmbeddedController):
    poses = sweep_poses(controller.reachable_positions(), 5, 30.0)
    return poses, [_teleport(controller, p).camera_frame() for p in poses]


def test_pose_convention_matches_the_simulator():
    for yaw in (0.0, 90.0, 200.0):
        for horizon in (-30.0, 0.0, 30.0, 60.0):
            ours = thor_camera_pose((1.0, 1.5, -2.0), yaw, horizon)
            assert np.allclose(ours, world_from_camera((1.0, 1.5, -2.0), yaw, horizon), atol=1e-9)


def test_sweep_recall_centroids_and_relations(sweep):
    _, frames = sweep
    builder = SceneGraphBuilder()
    best = collections.Counter()
    for frame in frames:
        counts = np.bincount(frame.instances.ravel())
        for iid, label in frame.labels.items():
            best[label.object_id] = max(best[label.object_id], int(counts[iid]))
        for obs in builder.process(frame):
            assert isinstance(obs, ObjectObservation) and obs.source == "perception"
    meta = {m["objectId"]: m for m in frames[-1].metadata_objects}
    qualified = [o for o, px in best.items() if px >= 200]
    assert len(qualified) >= 15
    found = [o for o in qualified if o in builder.tracks]
    assert len(found) / len(qualified) >= 0.95
    errors = []
    for oid in found:
        c = meta[oid]["axisAlignedBoundingBox"]["center"]
        errors.append(np.linalg.norm(builder.tracks[oid].position() - np.array([c["x"], c["y"], c["z"]])))
    assert np.median(errors) < 0.03
    checked = correct = 0
    for oid in builder.tracks:
        m = meta[oid]
        if m["pickupable"] and m["parentReceptacles"]:
            checked += 1
            support = next((r for r in builder.relations_of(oid) if r.predicate in ("on", "inside")), None)
            correct += support is not None and _same_receptacle(support.target_id, m["parentReceptacles"])
    assert checked >= 5 and correct / checked >= 0.8


def test_sweep_without_ids_makes_few_duplicates(sweep):
    _, frames = sweep
    builder = SceneGraphBuilder()
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for frame in frames[:10]:
        stripped = {i: InstanceLabel(lab.object_type) for i, lab in frame.labels.items()}
        builder.process(type(frame)(frame.rgb, frame.depth, frame.instances, stripped, frame.intrinsics,
                                    frame.world_from_camera, frame.stamp))
        counts = np.bincount(frame.instances.ravel())
        for iid, tid in builder.last_assignment.items():
            votes[tid][frame.labels[iid].object_id] += int(counts[iid])
    owners = [votes[tid].most_common(1)[0][0] for tid in builder.tracks if votes[tid]]
    duplicates = len(owners) - len(set(owners))
    assert len(owners) >= 20
    assert duplicates / len(owners) <= 0.05


def _view_of(ctrl, poses, oid, min_pixels=150):
    for pose in poses:
        frame = _teleport(ctrl, pose).camera_frame()
        ids = [i for i, lab in frame.labels.items() if lab.object_id == oid]
        if ids and int((frame.instances == ids[0]).sum()) >= min_pixels:
            return pose
    return None


def test_removed_object_is_reported_after_clear_views():
    ctrl = EmbeddedController(scene=SCENE, width=320, height=240)
    poses = sweep_poses(ctrl.reachable_positions(), 8, 30.0)
    pickable = [o["objectId"] for o in ctrl.last_event.metadata["objects"] if o["pickupable"]]
    target, pose = None, None
    for oid in pickable:
        pose = _view_of(ctrl, poses, oid, 300)
        if pose is not None:
            target = oid
            break
    assert target is not None
    builder = SceneGraphBuilder()
    builder.process(_teleport(ctrl, pose).camera_frame())
    assert target in builder.tracks
    ctrl.remove(target)
    kinds = []
    for _ in range(builder.config.removal_misses):
        frame = _teleport(ctrl, pose).camera_frame()
        kinds += [o.kind for o in builder.process(frame) if o.object_id == target]
    assert kinds == [ObservationKind.REMOVED]
    assert target not in builder.tracks


def test_disturbed_object_is_reported_moved():
    ctrl = EmbeddedController(scene=SCENE, width=320, height=240)
    poses = sweep_poses(ctrl.reachable_positions(), 10, 30.0)
    objs = {o["objectId"]: o for o in ctrl.last_event.metadata["objects"]}
    movers = [oid for oid, o in objs.items() if o["pickupable"] and o["objectType"] in ("Apple", "Tomato", "Potato",
                                                                                         "Bread", "Mug", "Bowl")]
    targets = [oid for oid, o in objs.items() if o["objectType"] in ("CounterTop", "DiningTable")]
    for mover in movers:
        before = _view_of(ctrl, poses, mover)
        if before is None:
            continue
        builder = SceneGraphBuilder()
        builder.process(_teleport(ctrl, before).camera_frame())
        old = np.array(builder.tracks[mover].position())
        for rec in targets:
            if rec in objs[mover]["parentReceptacles"]:
                continue
            try:
                ctrl.disturb(mover, rec)
            except Exception:  # does not fit there: try the next receptacle
                continue
            after = _view_of(ctrl, poses, mover)
            if after is None:
                continue
            obs = [o for o in builder.process(_teleport(ctrl, after).camera_frame()) if o.object_id == mover]
            assert obs and obs[0].kind == ObservationKind.MOVED
            assert np.linalg.norm(np.array(obs[0].position) - old) > 0.3
            return
    pytest.fail("no movable object could be disturbed into view")


def test_receptacle_matching_and_degraded_frames(sweep):
    from karma_memory.bench.perception import degrade

    assert _same_receptacle("Sink|1|SinkBasin", ["Sink|1"]) and _same_receptacle("Sink|1", ["Sink|1|SinkBasin"])
    assert not _same_receptacle("Sink|2", ["Sink|1"]) and not _same_receptacle(None, ["Sink|1"])
    frame = sweep[1][0]
    noisy = degrade(frame, np.random.default_rng(0), 0.01)
    ok = frame.depth > 0
    assert noisy.depth is not frame.depth and not np.array_equal(noisy.depth[ok], frame.depth[ok])
    assert np.array_equal(noisy.instances, frame.instances)
    assert SceneGraphBuilder().process(noisy)


def test_benchmark_runs_end_to_end(tmp_path):
    import json

    from karma_memory.bench.perception import main

    code = main(["--scenes", "FloorPlan301", "--positions", "1", "--sizes", "160x120", "--noise", "0",
                 "--dup-views", "2", "--out", str(tmp_path), "--no-reexec"])
    assert code == 0
    result = json.loads((tmp_path / "perception.json").read_text())
    summary = result["summary"]["160x120"]
    assert summary["frames"] == 4 and 0.0 <= summary["recall"] <= 1.0
    assert (tmp_path / "perception.png").exists()
