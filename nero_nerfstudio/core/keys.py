"""Names of the values the pieces of the plugin hand each other, as one enum (like nerfstudio's ``FieldHeadNames``).

Three places carry them: ``DataparserOutputs.metadata`` (parser -> datamanager -> model), ``RayBundle.metadata``
(datamanager or camera -> model, one row per ray) and the model's output dict (model -> viewer, losses, exports).
``NeroKey`` is a ``StrEnum``: a member equals, hashes and formats as its string value, so ``outputs[NeroKey.NORMAL]``
and ``outputs["normal"]`` are the same entry; ``str()``, f-strings and json give the plain string (yaml does not:
convert with ``str()`` before dumping a key there).
"""

from __future__ import annotations

from enum import StrEnum


class NeroKey(StrEnum):
    """Metadata and output names shared by parsers, datamanagers, models, exports and scripts."""

    # DataparserOutputs.metadata -------------------------------------------------------------------------------------
    IMAGE_IDS = "image_ids"
    """``List[str]``: NeRO image id of each image of the split."""
    UP_AXIS = "up_axis"
    """``"y"`` or ``"z"``: world up of the normalised frame."""
    PHOTOGRAPHER_W2P = "photographer_w2p"
    """``[num_images, 3, 4]`` world-to-photographer frames; in ``RayBundle.metadata`` ``[num_rays, 12]`` per ray."""
    PHOTOGRAPHER_LIGHT = "photographer_light"
    """``bool``: the parser's default for the photographer light."""
    DEPTH_FILENAMES = "depth_filenames"
    """``List[Path]``: synthetic depth maps, for evaluation."""
    DATASET_FORMAT = "dataset_format"
    """``"synthetic"``, ``"real"`` or ``"custom"``."""
    DATAPARSER_TRANSFORM = "dataparser_transform"
    """``[3, 4]`` dataset -> normalised frame, before the scale (see :mod:`nero_nerfstudio.core.frames`)."""
    DATAPARSER_SCALE = "dataparser_scale"
    """``float``: the scale applied after :attr:`DATAPARSER_TRANSFORM`."""
    OBJECT_FRAME = "object_frame"
    """``ObjectFrame`` (photo formats): the object's sphere, up, forward and table; the trainer saves it in the run
    folder as ``nero_frame.json``."""

    # RayBundle.metadata of Stage II training rays (their primary hit, traced once by the datamanager) -----------------
    HIT_POINTS = "hit_points"
    """``[num_rays, 3]`` primary hit points (normalised frame)."""
    HIT_NORMALS = "hit_normals"
    """``[num_rays, 3]`` outward unit face normals at the hits."""
    HIT_SMOOTH_NORMALS = "hit_smooth_normals"
    """``[num_rays, 3]`` interpolated vertex normals at the hits."""
    HIT_DEPTH = "hit_depth"
    """``[num_rays, 1]`` distance from the ray origin to the hit (0 on a background ray)."""
    HIT_NORMAL_VARIANCE = "hit_normal_variance"
    """``[num_rays, 1]`` spread of the normals over the pixel's footprint (0 when not measured)."""
    HIT_FOOTPRINT_NORMALS = "hit_footprint_normals"
    """``[num_rays, 3 * num_offsets]`` interpolated normals of the rays through the pixel's footprint, flattened (only
    when the datamanager keeps them, to supersample the footprint)."""

    # Model outputs beyond nerfstudio's rgb / accumulation / depth ---------------------------------------------------
    NORMAL = "normal"
    """``[num_rays, 3]`` unit world-frame normal."""
    NORMALS = "normals"
    """``[num_rays, 3]`` ``(normal + 1) / 2``, what nerfstudio's viewer and ``ns-export`` read."""
    NORMAL_VIS = "normal_vis"
    """``[num_rays, 3]`` Stage II normal in ``[0, 1]``, black on misses."""
    HIT_MASK = "hit_mask"
    """``[num_rays, 1]`` 1 where the ray hits the Stage II mesh (an output; and, boolean, in the metadata of Stage II
    training rays, which may end with rays that miss it)."""
    SURFACE_SAMPLES = "surface_samples"
    """Stage I, training only: the per-sample tensors of the samples inside the unit sphere, for the losses."""
    INIT_SDF_SAMPLES = "init_sdf_samples"
    """Stage I, training only: ``(points, sdf)`` for the early init-SDF regulariser."""
    MATERIAL_SAMPLES = "material_samples"
    """Stage II, training only: points, normals and materials of the hits, for the regularisers."""
