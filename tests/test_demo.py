"""The demo: the quick run end to end, re-runs, the verdict, and its configuration."""
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from micronbert.cli import main
from micronbert.config import merge
from micronbert.demo import QUICK, DemoConfig, _pretrain_config, _verdict_line, run_demo, summarise, verdict
from micronbert.train.finetune import build_model


def _changed(config: DemoConfig, change: dict[str, Any]) -> DemoConfig:
    """``config`` with the nested ``change`` laid over it."""
    return DemoConfig.from_dict(merge(config.to_dict(), change))


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    return out, run_demo(out, DemoConfig.quick(), progress=False, log=lambda message: None)


def test_quick_demo_writes_the_whole_report(quick_demo):
    out, result = quick_demo
    for name in ("results.md", "results.json", "confusion_matrices.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0
    assert len(list((out / "maps").glob("*.png"))) == 2
    results = json.loads((out / "results.json").read_text())
    config = DemoConfig.quick()
    assert [row["method"] for row in results["methods"]] == list(config.methods)
    assert len(results["runs"]) == len(config.methods) * len(config.seeds)
    samples = results["samples"]
    assert samples == config.data.subjects * config.data.clips_per_subject
    for row in results["methods"]:
        assert np.sum(row["confusion_matrix"]) == samples * len(config.seeds)
        assert row["uf1"]["min"] <= row["uf1"]["mean"] <= row["uf1"]["max"]
    pretraining = results["pretraining"]
    assert pretraining["steps"] == config.pretrain.steps
    assert yaml.safe_load((out / "pretrain" / "config.yaml").read_text())["optim"]["lr"] == config.pretrain.lr
    assert pretraining["reconstruction"]["copy_baseline_loss"] > 0
    for key in ("change_map_on_au_regions", "relative_change_map_on_au_regions", "saliency_on_face"):
        shares = pretraining[key]
        assert 0 < shares["area_share"] < 1 and 0 <= shares["before"] <= 1 and 0 <= shares["after"] <= 1
    report = (out / "results.md").read_text()
    assert all(f"| {method} |" in report for method in config.methods)
    relative = pretraining["relative_change_map_on_au_regions"]
    assert f"{relative['before']:.1%} and {relative['after']:.1%}" in report
    assert result.verdict["compared"] and result.verdict["runner_up"] in config.claim_against
    assert set(result.verdict["leads"]) == set(config.methods) - {"micronbert"}


def test_rerun_reuses_every_stage_and_the_cli_prints_the_table(quick_demo, capsys):
    out, result = quick_demo
    checkpoint = out / "pretrain" / "model" / "model.safetensors"
    stamp = checkpoint.stat().st_mtime_ns
    assert main(["demo", "--quick", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| micronbert |" in printed and "results.md" in printed
    assert checkpoint.stat().st_mtime_ns == stamp  # nothing was pre-trained again
    again = json.loads((out / "results.json").read_text())
    assert [row["uf1"] for row in again["methods"]] == [row["uf1"] for row in result.rows]


def test_a_model_with_a_volatility_head_adds_the_surprise_map_to_the_report(tmp_path):
    config = _changed(DemoConfig.quick(), {"methods": ["micronbert", "framediff"], "seeds": [0],
                                           "model": {"overrides": {"volatility_weight": 1.0}}})
    run_demo(tmp_path / "out", config, progress=False, log=lambda message: None)
    surprise = json.loads((tmp_path / "out" / "results.json").read_text())["pretraining"]["surprise_map_on_au_regions"]
    assert 0 <= surprise["before"] <= 1 and 0 <= surprise["after"] <= 1
    report = (tmp_path / "out" / "results.md").read_text()
    assert f"surprise map (the relative change map weighted by the volatility, METHOD.md §11): " \
           f"{surprise['before']:.1%} and {surprise['after']:.1%}." in report


def test_other_settings_in_the_same_folder_are_refused(quick_demo):
    out, _ = quick_demo
    with pytest.raises(ValueError, match="different demo run \\(differs in seeds\\)"):
        run_demo(out, _changed(DemoConfig.quick(), {"seeds": [5]}), progress=False)


def _run(method, seed, uf1):
    return {"method": method, "seed": seed, "uf1": uf1, "uar": uf1, "accuracy": uf1,
            "confusion_matrix": [[1, 0], [0, 1]], "seconds": 1.0}


def test_verdict_compares_each_lead_with_the_seed_spreads():
    runs = [_run("micronbert", s, v) for s, v in enumerate([0.60, 0.64, 0.62])]
    runs += [_run("vit-scratch", s, v) for s, v in enumerate([0.40, 0.50, 0.45])]
    runs += [_run("framediff", s, 0.55) for s in range(3)]
    rows = summarise(runs)
    assert rows[0]["uf1"]["mean"] == pytest.approx(0.62) and rows[0]["confusion_matrix"] == [[3, 0], [0, 3]]
    result = verdict(rows)
    assert result["runner_up"] == "framediff"
    assert result["lead"] == pytest.approx(0.07) and result["largest_spread"] == pytest.approx(0.10)
    assert result["leads"] == pytest.approx({"vit-scratch": 0.17, "framediff": 0.07})
    assert result["margins"] == pytest.approx({"vit-scratch": 0.10, "framediff": 0.04})
    assert result["ahead_of"] == {"vit-scratch": True, "framediff": True} and result["ahead"] is True
    assert result["ahead_of_largest_spread"] is False  # 0.07 over framediff < vit-scratch's spread 0.10
    runs = [run for run in runs if run["method"] != "vit-scratch"]
    assert verdict(summarise(runs))["ahead_of_largest_spread"] is True  # lead 0.07 > spread 0.04
    close = [_run("micronbert", s, v) for s, v in enumerate([0.50, 0.60, 0.55])] + [_run("framediff", 0, 0.5)]
    assert verdict(summarise(close))["ahead_of"] == {"framediff": False}  # lead 0.05 < μ-BERT's own spread 0.10
    assert verdict(summarise([_run("framediff", 0, 0.5)]))["compared"] is False


def test_verdict_claims_only_against_the_named_methods_and_reports_the_others():
    runs = [_run("micronbert", s, v) for s, v in enumerate([0.48, 0.50, 0.49])]
    runs += [_run("framediff", s, 0.40) for s in range(3)] + [_run("flowgrid", s, 0.70) for s in range(3)]
    rows = summarise(runs)
    everything = verdict(rows)
    assert everything["ahead"] is False and everything["runner_up"] == "flowgrid"
    claim = verdict(rows, against=["framediff"])
    assert claim["ahead"] is True and claim["against"] == ["framediff"] and claim["runner_up"] == "framediff"
    assert claim["ahead_of"] == {"framediff": True, "flowgrid": False}
    assert claim["leads"]["flowgrid"] == pytest.approx(-0.21)
    assert claim["largest_spread"] == pytest.approx(0.02) and claim["ahead_of_largest_spread"] is True
    line = _verdict_line(claim)
    assert "ahead of framediff (the demo's claim)" in line and "flowgrid -0.210 against 0.020 (NOT ahead)" in line
    assert verdict(rows, against=["ststnet"])["compared"] is False


@pytest.mark.parametrize("change, message", [
    ({"methods": ["micronbert", "svm"]}, "methods must be"),
    ({"seeds": [1, 1]}, "seeds must be distinct"),
    ({"claim_against": ["ststnet", "svm"]}, "claim_against must name"),
    ({"claim_against": ["micronbert"]}, "claim_against must name"),
    ({"data": {"subjects": 1}}, "at least 2 subjects"),
    ({"finetune": {"model": {"weights": "x"}}}, "set by the demo"),
    ({"finetune": {"train": {"epochs": 0}}}, "epochs must be a positive integer"),
    ({"pretrain": {"steps": 10.5}}, "pretrain.steps: expected an integer, got 10.5"),
    ({"data": {"amplitude": [0.05, 0.01]}}, "amplitude"),
    ({"pretrain": {"lr": 0.0}}, "pretrain.lr must lie in"),
    ({"pretrain": {"lr": 1e-6}}, "schedule decays to"),
    ({"model": {"overrides": {"dma_quer": "swapped"}}}, "unknown option\\(s\\) dma_quer"),
    ({"model": {"weights": "runs/x"}}, "the demo pre-trains its own model"),
    ({"finetune": {"train": {"seed": 3}}}, "set by the demo"),
])
def test_bad_demo_settings_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        _changed(DemoConfig(), change)


def test_demo_config_reads_yaml_and_names_unknown_keys(tmp_path):
    good = tmp_path / "demo.yaml"
    good.write_text("data:\n  subjects: 4\nseeds: [0, 1]\nfinetune: {train: {epochs: 5}}\n")
    config = DemoConfig.from_yaml(good)
    assert config.data.subjects == 4 and config.seeds == (0, 1) and config.finetune_config(1).train.epochs == 5
    bad = tmp_path / "bad.yaml"
    bad.write_text("subjcts: 4\n")
    with pytest.raises(ValueError, match="bad.yaml: unknown option\\(s\\) subjcts"):
        DemoConfig.from_yaml(bad)
    quick = DemoConfig.from_options(good, ["pretrain.lr=1e-3"], base=QUICK)
    assert quick.data.subjects == 4 and quick.data.unlabeled_videos == 2 and quick.pretrain.lr == 1e-3


def test_model_overrides_reach_pre_training_and_both_vits(tmp_path):
    config = _changed(DemoConfig(), {"model": {"overrides": {"detach_saliency": True}}})
    assert config.model.overrides == {**DemoConfig().model.overrides, "detach_saliency": True}
    pretraining = _pretrain_config(tmp_path, tmp_path / "frames", config, progress=False)
    assert pretraining.model.overrides == config.model.overrides
    finetuning = config.finetune_config(0)
    assert finetuning.model.overrides == config.model.overrides
    assert build_model(finetuning, 3, pretrained=False).config.detach_saliency


def test_cli_names_a_missing_config(tmp_path, capsys):
    assert main(["demo", "--config", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "b")]) == 2
    assert "no such configuration file" in capsys.readouterr().err


def test_a_damaged_demo_record_is_named(tmp_path):
    (tmp_path / "demo.json").write_text("{not json")
    with pytest.raises(ValueError, match="demo.json: not valid JSON"):
        run_demo(tmp_path, DemoConfig.quick(), progress=False)


def test_shipped_demo_configs_are_the_defaults_and_the_paper_only_variant():
    configs = Path(__file__).resolve().parents[1] / "configs"
    assert DemoConfig.from_yaml(configs / "demo.yaml") == DemoConfig()
    assert DemoConfig().model.overrides == {"motion_weight": 1.0, "head": "motion", "decoder_residual": True}
    paper = DemoConfig().to_dict()
    paper["model"]["overrides"] = {}
    assert DemoConfig.from_yaml(configs / "demo_paper.yaml") == DemoConfig.from_dict(paper)
