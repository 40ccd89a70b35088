"""Speed of the fast preset's grid encoding on this machine: the dense torch grids (``grid_sample``) against
nerfstudio's torch hash grid with the same levels, forward and backward, and against the trilinear reference.

The three lookups run in the same process on the same points, alternating, and the report gives their ratios
(this machine's speed cancels out). Writes ``benchmarks/RESULTS_grid_encoding.md``::

    python benchmarks/bench_grid_encoding.py
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

import torch
import tyro
from nerfstudio.field_components.encodings import HashEncoding
from rich.console import Console

from nero_nerfstudio.field_components.grid_encoding import MultiResGridEncoding, trilinear_reference
from nero_nerfstudio.scripts.bench_train import report_header

CONSOLE = Console()


@dataclass
class BenchGridConfig:
    """Grid-encoding speed benchmark."""

    results: Path = Path(__file__).resolve().parent / "RESULTS_grid_encoding.md"
    num_points: int = 100_000
    """Points per lookup (about what one training step of the fast preset looks up)."""
    repeats: int = 5
    threads: int = 2
    num_levels: int = 8
    min_resolution: int = 16
    max_resolution: int = 128


def seconds_per_call(function: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median wall time of ``function()`` plus a backward pass through its output (one warm-up call first)."""
    times: List[float] = []
    for index in range(repeats + 1):
        start = time.perf_counter()
        function().square().sum().backward()
        if index > 0:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main(config: BenchGridConfig) -> None:
    torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    points = torch.rand(config.num_points, 3) * 2.0 - 1.0
    dense = MultiResGridEncoding(
        config.num_levels, 2, config.min_resolution, config.max_resolution, implementation="dense"
    )
    hashed = HashEncoding(
        num_levels=config.num_levels,
        min_res=config.min_resolution,
        max_res=config.max_resolution,
        log2_hashmap_size=19,
        features_per_level=2,
        implementation="torch",
    )
    lookups: Dict[str, Callable[[], torch.Tensor]] = {
        "dense grids, grid_sample (fast preset)": lambda: dense(points),
        "nerfstudio HashEncoding, torch": lambda: hashed((points + 1.0) / 2.0),
        "trilinear reference (8 gathers per level)": lambda: torch.cat(
            [trilinear_reference(grid[0], points) for grid in dense.grids], dim=-1
        ),
    }
    seconds = {name: seconds_per_call(lookup, config.repeats) for name, lookup in lookups.items()}
    fastest = seconds["dense grids, grid_sample (fast preset)"]
    command = f"python benchmarks/bench_grid_encoding.py --threads {config.threads} --repeats {config.repeats}"
    lines = [
        *report_header(
            "Benchmark: the fast preset's grid encoding on a CPU", "benchmarks/bench_grid_encoding.py", command
        ),
        "## Setup",
        "",
        f"* {config.num_levels} levels, 2 features each, resolutions {config.min_resolution} to "
        f"{config.max_resolution} over [-1, 1]^3 (the hash grid: 2^19 entries per level).",
        f"* One call = lookup of {config.num_points} random points, then backward of the sum of squares; median of "
        f"{config.repeats} calls after a warm-up, `torch.set_num_threads({config.threads})`.",
        "",
        "## Results",
        "",
        "| lookup | ms per call | time relative to the dense grids |",
        "| --- | --- | --- |",
        *[f"| {name} | {1000 * value:.1f} | {value / fastest:.2f}x |" for name, value in seconds.items()],
        "",
    ]
    config.results.write_text("\n".join(lines))
    for line in lines[-len(seconds) - 2 :]:
        CONSOLE.print(line)
    CONSOLE.print(f"Wrote {config.results}")


if __name__ == "__main__":
    main(tyro.cli(BenchGridConfig))
