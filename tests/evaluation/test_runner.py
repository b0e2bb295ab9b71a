"""The evaluation runner: outputs, resuming, bad input, every method, token reuse."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from micronbert.data.datasets import get_scheme
from micronbert.evaluation import baseline_methods
from micronbert.evaluation.runner import evaluate, finetune, run_loso
from micronbert.metrics import pooled_metrics, read_megc_log
from micronbert.model import load
from tests.recognition_fixtures import SCHEME, recognition_config, synthetic_casme2_table

NAMES = list(get_scheme(SCHEME).classes)


@pytest.fixture(scope="module")
def casme2_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return synthetic_casme2_table(tmp_path_factory.mktemp("synthetic"), subjects=4)


def _same(a: dict, b: dict) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("method", ["framediff", "flowgrid"])
def test_evaluation_writes_consistent_outputs(method: str, casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    result = evaluate(casme2_table, method, recognition_config(), tmp_path, NAMES)
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
    config = recognition_config({"baselines.recipes.ststnet.epochs": 2})
    first = evaluate(casme2_table, "ststnet", config, tmp_path, NAMES)
    before = (tmp_path / "predictions_megc.txt").read_text()
    (tmp_path / "folds" / "003.json").unlink()
    calls = []
    original = baseline_methods.STSTNetMethod.predict_proba

    def counting(self, test):
        calls.append(len(test))
        return original(self, test)

    monkeypatch.setattr(baseline_methods.STSTNetMethod, "predict_proba", counting)
    second = evaluate(casme2_table, "ststnet", config, tmp_path, NAMES)
    assert len(calls) == 1 and second.folds_resumed == 3
    assert (tmp_path / "predictions_megc.txt").read_text() == before
    assert _same(second.metrics, first.metrics)
    losses = [json.loads(path.read_text())["train_loss"] for path in sorted((tmp_path / "folds").glob("*.json"))]
    assert len(losses) == 4 and all(len(loss) == 2 and all(np.isfinite(loss)) for loss in losses)
    assert (tmp_path / "training_loss.png").stat().st_size > 0  # drawn from resumed and new folds alike
    with pytest.raises(ValueError, match="different evaluation.*config"):
        evaluate(casme2_table, "ststnet", recognition_config({"baselines.recipes.ststnet.epochs": 3}), tmp_path,
                 NAMES)


def test_damaged_saved_fold_is_named_not_trusted(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    first = evaluate(casme2_table, "framediff", recognition_config(), tmp_path, NAMES)
    fold_file = tmp_path / "folds" / "001.json"
    saved = fold_file.read_text()
    fold_file.write_text(saved[: len(saved) // 2])
    with pytest.raises(ValueError, match="001.json: not a readable saved fold.*delete the file"):
        evaluate(casme2_table, "framediff", recognition_config(), tmp_path, NAMES)
    fold_file.write_text((tmp_path / "folds" / "002.json").read_text())
    with pytest.raises(ValueError, match="001.json: holds fold 'casme2/sub03', expected 'casme2/sub02'"):
        evaluate(casme2_table, "framediff", recognition_config(), tmp_path, NAMES)
    damaged = json.loads(saved)
    fold_file.write_text(json.dumps({**damaged, "train_loss": "low"}))
    with pytest.raises(ValueError, match="001.json: 'train_loss' is not a list of numbers"):
        evaluate(casme2_table, "framediff", recognition_config(), tmp_path, NAMES)
    fold_file.unlink()
    again = evaluate(casme2_table, "framediff", recognition_config(), tmp_path, NAMES)
    assert again.folds_resumed == 3 and _same(again.metrics, first.metrics)


def test_bad_samples_and_folds_stop_or_are_reported(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    table = casme2_table.copy()
    table.loc[0, "apex"] = int(table.loc[0, "onset"]) - 1
    with pytest.raises(ValueError, match=f"{table.loc[0, 'clip']}.*after apex"):
        evaluate(table, "framediff", recognition_config(), tmp_path / "stop", NAMES)
    one_class = casme2_table.copy()
    one_class.loc[one_class["subject"] != "casme2/sub01", "label"] = 2
    with pytest.raises(ValueError, match="fold casme2/sub01: training set holds one class only"):
        evaluate(one_class, "framediff", recognition_config(), tmp_path / "one", NAMES)
    result = evaluate(table, "framediff", recognition_config(), tmp_path / "skip", NAMES, skip_bad=True)
    assert len(result.skipped_samples) == 1 and table.loc[0, "clip"] in result.skipped_samples[0][1]
    assert result.metrics["num_samples"] == len(table) - 1
    report = (tmp_path / "skip" / "results.md").read_text()
    assert "Skipped samples: 1" in report and table.loc[0, "clip"] in report
    skipped = evaluate(one_class, "framediff", recognition_config(), tmp_path / "skipfold", NAMES, skip_bad=True)
    assert [name for name, _ in skipped.skipped_folds] == ["casme2/sub01"]
    assert any("one class only" in note for note in skipped.warnings)


@pytest.mark.parametrize("method", ["micronbert", "vit-scratch"])
def test_transformer_methods_run_loso(method: str, casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = recognition_config({"train.epochs": 1, "cache.dir": str(tmp_path / "cache"),
                                 "train.mode": "frozen" if method == "micronbert" else "finetune"})
    metrics = run_loso(casme2_table, method, config, tmp_path / "out", NAMES)
    assert metrics["num_samples"] == len(casme2_table) and 0.0 <= metrics["uf1"] <= 1.0
    assert len(list((tmp_path / "out" / "folds").glob("*.json"))) == casme2_table["subject"].nunique()
    report = (tmp_path / "out" / "results.md").read_text()
    assert ("micronbert without weights starts from random initialisation" in report) == (method == "micronbert")


def test_frozen_tokens_are_reused_by_later_runs(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    from micronbert.model import create_model, save

    weights = save(create_model("tiny"), tmp_path / "weights")
    config = {"model.weights": str(weights), "train.epochs": 1, "train.frozen_train": "head",
              "cache.dir": str(tmp_path / "cache")}
    first = evaluate(casme2_table, "micronbert", recognition_config(config), tmp_path / "a", NAMES)
    second = evaluate(casme2_table, "micronbert", recognition_config({**config, "train.frozen_train": "dma+head"}),
                      tmp_path / "b", NAMES)
    assert first.details == {"frames_encoded": 2 * len(casme2_table), "frames_from_cache": 0}
    assert second.details == {"frames_encoded": 0, "frames_from_cache": 2 * len(casme2_table)}


def test_scheme_that_empties_a_test_subject_is_named(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    table = casme2_table.copy()
    table.loc[table["subject"] == "casme2/sub02", "label"] = pd.NA
    with pytest.raises(ValueError, match="sub02.*no class label"):
        evaluate(table, "framediff", recognition_config(), tmp_path / "a", NAMES, protocol="split",
                 test_subjects=["casme2/sub02"])
    with pytest.raises(ValueError, match=r"\['casme2/sub02'\] have no usable samples"):
        evaluate(table, "framediff", recognition_config(), tmp_path / "b", NAMES, protocol="split",
                 test_subjects=["casme2/sub02"], skip_bad=True)
    result = evaluate(table, "framediff", recognition_config(), tmp_path / "c", NAMES, protocol="split",
                      test_subjects=["casme2/sub03"], skip_bad=True)
    assert result.metrics["num_samples"] == 4 and len(result.skipped_samples) == 4


def test_finetune_writes_a_loadable_model(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    names = list(get_scheme(SCHEME).classes)
    config = recognition_config({"train.epochs": 3, "cache.dir": str(tmp_path / "cache"),
                                 "train.frozen_train": "head"})
    out = finetune(casme2_table, config, tmp_path / "run", names, log=lambda message: None)
    saved = json.loads((out / "classes.json").read_text())
    assert saved["classes"] == names and saved["samples"] == len(casme2_table)
    assert len(saved["train_loss"]) == 3 and all(loss > 0 for loss in saved["train_loss"])
    assert (out / "training_loss.png").stat().st_size > 0
    assert load(out / "model").config.num_classes == len(names)


@pytest.mark.parametrize("mode", ["frozen", "finetune"])
def test_select_on_test_for_micronbert_leaves_its_honest_result_unchanged(mode: str, casme2_table: pd.DataFrame,
                                                                          tmp_path: Path) -> None:
    config = recognition_config({"train.epochs": 3, "train.mode": mode, "cache.dir": str(tmp_path / "cache")})
    split = {"protocol": "split", "test_subjects": ["casme2/sub01"]}
    honest = evaluate(casme2_table, "micronbert", config, tmp_path / "honest", NAMES, **split)
    both = evaluate(casme2_table, "micronbert", config, tmp_path / "both", NAMES, select_on_test=True, **split)
    assert _same(both.metrics, honest.metrics)
    chosen = json.loads((tmp_path / "both" / "metrics.json").read_text())["selected_on_test"]
    assert chosen["available"] and chosen["uf1"] >= honest.metrics["uf1"]
    assert chosen["epochs"][0]["epochs"] == 3
