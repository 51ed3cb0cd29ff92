"""config/karma.rviz is a valid rviz2 layout showing the memories, the camera and the robot model in map."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
RVIZ = ROOT / "config" / "karma.rviz"


@pytest.fixture(scope="module")
def manager() -> dict:
    config = yaml.safe_load(RVIZ.read_text())
    assert isinstance(config, dict) and "Visualization Manager" in config
    return config["Visualization Manager"]


def _displays(manager: dict, cls: str) -> list[dict]:
    return [d for d in manager["Displays"] if d["Class"] == f"rviz_default_plugins/{cls}"]


def test_fixed_frame_is_map(manager: dict) -> None:
    assert manager["Global Options"]["Fixed Frame"] == "map"


def test_memory_marker_arrays(manager: dict) -> None:
    topics = {d["Topic"]["Value"]: d for d in _displays(manager, "MarkerArray")}
    assert set(topics) == {"/long_term_memory/markers", "/short_term_memory/markers"}
    for display in topics.values():
        assert display["Enabled"] is True
        # a volatile subscriber matches both volatile and transient-local publishers
        assert display["Topic"]["Durability Policy"] == "Volatile"


def test_camera_image(manager: dict) -> None:
    (image,) = _displays(manager, "Image")
    assert image["Topic"]["Value"] == "/camera/rgb/image_raw" and image["Enabled"] is True
    # best effort also matches sensor-data (best-effort) publishers
    assert image["Topic"]["Reliability Policy"] == "Best Effort"


def test_robot_model_from_robot_description(manager: dict) -> None:
    (model,) = _displays(manager, "RobotModel")
    assert model["Description Source"] == "Topic"
    assert model["Description Topic"]["Value"] == "/robot_description"
    assert model["Description Topic"]["Durability Policy"] == "Transient Local"  # latched, as robot_state_publisher


def test_every_display_is_a_known_rviz2_plugin_with_a_unique_name(manager: dict) -> None:
    names = [d["Name"] for d in manager["Displays"]]
    assert len(names) == len(set(names))
    known = {"Grid", "RobotModel", "TF", "MarkerArray", "Image"}
    assert {d["Class"].split("/", 1)[1] for d in manager["Displays"]} <= known
    assert all(d["Class"].startswith("rviz_default_plugins/") for d in manager["Displays"])
    assert manager["Views"]["Current"]["Target Frame"] == "<Fixed Frame>"
