"""Semantic ids, class names and surface reflectivities of the embedded LiDAR backend.

Ids follow the SemanticKITTI numbering where a matching class exists (10 car -> vehicle, 30 person ->
pedestrian, 31 bicyclist -> cyclist, 40 road -> ground, 50 building, 70 vegetation, 80 pole, 99 other-object ->
cargo_pallet) so that exported scans read naturally in SemanticKITTI tools; wheelchair_user has no SemanticKITTI
class and takes the unused id 33 (beside the other person classes). Instance ids are unique per object within a
frame (1, 2, ...) for the five object classes and 0 for the background ("stuff") classes.
"""

from __future__ import annotations

from types import MappingProxyType

__all__ = [
    "UNLABELED_ID",
    "OBJECT_CLASSES",
    "BACKGROUND_CLASSES",
    "CLASS_IDS",
    "REFLECTIVITY",
    "PENETRATION_MEAN",
    "id_to_labels",
]

UNLABELED_ID = 0

#: The classes the gate scores (each object gets its own instance id).
OBJECT_CLASSES: tuple[str, ...] = ("pedestrian", "vehicle", "cyclist", "wheelchair_user", "cargo_pallet")

#: Background classes (instance id 0).
BACKGROUND_CLASSES: tuple[str, ...] = ("ground", "building", "pole", "vegetation")

#: class name -> semantic id.
CLASS_IDS = MappingProxyType(
    {
        "unlabeled": UNLABELED_ID,
        "vehicle": 10,
        "pedestrian": 30,
        "cyclist": 31,
        "wheelchair_user": 33,
        "ground": 40,
        "building": 50,
        "vegetation": 70,
        "pole": 80,
        "cargo_pallet": 99,
    }
)

#: class name -> diffuse reflectivity in [0, 1] at the sensor wavelength (typical values: asphalt ~0.1-0.2,
#: concrete ~0.3-0.4, car paint ~0.3-0.6, clothing ~0.3-0.5, foliage ~0.4-0.5 in the near infrared, wood ~0.5).
REFLECTIVITY = MappingProxyType(
    {
        "unlabeled": 0.3,
        "vehicle": 0.45,
        "pedestrian": 0.35,
        "cyclist": 0.4,
        "wheelchair_user": 0.4,
        "ground": 0.18,
        "building": 0.35,
        "vegetation": 0.45,
        "pole": 0.3,
        "cargo_pallet": 0.55,
    }
)


#: class name -> mean depth (metres) a beam travels into the surface before it returns: 0 for opaque solids.
#: Foliage is volumetric: a beam passes gaps between leaves and returns from a leaf some way inside the crown, with
#: an exponential free path (Beer-Lambert in a turbid leaf volume; drawn per leaf clump, :mod:`.foliage`). The
#: value is measured, not searched: the free path at which the embedded street world's vegetation, one depth per
#: leaf clump, has the median local scattering (the gate's plausibility descriptor) of real nuScenes vegetation
#: (0.137 on keyframes 0-19): 0.28 m, interpolated between renders at 0.2 / 0.3 / 0.4 m, shipped as 0.3 m
#: (``benchmarks/bench_foliage.py``, docs/backend.md "Volumetric foliage"). The first value, 0.2 m, came from the
#: along-beam scatter under independent draws per ray, a premise the clump model dropped: on today's world it left
#: the scattering at 0.116. Physically 0.3 m is ``1 / (G * LAD)`` with the spherical leaf-angle projection G = 0.5
#: and a leaf area density of about 7 m^2/m^3, a dense outer crown or hedge.
PENETRATION_MEAN = MappingProxyType({"vegetation": 0.3})


def id_to_labels() -> dict[int, dict[str, str]]:
    """The ``idToLabels`` map of every frame this backend renders: semantic id -> ``{"class": name}``."""
    return {sid: {"class": name} for name, sid in CLASS_IDS.items()}
