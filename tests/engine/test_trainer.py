"""NeroTrainer: non-finite batches are skipped, checkpoints are written atomically, a killed run resumes exactly."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
import torch
import yaml
from nerfstudio.utils.rich_utils import CONSOLE

from nero_nerfstudio.configs.method_configs import small_trainer_config
from nero_nerfstudio.core.errors import NeroDataError
from nero_nerfstudio.utils.checkpoint import list_checkpoints, read_checkpoint, read_latest_checkpoint
from nero_nerfstudio.engine.non_finite import describe_non_finite_batch, non_finite_gradients, non_finite_loss_terms
from nero_nerfstudio.engine.trainer import NeroTrainer
from nero_nerfstudio.models.nero_shape import NeroShapeModel

from shape_run import NanInjectedRun, cpu_test_config, train_with_nan_steps

NUM_RAYS = 64
NUM_STEPS = 4
NAN_GRADIENT_STEP = 1
NAN_LOSS_STEP = 2


def tensors_in(state: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a nested checkpoint structure."""
    if isinstance(state, torch.Tensor):
        yield state
    elif isinstance(state, dict):
        for value in state.values():
            yield from tensors_in(value)
    elif isinstance(state, (list, tuple)):
        for value in state:
            yield from tensors_in(value)


def test_non_finite_loss_terms_and_gradients():
    loss_dict = {"rgb_loss": torch.tensor(0.5), "eikonal_loss": torch.tensor(float("nan")), "occ": torch.tensor(1.0)}
    assert non_finite_loss_terms(loss_dict) == ["eikonal_loss"]
    weight, bias = torch.nn.Parameter(torch.ones(3)), torch.nn.Parameter(torch.ones(2))
    unused = torch.nn.Parameter(torch.ones(1))
    weight.grad = torch.tensor([0.0, float("inf"), 1.0])
    bias.grad = torch.zeros(2)
    named = [("weight", weight), ("bias", bias), ("unused", unused)]
    assert non_finite_gradients(named) == ["weight"]
    bias.grad = None
    weight.grad = torch.ones(3)
    assert non_finite_gradients(named) == []
    total = sum(loss_dict.values())
    assert describe_non_finite_batch(total, loss_dict, []) == "loss eikonal_loss=nan"
    overflow = {"a": torch.tensor(3e38), "b": torch.tensor(3e38)}
    assert "sum overflows" in describe_non_finite_batch(overflow["a"] + overflow["b"], overflow, [])
    assert describe_non_finite_batch(torch.tensor(1.0), {"a": torch.tensor(1.0)}, ["x", "y"]) == (
        "gradients of 2 parameters (x, y)"
    )


@pytest.fixture(scope="module")
def nan_injected_run(synthetic_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> NanInjectedRun:
    """4 steps of nero-shape-small; step 1 has a finite loss but a NaN gradient, step 2 a NaN loss term."""
    torch.manual_seed(0)
    config = cpu_test_config(
        small_trainer_config(NUM_STEPS), synthetic_scene, tmp_path_factory.mktemp("nan_run"), NUM_RAYS
    )
    config.steps_per_save = 2
    return train_with_nan_steps(
        config,
        NAN_GRADIENT_STEP,
        NAN_LOSS_STEP,
        parameter=lambda model: next(p for p in model.parameters() if p.requires_grad and p.numel() > 0),
    )


def test_non_finite_batches_are_skipped_with_a_warning(nan_injected_run: NanInjectedRun):
    run, output = nan_injected_run.run, nan_injected_run.console_output
    assert isinstance(run.trainer, NeroTrainer)
    assert run.trainer.num_skipped_steps == 2, output
    assert len(run.losses) == NUM_STEPS
    assert f"Step {NAN_GRADIENT_STEP}: non-finite gradients of" in output
    warnings = [line for line in output.splitlines() if "skipped the optimizer step" in line]
    assert len(warnings) == 2, output
    assert re.search(rf"Step {NAN_LOSS_STEP}: non-finite loss \w+=nan;", warnings[1]), warnings[1]
    assert "(2 batches skipped so far)" in warnings[1]
    # The skipped batches reached no weight: Adam stepped only on the 2 good batches.
    adam_steps = [float(state["step"]) for state in run.trainer.optimizers.optimizers["fields"].state.values()]
    assert adam_steps and max(adam_steps) == NUM_STEPS - 2
    assert all(torch.isfinite(parameter).all() for parameter in run.trainer.pipeline.parameters())


def test_final_checkpoint_holds_only_finite_tensors(nan_injected_run: NanInjectedRun):
    run = nan_injected_run.run
    assert run.checkpoint_path.name == f"step-{NUM_STEPS - 1:09d}.ckpt"
    assert [path.name for path in run.checkpoint_path.parent.iterdir()] == [run.checkpoint_path.name]
    state = read_checkpoint(run.checkpoint_path)
    tensors = list(tensors_in(state))
    assert len(tensors) > 10
    assert all(torch.isfinite(tensor.float()).all() for tensor in tensors if tensor.is_floating_point())
    # The schedulers follow the step count through skipped batches.
    assert state["schedulers"]["fields"]["last_epoch"] == NUM_STEPS


def test_non_finite_loss_is_skipped_with_an_enabled_gradient_scaler(
    nan_injected_run: NanInjectedRun, monkeypatch: pytest.MonkeyPatch
):
    """The mixed-precision path: the scaler keeps its scale over a skipped batch, then steps normally."""
    trainer = nan_injected_run.run.trainer
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0)
    assert scaler.is_enabled()
    monkeypatch.setattr(trainer, "grad_scaler", scaler)
    get_loss_dict = NeroShapeModel.get_loss_dict
    poisoned = {"loss": True}

    def maybe_poisoned_get_loss_dict(model: NeroShapeModel, *args, **kwargs) -> Dict[str, torch.Tensor]:
        loss_dict = get_loss_dict(model, *args, **kwargs)
        return {name: value * float("nan") for name, value in loss_dict.items()} if poisoned["loss"] else loss_dict

    monkeypatch.setattr(NeroShapeModel, "get_loss_dict", maybe_poisoned_get_loss_dict)
    parameters = dict(trainer.pipeline.named_parameters())
    before = {name: parameter.detach().clone() for name, parameter in parameters.items()}
    skipped_before = trainer.num_skipped_steps
    with CONSOLE.capture() as capture:
        trainer.train_iteration(100)
    assert trainer.num_skipped_steps == skipped_before + 1 and "Step 100: non-finite loss" in capture.get()
    assert all(torch.equal(parameters[name], value) for name, value in before.items())
    assert scaler.get_scale() == 16.0

    poisoned["loss"] = False
    loss, _, _ = trainer.train_iteration(101)
    assert torch.isfinite(loss) and trainer.num_skipped_steps == skipped_before + 1
    assert any(not torch.equal(parameters[name], value) for name, value in before.items())
    assert all(torch.isfinite(parameter).all() for parameter in parameters.values())


