"""Fine-tuning: configuration, pair reading and its errors, paired augmentation, both modes, token cache."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from micronbert.data.datasets import get_scheme
from micronbert.model import create_model, save
from micronbert.train.finetune import (
    AugmentConfig, FinetuneConfig, SampleError, build_model, class_weights, finetune, load_pairs, paired_augment,
    train_on_pairs, train_on_tokens,
)
from micronbert.train.token_cache import TokenCache

REPO = Path(__file__).resolve().parents[2]
from tests.train.conftest import SCHEME, synthetic_casme2_table



@pytest.fixture(scope="module")
def casme2_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return synthetic_casme2_table(tmp_path_factory.mktemp("synthetic"), subjects=3)


def test_yaml_config_is_read_and_checked(tmp_path: Path) -> None:
    config = FinetuneConfig.from_yaml(REPO / "configs" / "finetune_tiny.yaml")
    assert config.model == "tiny" and config.mode == "frozen"
    assert isinstance(config.augment, AugmentConfig) and config.augment.crop_scale == (0.85, 1.0)
    assert FinetuneConfig.from_dict(config.to_dict()) == config
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: frozen\nepochz: 3\n")
    with pytest.raises(ValueError, match="bad.yaml.*epochz"):
        FinetuneConfig.from_yaml(bad)
    with pytest.raises(ValueError, match="mode"):
        FinetuneConfig(mode="linear")
    with pytest.raises(ValueError, match="crop_scale"):
        FinetuneConfig(augment={"crop_scale": [0.5, 1.5]})


def test_pairs_are_read_at_model_size(casme2_table: pd.DataFrame) -> None:
    pairs = load_pairs(casme2_table, 32)
    assert pairs.onsets.shape == (len(casme2_table), 32, 32, 3) and pairs.onsets.dtype == np.uint8
    assert pairs.labels.tolist() == casme2_table["label"].astype(int).tolist()
    assert not np.array_equal(pairs.onsets, pairs.apexes)


def _broken(table: pd.DataFrame, tmp_path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """One sample per kind of bad input; returns the table and the expected message per clip."""
    bad = table.copy()
    frames = [list(f) for f in bad["frames"]]
    bad.loc[0, "onset"], bad.loc[0, "apex"] = int(bad.loc[0, "apex"]) + 1, int(bad.loc[0, "onset"]) + 1
    bad.loc[1, "apex"] = int(bad.loc[1, "offset"]) + 5
    apex_file = Path(frames[2][0]).with_name(f"reg_img{int(bad.loc[2, 'apex'])}.jpg")
    moved = tmp_path / "gone.jpg"
    apex_file.rename(moved)
    other = Path(frames[3][0]).with_name(f"reg_img{int(bad.loc[3, 'apex'])}.jpg")
    image = cv2.imread(str(other))
    cv2.imwrite(str(other), cv2.resize(image, (48, 40)))
    bad.loc[4, "label"] = pd.NA
    expected = {bad.loc[0, "clip"]: "after apex", bad.loc[1, "clip"]: "outside the clip",
                bad.loc[2, "clip"]: "frame file not found", bad.loc[3, "clip"]: "differ in size",
                bad.loc[4, "clip"]: "no class label"}
    return bad, expected


def test_bad_samples_are_named_or_skipped(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    copy_root = tmp_path / "copy"
    table = casme2_table.copy()
    # work on copies of the frames so the shared fixture stays intact
    new_frames = []
    for row in table.itertuples():
        folder = copy_root / row.subject.replace("/", "_") / row.clip
        folder.mkdir(parents=True)
        paths = []
        for frame in row.frames:
            target = folder / Path(frame).name
            target.write_bytes(Path(frame).read_bytes())
            paths.append(str(target))
        new_frames.append(paths)
    table["frames"] = new_frames
    bad, expected = _broken(table, tmp_path)
    with pytest.raises(SampleError, match=f"{bad.loc[0, 'subject']} {bad.loc[0, 'clip']}.*after apex"):
        load_pairs(bad, 32)
    pairs = load_pairs(bad, 32, skip_bad=True)
    assert len(pairs) == len(bad) - 5
    assert pairs.rows.tolist() == list(range(5, len(bad)))
    for (key, reason), (clip, words) in zip(pairs.skipped, expected.items()):
        assert clip in key and clip in reason and words in reason


def test_paired_augmentation_moves_both_frames_alike() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(4, 3, 32, 32)
    onset, apex = paired_augment(image, image.clone(), AugmentConfig(), generator)
    assert torch.equal(onset, apex)
    assert not torch.allclose(onset, image)
    flip_only = AugmentConfig(crop_scale=(1.0, 1.0), max_rotation=0.0, max_translate=0.0)
    onset, _ = paired_augment(image, image, flip_only, torch.Generator().manual_seed(1))
    for sample in range(4):
        assert (torch.allclose(onset[sample], image[sample], atol=1e-5)
                or torch.allclose(onset[sample], image[sample].flip(-1), atol=1e-5))
    disabled = AugmentConfig(enabled=False)
    assert paired_augment(image, image, disabled, generator)[0] is image


def test_class_weights_are_inverse_frequency() -> None:
    weights = class_weights(np.array([0, 0, 0, 1, 3, 3]), 4)
    assert weights.tolist() == pytest.approx([6 / 9, 6 / 3, 0.0, 6 / 6])


def test_token_cache_encodes_each_frame_once(tmp_path: Path) -> None:
    model = create_model("tiny")
    images = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    batch = np.concatenate([images, images[:1]])
    cache = TokenCache(tmp_path, model, dtype="float32", batch_size=2)
    tokens = cache.tokens(batch)
    assert cache.stats.encoded == 3 and cache.stats.hits == 0
    with torch.no_grad():
        direct = model.eval().encode(torch.cat([model_input(images)]))
    assert torch.allclose(tokens[:3], direct, atol=1e-5) and torch.equal(tokens[3], tokens[0])
    again = TokenCache(tmp_path, model, dtype="float32")
    assert torch.equal(again.tokens(images), tokens[:3])
    assert again.stats.encoded == 0 and again.stats.hits == 3
    with torch.no_grad():
        model.backbone.norm.weight.add_(1.0)
    changed = TokenCache(tmp_path, model, dtype="float32")
    changed.tokens(images)
    assert changed.stats.encoded == 3, "new encoder weights must not reuse old tokens"


def model_input(images: np.ndarray) -> torch.Tensor:
    from micronbert.data.transforms import to_model_input

    return to_model_input(images)


def _changed(before: dict[str, torch.Tensor], model: torch.nn.Module, prefix: str) -> bool:
    return any(not torch.equal(before[k], v) for k, v in model.state_dict().items() if k.startswith(prefix))


def test_modes_train_the_right_parts(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = FinetuneConfig(epochs=1, batch_size=6, cache_dir=str(tmp_path))
    pairs = load_pairs(casme2_table, 64)
    model = build_model(config, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_on_pairs(model, pairs.onsets, pairs.apexes, pairs.labels, config, mode="finetune")
    assert _changed(before, model, "backbone.") and _changed(before, model, "att.") and _changed(before, model, "head.")

    from micronbert.train.finetune import cached_pair_tokens

    model = build_model(config, 5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    onset_tokens, apex_tokens, stats = cached_pair_tokens(model, pairs, config)
    assert stats.encoded == 2 * len(pairs)
    train_on_tokens(model, onset_tokens, apex_tokens, pairs.labels, config)
    assert not _changed(before, model, "backbone.")
    assert _changed(before, model, "att.") and _changed(before, model, "head.")


def test_frozen_training_fits_the_training_set(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = FinetuneConfig(epochs=60, batch_size=12, lr=3e-3, head_dropout=0.0, cache_dir=str(tmp_path))
    pairs = load_pairs(casme2_table, 64)
    model = build_model(config, 5)
    from micronbert.train.finetune import cached_pair_tokens, predict_tokens

    onset_tokens, apex_tokens, _ = cached_pair_tokens(model, pairs, config)
    chance = (predict_tokens(model, onset_tokens, apex_tokens).argmax(1) == pairs.labels).mean()
    losses = train_on_tokens(model, onset_tokens, apex_tokens, pairs.labels, config)
    fitted = (predict_tokens(model, onset_tokens, apex_tokens).argmax(1) == pairs.labels).mean()
    assert fitted >= 0.9 > chance
    assert len(losses) == 60 and losses[-1] < 0.5 * losses[0]  # mean training loss of each epoch


def test_finetune_writes_a_loadable_model(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    names = list(get_scheme(SCHEME).classes)
    config = dataclasses.replace(FinetuneConfig(epochs=3, cache_dir=str(tmp_path / "cache")), frozen_train="head")
    out = finetune(casme2_table, config, tmp_path / "run", names, log=lambda message: None)
    saved = json.loads((out / "classes.json").read_text())
    assert saved["classes"] == names and saved["samples"] == len(casme2_table)
    assert len(saved["train_loss"]) == 3 and all(loss > 0 for loss in saved["train_loss"])
    assert (out / "training_loss.png").stat().st_size > 0
    from micronbert.model import load

    assert load(out / "model").config.num_classes == len(names)


def test_weights_with_overrides_keep_the_weights(tmp_path: Path) -> None:
    from micronbert.model import save

    source = create_model("tiny")
    weights = save(source, tmp_path / "weights")
    config = FinetuneConfig(weights=str(weights), model_overrides={"dma_query": "swapped"})
    model = build_model(config, 3)
    assert model.att.query == "swapped" and model.config.num_classes == 3
    assert torch.equal(model.backbone.patch_embed.proj.weight, source.backbone.patch_embed.proj.weight)
    with pytest.raises(ValueError, match="do not fit"):
        build_model(dataclasses.replace(config, model_overrides={"dim": 64, "heads": 2, "dma_heads": 1}), 3)


def test_finetune_command_line(casme2_table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import argparse

    from micronbert.data.table import save_table
    from micronbert.train.finetune import add_finetune_parser

    table_file = save_table(casme2_table, tmp_path / "table.csv")
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"epochs: 1\nfrozen_train: head\ncache_dir: {tmp_path / 'cache'}\n")
    parser = argparse.ArgumentParser()
    add_finetune_parser(parser.add_subparsers())
    pretrained = save(create_model("tiny"), tmp_path / "pretrained")
    args = parser.parse_args(["finetune", "--table", str(table_file), "--scheme", SCHEME, "--config",
                              str(config_file), "--mode", "finetune", "--weights", str(pretrained),
                              "--out", str(tmp_path / "out")])
    assert args.run(args) == 0
    printed = capsys.readouterr()
    assert "epochs: 100%" in printed.err and "loss=" in printed.err  # the progress bar over epochs
    assert "training_loss.png" in printed.out
    saved = json.loads((tmp_path / "out" / "classes.json").read_text())
    assert saved["config"]["mode"] == "finetune" and saved["config"]["epochs"] == 1
    assert saved["config"]["weights"] == str(pretrained)
    missing = parser.parse_args(["finetune", "--table", str(table_file), "--scheme", SCHEME, "--config",
                                 str(config_file), "--weights", str(tmp_path / "no_such_model"),
                                 "--out", str(tmp_path / "out2")])
    with pytest.raises(FileNotFoundError, match="no_such_model"):
        missing.run(missing)
    with pytest.raises(ValueError, match="either --table or --dataset"):
        bad = parser.parse_args(["finetune", "--out", str(tmp_path / "x")])
        bad.run(bad)


def test_class_names_come_from_the_scheme_prepare_recorded(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    from micronbert.data.table import save_table
    from micronbert.train.finetune import read_samples

    table_file = save_table(casme2_table, tmp_path / "table.csv")
    assert read_samples(str(table_file), None, None, None)[1] == [str(i) for i in range(5)]
    report = tmp_path / "prepare_report.json"
    report.write_text(json.dumps({"dataset": "casme2", "scheme": SCHEME}))
    assert read_samples(str(table_file), None, None, None)[1] == list(get_scheme(SCHEME).classes)
    report.write_text(json.dumps({"dataset": "casme2", "scheme": "megc2019-3class"}))
    with pytest.raises(ValueError, match="table.csv: label 4 does not fit the 3 classes of megc2019-3class"):
        read_samples(str(table_file), None, None, None)
    report.write_text("{broken")
    with pytest.raises(ValueError, match="prepare_report.json: not a readable prepare report"):
        read_samples(str(table_file), None, None, None)
