"""THOR type vocabulary and tolerant object-name matching (karma_memory.core.lexicon)."""

from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import pytest

from karma_memory.core.errors import KarmaMemoryError, UnknownObjectError
from karma_memory.core.lexicon import (
    CAPABILITIES,
    PIECE_BASES,
    PIECE_TYPES,
    SCENE_OBJECT_TYPES,
    THOR_OBJECT_TYPES,
    TYPE_CAPABILITIES,
    capabilities,
    normalize_name,
    resolve_type,
    type_of_object_id,
)


def _procthor_dump() -> dict[str, list[list[dict]]]:
    """procthor's real ``event.metadata['objects']`` lists, read without importing procthor.databases."""
    spec = importlib.util.find_spec("procthor")
    assert spec is not None and spec.origin, "procthor (requirements/scene-data.txt) is not installed"
    path = Path(spec.origin).parent / "databases" / "ai2thor-object-metadata.json"
    return json.loads(path.read_text())


def test_vocabulary_matches_the_procthor_dump_types_and_flags() -> None:
    dump = _procthor_dump()
    flags: dict[str, set[str]] = defaultdict(set)
    for scenes in dump.values():
        for scene in scenes:
            for obj in scene:
                flags[obj["objectType"]] |= {c for c in CAPABILITIES if obj.get(c)}
    assert len(flags) == 118
    assert set(SCENE_OBJECT_TYPES) == set(flags)
    for object_type, caps in flags.items():
        assert TYPE_CAPABILITIES[object_type] == caps, object_type


def test_piece_types_extend_the_vocabulary() -> None:
    assert len(THOR_OBJECT_TYPES) == 118 + len(PIECE_TYPES)
    assert PIECE_TYPES["Apple"] == "AppleSliced" and PIECE_BASES["EggCracked"] == "Egg"
    assert "cookable" in capabilities("BreadSliced") and "cookable" not in capabilities("Bread")
    assert capabilities("NoSuchType") == frozenset()
    for piece, base in PIECE_BASES.items():
        assert "sliceable" in TYPE_CAPABILITIES[base], base
        assert "pickupable" in TYPE_CAPABILITIES[piece], piece


@pytest.mark.parametrize("object_type", THOR_OBJECT_TYPES)
def test_every_type_resolves_to_itself_in_many_spellings(object_type: str) -> None:
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in object_type).lstrip("_")
    for spelling in (object_type, object_type.lower(), object_type.upper(), snake, snake.replace("_", " ")):
        assert object_type in resolve_type(spelling), spelling


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tomatoes", ["Tomato"]),
        ("Potatoes", ["Potato"]),
        ("knives", ["Knife"]),
        ("boxes", ["Box"]),
        ("the dishes", ["Plate"]),
        ("two apples", ["Apple"]),
        ("trash", ["GarbageCan"]),
        ("garbage bin", ["GarbageCan"]),
        ("bin", ["GarbageCan"]),
        ("counter", ["CounterTop"]),
        ("kitchen counter", ["CounterTop"]),
        ("sink", ["SinkBasin", "Sink"]),
        ("Sink", ["SinkBasin", "Sink"]),
        ("fridge", ["Fridge"]),
        ("refrigerator", ["Fridge"]),
        ("refridgerator", ["Fridge"]),  # a common misspelling, matched by near spelling
        ("stove", ["StoveBurner"]),
        ("TV", ["Television"]),
        ("light", ["LightSwitch"]),
        ("lamp", ["FloorLamp", "DeskLamp"]),
        ("couch", ["Sofa"]),
        ("keys", ["KeyChain"]),
        ("phone", ["CellPhone"]),
        ("scoop", ["Ladle"]),
        ("ladles", ["Ladle"]),
        ("toast", ["BreadSliced"]),
        ("sliced apple", ["AppleSliced"]),
        ("slice of bread", ["BreadSliced"]),
        ("potato slices", ["PotatoSliced"]),
        ("cracked egg", ["EggCracked"]),
        ("the red apple", ["Apple"]),
        ("the mug on the counter", ["Mug"]),
        ("Blinds", ["Blinds"]),
        ("tub", ["BathtubBasin", "Bathtub"]),
        ("fruit", ["Apple", "Tomato"]),
    ],
)
def test_everyday_names_resolve(name: str, expected: list[str]) -> None:
    assert resolve_type(name) == expected


def test_table_means_whichever_tables_the_scene_has() -> None:
    assert resolve_type("table") == ["DiningTable", "CoffeeTable", "SideTable"]
    assert resolve_type("table", scene_types={"SideTable", "Bed"}) == ["SideTable"]
    assert resolve_type("a table", scene_types=["DiningTable", "CoffeeTable"]) == ["DiningTable", "CoffeeTable"]


def test_scene_filter_keeps_piece_types_when_the_base_is_present() -> None:
    assert resolve_type("apple slice", scene_types={"Apple", "Knife"}) == ["AppleSliced"]
    assert resolve_type("sink", scene_types={"Sink"}) == ["Sink"]


def test_object_ids_resolve_to_their_type() -> None:
    assert resolve_type("Apple|-00.47|+01.15|+00.48") == ["Apple"]
    assert resolve_type("Apple|-00.47|+01.15|+00.48|AppleSliced_3") == ["AppleSliced"]
    assert type_of_object_id("Bathtub|-00.21|+00.36|+00.92|BathtubBasin") == "BathtubBasin"
    assert type_of_object_id("Apple") is None
    with pytest.raises(UnknownObjectError, match="Spaceship"):
        resolve_type("Spaceship|+00.00|+00.00|+00.00")


def test_normalize_name_drops_articles_and_location_phrases() -> None:
    assert normalize_name("The DiningTable") == "dining table"
    assert normalize_name("some apples from the fridge") == "apples"
    assert normalize_name("  ") == ""


@pytest.mark.parametrize("name", ["spaceship", "hair dryer", "xyz", "scone"])
def test_unknown_names_raise_a_clear_error(name: str) -> None:
    with pytest.raises(UnknownObjectError) as info:
        resolve_type(name)
    assert repr(name) in str(info.value) and "not an AI2-THOR object type" in str(info.value)
    assert isinstance(info.value, KarmaMemoryError)


def test_unknown_name_error_suggests_close_names() -> None:
    with pytest.raises(UnknownObjectError, match="did you mean"):
        resolve_type("spongy")


@pytest.mark.parametrize("bad", ["", "   ", "the", None, 42])
def test_empty_or_non_string_names_raise(bad: object) -> None:
    with pytest.raises(UnknownObjectError):
        resolve_type(bad)  # type: ignore[arg-type]


def test_missing_from_scene_is_reported_as_such() -> None:
    with pytest.raises(UnknownObjectError, match=r"scene has no 'fridge' \(looked for Fridge\)"):
        resolve_type("fridge", scene_types=["Sofa", "Television"])
    with pytest.raises(UnknownObjectError, match="scene has no 'table'"):
        resolve_type("table", scene_types=[])
