#!/usr/bin/env bash
# Stage I presets on one GPU: nero-shape-fast and the paper's nero-shape, each trained on CUDA for a fixed training time
# on an 800x800, 100-view glossy bunny, their Chamfer to the ground-truth mesh against training time written with the
# machine to benchmarks/RESULTS_gpu.md. A manual check for a GPU machine (under 9 minutes once .venv exists; elapsed
# time printed at every step); never part of CI or the tests.
#
#   bash benchmarks/gpu_check.sh                            # on the GPU machine
#   NERO_GPU_CHECK_DRY_RUN=1 bash benchmarks/gpu_check.sh   # CPU dry run of the plumbing: tiny scene, seconds of training
#
# Environment:
#   NERO_GPU_CHECK_DIR      work folder (default /tmp/nero_gpu_check, dry run /tmp/nero_gpu_check_dry); a finished
#                           render and finished runs found there are reused
#   NERO_GPU_CHECK_SECONDS  training seconds per preset (default 120, dry run 3)
#   NERO_GPU_CHECK_RESULTS  report (default benchmarks/RESULTS_gpu.md; dry run: RESULTS_gpu.md in the work folder)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
log() { echo "[gpu_check $(( $(date +%s) - start )) s] $*"; }

if [ ! -x .venv/bin/python ]; then
    log "no .venv here: bash .ci/setup (a few minutes)"
    bash .ci/setup
fi
python=.venv/bin/python

dry_run="${NERO_GPU_CHECK_DRY_RUN:-0}"
if [ "$dry_run" = 1 ]; then
    # The same commands at sizes a 2-core CPU machine runs in a couple of minutes.
    views=8 resolution=32 samples=2 seconds="${NERO_GPU_CHECK_SECONDS:-3}" curve_every=1
    curve_resolution=32 mesh_resolution=48 full=False threads=1
    work="${NERO_GPU_CHECK_DIR:-/tmp/nero_gpu_check_dry}"
    results="${NERO_GPU_CHECK_RESULTS:-$work/RESULTS_gpu.md}"
else
    # Time plan (9 minutes): the render about 2 minutes on 16 cores (low samples, no denoising), then per preset its
    # training time plus about a minute of set-up, curve points, mesh and two 800x800 inference renders.
    views=100 resolution=800 samples=4 seconds="${NERO_GPU_CHECK_SECONDS:-120}" curve_every=20
    curve_resolution=192 mesh_resolution=192 full=True threads="$(nproc)"
    work="${NERO_GPU_CHECK_DIR:-/tmp/nero_gpu_check}"
    results="${NERO_GPU_CHECK_RESULTS:-benchmarks/RESULTS_gpu.md}"
    "$python" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device (NERO_GPU_CHECK_DRY_RUN=1 runs on CPU)")'
fi
scene="$work/scene_${views}x${resolution}"
mkdir -p "$work"
log "work folder $work; $views views of ${resolution}x${resolution}, $seconds s of training per preset"

if [ -f "$scene/gt/scene.json" ]; then
    log "reusing the scene in $scene"
else
    rm -rf "$scene"
    log "rendering $scene"
    .venv/bin/nero-render-scene --output-dir "$scene" --layout synthetic --mesh bunny --environment courtyard \
        --num-views "$views" --resolution "$resolution" --samples "$samples" \
        --metallic 1.0 --roughness 0.05 --albedo 0.9 0.9 0.9 --seed 0
    log "rendered"
fi

# One time-budgeted bench_train run per preset (its schedule fitted to the preset's own step count), Chamfer to the GT
# mesh every $curve_every s of training.
for preset in fast paper; do
    result="$work/train_${preset}_${seconds}s.json"
    if [ -f "$result" ]; then
        log "reusing $result"
        continue
    fi
    log "training the $preset preset for $seconds s"
    spec="$("$python" - "$preset" "$scene" "$work" "$result" "$seconds" "$curve_every" "$curve_resolution" \
        "$mesh_resolution" "$full" "$threads" <<'PY'
import sys

