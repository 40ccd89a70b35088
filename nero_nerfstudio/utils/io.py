"""Atomic file writing: a crash or Ctrl-C never leaves a half-written checkpoint, cache or export."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

from nero_nerfstudio.core.errors import NeroDataError

_PLACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
"""Errors of the place being written, whichever file raised them."""


@contextlib.contextmanager
def atomic_path(path: Union[str, Path]) -> Iterator[Path]:
    """Yield a temporary path in the destination folder; move it onto ``path`` only if the block succeeds.

    The temporary name keeps the destination's suffix, so writers that pick a format from the suffix
    (trimesh, imageio, PIL) behave as for the real name.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    except OSError as error:  # a read-only place, a file where a folder should be, a full disk
        raise NeroDataError(path, f"cannot write here ({error.strerror or error})") from error
    os.close(fd)
    tmp_path = Path(tmp_name)
    # mkstemp creates the file as 0600; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as error:
        # Name the file the user asked for, not the hidden temporary one: an error about it, or a full, read-only or
        # over-quota disk (raised by write() and close() without a file name). Other files' errors pass unchanged.
        about_temporary = error.filename in (str(tmp_path), tmp_name) or str(tmp_path) in str(error)
        if not about_temporary and error.errno not in _PLACE_ERRNOS:
            raise
        raise NeroDataError(path, f"cannot write here ({error.strerror or error})") from error
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp_path:
        tmp_path.write_bytes(data)
