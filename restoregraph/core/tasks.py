"""The restoration tasks and degradation types, and how they map onto each other (one place)."""

from __future__ import annotations

# Degradation types synthesised by restoregraph.degrade.
DEGRADATION_TYPES: tuple[str, ...] = (
    "noise",
    "poisson",
    "blur",
    "defocus",
    "motion_blur",
    "jpeg",
    "rain",
    "raindrop",
    "haze",
    "low_light",
    "snow",
    "low_resolution",
)

# Restoration tasks a tool can serve (the first part of a tool id).
TASKS: tuple[str, ...] = (
    "denoise",
    "deblur",
    "dejpeg",
    "derain",
    "deraindrop",
    "dehaze",
    "lowlight",
    "desnow",
    "sr",
    # All-in-one tools (one model for several degradations, e.g. ``hybrid.nafnet``). No
    # degradation maps onto it: planners may pick it for any of them.
    "hybrid",
)

# Which task undoes which degradation.
TASK_FOR_DEGRADATION: dict[str, str] = {
    "noise": "denoise",
    "poisson": "denoise",
    "blur": "deblur",
    "defocus": "deblur",
    "motion_blur": "deblur",
    "jpeg": "dejpeg",
    "rain": "derain",
    "raindrop": "deraindrop",
    "haze": "dehaze",
    "low_light": "lowlight",
    "snow": "desnow",
    "low_resolution": "sr",
}

# The categories perception reports (poisson folds into noise, gaussian blur into defocus-like blur).
PERCEPTION_TYPES: tuple[str, ...] = (
    "noise",
    "blur",
    "motion_blur",
    "jpeg",
    "rain",
    "raindrop",
    "haze",
    "low_light",
    "snow",
    "low_resolution",
)

# What perception nets and planners trained before the raindrop type read and report (in this
# order): the shipped embedded planner's features, perception weights with nine outputs.
LEGACY_PERCEPTION_TYPES: tuple[str, ...] = tuple(t for t in PERCEPTION_TYPES if t != "raindrop")

PERCEPTION_TYPE_FOR_DEGRADATION: dict[str, str] = {
    "noise": "noise",
    "poisson": "noise",
    "blur": "blur",
    "defocus": "blur",
    "motion_blur": "motion_blur",
    "jpeg": "jpeg",
    "rain": "rain",
    "raindrop": "raindrop",
    "haze": "haze",
    "low_light": "low_light",
    "snow": "snow",
    "low_resolution": "low_resolution",
}

TASK_FOR_PERCEPTION_TYPE: dict[str, str] = {
    "noise": "denoise",
    "blur": "deblur",
    "motion_blur": "deblur",
    "jpeg": "dejpeg",
    "rain": "derain",
    "raindrop": "deraindrop",
    "haze": "dehaze",
    "low_light": "lowlight",
    "snow": "desnow",
    "low_resolution": "sr",
}

SEVERITY_NAMES = {1: "low", 2: "mid", 3: "high"}
