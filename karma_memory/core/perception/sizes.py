"""Typical sizes of AI2-THOR object types: a prior that tells fragments of one object from two objects."""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

import numpy as np

__all__ = ["THOR_TYPE_EXTENTS", "fits_size_prior"]

# 95th percentile of each type's axis-aligned box extents, sorted largest first (metres), over every
# object of the 120 iTHOR and 75 RoboTHOR scenes in procthor's ai2thor-object-metadata.json (AI2-THOR 5.0).
# Regenerate: for each object, sorted(|axisAlignedBoundingBox.size|, reverse=True); np.percentile(.., 95, 0).
_EXTENTS: dict[str, tuple[float, float, float]] = {
    "AlarmClock": (0.26, 0.23, 0.19), "AluminumFoil": (0.24, 0.11, 0.04), "Apple": (0.14, 0.13, 0.13),
    "ArmChair": (1.91, 1.80, 1.01), "BaseballBat": (0.96, 0.59, 0.20), "BasketBall": (0.24, 0.24, 0.24),
    "Bathtub": (2.54, 1.65, 0.83), "BathtubBasin": (2.19, 1.32, 0.50), "Bed": (2.43, 1.96, 1.19),
    "Blinds": (1.59, 0.89, 0.03), "Book": (0.48, 0.44, 0.06), "Boots": (0.52, 0.31, 0.31),
    "Bottle": (0.25, 0.11, 0.11), "Bowl": (0.24, 0.24, 0.14), "Box": (0.62, 0.57, 0.44), "Bread": (0.37, 0.30, 0.17),
    "ButterKnife": (0.27, 0.20, 0.01), "CD": (0.11, 0.11, 0.02), "Cabinet": (0.99, 0.69, 0.59),
    "Candle": (0.17, 0.05, 0.05), "CellPhone": (0.20, 0.17, 0.02), "Chair": (1.08, 0.85, 0.82),
    "Cloth": (0.25, 0.20, 0.06), "CoffeeMachine": (0.62, 0.60, 0.45), "CoffeeTable": (1.60, 0.90, 0.59),
    "CounterTop": (4.09, 2.38, 0.03), "CreditCard": (0.10, 0.10, 0.01), "Cup": (0.22, 0.13, 0.13),
    "Curtains": (3.78, 2.47, 0.31), "Desk": (2.09, 1.54, 0.87), "DeskLamp": (0.85, 0.49, 0.49),
    "Desktop": (0.87, 0.63, 0.55), "DiningTable": (1.85, 1.47, 0.91), "DishSponge": (0.16, 0.15, 0.03),
    "DogBed": (1.16, 1.09, 0.30), "Drawer": (1.09, 0.50, 0.31), "Dresser": (2.29, 1.04, 0.70),
    "Dumbbell": (0.35, 0.31, 0.13), "Egg": (0.11, 0.08, 0.08), "Faucet": (0.58, 0.33, 0.27),
    "Floor": (9.45, 7.73, 0.90), "FloorLamp": (2.08, 0.63, 0.63), "Footstool": (0.57, 0.52, 0.52),
    "Fork": (0.25, 0.18, 0.03), "Fridge": (2.13, 1.17, 0.91), "GarbageBag": (0.56, 0.52, 0.51),
    "GarbageCan": (0.66, 0.56, 0.50), "HandTowel": (0.40, 0.13, 0.04), "HandTowelHolder": (0.21, 0.17, 0.05),
    "HousePlant": (1.07, 0.60, 0.53), "Kettle": (0.21, 0.21, 0.19), "KeyChain": (0.14, 0.11, 0.02),
    "Knife": (0.33, 0.25, 0.02), "Ladle": (0.28, 0.22, 0.07), "Laptop": (0.58, 0.53, 0.37),
    "LaundryHamper": (0.89, 0.67, 0.56), "Lettuce": (0.25, 0.21, 0.18), "LightSwitch": (0.23, 0.18, 0.04),
    "Microwave": (0.70, 0.42, 0.39), "Mirror": (1.99, 1.12, 0.20), "Mug": (0.13, 0.12, 0.10),
    "Newspaper": (0.42, 0.32, 0.04), "Ottoman": (0.86, 0.79, 0.46), "Painting": (1.23, 0.86, 0.09),
    "Pan": (0.46, 0.38, 0.10), "PaperTowelRoll": (0.22, 0.11, 0.07), "Pen": (0.20, 0.14, 0.01),
    "Pencil": (0.20, 0.13, 0.01), "PepperShaker": (0.20, 0.07, 0.07), "Pillow": (0.61, 0.51, 0.30),
    "Plate": (0.31, 0.31, 0.03), "Plunger": (0.54, 0.15, 0.15), "Poster": (1.21, 0.83, 0.09),
    "Pot": (0.53, 0.35, 0.22), "Potato": (0.15, 0.12, 0.09), "RemoteControl": (0.23, 0.19, 0.04),
    "RoomDecor": (1.45, 0.40, 0.33), "Safe": (0.61, 0.58, 0.51), "SaltShaker": (0.20, 0.07, 0.07),
    "ScrubBrush": (0.48, 0.16, 0.14), "Shelf": (1.68, 0.64, 0.36), "ShelvingUnit": (2.20, 1.14, 0.49),
    "ShowerCurtain": (1.94, 0.43, 0.37), "ShowerDoor": (2.42, 1.08, 0.15), "ShowerGlass": (2.83, 2.21, 1.20),
    "ShowerHead": (1.81, 0.33, 0.25), "SideTable": (1.31, 0.89, 0.65), "Sink": (1.05, 0.76, 0.67),
    "SinkBasin": (0.80, 0.50, 0.18), "SoapBar": (0.11, 0.10, 0.02), "SoapBottle": (0.29, 0.16, 0.13),
    "Sofa": (2.74, 1.23, 1.06), "Spatula": (0.30, 0.22, 0.02), "Spoon": (0.21, 0.14, 0.03),
    "SprayBottle": (0.25, 0.12, 0.10), "Statue": (0.59, 0.25, 0.21), "Stool": (0.76, 0.67, 0.55),
    "StoveBurner": (0.28, 0.28, 0.03), "StoveKnob": (0.08, 0.08, 0.07), "TVStand": (1.43, 0.81, 0.66),
    "TableTopDecor": (0.40, 0.31, 0.14), "TeddyBear": (0.48, 0.46, 0.38), "Television": (1.42, 0.91, 0.57),
    "TennisRacket": (0.66, 0.44, 0.26), "TissueBox": (0.22, 0.20, 0.15), "Toaster": (0.47, 0.31, 0.23),
    "Toilet": (1.16, 1.12, 0.95), "ToiletPaper": (0.12, 0.10, 0.10), "ToiletPaperHanger": (0.29, 0.19, 0.11),
    "Tomato": (0.14, 0.14, 0.13), "Towel": (0.61, 0.53, 0.04), "TowelHolder": (0.66, 0.11, 0.04),
    "VacuumCleaner": (1.01, 0.44, 0.44), "Vase": (0.29, 0.19, 0.19), "Watch": (0.08, 0.06, 0.04),
    "WateringCan": (0.27, 0.20, 0.18), "Window": (2.41, 1.74, 0.29), "WineBottle": (0.33, 0.09, 0.09),
}

#: Type -> (largest, middle, smallest) extent in metres that 95 % of THOR objects of that type stay within.
THOR_TYPE_EXTENTS: Mapping[str, tuple[float, float, float]] = MappingProxyType(_EXTENTS)


def fits_size_prior(extent: np.ndarray, object_type: str, slack: float, margin: float = 0.03,
                    priors: Mapping[str, tuple[float, float, float]] = THOR_TYPE_EXTENTS) -> bool:
    """Whether a box of ``extent`` (dx, dy, dz) could be one ``object_type`` (False for types without a prior).

    Extents are compared sorted, so the object's orientation does not matter.

    >>> fits_size_prior(np.array([0.05, 0.08, 0.07]), "Apple", 1.1)
    True
    >>> fits_size_prior(np.array([0.30, 0.08, 0.07]), "Apple", 1.1)  # two apples side by side
    False
    """
    prior = priors.get(object_type)
    if prior is None:
        return False
    ext = np.sort(np.abs(np.asarray(extent, dtype=float)))[::-1]
    return bool(np.all(ext <= np.asarray(prior) * slack + margin))
