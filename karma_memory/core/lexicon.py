"""THOR object-type vocabulary and tolerant matching of everyday object names to THOR types."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from karma_memory.core.errors import UnknownObjectError

__all__ = [
    "CAPABILITIES",
    "THOR_OBJECT_TYPES",
    "SCENE_OBJECT_TYPES",
    "PIECE_TYPES",
    "PIECE_BASES",
    "TYPE_CAPABILITIES",
    "UnknownObjectError",
    "capabilities",
    "normalize_name",
    "resolve_type",
    "type_of_object_id",
]

#: Capability flags of THOR object metadata, as named in ``event.metadata['objects']``.
CAPABILITIES: tuple[str, ...] = (
    "pickupable", "receptacle", "openable", "toggleable", "sliceable", "cookable", "dirtyable",
    "canFillWithLiquid", "breakable", "isHeatSource", "isColdSource", "moveable", "canBeUsedUp",
)

# Union of each type's capability flags over every instance of the 120 iTHOR scenes and 75 RoboTHOR
# scenes in procthor's ``ai2thor-object-metadata.json`` (AI2-THOR 5.0 metadata; 118 types). Shipped as a
# constant so the core needs no scene data at run time; test_lexicon checks it against the dump.
_SCENE_TYPES: dict[str, str] = {
    "AlarmClock": "pickupable",
    "AluminumFoil": "pickupable",
    "Apple": "pickupable sliceable",
    "ArmChair": "receptacle moveable",
    "BaseballBat": "pickupable",
    "BasketBall": "pickupable",
    "Bathtub": "receptacle",
    "BathtubBasin": "receptacle",
    "Bed": "receptacle dirtyable moveable",
    "Blinds": "openable",
    "Book": "pickupable openable",
    "Boots": "pickupable",
    "Bottle": "pickupable canFillWithLiquid breakable",
    "Bowl": "pickupable receptacle dirtyable canFillWithLiquid breakable",
    "Box": "pickupable receptacle openable",
    "Bread": "pickupable sliceable",
    "ButterKnife": "pickupable",
    "CD": "pickupable",
    "Cabinet": "receptacle openable breakable",
    "Candle": "pickupable toggleable",
    "CellPhone": "pickupable toggleable breakable",
    "Chair": "receptacle moveable",
    "Cloth": "pickupable dirtyable",
    "CoffeeMachine": "receptacle toggleable breakable isHeatSource moveable",
    "CoffeeTable": "receptacle moveable",
    "CounterTop": "receptacle",
    "CreditCard": "pickupable",
    "Cup": "pickupable receptacle dirtyable canFillWithLiquid breakable",
    "Curtains": "",
    "Desk": "receptacle moveable",
    "DeskLamp": "toggleable moveable",
    "Desktop": "toggleable breakable moveable",
    "DiningTable": "receptacle moveable",
    "DishSponge": "pickupable",
    "DogBed": "receptacle moveable",
    "Drawer": "receptacle openable",
    "Dresser": "receptacle moveable",
    "Dumbbell": "pickupable",
    "Egg": "pickupable sliceable breakable",
    "Faucet": "toggleable",
    "Floor": "receptacle",
    "FloorLamp": "toggleable moveable",
    "Footstool": "pickupable receptacle",
    "Fork": "pickupable",
    "Fridge": "receptacle openable isColdSource",
    "GarbageBag": "moveable",
    "GarbageCan": "receptacle moveable",
    "HandTowel": "pickupable",
    "HandTowelHolder": "receptacle",
    "HousePlant": "canFillWithLiquid moveable",
    "Kettle": "pickupable openable canFillWithLiquid",
    "KeyChain": "pickupable",
    "Knife": "pickupable",
    "Ladle": "pickupable",
    "Laptop": "pickupable openable toggleable breakable",
    "LaundryHamper": "receptacle openable moveable",
    "Lettuce": "pickupable sliceable",
    "LightSwitch": "toggleable",
    "Microwave": "receptacle openable toggleable isHeatSource moveable",
    "Mirror": "dirtyable breakable",
    "Mug": "pickupable receptacle dirtyable canFillWithLiquid breakable",
    "Newspaper": "pickupable",
    "Ottoman": "receptacle moveable",
    "Painting": "",
    "Pan": "pickupable receptacle dirtyable",
    "PaperTowelRoll": "pickupable",
    "Pen": "pickupable",
    "Pencil": "pickupable",
    "PepperShaker": "pickupable",
    "Pillow": "pickupable",
    "Plate": "pickupable receptacle dirtyable breakable",
    "Plunger": "pickupable",
    "Poster": "",
    "Pot": "pickupable receptacle dirtyable canFillWithLiquid",
    "Potato": "pickupable sliceable cookable",
    "RemoteControl": "pickupable",
    "RoomDecor": "moveable",
    "Safe": "receptacle openable moveable",
    "SaltShaker": "pickupable",
    "ScrubBrush": "pickupable",
    "Shelf": "receptacle",
    "ShelvingUnit": "receptacle moveable",
    "ShowerCurtain": "openable",
    "ShowerDoor": "openable breakable",
    "ShowerGlass": "breakable",
    "ShowerHead": "toggleable",
    "SideTable": "receptacle moveable",
    "Sink": "receptacle",
    "SinkBasin": "receptacle",
    "SoapBar": "pickupable",
    "SoapBottle": "pickupable",
    "Sofa": "receptacle moveable",
    "Spatula": "pickupable",
    "Spoon": "pickupable",
    "SprayBottle": "pickupable",
    "Statue": "pickupable breakable",
    "Stool": "receptacle moveable",
    "StoveBurner": "receptacle isHeatSource",
    "StoveKnob": "toggleable",
    "TVStand": "receptacle moveable",
    "TableTopDecor": "pickupable",
    "TeddyBear": "pickupable",
    "Television": "toggleable breakable moveable",
    "TennisRacket": "pickupable",
    "TissueBox": "pickupable",
    "Toaster": "receptacle toggleable isHeatSource moveable",
    "Toilet": "receptacle openable",
    "ToiletPaper": "pickupable",
    "ToiletPaperHanger": "receptacle",
    "Tomato": "pickupable sliceable",
    "Towel": "pickupable",
    "TowelHolder": "receptacle",
    "VacuumCleaner": "moveable",
    "Vase": "pickupable breakable",
    "Watch": "pickupable",
    "WateringCan": "pickupable canFillWithLiquid",
    "Window": "breakable",
    "WineBottle": "pickupable canFillWithLiquid breakable",
}

# Types THOR creates at run time (none of them exists in a fresh scene): slicing an Apple replaces it by
# AppleSliced pieces with ids "<apple id>|AppleSliced_<k>"; an Egg becomes an EggCracked.
_PIECES: dict[str, tuple[str, str]] = {
    "AppleSliced": ("Apple", "pickupable"),
    "BreadSliced": ("Bread", "pickupable cookable"),
    "EggCracked": ("Egg", "pickupable cookable"),
    "LettuceSliced": ("Lettuce", "pickupable"),
    "PotatoSliced": ("Potato", "pickupable cookable"),
    "TomatoSliced": ("Tomato", "pickupable"),
}

#: Every THOR type found in fresh iTHOR/RoboTHOR scenes (118).
SCENE_OBJECT_TYPES: tuple[str, ...] = tuple(sorted(_SCENE_TYPES))
#: Scene types plus the run-time piece types (AppleSliced, EggCracked, ...).
THOR_OBJECT_TYPES: tuple[str, ...] = tuple(sorted((*_SCENE_TYPES, *_PIECES)))
#: Type -> frozenset of capability flags (see CAPABILITIES).
TYPE_CAPABILITIES: Mapping[str, frozenset[str]] = MappingProxyType(
    {t: frozenset(c.split()) for t, c in _SCENE_TYPES.items()}
    | {t: frozenset(c.split()) for t, (_, c) in _PIECES.items()}
)
#: Base type -> the piece type slicing (or cracking) it creates, e.g. ``"Apple" -> "AppleSliced"``.
PIECE_TYPES: Mapping[str, str] = MappingProxyType({base: piece for piece, (base, _) in _PIECES.items()})
#: Piece type -> its base type, e.g. ``"AppleSliced" -> "Apple"``.
PIECE_BASES: Mapping[str, str] = MappingProxyType({piece: base for piece, (base, _) in _PIECES.items()})

# Everyday phrases -> THOR types, in order of preference (the first type is the usual meaning). Exact type
# names ("dining table", "DiningTable", "dining_table") match without an entry here.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    # furniture and receptacles
    "table": ("DiningTable", "CoffeeTable", "SideTable"),
    "kitchen table": ("DiningTable",), "dinner table": ("DiningTable",), "eating table": ("DiningTable",),
    "nightstand": ("SideTable",), "night stand": ("SideTable",), "bedside table": ("SideTable",),
    "end table": ("SideTable",), "low table": ("CoffeeTable",),
    "counter": ("CounterTop",), "kitchen counter": ("CounterTop",), "worktop": ("CounterTop",),
    "island": ("CounterTop",), "kitchen island": ("CounterTop",), "bathroom counter": ("CounterTop",),
    "sink": ("SinkBasin", "Sink"), "kitchen sink": ("SinkBasin", "Sink"), "bathroom sink": ("SinkBasin", "Sink"),
    "basin": ("SinkBasin", "Sink"), "washbasin": ("SinkBasin", "Sink"), "wash basin": ("SinkBasin", "Sink"),
    "fridge": ("Fridge",), "refrigerator": ("Fridge",), "icebox": ("Fridge",), "freezer": ("Fridge",),
    "stove": ("StoveBurner",), "stovetop": ("StoveBurner",), "cooktop": ("StoveBurner",), "hob": ("StoveBurner",),
    "burner": ("StoveBurner",), "range": ("StoveBurner",),
    "knob": ("StoveKnob",), "stove dial": ("StoveKnob",),
    "microwave oven": ("Microwave",),
    "coffee maker": ("CoffeeMachine",), "coffeemaker": ("CoffeeMachine",), "espresso machine": ("CoffeeMachine",),
    "trash": ("GarbageCan",), "trash can": ("GarbageCan",), "trash bin": ("GarbageCan",), "bin": ("GarbageCan",),
    "garbage": ("GarbageCan",), "garbage bin": ("GarbageCan",), "rubbish bin": ("GarbageCan",),
    "waste bin": ("GarbageCan",), "wastebasket": ("GarbageCan",), "waste basket": ("GarbageCan",),
    "dustbin": ("GarbageCan",), "recycling bin": ("GarbageCan",),
    "trash bag": ("GarbageBag",), "bin bag": ("GarbageBag",),
    "couch": ("Sofa",), "settee": ("Sofa",), "loveseat": ("Sofa",),
    "pouf": ("Ottoman", "Footstool"), "footrest": ("Ottoman", "Footstool"),
    "bar stool": ("Stool",), "writing desk": ("Desk",), "work desk": ("Desk",),
    "chest of drawers": ("Dresser",), "bureau": ("Dresser",),
    "cupboard": ("Cabinet",), "kitchen cabinet": ("Cabinet",),
    "shelf": ("Shelf", "ShelvingUnit"), "bookshelf": ("Shelf", "ShelvingUnit"), "bookcase": ("ShelvingUnit", "Shelf"),
    "book shelf": ("Shelf", "ShelvingUnit"), "shelving": ("ShelvingUnit",),
    "tv stand": ("TVStand",), "tv table": ("TVStand",), "tv cabinet": ("TVStand",), "media console": ("TVStand",),
    "hamper": ("LaundryHamper",), "laundry basket": ("LaundryHamper",), "clothes hamper": ("LaundryHamper",),
    "pet bed": ("DogBed",), "ground": ("Floor",),
    "blind": ("Blinds",), "window blinds": ("Blinds",), "curtain": ("Curtains",), "drapes": ("Curtains",),
    "bath": ("BathtubBasin", "Bathtub"), "tub": ("BathtubBasin", "Bathtub"), "bath tub": ("BathtubBasin", "Bathtub"),
    "bathtub": ("BathtubBasin", "Bathtub"),
    "loo": ("Toilet",), "wc": ("Toilet",), "lavatory": ("Toilet",),
    "towel rack": ("TowelHolder",), "towel rail": ("TowelHolder",), "towel bar": ("TowelHolder",),
    "hand towel ring": ("HandTowelHolder",),
    "toilet paper holder": ("ToiletPaperHanger",), "toilet roll holder": ("ToiletPaperHanger",),
    "shower": ("ShowerHead",), "shower screen": ("ShowerGlass",),
    "tap": ("Faucet",), "water tap": ("Faucet",),
    # appliances and switches
    "tv": ("Television",), "telly": ("Television",), "tv set": ("Television",), "television set": ("Television",),
    "light": ("LightSwitch",), "lights": ("LightSwitch",), "switch": ("LightSwitch",), "room light": ("LightSwitch",),
    "ceiling light": ("LightSwitch",),
    "lamp": ("FloorLamp", "DeskLamp"), "reading lamp": ("DeskLamp",), "table lamp": ("DeskLamp",),
    "standing lamp": ("FloorLamp",),
    "computer": ("Laptop", "Desktop"), "pc": ("Desktop", "Laptop"), "desktop computer": ("Desktop",),
    "notebook computer": ("Laptop",),
    "vacuum": ("VacuumCleaner",), "hoover": ("VacuumCleaner",),
    # small objects
    "phone": ("CellPhone",), "mobile": ("CellPhone",), "mobile phone": ("CellPhone",), "smartphone": ("CellPhone",),
    "remote": ("RemoteControl",), "tv remote": ("RemoteControl",),
    "key": ("KeyChain",), "keys": ("KeyChain",), "car keys": ("KeyChain",), "house keys": ("KeyChain",),
    "keyring": ("KeyChain",), "key ring": ("KeyChain",),
    "glass": ("Cup",), "drinking glass": ("Cup",), "tumbler": ("Cup",),
    "coffee mug": ("Mug",), "coffee cup": ("Mug",), "teacup": ("Mug",), "tea cup": ("Mug",),
    "water bottle": ("Bottle",), "wine": ("WineBottle",),
    "table knife": ("ButterKnife",), "kitchen knife": ("Knife",), "chef knife": ("Knife",),
    "cutlery": ("Fork", "Spoon", "ButterKnife", "Knife"), "silverware": ("Fork", "Spoon", "ButterKnife", "Knife"),
    "scoop": ("Ladle",), "soup ladle": ("Ladle",), "turner": ("Spatula",),
    "frying pan": ("Pan",), "skillet": ("Pan",), "fry pan": ("Pan",), "wok": ("Pan",),
    "saucepan": ("Pot",), "cooking pot": ("Pot",), "stockpot": ("Pot",), "stock pot": ("Pot",),
    "teapot": ("Kettle",), "tea kettle": ("Kettle",),
    "dish": ("Plate",), "dinner plate": ("Plate",),
    "sponge": ("DishSponge",), "dish sponge": ("DishSponge",),
    "soap": ("SoapBar",), "bar of soap": ("SoapBar",), "hand soap": ("SoapBottle",), "liquid soap": ("SoapBottle",),
    "dish soap": ("SoapBottle",), "soap dispenser": ("SoapBottle",), "shampoo": ("SoapBottle",),
    "washcloth": ("Cloth",), "rag": ("Cloth",), "dishcloth": ("Cloth",), "dish cloth": ("Cloth",),
    "cleaning cloth": ("Cloth",), "dust cloth": ("Cloth",),
    "bath towel": ("Towel",),
    "tissue": ("TissueBox",), "tissues": ("TissueBox",), "kleenex": ("TissueBox",),
    "toilet roll": ("ToiletPaper",), "loo roll": ("ToiletPaper",), "bathroom tissue": ("ToiletPaper",),
    "paper towel": ("PaperTowelRoll",), "paper towels": ("PaperTowelRoll",), "kitchen roll": ("PaperTowelRoll",),
    "kitchen paper": ("PaperTowelRoll",),
    "plant": ("HousePlant",), "potted plant": ("HousePlant",), "flower vase": ("Vase",),
    "picture": ("Painting",), "artwork": ("Painting",),
    "cushion": ("Pillow",), "throw pillow": ("Pillow",),
    "paper": ("Newspaper",), "magazine": ("Newspaper",), "novel": ("Book",), "textbook": ("Book",),
    "card": ("CreditCard",), "bank card": ("CreditCard",), "debit card": ("CreditCard",),
    "wristwatch": ("Watch",), "wrist watch": ("Watch",),
    "clock": ("AlarmClock",), "alarm": ("AlarmClock",),
    "disc": ("CD",), "compact disc": ("CD",), "dvd": ("CD",),
    "teddy": ("TeddyBear",), "stuffed animal": ("TeddyBear",), "stuffed toy": ("TeddyBear",), "plush": ("TeddyBear",),
    "toy": ("TeddyBear",),
    "ball": ("BasketBall",), "bat": ("BaseballBat",),
    "racket": ("TennisRacket",), "racquet": ("TennisRacket",), "tennis racquet": ("TennisRacket",),
    "weight": ("Dumbbell",), "weights": ("Dumbbell",), "dumb bell": ("Dumbbell",),
    "boot": ("Boots",), "shoes": ("Boots",), "shoe": ("Boots",),
    "cardboard box": ("Box",), "carton": ("Box",),
    "salt": ("SaltShaker",), "pepper": ("PepperShaker",), "pepper mill": ("PepperShaker",),
    "loaf": ("Bread",), "loaf of bread": ("Bread",),
    "toast": ("BreadSliced",), "slice of bread": ("BreadSliced",), "bread slice": ("BreadSliced",),
    "cracked egg": ("EggCracked",), "broken egg": ("EggCracked",),
    "salad": ("Lettuce",), "lettuce head": ("Lettuce",),
    "foil": ("AluminumFoil",), "tin foil": ("AluminumFoil",), "aluminium foil": ("AluminumFoil",),
    "watering pot": ("WateringCan",),
    "figurine": ("Statue",), "sculpture": ("Statue",), "ornament": ("Statue",),
    "spray": ("SprayBottle",), "spray cleaner": ("SprayBottle",), "cleaner": ("SprayBottle",),
    "toilet brush": ("ScrubBrush",), "scrubbing brush": ("ScrubBrush",), "brush": ("ScrubBrush",),
    "decor": ("RoomDecor",), "room decoration": ("RoomDecor",), "table decor": ("TableTopDecor",),
    # category words (vague concepts resolve to every type that fits)
    "fruit": ("Apple", "Tomato"), "vegetable": ("Lettuce", "Potato", "Tomato"),
    "writing utensil": ("Pen", "Pencil"),
}

_ARTICLES = frozenset(
    "the a an some my your our his her their this that these those two three four both all any each another "
    "other few several one pair".split()
)
_PREPOSITIONS = frozenset("on in from at inside into onto under near with by to next behind beside".split())
_PIECE_WORDS = frozenset("sliced slice slices cut chopped diced piece pieces wedge wedges".split())
_IRREGULAR_PLURALS = {"knives": "knife", "shelves": "shelf", "loaves": "loaf", "leaves": "leaf"}


def _key(text: str) -> str:
    """Lower-case alphanumerics only: ``"Dining_table "`` -> ``"diningtable"``."""
    return re.sub(r"[^a-z0-9]", "", text.lower())


_TYPE_KEYS: dict[str, str] = {_key(t): t for t in THOR_OBJECT_TYPES}
_SYNONYM_KEYS: dict[str, tuple[str, ...]] = {_key(p): ts for p, ts in _SYNONYMS.items()}
assert all(t in TYPE_CAPABILITIES for ts in _SYNONYMS.values() for t in ts), "synonym names a non-THOR type"


def capabilities(object_type: str) -> frozenset[str]:
    """Capability flags THOR gives ``object_type`` (union over every scene), empty for an unknown type.

    >>> sorted(capabilities("Apple"))
    ['pickupable', 'sliceable']
    >>> "cookable" in capabilities("PotatoSliced")
    True
    """
    return TYPE_CAPABILITIES.get(object_type, frozenset())


def normalize_name(name: str) -> str:
    """Lower-case words of a name without articles or trailing location phrases, for matching.

    Camel case is split so that THOR types read like phrases.

    >>> normalize_name("  The DiningTable ")
    'dining table'
    >>> normalize_name("the mug_on the counter")
    'mug'
    """
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    words = re.findall(r"[a-z0-9']+", spaced.lower())
    kept: list[str] = []
    for word in words:
        if word in _PREPOSITIONS and kept:
            break
        if word not in _ARTICLES:
            kept.append(word)
    return " ".join(kept)


def type_of_object_id(object_id: str) -> str | None:
    """THOR type encoded in an objectId, or None when ``object_id`` has no ``|``.

    >>> type_of_object_id("Apple|-00.47|+01.15|+00.48|AppleSliced_1")
    'AppleSliced'
    >>> type_of_object_id("Sink|-01.90|+00.97|-01.50|SinkBasin")
    'SinkBasin'
    >>> type_of_object_id("Mug|-01.76|+00.90|-00.62")
    'Mug'
    """
    if "|" not in object_id:
        return None
    parts = object_id.split("|")
    last = re.sub(r"_\d+$", "", parts[-1])
    if last in TYPE_CAPABILITIES:
        return last
    return parts[0]


def _singulars(word: str) -> list[str]:
    """Candidate singular forms of an English plural (most specific rule first)."""
    out = []
    if word in _IRREGULAR_PLURALS:
        out.append(_IRREGULAR_PLURALS[word])
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")
    if word.endswith("ves"):
        out += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es"):
        out.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        out.append(word[:-1])
    return out


def _lookup(words: list[str]) -> tuple[str, ...] | None:
    """Exact type or synonym for the phrase ``words``, trying singular forms of its last word."""
    variants = [words] + [words[:-1] + [s] for s in _singulars(words[-1])]
    for variant in variants:
        key = "".join(variant)
        if key in _SYNONYM_KEYS:  # first: "sink" means SinkBasin (where things go) before Sink
            return _SYNONYM_KEYS[key]
        if key in _TYPE_KEYS:
            return (_TYPE_KEYS[key],)
    return None


def _match(words: list[str]) -> tuple[str, ...] | None:
    """The whole phrase first, then ever shorter tails ("kitchen counter" -> "counter")."""
    for start in range(len(words)):
        found = _lookup(words[start:])
        if found:
            return found
    return None


def _fuzzy(key: str) -> tuple[str, ...] | None:
    """A unique near-spelling ("refridgerator") of a type or synonym; None for short or ambiguous keys."""
    if len(key) < 5:
        return None
    pool = {**{k: (t,) for k, t in _TYPE_KEYS.items()}, **_SYNONYM_KEYS}
    close = difflib.get_close_matches(key, pool, n=2, cutoff=0.88)
    if len(close) == 1 or (len(close) == 2 and pool[close[0]] == pool[close[1]]):
        return pool[close[0]]
    return None


def _resolve_vocabulary(name: str) -> tuple[str, ...]:
    """THOR types a name can mean, regardless of scene; raises UnknownObjectError when there are none."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownObjectError(f"object name must be a non-empty string, got {name!r}")
    from_id = type_of_object_id(name.strip())
    if from_id is not None:
        if from_id in TYPE_CAPABILITIES:
            return (from_id,)
        raise UnknownObjectError(f"object id {name!r} names no AI2-THOR object type ({from_id!r})")
    words = normalize_name(name).split()
    if not words:
        raise UnknownObjectError(f"object name {name!r} has no words left after removing articles")
    found = _match(words)
    if found is None and any(w in _PIECE_WORDS for w in words):
        base = _match([w for w in words if w not in _PIECE_WORDS and w != "of"] or words)
        if base:
            pieces = tuple(PIECE_TYPES[t] for t in base if t in PIECE_TYPES)
            found = pieces or base
    elif found is not None and any(w in _PIECE_WORDS for w in words):
        pieces = tuple(PIECE_TYPES[t] for t in found if t in PIECE_TYPES)
        found = pieces or found
    if found is None:
        found = _fuzzy("".join(words))
    if found is None:
        hint = difflib.get_close_matches(" ".join(words), [*THOR_OBJECT_TYPES, *_SYNONYMS], n=3, cutoff=0.6)
        extra = f"; did you mean {', '.join(hint)}?" if hint else ""
        raise UnknownObjectError(f"unknown object {name!r}: not an AI2-THOR object type or a known synonym{extra}")
    return found


