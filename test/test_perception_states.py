"""Object states: THOR metadata flags, and the VLM backend's prompt and strict reply parsing (no network)."""

from __future__ import annotations

from unittest.mock import MagicMock

import cv2
import numpy as np
import pytest

from karma_memory.core.perception import (
    MetadataStateEstimator,
    ObjectInView,
    SceneGraphBuilder,
    StateEstimator,
    VLMStateEstimator,
    build_state_prompt,
    parse_state_reply,
    thor_camera_pose,
)
from karma_memory.core.perception.synthetic import SyntheticBox, synthetic_frame
from karma_memory.core.types import OBJECT_STATES, CameraIntrinsics, ObservationKind

INTR = CameraIntrinsics.from_fov(160, 120, 90.0)
BOXES = [
    SyntheticBox((-3, -0.05, -3), (3, 0.0, 6), 0),
    SyntheticBox((-0.6, 0.0, 1.6), (0.6, 0.9, 2.2), 1, "CounterTop", "CounterTop|1"),
    SyntheticBox((-0.3, 0.9, 1.8), (-0.2, 1.0, 1.9), 2, "Apple", "Apple|1"),
    SyntheticBox((0.1, 0.9, 1.8), (0.2, 1.0, 1.9), 3, "Apple", "Apple|2"),
    SyntheticBox((0.3, 0.9, 1.7), (0.45, 1.0, 1.85), 4, "Mug", "Mug|1"),
]
POSE = thor_camera_pose((0.0, 1.5, 0.5), 0.0, 30.0)
OBJECTS = [ObjectInView("Apple|1", "Apple", "Apple|1", (-0.25, 0.95, 1.85)),
           ObjectInView("Apple|2", "Apple", None, (0.15, 0.95, 1.85)),
           ObjectInView("Mug|1", "Mug", "Mug|1", (0.37, 0.95, 1.77))]


def frame(meta=None):
    return synthetic_frame(BOXES, INTR, POSE, metadata_objects=meta)


# ------------------------------------------------------------------------------------------- prompt
def test_prompt_follows_the_papers_four_steps():
    p = build_state_prompt("wash the apple and put it in the mug", ["Mug", "Apple", "Apple"])
    assert "[Task]: wash the apple and put it in the mug" in p
    assert "Apple, Mug" in p
    for step in ("Step 1: Describe the image", "Step 2: Extract", "Step 3: Map", "Step 4: Output"):
        assert step in p
    assert ", ".join(OBJECT_STATES) in p
    assert "object: state" in p
    assert build_state_prompt("", []).count("(no task given)") == 1


# ------------------------------------------------------------------------------------------ parsing
COT = """Step 1: The image shows a kitchen counter with two apples and a mug.
Step 2: The task mentions the apple; the apple looks washed.
Step 3: apple -> cleaned, mug -> filled.
OUTPUT:
apple: cleaned
- Mug: filled
"""


def test_parses_the_output_block_of_a_chain_of_thought_reply():
    states, reason, notes = parse_state_reply(COT, ["Apple", "Mug", "CounterTop"])
    assert reason is None and notes == ()
    assert states == {"Apple": ("cleaned",), "Mug": ("filled",)}


def test_markdown_marker_code_fence_synonyms_and_repeats():
    reply = "blah\n**Output:**\n```\ncoffee mug: on\napples: sliced\napples: cooked\nkitchen counter: none\n```"
    states, reason, _ = parse_state_reply(reply, ["Apple", "Mug", "CounterTop"])
    assert reason is None
    assert states == {"Mug": ("on",), "Apple": ("sliced", "cooked"), "CounterTop": ("none",)}


def test_used_up_is_a_two_word_state():
    states, reason, _ = parse_state_reply("OUTPUT:\npaper towel roll: used up", ["PaperTowelRoll"])
    assert reason is None and states == {"PaperTowelRoll": ("used up",)}


def test_bare_lines_without_marker_are_accepted_only_if_all_are_well_formed():
    assert parse_state_reply("apple: sliced\nmug: dirty", ["Apple", "Mug"])[0] == {
        "Apple": ("sliced",), "Mug": ("dirty",)}
    states, reason, _ = parse_state_reply("Step 1: Describe the image.\napple: sliced", ["Apple"])
    assert states == {} and "is not one of" in reason


def test_objects_not_in_view_are_skipped_with_a_note():
    states, reason, notes = parse_state_reply("OUTPUT:\napple: sliced\nfridge: opened", ["Apple"])
    assert reason is None and states == {"Apple": ("sliced",)}
    assert notes and "fridge" in notes[0]


