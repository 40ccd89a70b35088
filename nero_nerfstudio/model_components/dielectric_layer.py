"""The diffuse base under the dielectric specular layer, layered as Blender's Principled BSDF does (method.md §4.4).

Blender's Principled BSDF puts its dielectric specular lobe (``F0 = DIELECTRIC_F0``) on top of the diffuse base and
weights the base by what that layer does not reflect towards the viewer, ``1 - E_s(n.v, r)``, with ``E_s`` the
layer's directional albedo. NeRO adds the two lobes instead. ``E_s`` is 0.04 facing the viewer and, for a glossy
lobe, 0.35 at ``n.v = 0.2`` (0.13 for roughness 0.5), so NeRO's diffuse is brightest against Blender's at the rim.
Stage II shades with Blender's layering, so that its materials mean in Blender (where they are relit) what they
meant in training.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from nero_nerfstudio.model_components.brdf_lut import SplitSumLUT
from nero_nerfstudio.model_components.microfacet import DIELECTRIC_F0


def diffuse_layer_weight(
    normals: Float[Tensor, "num_points 3"],
    view_dirs: Float[Tensor, "num_points 3"],
    roughness: Float[Tensor, "num_points 1"],
    split_sum: SplitSumLUT,
) -> Float[Tensor, "num_points 1"]:
    """``1 - E_s`` with ``E_s = F0 A + B`` (``F0 = DIELECTRIC_F0``, ``A`` and ``B`` from the split-sum table at ``n.v``
    and the perceptual ``roughness``): the share of the light the dielectric specular layer lets through to the
    diffuse base and back out towards the viewer. ``view_dirs`` point from the surface to the camera."""
    n_dot_v = (normals * view_dirs).sum(-1, keepdim=True)  # the table clamps it to [0, 1]
    return 1.0 - split_sum.specular_reflectance(DIELECTRIC_F0, n_dot_v, roughness)
