"""Protocols: folds and their disjointness, the evaluation runner, resuming, bad input, all methods, CLI."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from micronbert.data.datasets import get_scheme
from micronbert.data.table import make_table, save_table
from micronbert.train import protocols
from micronbert.train.finetune import FinetuneConfig
from micronbert.train.metrics import pooled_metrics, read_megc_log
from micronbert.train.protocols import (
    Fold, SubjectLeakError, add_evaluate_parser, assert_subject_disjoint, evaluate, lodo_folds, loso_folds,
    make_folds, run_loso, split_folds,
)

from tests.train.conftest import SCHEME, synthetic_casme2_table

NAMES = list(get_scheme(SCHEME).classes)


@pytest.fixture(scope="module")
def casme2_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return synthetic_casme2_table(tmp_path_factory.mktemp("synthetic"), subjects=4)


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _composite() -> pd.DataFrame:
    rows = [dict(dataset=dataset, subject=f"{dataset}/{subject}", clip=f"c{index}", onset=1, apex=2, offset=3,
                 label=index % 3, emotion="x", apex_source="annotated")
            for dataset in ("casme2", "samm") for subject in ("s1", "s2") for index in range(3)]
    return make_table(rows)


def test_loso_gives_one_disjoint_fold_per_namespaced_subject() -> None:
    table = _composite()
    folds = list(loso_folds(table))
    assert [fold.name for fold in folds] == ["casme2/s1", "casme2/s2", "samm/s1", "samm/s2"]
    tested = np.concatenate([fold.test for fold in folds])
    assert sorted(tested.tolist()) == list(range(len(table)))
    for fold in folds:
        assert set(fold.train).isdisjoint(fold.test) and len(fold.train) + len(fold.test) == len(table)
        assert set(table["subject"].iloc[fold.test]) == {fold.name}


def test_lodo_and_split_folds() -> None:
    table = _composite()
    lodo = list(lodo_folds(table))
    assert [fold.name for fold in lodo] == ["casme2", "samm"]
    assert set(table["dataset"].iloc[lodo[0].test]) == {"casme2"} and set(table["dataset"].iloc[lodo[0].train]) == {"samm"}
    (split,) = split_folds(table, ["samm/s2", "casme2/s1"])
    assert set(table["subject"].iloc[split.test]) == {"samm/s2", "casme2/s1"}
    with pytest.raises(ValueError, match="sub9"):
        make_folds(table, "split", ["sub9"])
    with pytest.raises(ValueError, match="two datasets"):
        list(lodo_folds(table[table["dataset"] == "samm"]))


def test_subject_leak_is_refused() -> None:
    table = _composite()
    with pytest.raises(SubjectLeakError, match="casme2/s1"):
        assert_subject_disjoint(table, Fold("bad", np.array([0, 1, 3]), np.array([2])))


@pytest.mark.parametrize("method", ["framediff", "flowgrid"])
def test_evaluation_writes_consistent_outputs(method: str, casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    result = evaluate(casme2_table, method, FinetuneConfig(), tmp_path, NAMES)
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == len(casme2_table)
    recomputed = pooled_metrics(predictions["gt"], predictions["pred"], len(NAMES))
    assert _same(result.metrics, recomputed)
    folds = read_megc_log(tmp_path / "predictions_megc.txt")
    assert sorted(f.subject for f in folds) == ["sub01", "sub02", "sub03", "sub04"]
    assert {f.database for f in folds} == {"casme2"}
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["pooled"]["uf1"] == pytest.approx(result.metrics["uf1"])
    assert (tmp_path / "confusion_matrix.png").stat().st_size > 0
    assert not (tmp_path / "training_loss.png").exists()  # the linear baselines train without epochs
    assert json.loads((tmp_path / "folds" / "000.json").read_text())["train_loss"] is None
    report = (tmp_path / "results.md").read_text()
    assert "| all |" in report and "| happiness |" in report


def test_interrupted_evaluation_resumes_at_the_next_fold(casme2_table: pd.DataFrame, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    config = FinetuneConfig(ststnet_epochs=2)
    first = evaluate(casme2_table, "ststnet", config, tmp_path, NAMES)
    before = (tmp_path / "predictions_megc.txt").read_text()
    (tmp_path / "folds" / "003.json").unlink()
    calls = []
    original = protocols.STSTNetMethod.fit_predict

    def counting(self, train, test, timing):
        calls.append(len(test))
        return original(self, train, test, timing)

    monkeypatch.setattr(protocols.STSTNetMethod, "fit_predict", counting)
    second = evaluate(casme2_table, "ststnet", config, tmp_path, NAMES)
    assert len(calls) == 1 and second.folds_resumed == 3
    assert (tmp_path / "predictions_megc.txt").read_text() == before
    assert _same(second.metrics, first.metrics)
    losses = [json.loads(path.read_text())["train_loss"] for path in sorted((tmp_path / "folds").glob("*.json"))]
    assert len(losses) == 4 and all(len(loss) == 2 and all(np.isfinite(loss)) for loss in losses)
    assert (tmp_path / "training_loss.png").stat().st_size > 0  # drawn from resumed and new folds alike
    with pytest.raises(ValueError, match="different evaluation.*config"):
        evaluate(casme2_table, "ststnet", dataclasses.replace(config, ststnet_epochs=3), tmp_path, NAMES)


def test_damaged_saved_fold_is_named_not_trusted(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    first = evaluate(casme2_table, "framediff", FinetuneConfig(), tmp_path, NAMES)
    fold_file = tmp_path / "folds" / "001.json"
    saved = fold_file.read_text()
    fold_file.write_text(saved[: len(saved) // 2])
    with pytest.raises(ValueError, match="001.json: not a readable saved fold.*delete the file"):
        evaluate(casme2_table, "framediff", FinetuneConfig(), tmp_path, NAMES)
    fold_file.write_text((tmp_path / "folds" / "002.json").read_text())
    with pytest.raises(ValueError, match="001.json: holds fold 'casme2/sub03', expected 'casme2/sub02'"):
        evaluate(casme2_table, "framediff", FinetuneConfig(), tmp_path, NAMES)
    damaged = json.loads(saved)
    fold_file.write_text(json.dumps({**damaged, "train_loss": "low"}))
    with pytest.raises(ValueError, match="001.json: 'train_loss' is not a list of numbers"):
        evaluate(casme2_table, "framediff", FinetuneConfig(), tmp_path, NAMES)
    fold_file.unlink()
    again = evaluate(casme2_table, "framediff", FinetuneConfig(), tmp_path, NAMES)
    assert again.folds_resumed == 3 and _same(again.metrics, first.metrics)


def test_bad_samples_and_folds_stop_or_are_reported(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    table = casme2_table.copy()
    table.loc[0, "apex"] = int(table.loc[0, "onset"]) - 1
    with pytest.raises(ValueError, match=f"{table.loc[0, 'clip']}.*after apex"):
        evaluate(table, "framediff", FinetuneConfig(), tmp_path / "stop", NAMES)
    one_class = casme2_table.copy()
    one_class.loc[one_class["subject"] != "casme2/sub01", "label"] = 2
    with pytest.raises(ValueError, match="fold casme2/sub01: training set holds one class only"):
        evaluate(one_class, "framediff", FinetuneConfig(), tmp_path / "one", NAMES)
    result = evaluate(table, "framediff", FinetuneConfig(), tmp_path / "skip", NAMES, skip_bad=True)
    assert len(result.skipped_samples) == 1 and table.loc[0, "clip"] in result.skipped_samples[0][1]
    assert result.metrics["num_samples"] == len(table) - 1
    report = (tmp_path / "skip" / "results.md").read_text()
    assert "Skipped samples: 1" in report and table.loc[0, "clip"] in report
    skipped = evaluate(one_class, "framediff", FinetuneConfig(), tmp_path / "skipfold", NAMES, skip_bad=True)
    assert [name for name, _ in skipped.skipped_folds] == ["casme2/sub01"]
    assert any("one class only" in note for note in skipped.warnings)


@pytest.mark.parametrize("method", ["micronbert", "vit-scratch"])
def test_transformer_methods_run_loso(method: str, casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = FinetuneConfig(epochs=1, cache_dir=str(tmp_path / "cache"),
                            mode="frozen" if method == "micronbert" else "finetune")
    metrics = run_loso(casme2_table, method, config, tmp_path / "out", NAMES)
    assert metrics["num_samples"] == len(casme2_table) and 0.0 <= metrics["uf1"] <= 1.0
    assert len(list((tmp_path / "out" / "folds").glob("*.json"))) == casme2_table["subject"].nunique()
    report = (tmp_path / "out" / "results.md").read_text()
    assert ("micronbert without weights starts from random initialisation" in report) == (method == "micronbert")


def test_frozen_tokens_are_reused_by_later_runs(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    from micronbert.model import create_model, save

    weights = save(create_model("tiny"), tmp_path / "weights")
    config = FinetuneConfig(weights=str(weights), epochs=1, frozen_train="head", cache_dir=str(tmp_path / "cache"))
    first = evaluate(casme2_table, "micronbert", config, tmp_path / "a", NAMES)
    second = evaluate(casme2_table, "micronbert", dataclasses.replace(config, frozen_train="dma+head"),
                      tmp_path / "b", NAMES)
    assert first.details == {"frames_encoded": 2 * len(casme2_table), "frames_from_cache": 0}
    assert second.details == {"frames_encoded": 0, "frames_from_cache": 2 * len(casme2_table)}


def test_evaluate_command_line(casme2_table: pd.DataFrame, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    table_file = save_table(casme2_table, tmp_path / "table.csv")
    parser = argparse.ArgumentParser()
    add_evaluate_parser(parser.add_subparsers())
    args = parser.parse_args(["evaluate", "--table", str(table_file), "--scheme", SCHEME, "--method", "framediff",
                              "--out", str(tmp_path / "cli"), "--quiet"])
    assert args.run(args) == 0
    assert "UF1" in capsys.readouterr().out
    assert (tmp_path / "cli" / "predictions_megc.txt").is_file()
    shutil.rmtree(tmp_path / "cli")


def test_scheme_that_empties_a_test_subject_is_named(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    table = casme2_table.copy()
    table.loc[table["subject"] == "casme2/sub02", "label"] = pd.NA
    with pytest.raises(ValueError, match="sub02.*no class label"):
        evaluate(table, "framediff", FinetuneConfig(), tmp_path / "a", NAMES, protocol="split",
                 test_subjects=["casme2/sub02"])
    with pytest.raises(ValueError, match=r"\['casme2/sub02'\] have no usable samples"):
        evaluate(table, "framediff", FinetuneConfig(), tmp_path / "b", NAMES, protocol="split",
                 test_subjects=["casme2/sub02"], skip_bad=True)
    result = evaluate(table, "framediff", FinetuneConfig(), tmp_path / "c", NAMES, protocol="split",
                      test_subjects=["casme2/sub03"], skip_bad=True)
    assert result.metrics["num_samples"] == 4 and len(result.skipped_samples) == 4
