"""Which device Cycles renders on: OptiX or CUDA when an NVIDIA GPU is there, the CPU otherwise.

``AUTOPLAY_RENDER_DEVICE`` (auto, optix, cuda, cpu) overrides the choice. A GPU worker renders one tiny
frame first, so kernel compilation (minutes on a GPU the wheel has no prebuilt kernel for) is paid once
per worker and never by a real render.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import bpy

CHOICES = ("auto", "optix", "cuda", "cpu")


def requested() -> str:
    choice = os.environ.get("AUTOPLAY_RENDER_DEVICE", "auto").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"AUTOPLAY_RENDER_DEVICE={choice!r}: choose one of {CHOICES}")
    return choice


def select() -> dict:
    """Enable the best available device and describe it (kind, name) for manifests."""
    choice = requested()
    prefs = bpy.context.preferences.addons["cycles"].preferences
    kinds = {"auto": ("OPTIX", "CUDA"), "optix": ("OPTIX",), "cuda": ("CUDA",), "cpu": ()}[choice]
    for kind in kinds:
        try:
            prefs.compute_device_type = kind
        except TypeError:  # this build has no such backend
            continue
        prefs.get_devices()
        gpus = [d for d in prefs.devices if d.type == kind]
        if gpus:
            for d in prefs.devices:
                d.use = d.type == kind
            return {"kind": kind, "name": ", ".join(d.name for d in gpus), "requested": choice}
    if choice in ("optix", "cuda"):
        raise RuntimeError(f"AUTOPLAY_RENDER_DEVICE={choice} but Cycles finds no {choice.upper()} device")
    prefs.compute_device_type = "NONE"
    return {"kind": "CPU", "name": platform.processor() or platform.machine(), "requested": choice}


def warm_up(device: dict) -> float:
    """Render a 32x32 frame of an empty scene on a GPU so its kernels are compiled and loaded; seconds taken."""
    if device["kind"] == "CPU":
        return 0.0
    started = time.perf_counter()
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "GPU"
    scene.cycles.samples = 1
    scene.render.resolution_x = scene.render.resolution_y = 32
    bpy.ops.mesh.primitive_cube_add()
    with tempfile.TemporaryDirectory() as tmp:
        scene.render.filepath = str(Path(tmp) / "warmup.png")
        bpy.ops.render.render(write_still=True)
    return time.perf_counter() - started
