"""NeRO's method configs, registered with nerfstudio through entry points (see pyproject.toml).

Every ``ns-*`` command imports them first: the place to make NeRO's data errors one line in nerfstudio's commands.
"""

from nero_nerfstudio.core.errors import answer_data_errors_in_one_line

answer_data_errors_in_one_line()
