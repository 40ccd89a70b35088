"""Pixels whose primary ray hits the fixed Stage II mesh, traced once (method.md §4.1), and a sample of those that
miss it (the environment seen past the object, §4.5).

The hit pool keeps, per hitting pixel, its ``(camera, y, x)`` index, colour, hit point, outward face normal,
interpolated vertex normal, ray distance, and the spread of the interpolated normals over the pixel's filter
footprint (the normals themselves only when kept). Batches of it reach the model as a RayBundle whose ``metadata``
carries the hit (``NeroKey.HIT_*``), so the model does not trace primary rays during training. The background pool
keeps index and colour of a random subset of each image's missing pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable, Optional, Tuple, Union

import torch
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.cameras import Cameras
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor

from nero_nerfstudio.core.keys import NeroKey
from nero_nerfstudio.model_components.pixel_footprint import jittered_filter_offsets, normal_variance
from nero_nerfstudio.raycasting.base import MeshRayCaster


@dataclass
class MeshHitPool:
    """Every training pixel whose primary ray hits the mesh (CPU tensors, one row per pixel)."""

    indices: Int[Tensor, "num_hits 3"]
    """``(camera, y, x)`` of the pixel, as nerfstudio's ray generator expects."""
    colors: Float[Tensor, "num_hits 3"]
    """Pixel colour (sRGB in [0, 1])."""
    points: Float[Tensor, "num_hits 3"]
    """Hit point in the normalised frame."""
    normals: Float[Tensor, "num_hits 3"]
    """Outward unit face normal at the hit."""
    smooth_normals: Float[Tensor, "num_hits 3"]
    """Interpolated vertex normal at the hit (:meth:`~nero_nerfstudio.raycasting.base.MeshRayCaster.smooth_normals`)."""
    depth: Float[Tensor, "num_hits 1"]
    """Distance from the camera centre to the hit along the unit ray direction."""
    normal_variance: Float[Tensor, "num_hits 1"]
    """Spread of the interpolated normals over the pixel's filter footprint
    (:func:`~nero_nerfstudio.model_components.pixel_footprint.normal_variance`; 0 when not measured)."""
    footprint_normals: Float[Tensor, "num_hits num_offsets 3"]
    """Interpolated normals of the rays through the pixel's filter footprint (the hit's own smooth normal where such
    a ray misses the mesh), half floats; ``num_offsets`` is 0 when not kept."""

    def __len__(self) -> int:
        return self.indices.shape[0]

    def select(self, rows: Int[Tensor, "num_rows"]) -> "MeshHitPool":
        """The pool restricted to ``rows``."""
        return MeshHitPool(**{item.name: getattr(self, item.name)[rows] for item in fields(self)})


@dataclass
class BackgroundPixels:
    """Training pixels whose primary ray misses the mesh (CPU tensors, one row per pixel)."""

    indices: Int[Tensor, "num_pixels 3"]
    """``(camera, y, x)`` of the pixel."""
    colors: Float[Tensor, "num_pixels 3"]
    """Pixel colour (sRGB in [0, 1])."""

    def __len__(self) -> int:
        return self.indices.shape[0]

    def select(self, rows: Int[Tensor, "num_rows"]) -> "BackgroundPixels":
        """The pixels restricted to ``rows``."""
        return BackgroundPixels(self.indices[rows], self.colors[rows])


@dataclass
class TracedPixels:
    """What :func:`trace_hit_pool` found."""

    hits: MeshHitPool
    background: BackgroundPixels
    """At most ``background_per_image`` missing pixels of each image, drawn at random."""