@pytest.mark.parametrize("reply, why", [
    ("", "empty"),
    (None, "non-text"),
    (42, "non-text"),
    ("I cannot see anything useful.", "not 'object: state'"),
    ("OUTPUT:\n", "no 'object: state' lines"),
    ("OUTPUT:\napple is sliced", "not 'object: state'"),
    ("OUTPUT:\napple: delicious", "'delicious' is not one of"),
    ("OUTPUT:\napple: sliced\nsome trailing chatter here", "line 2"),
    ("OUTPUT:\nmug: on\nmug: off", "contradictory"),
    ("OUTPUT:\napple: sliced, cooked", "not 'object: state'"),
])
def test_garbage_gives_no_states_and_a_reason(reply, why):
    states, reason, _ = parse_state_reply(reply, ["Apple", "Mug"])
    assert states == {}
    assert reason is not None and why in reason


def test_none_next_to_a_real_state_is_dropped():
    assert parse_state_reply("OUTPUT:\nmug: none\nmug: dirty", ["Mug"])[0] == {"Mug": ("dirty",)}


# ------------------------------------------------------------------------------------------ VLM backend
def test_vlm_estimator_sends_prompt_and_png_and_maps_types_to_tracks():
    client = MagicMock(return_value=COT)
    est = VLMStateEstimator(client, task="wash the apple")
    assert isinstance(est, StateEstimator)
    result = est.estimate(frame(), OBJECTS)
    assert result.reason is None
    assert result.states == {"Apple|1": ("cleaned",), "Apple|2": ("cleaned",), "Mug|1": ("filled",)}
    prompt, png = client.call_args.args
    assert "[Task]: wash the apple" in prompt and "Apple, Mug" in prompt
    img = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (INTR.height, INTR.width, 3)
    assert np.array_equal(img[:, :, ::-1], frame().rgb)  # RGB in, PNG (BGR on disk) out, lossless
    assert est.last_prompt == prompt and est.last_reply == COT


def test_vlm_client_failure_and_garbage_are_reported_not_raised():
    failing = VLMStateEstimator(MagicMock(side_effect=TimeoutError("server did not answer")))
    result = failing.estimate(frame(), OBJECTS)
    assert result.states == {} and "TimeoutError" in result.reason and "server did not answer" in result.reason
    garbage = VLMStateEstimator(MagicMock(return_value="¯\\_(ツ)_/¯"))
    result = garbage.estimate(frame(), OBJECTS)
    assert result.states == {} and result.reason
    nothing = VLMStateEstimator(MagicMock(return_value=COT)).estimate(frame(), [])
    assert nothing.reason == "no objects in view"
    with pytest.raises(TypeError):
        VLMStateEstimator("not callable")  # type: ignore[arg-type]


def test_builder_with_vlm_backend_emits_state_changes():
    replies = iter(["OUTPUT:\napple: none\nmug: none", "OUTPUT:\napple: sliced\nmug: none", "garbage"])
    builder = SceneGraphBuilder(state_estimator=VLMStateEstimator(lambda prompt, png: next(replies)))
    first = {o.object_id: o for o in builder.process(frame())}
    assert first["Apple|1"].states == ("none",) and first["Apple|1"].kind == ObservationKind.ADDED
    second = {o.object_id: o for o in builder.process(frame())}
    assert second["Apple|1"].kind == ObservationKind.STATE_CHANGED and second["Apple|1"].states == ("sliced",)
    assert second["Mug|1"].kind == ObservationKind.SEEN
    third = {o.object_id: o for o in builder.process(frame())}  # garbage: states kept, reason recorded
    assert third["Apple|1"].kind == ObservationKind.SEEN and third["Apple|1"].states == ("sliced",)
    assert builder.last_state_estimate.reason
    fourth = builder.process(frame(), estimate_states=False)  # the iterator is exhausted: not called
    assert fourth


# ------------------------------------------------------------------------------------------ metadata
META = [
    {"objectId": "Apple|1", "objectType": "Apple", "sliceable": True, "isSliced": True,
     "axisAlignedBoundingBox": {"center": {"x": -0.25, "y": 0.95, "z": 1.85}}},
    {"objectId": "Apple|2", "objectType": "Apple", "sliceable": True, "isSliced": False,
     "axisAlignedBoundingBox": {"center": {"x": 0.15, "y": 0.95, "z": 1.85}}},
    {"objectId": "Mug|1", "objectType": "Mug", "dirtyable": True, "isDirty": True, "isFilledWithLiquid": True,
     "position": {"x": 0.37, "y": 0.9, "z": 1.77}},
]


def test_metadata_states_by_id_and_by_nearest_same_type():
    est = MetadataStateEstimator()
    result = est.estimate(frame(META), OBJECTS)
    assert result.states["Apple|1"] == ("sliced",)
    assert result.states["Apple|2"] == ("none",)  # no id: nearest Apple within 0.5 m
    assert result.states["Mug|1"] == ("dirty", "filled")
    far = [ObjectInView("Apple|9", "Apple", None, (5.0, 0.9, 5.0))]
    result = est.estimate(frame(META), far)
    assert result.states == {} and "Apple|9" in result.notes[0]
    assert est.estimate(frame(None), OBJECTS).reason == "frame has no metadata_objects"
