"""NeRO's method configs, registered with nerfstudio through entry points (see pyproject.toml).

Every ``ns-*`` command imports them first: the place to make NeRO's input errors (data and settings), and
checkpoints nerfstudio's own loader cannot read, one line in nerfstudio's commands.
"""

from nero_nerfstudio.core.errors import answer_input_errors_in_one_line
from nero_nerfstudio.utils.checkpoint import nerfstudio_loader_error

answer_input_errors_in_one_line(nerfstudio_loader_error)