def trace_hit_pool(
    cameras: Cameras,
    image_loader: Callable[[int], Float[Tensor, "height width channels"]],
    ray_caster: MeshRayCaster,
    chunk_size: int = 1 << 20,
    background_per_image: int = 0,
    seed: int = 0,
    footprint_offsets: Optional[Float[Tensor, "num_offsets 2"]] = None,
    supersample_filter_std: Optional[float] = None,
) -> TracedPixels:
    """Trace every pixel ray of every camera once against the mesh; keep the hits and a sample of the misses.

    Args:
        cameras: ``N`` training cameras (normalised frame).
        image_loader: image ``[H, W, C]`` float in [0, 1] of a camera index (only RGB is kept).
        ray_caster: caster over the mesh in the normalised frame.
        chunk_size: rays per cast call.
        background_per_image: missing pixels kept per image (a random subset bounds the pool's memory).
        seed: seed of the background subset.
        footprint_offsets: sub-pixel offsets ``(dy, dx)`` of the rays that measure each hit's ``normal_variance``
            (:func:`~nero_nerfstudio.model_components.pixel_footprint.pixel_filter_offsets`); none: variance 0.
        supersample_filter_std: keep the footprint rays' normals in the pool (``footprint_normals``), for
            supersampling: ``len(footprint_offsets)`` rays per pixel, through the pixel's own random draws from a
            Gaussian filter of this standard deviation (pixels;
            :func:`~nero_nerfstudio.model_components.pixel_footprint.jittered_filter_offsets`) instead of the fixed
            offsets, which they then also measure ``normal_variance`` with. None: the normals are not kept.
    """
    generator = torch.Generator().manual_seed(seed)
    parts = []
    background_parts = []
    progress = Progress(
        TextColumn("[bold]Tracing training pixels against the mesh"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    with progress, torch.no_grad():
        task = progress.add_task("tracing", total=len(cameras))
        for camera_index in range(len(cameras)):
            bundle = cameras.generate_rays(camera_indices=camera_index, keep_shape=True)
            height, width = bundle.origins.shape[:2]
            image = image_loader(camera_index)
            if image.shape[0] != height or image.shape[1] != width:
                raise ValueError(
                    f"image {camera_index} is {image.shape[1]}x{image.shape[0]} but its camera is {width}x{height}"
                )
            pixel_index = torch.arange(height * width)
            origins = bundle.origins.reshape(-1, 3).cpu()
            directions = bundle.directions.reshape(-1, 3).cpu()
            colors = image[..., :3].reshape(-1, 3).float().cpu()
            hit_any = torch.zeros(height * width, dtype=torch.bool)
            for start in range(0, origins.shape[0], chunk_size):
                stop = min(start + chunk_size, origins.shape[0])
                hits = ray_caster.cast(origins[start:stop], directions[start:stop]).to("cpu")
                hit_any[start:stop] = hits.hit_mask
                pixels = torch.nonzero(hits.hit_mask, as_tuple=True)[0] + start
                smooth_normals = ray_caster.smooth_normals(hits)[hits.hit_mask]
                variance = torch.zeros(len(pixels), 1)
                footprint = torch.zeros(len(pixels), 0, 3)
                if footprint_offsets is not None and len(pixels):
                    offsets = footprint_offsets
                    if supersample_filter_std is not None:
                        offsets = jittered_filter_offsets(
                            len(footprint_offsets), len(pixels), supersample_filter_std, generator
                        )
                    footprint, valid = _footprint_normals(cameras, camera_index, pixels, width, ray_caster, offsets)
                    variance = normal_variance(footprint, valid)
                    if supersample_filter_std is not None:
                        footprint = torch.where(valid[..., None], footprint, smooth_normals[None]).transpose(0, 1)
                        footprint = footprint.half()  # the pool's largest part; normals need no more than 3 digits
                    else:
                        footprint = footprint.new_zeros(len(pixels), 0, 3)
                parts.append(
                    MeshHitPool(
                        indices=torch.stack(
                            [torch.full_like(pixels, camera_index), pixels // width, pixels % width], dim=-1
                        ),
                        colors=colors[pixels],
                        points=hits.points[hits.hit_mask],
                        normals=hits.face_normals[hits.hit_mask],
                        smooth_normals=smooth_normals,
                        depth=hits.depth[hits.hit_mask][:, None],
                        normal_variance=variance,
                        footprint_normals=footprint.contiguous(),
                    )
                )
            misses = pixel_index[~hit_any]
            misses = misses[torch.randperm(len(misses), generator=generator)[:background_per_image]]
            background_parts.append(
                BackgroundPixels(
                    torch.stack([torch.full_like(misses, camera_index), misses // width, misses % width], dim=-1),
                    colors[misses],
                )
            )
            progress.advance(task)
    hits = MeshHitPool(**{item.name: torch.cat([getattr(p, item.name) for p in parts]) for item in fields(MeshHitPool)})
    background = BackgroundPixels(
        torch.cat([part.indices for part in background_parts]), torch.cat([part.colors for part in background_parts])
    )
    return TracedPixels(hits, background)


def _footprint_normals(
    cameras: Cameras,
    camera_index: int,
    pixels: Int[Tensor, "num_pixels"],
    width: int,
    ray_caster: MeshRayCaster,
    offsets: Union[Float[Tensor, "num_offsets 2"], Float[Tensor, "num_offsets num_pixels 2"]],
) -> Tuple[Float[Tensor, "num_offsets num_pixels 3"], Bool[Tensor, "num_offsets num_pixels"]]:
    """Interpolated normals of rays through ``offsets`` (the same for every pixel, or each pixel's own) around the
    centres of flat ``pixels``, and which hit."""
    centres = torch.stack([pixels // width, pixels % width], dim=-1).float() + 0.5  # (y, x)
    normals, valid = [], []
    for offset in offsets:
        bundle = cameras.generate_rays(camera_indices=camera_index, coords=centres + offset)
        hits = ray_caster.cast(bundle.origins.reshape(-1, 3).cpu(), bundle.directions.reshape(-1, 3).cpu()).to("cpu")
        normals.append(ray_caster.smooth_normals(hits))
        valid.append(hits.hit_mask)
    return torch.stack(normals), torch.stack(valid)


class ShuffledBatches:
    """Rows ``0 .. size-1`` in a random order, served in batches; reshuffled whenever a pass is used up.

    A batch that crosses the end of a pass takes the rest of that pass and the start of a fresh shuffle, so every
    row is served once per pass.

    Args:
        size: number of rows (> 0).
        seed: seed of the private generator.
    """

    def __init__(self, size: int, seed: int = 6033) -> None:
        if size <= 0:
            raise ValueError("ShuffledBatches needs at least one row")
        self.size = size
        self._generator = torch.Generator().manual_seed(seed)
        self._order = torch.randperm(size, generator=self._generator)
        self._cursor = 0
        self.num_passes = 1
        """How many shuffles have been started (1 after construction)."""

    def next(self, batch_size: int) -> Int[Tensor, "batch_size"]:
        """The next ``batch_size`` row indices."""
        taken = []
        remaining = batch_size
        while remaining > 0:
            if self._cursor == self.size:
                self._order = torch.randperm(self.size, generator=self._generator)
                self._cursor = 0
                self.num_passes += 1
            count = min(remaining, self.size - self._cursor)
            taken.append(self._order[self._cursor : self._cursor + count])
            self._cursor += count
            remaining -= count
        return torch.cat(taken)


def pool_batch_metadata(
    pool: MeshHitPool, num_background: int = 0, device: Optional[torch.device | str] = None
) -> dict:
    """The ``RayBundle.metadata`` entries of a batch of the pool followed by ``num_background`` missing rays (zero
    hits, ``NeroKey.HIT_MASK`` false)."""

    def padded(values: Tensor) -> Tensor:
        return torch.cat([values, values.new_zeros(num_background, values.shape[-1])]).to(device)

    hit_mask = torch.cat([torch.ones(len(pool), 1, dtype=torch.bool), torch.zeros(num_background, 1, dtype=torch.bool)])
    footprint = torch.nn.functional.normalize(pool.footprint_normals.float(), dim=-1).flatten(1)
    kept = {NeroKey.HIT_FOOTPRINT_NORMALS: padded(footprint)} if footprint.shape[1] else {}  # to supersample
    return {
        **kept,
        NeroKey.HIT_POINTS: padded(pool.points),
        NeroKey.HIT_NORMALS: padded(pool.normals),
        NeroKey.HIT_SMOOTH_NORMALS: padded(pool.smooth_normals),
        NeroKey.HIT_DEPTH: padded(pool.depth),
        NeroKey.HIT_NORMAL_VARIANCE: padded(pool.normal_variance),
        NeroKey.HIT_MASK: hit_mask.to(device),
    }