def test_a_failed_checkpoint_write_leaves_the_previous_one(
    nan_injected_run: NanInjectedRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    trainer = nan_injected_run.run.trainer
    folder = tmp_path / "nerfstudio_models"
    monkeypatch.setattr(trainer, "checkpoint_dir", folder)
    trainer.save_checkpoint(10)
    saved = (folder / "step-000000010.ckpt").read_bytes()
    assert [path.name for path in folder.iterdir()] == ["step-000000010.ckpt"]
    real_save = torch.save

    def save_half_then_fail(obj, path, *args, **kwargs):
        real_save(obj, path, *args, **kwargs)
        Path(path).write_bytes(Path(path).read_bytes()[: len(saved) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        trainer.save_checkpoint(11)
    assert [path.name for path in folder.iterdir()] == ["step-000000010.ckpt"]
    assert (folder / "step-000000010.ckpt").read_bytes() == saved
    assert read_checkpoint(folder / "step-000000010.ckpt")["step"] == 10


def test_damaged_checkpoints_are_skipped_or_named(nan_injected_run: NanInjectedRun, tmp_path: Path):
    good = nan_injected_run.run.checkpoint_path
    shutil.copy(good, tmp_path / "step-000000003.ckpt")
    data = good.read_bytes()
    (tmp_path / "step-000000007.ckpt").write_bytes(data[: len(data) // 2])  # truncated by a crash
    (tmp_path / ".step-000000009.abc.tmp.ckpt").write_bytes(data[:100])  # what a kill mid-write leaves
    assert [step for step, _ in list_checkpoints(tmp_path)] == [3, 7]
    with CONSOLE.capture() as capture:
        path, state = read_latest_checkpoint(tmp_path)
    assert path.name == "step-000000003.ckpt" and state["step"] == NUM_STEPS - 1
    assert "step-000000007.ckpt" in capture.get() and "Skipping a damaged checkpoint" in capture.get()

    with pytest.raises(NeroDataError, match=r"step-000000007\.ckpt: unreadable checkpoint"):
        read_checkpoint(tmp_path / "step-000000007.ckpt")
    (tmp_path / "step-000000003.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(NeroDataError, match=r"step-000000007\.ckpt: unreadable .*no older readable checkpoint"):
        read_latest_checkpoint(tmp_path)
    (tmp_path / "step-000000003.ckpt").write_bytes(b"")
    with pytest.raises(NeroDataError, match=r"step-000000003\.ckpt: empty checkpoint file"):
        read_checkpoint(tmp_path / "step-000000003.ckpt")
    with pytest.raises(NeroDataError, match="no step-"):
        read_latest_checkpoint(tmp_path / "..")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.ckpt")
    with pytest.raises(NeroDataError, match=r"other\.ckpt: not a nerfstudio checkpoint \(no step, pipeline"):
        read_checkpoint(tmp_path / "other.ckpt")


KILL_RUN_STEPS = 24
KILL_RUN_STEPS_PER_SAVE = 2
PROCESS_TIMEOUT = 300.0


def ns_train(scene: Path, output_dir: Path, experiment: str, log: Path, *extra: str) -> subprocess.Popen:
    """``ns-train nero-shape-small`` on CPU, quiet, in its own process group, output to ``log``."""
    never = str(KILL_RUN_STEPS + 1)
    command = [
        str(Path(sys.executable).parent / "ns-train"),
        "nero-shape-small",
        "--machine.device-type", "cpu",
        "--vis", "tensorboard",
        "--max-num-iterations", str(KILL_RUN_STEPS),
        "--steps-per-save", str(KILL_RUN_STEPS_PER_SAVE),
        "--steps-per-eval-batch", never,
        "--steps-per-eval-image", never,
        "--steps-per-eval-all-images", never,
        "--logging.local-writer.enable", "False",
        "--pipeline.datamanager.train-num-rays-per-batch", str(NUM_RAYS),
        "--output-dir", str(output_dir),
        "--experiment-name", experiment,
        *extra,
        "nero-synthetic", "--data", str(scene),
    ]  # fmt: skip
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    with log.open("w") as log_file:
        return subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )


def kill_process_group(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` and the workers it started (its own process group), then reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def checkpoints_of(output_dir: Path, experiment: str) -> List[Path]:
    return sorted(output_dir.glob(f"{experiment}/nero-shape-small/*/nerfstudio_models/step-*.ckpt"))


@pytest.mark.slow
def test_killed_run_resumes_to_the_planned_final_step(synthetic_scene: Path, tmp_path: Path):
    killed = ns_train(synthetic_scene, tmp_path, "killed", tmp_path / "killed.log")
    deadline = time.monotonic() + PROCESS_TIMEOUT
    try:
        while not checkpoints_of(tmp_path, "killed") and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        still_running = killed.poll() is None
    finally:
        kill_process_group(killed)
    assert still_running and checkpoints_of(tmp_path, "killed"), (tmp_path / "killed.log").read_text()[-3000:]
    last = checkpoints_of(tmp_path, "killed")[-1]
    saved_step = read_checkpoint(last)["step"]
    assert 0 < saved_step < KILL_RUN_STEPS - 1
    # A newer checkpoint truncated by a crash of some other tool, and a temporary file of an interrupted write:
    # the resume skips both (nerfstudio's own loader fails on the temporary file's name).
    (last.parent / f"step-{saved_step + 1:09d}.ckpt").write_bytes(last.read_bytes()[:1000])
    (last.parent / f".step-{saved_step + 2:09d}.x1y2.tmp.ckpt").write_bytes(b"partial")

    resumed = ns_train(synthetic_scene, tmp_path, "resumed", tmp_path / "resumed.log", "--load-dir", str(last.parent))
    try:
        return_code = resumed.wait(timeout=PROCESS_TIMEOUT)
    finally:
        kill_process_group(resumed)
    assert return_code == 0, (tmp_path / "resumed.log").read_text()[-3000:]
    # The console wraps long paths at 120 columns: compare without line breaks and spaces.
    log = "".join((tmp_path / "resumed.log").read_text().split())
    assert f"DoneloadingNerfstudiocheckpointfrom{last}" in log, log[-3000:]
    assert f"Skippingadamagedcheckpoint:{last.parent}/step-{saved_step + 1:09d}.ckpt" in log
    final = checkpoints_of(tmp_path, "resumed")
    assert [path.name for path in final] == [f"step-{KILL_RUN_STEPS - 1:09d}.ckpt"]
    state = read_checkpoint(final[0])
    # Same end as an uninterrupted run: last step N - 1, and the schedule stepped once per step of the whole run.
    assert state["step"] == KILL_RUN_STEPS - 1
    assert state["schedulers"]["fields"]["last_epoch"] == KILL_RUN_STEPS


def test_the_saved_config_holds_an_absolute_dataset_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """ns-train saves the config before anything runs; a relative --data would tie the run to its starting folder."""
    from nero_nerfstudio.configs.method_configs import fast_trainer_config

    monkeypatch.chdir(tmp_path)
    config = fast_trainer_config(10)
    config.pipeline.datamanager.dataparser.data = Path("scenes/bunny")
    config.output_dir = Path("outputs")
    config.set_timestamp()
    config.save_config()
    saved = yaml.load((config.get_base_dir() / "config.yml").read_text(), Loader=yaml.Loader)
    assert saved.pipeline.datamanager.dataparser.data == tmp_path / "scenes" / "bunny"