from nero_nerfstudio.configs.method_configs import fast_trainer_config, paper_trainer_config
from nero_nerfstudio.scripts.bench_train import TrainSpec

preset, scene, work, result, seconds, curve_every, curve_resolution, mesh_resolution, full, threads = sys.argv[1:]
own_steps = {"fast": fast_trainer_config, "paper": paper_trainer_config}[preset]().max_num_iterations
spec = TrainSpec(
    kind="shape",
    preset=preset,
    scene=scene,
    output_dir=f"{work}/runs",
    experiment=f"gpu_check_{preset}",
    result_path=result,
    steps=own_steps,
    threads=int(threads),
    full=full == "True",
    time_budget_s=float(seconds),
    gt_mesh=f"{scene}/gt/mesh.ply",
    curve_every_s=float(curve_every),
    curve_mesh_resolution=int(curve_resolution),
    mesh_resolution=int(mesh_resolution),
    mesh_path=f"{work}/mesh_{preset}.ply",
)
spec.save()
print(spec.spec_path)
PY
)"
    "$python" -m nero_nerfstudio.scripts.bench_train "$spec"
    log "$preset preset done"
done

"$python" - "$work" "$results" "$seconds" "$views" "$resolution" "$samples" "$dry_run" <<'PY'
import json
import sys
from pathlib import Path

from nero_nerfstudio.scripts.bench_train import report_header

work, results, seconds, views, resolution, samples, dry_run = sys.argv[1:]
labels = {"fast": "nero-shape-fast", "paper": "nero-shape (paper)"}
runs = {preset: json.loads(Path(f"{work}/train_{preset}_{seconds}s.json").read_text()) for preset in labels}
device = "CPU (dry run)" if dry_run == "1" else "CUDA"


def number(value, digits):
    return "n/a" if value is None else f"{value:.{digits}f}"


lines = [
    *report_header(
        "GPU check: Stage I presets for a fixed training time",
        "benchmarks/gpu_check.sh",
        note=" as a CPU dry run (tiny sizes: checks the plumbing, measures nothing)" if dry_run == "1" else "",
    ),
    "## Setup",
    "",
    f"* Scene: `nero-render-scene` GlossySynthetic layout, the Stanford bunny as a mirror-like metal (metallic 1, "
    f"roughness 0.05) under `courtyard`, {views} views of {resolution}x{resolution}, {samples} spp; NeRO's test ids "
    "held out (`--split-mode test`).",
    f"* Each preset trained by `nero_nerfstudio.scripts.bench_train` on {device} until {seconds} s of training time "
    "(the sum of the step times), its schedule fitted to the preset's own step count, its own rays per step. The "
    "curve points pause the training clock: the SDF is meshed by marching cubes and compared with the GT mesh "
    "(Chamfer, 30k samples per mesh). Eval rays/s: one held-out view, the second of two renders timed.",
    "",
    "## Summary",
    "",
    "| preset | steps (planned) | steps/s | training (s) | Chamfer at the end | eval rays/s | CUDA peak (MiB) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
]
for preset, label in labels.items():
    run, planned = runs[preset], json.loads(Path(f"{work}/train_{preset}_{seconds}s_spec.json").read_text())["steps"]
    lines.append(
        f"| {label} | {run['steps']} ({planned}) | {run['steps_per_second']:.2f} | {run['train_seconds']:.0f} | "
        f"{number(run['curve'][-1][2], 4)} | {number(run['eval_rays_per_second'], 0)} | "
        f"{number(run['cuda_peak_mib'], 0)} |"
    )
lines += ["", "## Chamfer to the GT mesh against training time", ""]
for preset, label in labels.items():
    lines += [f"{label}:", "", "| training (s) | steps | Chamfer |", "| --- | --- | --- |"]
    lines += [f"| {seconds_:.1f} | {steps:.0f} | {chamfer:.4f} |" for steps, seconds_, chamfer in runs[preset]["curve"]]
    lines.append("")
Path(results).write_text("\n".join(lines))
print(f"wrote {results}")
PY
log "done"
