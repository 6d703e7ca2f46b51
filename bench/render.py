"""Render benchmark on WaterBottle.glb: seconds per still by profile and aspect, the cost of one more
variant in a loaded scene, turntable cost, a contact sheet of every template in every aspect, and one of
the test corpus (products the renderer was not built around) x every template, with its render QA.

    python bench/render.py                    # thumbnail + preview, turntable, both sheets (~10 min, 2 cores)
    python bench/render.py --production       # also 1080p production stills (GPU workers; slow on a CPU)

Every render runs in a worker process, as in the loop; timings come from the manifests the worker writes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test corpus lives in tests/
from figures import figure  # noqa: E402

from creative.vocabulary import ASPECTS, TEMPLATES  # noqa: E402
from rendering.batch import render_batch  # noqa: E402
from rendering.contact_sheet import contact_sheet, folder_contact_sheet  # noqa: E402
from rendering.outputs import RenderManifest  # noqa: E402
from rendering.spec import Companion, RenderJob  # noqa: E402
from tests.rendering.corpus import write_corpus  # noqa: E402

MODEL = Path(__file__).resolve().parent.parent / "examples" / "waterbottle" / "WaterBottle.glb"
COLOURS = ["#E8D5C4", "#1F6FEB", "#2E7D32", "#F4C430"]
OUT = Path(__file__).resolve().parent / "out"
OMI_RENDERS_PER_MONTH = 10_000


def job(**kw) -> RenderJob:
    return RenderJob(**{"model_path": str(MODEL), "template": "studio", "colour": COLOURS[0], "aspect": "1:1", **kw})


def run(jobs: list[RenderJob], out: Path, label: str) -> list[RenderManifest]:
    with Progress() as progress:
        task = progress.add_task(label, total=len(jobs))
        results = render_batch(jobs, out, on_result=lambda r: progress.advance(task), max_jobs_per_worker=1000)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise SystemExit(f"{label}: {len(failed)} renders failed, first: {failed[0].error}")
    return [r.manifest for r in results]  # a render QA refused still has its manifest, with the reasons


def device_of(manifests: list[RenderManifest]) -> str:
    return manifests[0].device["kind"].lower()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--production", action="store_true", help="also time production (1080p, denoised) stills")
    parser.add_argument("--turntable-seconds", type=float, default=1.0)
    parser.add_argument("--no-sheet", action="store_true", help="skip the contact sheets")
    parser.add_argument(
        "--sheets-only", nargs="+", choices=["templates", "corpus", "bundles"], help="only these contact sheets"
    )
    args = parser.parse_args()
    if args.sheets_only:
        with tempfile.TemporaryDirectory() as tmp:
            sheets(Path(tmp), set(args.sheets_only))
        return

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        [fresh] = run([job(profile="preview", colour="#111827")], tmp / "fresh", "fresh process, one preview still")
        fresh_s = time.perf_counter() - started
        device = device_of([fresh])

        profiles = ["thumbnail", "preview"] + (["production"] if args.production else [])
        # aspects in turn, as the loop's render runs meet them: a ratio between aspects is then not a drift
        # in the machine's speed between the first aspect's renders and the last's
        jobs = [
            job(profile=p, colour=c, aspect=a)
            for p in profiles
            for c in COLOURS
            for a in ASPECTS
            if a == "1:1" or p == "preview" or c in COLOURS[:2]  # the preview's aspect ratios: medians of 4
        ]
        manifests = run(jobs, tmp / "loaded", "one worker, variants of a loaded product")
        by_key: dict[tuple[str, str], list[dict]] = {}
        for m in manifests[1:]:  # the first job pays the import
            by_key.setdefault((m.job.profile, m.job.aspect), []).append(m)
        for (profile, aspect), ms in by_key.items():
            w, h = ms[0].size
            figure(
                f"still_s.{profile}.{aspect}",
                statistics.median(m.timings_s["total"] for m in ms),
                "s",
                f"{w}x{h}, median of {len(ms)} variants in a loaded scene",
                device,
            )
        preview = by_key[("preview", "1:1")]
        preview_s = statistics.median(m.timings_s["total"] for m in preview)
        figure("preview_still_s", preview_s, "s", "preview 1:1 (540x540, 8 samples, OIDN), target <= 5 s", device)
        for aspect in ASPECTS:
            ms = by_key[("preview", aspect)]
            seconds = statistics.median(m.timings_s["total"] for m in ms)
            (w, h), (w1, h1) = ms[0].size, preview[0].size
            figure(f"preview_still_s.{aspect}", seconds, "s", f"{w}x{h}, median of {len(ms)}", device)
            figure(
                f"preview_aspect_cost_ratio.{aspect}",
                seconds / preview_s,
                "x",
                f"against 1:1, for {w * h / (w1 * h1):.2f}x the pixels; target <= 1.8",
                device,
            )
        ratio = statistics.median(m.timings_s["total"] / m.timings_s["cycles"] for m in preview)
        figure(
            "marginal_variant_ratio",
            ratio,
            "x",
            "one more variant in a loaded scene (restage, frame, render, composite, write) / the Cycles render alone;"
            " target <= 1.1",
            device,
        )
        figure(
            "fresh_process_vs_loaded_ratio",
            fresh_s / preview_s,
            "x",
            f"a fresh worker for one preview still took {fresh_s:.1f} s (start, import, render) vs {preview_s:.2f} s",
            device,
        )
        per_hour = 3600 / preview_s
        figure(
            "preview_renders_per_hour",
            per_hour,
            "renders/h",
            f"one worker; Omi's {OMI_RENDERS_PER_MONTH} renders a month take {OMI_RENDERS_PER_MONTH / per_hour:.1f} h",
            device,
        )
        if args.production:
            prod = by_key[("production", "1:1")]
            figure(
                "production_still_s",
                statistics.median(m.timings_s["total"] for m in prod),
                "s",
                f"1080x1080, 64 samples, denoised, on {prod[0].device['name']}; target < 1.5 s on an H100",
                device,
            )

        seconds = args.turntable_seconds
        [turntable] = run(
            [job(profile="preview", kind="turntable", seconds=seconds, fps=24, template="podium")],
            tmp / "turntable",
            f"preview turntable, {seconds:g} s at 24 fps",
        )
        figure(
            "turntable_s_per_s",
            turntable.timings_s["total"] / seconds,
            "s/s",
            f"preview 1:1, 24 fps, {turntable.timings_s['cycles']:.1f} s of it in Cycles, the rest compositing"
            " and H.264 encoding",
            device,
        )

        if not args.no_sheet:
            sheets(tmp, {"templates", "corpus", "bundles"})


def sheets(tmp: Path, which: set[str]) -> None:
    """The contact sheets to look at: every template in every aspect, the corpus, the bundles."""
    if "templates" in which:
        sheet_jobs = [
            job(profile="preview", template=t, aspect=a, colour=COLOURS[i % len(COLOURS)])
            for i, t in enumerate(TEMPLATES)
            for a in ASPECTS
        ]
        sheet = run(sheet_jobs, tmp / "sheet", "contact sheet: every template in every aspect")
        items = [(tmp / "sheet" / m.variant_id / "still.png", f"{m.job.template} {m.job.aspect}") for m in sheet]
        path = contact_sheet(items, OUT / "templates.png", title="templates x aspects (preview)", columns=8)
        print(f"contact sheet: {path}")
    if "corpus" in which:
        corpus_sheet(tmp)
    if "bundles" in which:
        bundle_sheet(tmp)


def corpus_sheet(tmp: Path) -> None:
    """Every template on every corpus model at preview 1:1, QA-checked; the sheet marks what QA refused."""
    models = write_corpus(tmp / "corpus")
    jobs = [
        RenderJob(model_path=str(path), template=t, colour=COLOURS[0], aspect="1:1", profile="preview")
        for path in models.values()
        for t in TEMPLATES
        if TEMPLATES[t].kind != "bundle"  # one product: the bundle sheet shows those
    ]
    checked_sheet(jobs, tmp / "corpus_renders", "corpus", "corpus x templates (preview 1:1)")


#: Bundles of the test corpus (and the bottle, whose glTF is in metres): model names and real heights in metres.
BUNDLES = {
    "drinkware": [("bottle", None), ("low_poly_can", 0.12), ("glossy_speaker", 0.2)],
    "living room": [("sofa", 0.8), ("floor_lamp", 1.5), ("desk", 0.78)],
    "gift set": [("white_box", 0.1), ("watch", 0.01), ("tote_bag", 0.08)],
}


def bundle_sheet(tmp: Path) -> None:
    """Every bundle template on three bundles in every aspect at preview, QA-checked product by product."""
    models = {**write_corpus(tmp / "corpus"), "bottle": MODEL}
    jobs = [
        RenderJob(
            model_path=str(models[lead]),
            height_m=lead_h,
            template=t,
            colour=COLOURS[0],
            aspect=a,
            profile="preview",
            companions=tuple(Companion(model_path=str(models[n]), height_m=h) for n, h in rest),
        )  # fmt: skip
        for (lead, lead_h), *rest in BUNDLES.values()
        for t in TEMPLATES
        if TEMPLATES[t].kind == "bundle"
        for a in ASPECTS
    ]
    checked_sheet(jobs, tmp / "bundle_renders", "bundles", "bundles x bundle templates x aspects (preview)")


def checked_sheet(jobs: list[RenderJob], folder: Path, name: str, title: str) -> None:
    """Render ``jobs``, print the share render QA passed (``<name>_qa_passed``) and each refusal, and write
    ``bench/out/<name>.png``, which marks what QA refused."""
    manifests = run(jobs, folder, f"contact sheet: {title}")
    passed = sum(m.qa_passed for m in manifests)
    figure(f"{name}_qa_passed", passed / len(manifests), "share", f"{passed} of {len(manifests)}", device_of(manifests))
    for m in manifests:
        if not m.qa_passed:
            print(f"QA refused {Path(m.job.model_path).stem} {m.job.template} {m.job.aspect}: {m.qa['failures']}")
    print(f"{name} contact sheet: {folder_contact_sheet(folder, title=title, out=OUT / f'{name}.png')}")


if __name__ == "__main__":
    main()
