"""nero-make-brdf-lut: regenerate the split-sum BRDF table (``assets/bsdf_256_256.bin``) by numerical integration."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console

from nero_nerfstudio.model_components.brdf_lut import (
    DEFAULT_LUT_PATH,
    DEFAULT_NUM_SAMPLES,
    LUT_RESOLUTION,
    compute_split_sum_lut,
    save_split_sum_lut,
)

CONSOLE = Console()


@dataclass
class MakeBrdfLut:
    """Integrate the 256x256 split-sum (A, B) table and write it as raw little-endian float32."""

    output: Path = DEFAULT_LUT_PATH
    """Where to write the table (written atomically)."""
    num_samples: int = DEFAULT_NUM_SAMPLES
    """Hammersley GGX half-vector samples per texel."""

    def main(self) -> None:
        if self.num_samples < 1:
            raise SystemExit(f"--num-samples must be positive, got {self.num_samples}")
        start = time.perf_counter()
        table = compute_split_sum_lut(LUT_RESOLUTION, self.num_samples)
        save_split_sum_lut(table, self.output)
        CONSOLE.print(
            f"Wrote {self.output} ({LUT_RESOLUTION}x{LUT_RESOLUTION}x2 float32, {self.num_samples} samples per texel) "
            f"in {time.perf_counter() - start:.1f} s"
        )


def entrypoint() -> None:
    """Console-script entry point."""
    tyro.cli(MakeBrdfLut).main()


if __name__ == "__main__":
    entrypoint()
