"""What every other part of the plugin agrees on, and nothing else.

``core`` imports no other module of ``nero_nerfstudio`` (a test checks it): errors (:mod:`.errors`), camera and frame
conventions (:mod:`.camera_conventions`, :mod:`.frames`, :mod:`.photographer`), NeRO's image splits (:mod:`.splits`)
and the names of metadata and outputs passed between the pieces (:mod:`.keys`).
"""
