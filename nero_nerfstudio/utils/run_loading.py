"""Loading a finished ns-train run (config.yml + latest checkpoint) for the export and evaluation commands."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Tuple

import yaml

from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.checkpoint import allow_numpy_in_checkpoints

if TYPE_CHECKING:
    from nerfstudio.pipelines.base_pipeline import Pipeline


def find_checkpoint_dir(config_path: Path) -> Path:
    """The checkpoint folder of the run whose ``config.yml`` is ``config_path``; fails clearly if it has none.

    Looked up next to ``config.yml`` rather than at the config's ``output_dir``, so a moved run, or a run
    exported from another working directory, still loads.
    """
    if not config_path.is_file():
        raise NeroDataError(config_path, "config file not found (pass the run's config.yml to --load-config)")
    # nerfstudio is imported only once there is a run to load, so --help and input errors answer quickly.
    from nerfstudio.engine.trainer import TrainerConfig

    try:
        config = yaml.load(config_path.read_text(), Loader=yaml.Loader)
    except yaml.YAMLError as error:
        raise NeroDataError(config_path, f"not a readable YAML file ({error.__class__.__name__})") from error
    if not isinstance(config, TrainerConfig):
        raise NeroDataError(config_path, "not a nerfstudio run config (expected the config.yml written by ns-train)")
    checkpoint_dir = config_path.parent / config.relative_model_dir
    if not checkpoint_dir.is_dir() or not any(checkpoint_dir.glob("step-*.ckpt")):
        raise NeroDataError(
            config_path, f"the run has no checkpoint (no step-*.ckpt in {checkpoint_dir}); train it first"
        )
    return checkpoint_dir


def load_pipeline(config_path: Path, test_mode: str = "inference") -> Tuple[Pipeline, Path, int]:
    """Load the run's pipeline with its latest checkpoint (cuda if available, else cpu).

    ``test_mode`` is nerfstudio's: "inference" loads no images, "test" loads the held-out ones.

    Returns:
        the pipeline in eval mode, the checkpoint file and its step.
    """
    checkpoint_dir = find_checkpoint_dir(config_path)
    from nerfstudio.engine.trainer import TrainerConfig
    from nerfstudio.utils.eval_utils import eval_setup

    from nero_nerfstudio.utils.checkpoint import CHECKPOINT_NAME, read_latest_checkpoint

    # The newest readable checkpoint, a damaged newer one skipped with a warning as training does (nerfstudio's loader
    # takes the newest file, whatever it holds, and fails with torch's error).
    readable_path = read_latest_checkpoint(checkpoint_dir)[0]  # its content is freed here: eval_setup loads it
    load_step = int(CHECKPOINT_NAME.fullmatch(readable_path.name).group(1))  # type: ignore[union-attr]

    def use_checkpoints_next_to_config(config: TrainerConfig) -> TrainerConfig:
        # An absolute relative_model_dir wins over output_dir/experiment/method/timestamp in get_checkpoint_dir().
        config.relative_model_dir = checkpoint_dir.resolve()
        config.load_step = load_step
        return config

    with allow_numpy_in_checkpoints():
        _, pipeline, checkpoint_path, step = eval_setup(
            config_path, test_mode=test_mode, update_config_callback=use_checkpoints_next_to_config
        )
    return pipeline, checkpoint_path, step
