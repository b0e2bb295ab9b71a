"""Pre-training: configuration, schedule, command line, exact resume after a kill, DDP equivalence."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from micronbert.cli import main as cli_main
from micronbert.config import apply_overrides
from micronbert.model import create_model, load
from micronbert.train.checkpointing import load_checkpoint, save_checkpoint, step_checkpoints
from micronbert.train.optim import OptimConfig, learning_rate
from micronbert.train.pretrain import PretrainConfig, pretrain, read_metrics, truncate_metrics

REPO = Path(__file__).resolve().parents[2]


def write_clip(folder: Path, frames: int, seed: int) -> None:
    """A smooth textured 64x64 scene drifting by a pixel every few frames."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8), (9, 9), 3)
    for k in range(frames):
        cv2.imwrite(str(folder / f"img{k + 1}.png"), base[k // 4:k // 4 + 64, 8:72])


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    for n in range(2):
        write_clip(root / f"vid{n}", 24, n)
    return root


def config_dict(clips: Path, out_dir: Path, **train) -> dict:
    return {"model": {"name": "tiny", "overrides": {"img_size": 32}},
            "data": {"sources": [str(clips)], "folder_fps": 100, "delta_s": [0.01, 0.04]},
            "optim": {"lr": 1e-3, "warmup_steps": 2},
            "train": {"steps": 6, "global_batch": 8, "out_dir": str(out_dir), "log_every": 1,
                      "checkpoint_every": 2, "preview_every": 3, "progress": False, "device": "cpu", **train}}


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def model_state(folder: Path) -> dict[str, torch.Tensor]:
    return load(folder).state_dict()


def losses(run: Path) -> list[tuple[int, float, float, float]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["rec_loss"], r["agree_loss"]) for r in rows]


def child_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def test_yaml_config_with_dotted_overrides(tmp_path, clips):
    path = write_config(tmp_path / "c.yaml", config_dict(clips, tmp_path / "run"))
    config = PretrainConfig.from_yaml(path, ["optim.lr=2e-4", "train.steps=9", "model.overrides.swap_ratio=0.3",
                                             "data.delta_s=[0.02, 0.08]"])
    assert config.optim.lr == 2e-4 and config.train.steps == 9 and config.data.delta_s == (0.02, 0.08)
    assert config.model.overrides == {"img_size": 32, "swap_ratio": 0.3}
    with pytest.raises(ValueError, match=r"c.yaml: optim: unknown option\(s\) lrr"):
        PretrainConfig.from_yaml(path, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="checkpoint_every"):
        PretrainConfig.from_yaml(path, ["train.checkpoint_every=3", "train.log_every=2"])
    with pytest.raises(ValueError, match="must read key=value"):
        apply_overrides({}, ["optim.lr"])


@pytest.mark.parametrize("overrides, message", [
    (["optim.min_lr=1"], "lr > 0 and 0 <= min_lr <= lr"),
    (["optim.warmup_steps=-1"], "warmup_steps and clip_grad must be >= 0"),
    (["optim.betas=[0.9, 1.0]"], r"optim.betas must be two numbers in \[0, 1\)"),
    (["train.steps=0"], "train.steps must be a positive integer"),
    (["train.steps=2.5"], "train.steps: expected an integer, got 2.5"),
    (["train.keep_last=three"], "train.keep_last: expected an integer, got 'three'"),
    (["train.device=tpu"], "train.device must be auto, cpu or cuda"),
    (["optim=3"], "optim: expected a mapping of options, got 3"),
    (["optim.lr=[1"], "value is not valid YAML"),
    (["optim.lr.x=1"], "lr is not a section"),
])
def test_config_errors_name_the_option(tmp_path, clips, overrides, message):
    path = write_config(tmp_path / "c.yaml", config_dict(clips, tmp_path / "run"))
    with pytest.raises(ValueError, match=message):
        PretrainConfig.from_yaml(path, overrides)


def test_config_file_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.yaml: no such configuration file"):
        PretrainConfig.from_yaml(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("optim: [1, 2\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        PretrainConfig.from_yaml(broken)
    with pytest.raises(ValueError, match=r"unknown option\(s\) optimiser; known: data, model, optim, train"):
        PretrainConfig.from_dict({"optimiser": {}})


def test_metrics_log_torn_by_a_kill_is_read_and_truncated(tmp_path):
    log = tmp_path / "metrics.jsonl"
    rows = [{"step": step, "loss": 1.0 / step} for step in (5, 10, 15)]
    log.write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"step": 20, "lo')
    assert read_metrics(log) == rows
    truncate_metrics(log, 10)
    assert read_metrics(log) == rows[:2] and log.read_text().endswith("\n")
    log.write_text('{"step": 5}\nnot json\n{"step": 15}\n')
    with pytest.raises(ValueError, match="metrics.jsonl line 2: not a JSON metrics row"):
        read_metrics(log)
    log.write_text('{"loss": 1}\n')
    with pytest.raises(ValueError, match="line 1: a metrics row needs an integer 'step'"):
        read_metrics(log)


def test_schedule_warms_up_then_decays_to_the_floor():
    optim = OptimConfig(lr=1.0, min_lr=0.1, warmup_steps=4)
    rates = [learning_rate(step, optim, total_steps=20) for step in range(20)]
    assert rates[:4] == [0.25, 0.5, 0.75, 1.0]
    assert all(a >= b for a, b in zip(rates[4:], rates[5:]))
    assert learning_rate(20, optim, 20) == pytest.approx(0.1)


def test_command_writes_logs_previews_checkpoints_and_a_loadable_model(tmp_path, clips):
    path = write_config(tmp_path / "c.yaml", config_dict(clips, tmp_path / "run"))
    assert cli_main(["pretrain", "--config", str(path), "--set", "train.keep_last=2"]) == 0
    run = tmp_path / "run"
    assert [p.name for p in step_checkpoints(run / "checkpoints")] == ["step_00000004.pt", "step_00000006.pt"]
    assert (run / "checkpoints" / "best.pt").is_file()
    steps = losses(run)
    assert [s[0] for s in steps] == [1, 2, 3, 4, 5, 6] and all(np.isfinite(s[1]) for s in steps)
    preview = cv2.imread(str(run / "previews" / "step_00000006.png"))
    assert preview.shape == (4 * 32, 4 * 32, 3)
    assert cv2.imread(str(run / "curves.png")) is not None
    assert load(run / "model").config.img_size == 32
    report = json.loads((run / "data_report.json").read_text())
    assert report["pairs"] > 8 and report["issues"] == []
    assert cli_main(["pretrain", "--config", str(path)]) == 2  # the run folder holds a run: refuse without --resume


def test_bad_input_under_stop_fails_naming_the_file(tmp_path, clips, capsys):
    broken = tmp_path / "broken"
    write_clip(broken, 10, 5)
    (broken / "img3.png").write_bytes(b"")
    data = config_dict(clips, tmp_path / "run")
    data["data"].update(sources=[str(clips), str(broken)], on_bad_input="stop")
    assert cli_main(["pretrain", "--config", str(write_config(tmp_path / "c.yaml", data))]) == 2
    assert "img3.png" in capsys.readouterr().err


@pytest.fixture(scope="module")
def store(tmp_path_factory, clips) -> Path:
    """A frame store of the clips at the test model's size, built by the parallel index step (2 workers)."""
    folder = tmp_path_factory.mktemp("store")
    config = write_config(folder / "c.yaml", config_dict(clips, folder / "unused"))
    assert cli_main(["pretrain-index", "--config", str(config), "--out", str(folder / "store"), "--workers", "2"]) == 0
    return folder / "store"


def from_store(data: dict, store: Path) -> dict:
    """The same run configuration reading the frame store instead of the clips."""
    data["data"] = {"store": str(store), "delta_s": data["data"]["delta_s"]}
    return data


def test_a_store_gives_the_run_of_its_sources(tmp_path, clips, store):
    pretrain(PretrainConfig.from_dict(config_dict(clips, tmp_path / "sources", steps=4, checkpoint_every=2)))
    pretrain(PretrainConfig.from_dict(from_store(config_dict(clips, tmp_path / "store", steps=4, checkpoint_every=2),
                                                 store)))
    sources, stored = model_state(tmp_path / "sources" / "model"), model_state(tmp_path / "store" / "model")
    assert all(torch.equal(sources[k], stored[k]) for k in sources)
    assert losses(tmp_path / "store") == losses(tmp_path / "sources")
    data = from_store(config_dict(clips, tmp_path / "other"), store)
    data["model"]["overrides"]["img_size"] = 64
    with pytest.raises(ValueError, match="the store holds 32-px frames, the model reads 64 px"):
        pretrain(PretrainConfig.from_dict(data))


@pytest.mark.parametrize("source", ["clips", "store"])
def test_resume_after_a_kill_matches_an_uninterrupted_run(tmp_path, clips, store, source):
    steps = 10

    def run_config(out: Path) -> dict:
        data = config_dict(clips, out, steps=steps)
        return from_store(data, store) if source == "store" else data

    pretrain(PretrainConfig.from_dict(run_config(tmp_path / "whole")))
    path = write_config(tmp_path / "c.yaml", run_config(tmp_path / "cut"))
    command = [sys.executable, "-m", "micronbert", "pretrain", "--config", str(path)]
    process = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "cut" / "checkpoints" / "step_00000004.pt").exists():
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    interrupted_at = int(step_checkpoints(tmp_path / "cut" / "checkpoints")[-1].stem.split("_")[1])
    assert interrupted_at < steps
    pretrain(PretrainConfig.from_dict(run_config(tmp_path / "cut")), resume=True)
    whole, cut = model_state(tmp_path / "whole" / "model"), model_state(tmp_path / "cut" / "model")
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    assert losses(tmp_path / "cut") == losses(tmp_path / "whole")


@pytest.mark.parametrize("source", ["clips", "store"])
def test_two_gloo_processes_agree_with_one_process_of_the_same_global_batch(tmp_path, clips, store, source):
    overrides = {"steps": 3, "checkpoint_every": 3, "preview_every": 3}

    def run_config(out: Path, **train) -> dict:
        data = config_dict(clips, out, **train)
        return from_store(data, store) if source == "store" else data

    path = write_config(tmp_path / "c.yaml", run_config(tmp_path / "ddp", **overrides))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "micronbert", "pretrain", "--config", str(path)]
    env = dict(child_env(), OMP_NUM_THREADS="1")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replica_max_difference"] == 0.0
    pretrain(PretrainConfig.from_dict(run_config(tmp_path / "one", accum_steps=2, **overrides)))
    ddp, one = model_state(tmp_path / "ddp" / "model"), model_state(tmp_path / "one" / "model")
    torch.manual_seed(0)
    initial = create_model("tiny", img_size=32).state_dict()
    moved = max(float((ddp[k] - initial[k]).abs().max()) for k in ddp)
    # Summation order differs between 1 and 2 processes; Adam amplifies that only on parameters whose
    # gradient is zero in exact arithmetic (key biases), far below what training moved the weights.
    disagreement = max(float((ddp[k] - one[k]).abs().max()) for k in ddp)
    assert moved > 1e-3 and disagreement < 1e-4
    for (_, *a), (_, *b) in zip(losses(tmp_path / "ddp"), losses(tmp_path / "one"), strict=True):
        assert np.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_checkpoints_are_atomic_and_loaded_safely(tmp_path):
    save_checkpoint({"step": 1, "weights": torch.ones(2)}, tmp_path, 1, keep_last=1)
    save_checkpoint({"step": 2, "weights": torch.zeros(2)}, tmp_path, 2, keep_last=1, is_best=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "step_00000002.pt"]
    assert load_checkpoint(tmp_path / "best.pt")["step"] == 2
    (tmp_path / "foreign.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="foreign.pt"):
        load_checkpoint(tmp_path / "foreign.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a micronbert pre-training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.parametrize("change, differs", [
    (lambda data: data["train"].update(seed=1), "data_fingerprint"),  # the pairs are drawn with the seed
    (lambda data: data["train"].update(global_batch=4), "global_batch"),
    (lambda data: data["model"]["overrides"].update(depth=1), "model_config"),
    (lambda data: data["data"].update(delta_s=[0.02, 0.05]), "data_fingerprint"),
])
def test_resuming_with_other_settings_is_refused_naming_the_checkpoint(tmp_path, clips, change, differs):
    pretrain(PretrainConfig.from_dict(config_dict(clips, tmp_path / "run", steps=2, checkpoint_every=2)))
    data = config_dict(clips, tmp_path / "run", steps=4, checkpoint_every=2)
    change(data)

    with pytest.raises(ValueError, match=rf"step_00000002.pt: cannot resume, its {differs} differs from this run's"):
        pretrain(PretrainConfig.from_dict(data), resume=True)


def test_the_training_step_reads_nothing_back_to_the_host(tmp_path, clips):
    """No tensor is converted to a Python value inside the step (on a GPU each such read is a synchronisation),
    with the fused AdamW a GPU run uses (the CPU default, unfused, reads its step counters, which are host scalars
    there); the same instrument counts the reads of a step that draws its own randomness and checks its input."""
    from micronbert.diagnostics import count_host_reads
    from micronbert.train.distributed import DistributedContext
    from micronbert.train.optim import build_optimizer
    from micronbert.train.pretrain import Pretrainer

    data = config_dict(clips, tmp_path / "run")
    data["model"]["overrides"].update(motion_weight=1.0, volatility_weight=1.0)
    trainer = Pretrainer(PretrainConfig.from_dict(data), DistributedContext())
    trainer.optimizer = build_optimizer(trainer.model, trainer.optim, fused=True)
    images_t, images_d, draws = next(trainer.batches())
    frame_t, frame_d = trainer.normalise(images_t), trainer.normalise(images_d)
    trainer.train_step(frame_t, frame_d, draws)  # the first step builds the optimiser's state
    with count_host_reads() as reads:
        trainer.train_step(frame_t, frame_d, draws)
    assert reads == []
    with count_host_reads() as reads:
        trainer.model(frame_t, frame_d, generator=torch.Generator().manual_seed(0))
    assert "__bool__" in reads