def resolve_type(name: str, scene_types: Iterable[str] | None = None) -> list[str]:
    """THOR types an everyday object name can mean, optionally only those a scene has.

    Matching ignores case, spaces, underscores, articles, plurals and trailing location phrases, knows
    common synonyms ("trash" -> GarbageCan, "fridge" -> Fridge) and category words ("fruit"), and accepts
    an objectId. Piece types (AppleSliced, ...) count as present when their base type is.

    Args:
        name: the name as a user or a goal string wrote it ("tomatoes", "the kitchen sink").
        scene_types: THOR types present in the scene; None means any THOR type.

    Returns:
        Matching types, the usual meaning first.

    Raises:
        UnknownObjectError: the name means no THOR type, or none of its types is in the scene.

    >>> resolve_type("tomatoes")
    ['Tomato']
    >>> resolve_type("Trash bin")
    ['GarbageCan']
    >>> resolve_type("table", scene_types=["CoffeeTable", "Sofa", "SideTable"])
    ['CoffeeTable', 'SideTable']
    >>> resolve_type("sink")
    ['SinkBasin', 'Sink']
    >>> resolve_type("apple slices")
    ['AppleSliced']
    >>> resolve_type("fridge", scene_types=["Sofa"])
    Traceback (most recent call last):
    ...
    karma_memory.core.errors.UnknownObjectError: scene has no 'fridge' (looked for Fridge)
    >>> resolve_type("scoop")
    ['Ladle']
    >>> resolve_type("spaceship")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    karma_memory.core.errors.UnknownObjectError: unknown object 'spaceship': not an AI2-THOR object type or ...
    """
    found = _resolve_vocabulary(name)
    if scene_types is None:
        return list(found)
    present = set(scene_types)
    kept = [t for t in found if t in present or PIECE_BASES.get(t) in present]
    if not kept:
        raise UnknownObjectError(f"scene has no {name!r} (looked for {', '.join(found)})")
    return kept
