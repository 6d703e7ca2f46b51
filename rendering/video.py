"""Turntable video: encode composited frames as H.264 that every ad platform and browser plays.

yuv420p with BT.709 primaries, transfer and matrix (tagged and actually used for the RGB->YUV
conversion), +faststart so the moov atom comes first and playback starts before the download ends.
The ffmpeg binary is the one the imageio-ffmpeg wheel ships.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg


def encode_h264(frame_pattern: Path, fps: int, out: Path, crf: int = 18) -> None:
    """Encode ``frame_%04d.png`` style frames into ``out`` (an .mp4)."""
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-hide_banner",
        "-loglevel", "error",
        "-y",
        "-framerate", str(fps),
        "-i", str(frame_pattern),
        "-vf", "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
        "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv",
        "-c:v", "libx264",
        "-preset", "medium",
        "-crf", str(crf),
        "-pix_fmt", "yuv420p",
        "-colorspace", "bt709",
        "-color_primaries", "bt709",
        "-color_trc", "bt709",
        "-color_range", "tv",
        "-movflags", "+faststart",
        str(out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg could not encode {out.name}: {done.stderr.strip()[-500:]}")


def describe(path: Path) -> dict:
    """What ffmpeg reports about a video: codec, pixel format and colour tags, size, fps, frames, seconds."""
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    info = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True
    ).stderr
    stream = re.search(r"Video: (\w+).*?, (\w+)\(([^)]*)\), (\d+)x(\d+).*?, ([\d.]+) fps", info)
    if stream is None:
        raise ValueError(f"{path}: no video stream found")
    codec, pix_fmt, colour, w, h, fps = stream.groups()
    head = path.read_bytes()[: 1 << 16]
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    return {
        "codec": codec,
        "pix_fmt": pix_fmt,
        "colour": [c.strip() for c in colour.split(",")],
        "size": [int(w), int(h)],
        "fps": float(fps),
        "frames": frames,
        "seconds": seconds,
        "faststart": moov != -1 and (mdat == -1 or moov < mdat),
    }
