"""Every network and classical baseline through the evaluation harness, on the inputs of the input layer: the
registry, both recipes, --select-on-test, ELRCN's stages, ICE-GAN's GAN training, synthetic pre-training (MiE-X),
saving and loading, user weights."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from micronbert.baselines.apexnets import APEX_CARDS
from micronbert.baselines.card import Recipe
from micronbert.baselines.flownets import FLOW_CARDS
from micronbert.baselines.icegan import ICEGAN_CARD
from micronbert.baselines.seqnets import SEQUENCE_CARDS, atnet_card
from micronbert.baselines.training import epoch_learning_rate, run_epochs
from micronbert.data.datasets import get_scheme
from micronbert.data.faces import FaceDetection
from micronbert.data.frames import frame_path, read_frame
from micronbert.data.inputs import layer
from micronbert.evaluation import baseline_methods
from micronbert.evaluation.baseline_methods import load_method, predict_pair, predict_samples
from micronbert.evaluation.methods import ALIASES, METHODS, get_method
from micronbert.evaluation.runner import evaluate, finetune, synthetic_class_map
from tests.recognition_fixtures import SCHEME, recognition_config, synthetic_casme2_table

NAMES = list(get_scheme(SCHEME).classes)
TINY_ELRCN = {"conv_widths": [4, 4, 8, 8, 8], "fc_width": 16, "lstm_units": 8, "hidden_units": 8}
TINY_ICEGAN = {"decoder_widths": [16, 16, 16], "latent_dim": 4}
# small inputs per method (the AlexNet streams need 35 px, VGG-16 32 px); one epoch
SMALL = {
    "ststnet": {"baselines.size": 16},
    "offapexnet": {"baselines.size": 16},
    "dual-inception": {"baselines.size": 16},
    "sssn": {"baselines.size": 40},
    "dssn": {"baselines.size": 40},
    "dssn-add": {"baselines.size": 40},
    "dssn-cat": {"baselines.size": 40},
    "micro-attention": {"baselines.size": 16},
    "elrcn-se": {"baselines.size": 32, "baselines.length": 3, "baselines.networks": {"elrcn-se": TINY_ELRCN}},
    "elrcn-te": {"baselines.size": 32, "baselines.length": 3, "baselines.networks": {"elrcn-te": TINY_ELRCN}},
    "stcnn": {"baselines.size": 16, "baselines.length": 6},
    "fusenet": {"baselines.size": 16, "baselines.length": 6},
    "fusenet-late": {"baselines.size": 16, "baselines.length": 6},
    "atnet": {"baselines.size": 16, "baselines.length": 4},
    "icegan": {"baselines.size": 16, "baselines.networks": {"icegan": TINY_ICEGAN}},
    "lbptop": {"baselines.size": 16, "baselines.length": 9},
}
HEAVY = ("atnet", "icegan")  # one fold (protocol split) keeps their test short


class FixedFace:
    """A face backend that finds the same face in every 64×64 synthetic frame (the Haar cascade misses some)."""

    name = "fixed"

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        return [FaceDetection(box=(8.0, 8.0, 48.0, 48.0), left_eye=(22.0, 26.0), right_eye=(42.0, 26.0))]


@pytest.fixture(scope="module")
def casme2_table(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    return synthetic_casme2_table(tmp_path_factory.mktemp("synthetic"), subjects=4)


@pytest.fixture(scope="module")
def input_cache(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(autouse=True)
def fixed_face(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layer, "make_backend", lambda name: FixedFace())


def small_config(method: str, cache: str, values: dict[str, Any] | None = None):
    return recognition_config({"baselines.cache_dir": cache, f"baselines.recipes.{method}.epochs": 1,
                               **SMALL.get(method, {}), **(values or {})})


def _split(method: str) -> dict[str, Any]:
    return {"protocol": "split", "test_subjects": ["casme2/sub01", "casme2/sub02"]} if method in HEAVY else {}


def _folds(out: Path) -> list[dict[str, Any]]:
    return [json.loads(path.read_text()) for path in sorted((out / "folds").glob("*.json"))]


# ------------------------------------------------------------------------------------------------ registry
def test_every_card_is_registered_by_its_name_and_aliases() -> None:
    cards = [*FLOW_CARDS, *APEX_CARDS, *SEQUENCE_CARDS, atnet_card(), ICEGAN_CARD]
    for card in cards:
        assert METHODS[card.name].card.name == card.name
        for alias in card.aliases:
            assert ALIASES[alias] == card.name
    assert {"lbptop", "tgsr", "micronbert", "vit-scratch", "framediff", "flowgrid"} <= set(METHODS)
    assert set(SMALL) | {"tgsr", "micronbert", "vit-scratch", "framediff", "flowgrid"} == set(METHODS)
    assert get_method("off-apexnet", recognition_config(), 3).name == "offapexnet"
    with pytest.raises(ValueError, match="unknown method 'resnet'.*ststnet"):
        get_method("resnet", recognition_config(), 3)


@pytest.mark.parametrize("method", sorted(SMALL))
def test_every_baseline_runs_through_evaluate_on_the_input_layer(method: str, casme2_table: pd.DataFrame,
                                                                 input_cache: str, tmp_path: Path) -> None:
    result = evaluate(casme2_table, method, small_config(method, input_cache), tmp_path, NAMES, **_split(method))
    expected = 8 if method in HEAVY else len(casme2_table)
    assert result.metrics["num_samples"] == expected and 0.0 <= result.metrics["uf1"] <= 1.0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    details = saved["details"]
    assert details["family"] == METHODS[method].family
    report = (tmp_path / "results.md").read_text()
    assert "## Method" in report and "inputs: kind=" in report
    if method == "lbptop":
        assert details["started_from"].startswith("not a network")
        return
    assert details["recipe"] == "default" and details["recipe_fields"]["epochs"] == 1
    assert "recipe: **default**" in report and "started from: scratch" in report
    size = SMALL[method]["baselines.size"]
    assert all(f"size={size}|" in spec or "kind=flow_cells|size=8|" in spec for spec in details["inputs"])
    stages = 2 if method.startswith("elrcn") else 1
    assert all(len(fold["train_loss"]) == stages and np.isfinite(fold["train_loss"]).all()
               for fold in _folds(tmp_path))
    reads_flow = any("kind=flow" in spec for spec in details["inputs"])
    assert (details["flow_method"] == "dis") == reads_flow and (("optical flow: dis" in report) == reads_flow)


def test_inputs_are_computed_once_and_shared_by_later_runs(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = small_config("ststnet", str(tmp_path / "inputs"))
    first = evaluate(casme2_table, "ststnet", config, tmp_path / "a", NAMES)
    second = evaluate(casme2_table, "offapexnet", small_config("offapexnet", str(tmp_path / "inputs")),
                      tmp_path / "b", NAMES)
    assert (first.details["inputs_computed"], first.details["inputs_from_cache"]) == (len(casme2_table), 0)
    # OFF-ApexNet reads (u, v), another spec than STSTNet's (u, v, strain): computed once too, then cached
    again = evaluate(casme2_table, "offapexnet", small_config("offapexnet", str(tmp_path / "inputs")),
                     tmp_path / "c", NAMES)
    assert second.details["inputs_computed"] == len(casme2_table)
    assert (again.details["inputs_computed"], again.details["inputs_from_cache"]) == (0, len(casme2_table))


def test_published_and_default_recipes_differ_as_the_cards_say(casme2_table: pd.DataFrame, input_cache: str,
                                                               tmp_path: Path) -> None:
    runs = {}
    for recipe in ("default", "published"):
        config = small_config("ststnet", input_cache, {"baselines.recipe": recipe})
        runs[recipe] = evaluate(casme2_table, "ststnet", config, tmp_path / recipe, NAMES)
    default, published = (runs[name].details["recipe_fields"] for name in ("default", "published"))
    assert (published["lr"], published["batch_size"], published["class_weighted"]) == (5e-5, 256, False)
    assert (default["lr"], default["batch_size"], default["class_weighted"]) == (5e-4, 16, True)
    assert "recipe: **published**" in (tmp_path / "published" / "results.md").read_text()
    probabilities = [_folds(tmp_path / name)[0]["probabilities"] for name in ("default", "published")]
    assert probabilities[0] != probabilities[1]


# ------------------------------------------------------------------------------------------------ select on test
def test_select_on_test_is_reported_apart_and_leaves_the_honest_result_unchanged(
        casme2_table: pd.DataFrame, input_cache: str, tmp_path: Path) -> None:
    config = small_config("ststnet", input_cache, {"baselines.recipes.ststnet.epochs": 4})
    split = {"protocol": "split", "test_subjects": ["casme2/sub01", "casme2/sub02"]}
    honest = evaluate(casme2_table, "ststnet", config, tmp_path / "honest", NAMES, **split)
    both = evaluate(casme2_table, "ststnet", config, tmp_path / "both", NAMES, select_on_test=True, **split)
    assert json.dumps(both.metrics, sort_keys=True) == json.dumps(honest.metrics, sort_keys=True)
    for name in ("predictions.csv", "predictions_megc.txt"):
        assert (tmp_path / "both" / name).read_text() == (tmp_path / "honest" / name).read_text()
    chosen = json.loads((tmp_path / "both" / "metrics.json").read_text())["selected_on_test"]
    assert chosen["available"] and "SELECTED ON THE TEST SUBJECTS" in chosen["warning"]
    assert chosen["uf1"] >= honest.metrics["uf1"]  # one fold: its best epoch includes the last one
    assert chosen["uf1"] == pytest.approx(both.selected_on_test["uf1"])
    assert 1 <= chosen["epochs"][0]["epoch"] <= 4 and chosen["epochs"][0]["epochs"] == 4
    assert "selected_on_test" not in json.loads((tmp_path / "honest" / "metrics.json").read_text())
    report = (tmp_path / "both" / "results.md").read_text()
    assert "SELECTED ON THE TEST SUBJECTS (--select-on-test): NOT A RESULT" in report
    honest_report = (tmp_path / "honest" / "results.md").read_text()
    assert report.split("| class |")[0] == honest_report.split("| class |")[0]  # the honest table, unchanged
    assert "selected on test" not in honest_report
    assert (tmp_path / "both" / "selected_on_test_predictions.csv").is_file()
    with pytest.raises(ValueError, match="differs in select_on_test"):
        evaluate(casme2_table, "ststnet", config, tmp_path / "both", NAMES, **split)


def test_select_on_test_resumes_and_says_when_a_method_has_no_epochs(casme2_table: pd.DataFrame, input_cache: str,
                                                                     tmp_path: Path) -> None:
    config = small_config("ststnet", input_cache, {"baselines.recipes.ststnet.epochs": 2})
    first = evaluate(casme2_table, "ststnet", config, tmp_path / "a", NAMES, select_on_test=True)
    (tmp_path / "a" / "folds" / "002.json").unlink()
    second = evaluate(casme2_table, "ststnet", config, tmp_path / "a", NAMES, select_on_test=True)
    assert second.folds_resumed == 3
    assert json.dumps(second.selected_on_test, sort_keys=True) == json.dumps(first.selected_on_test, sort_keys=True)
    linear = evaluate(casme2_table, "framediff", recognition_config(), tmp_path / "b", NAMES, select_on_test=True)
    assert linear.selected_on_test["available"] is False
    assert "not trained in epochs" in linear.selected_on_test["reason"]
    assert "Not available for this method" in (tmp_path / "b" / "results.md").read_text()


# ------------------------------------------------------------------------------------------------ special training
def test_elrcn_trains_its_frame_cnn_then_its_lstm_on_frozen_features(casme2_table: pd.DataFrame, input_cache: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    config = small_config("elrcn-te", input_cache, {"baselines.recipes.elrcn-te.epochs": 2})
    method = get_method("elrcn-te", config, len(NAMES))
    method.prepare(method.read(casme2_table))
    extracted = []
    original = type(method.build()).extract_features

    def extract(self, x):
        extracted.append(len(x))
        return original(self, x)

    monkeypatch.setattr(type(method.build()), "extract_features", extract)
    torch.manual_seed(0)
    initial = method.build().state_dict()
    method.fit(np.arange(12), watch=np.arange(12, 16))
    trained = method.network.state_dict()
    assert len(method.train_loss) == 4 and np.isfinite(method.train_loss).all()  # 2 frame-wise + 2 recurrent epochs
    assert sum(extracted) == 12  # the training clips' features, once, after stage 1
    assert not torch.equal(initial["streams.0.conv1_1.weight"], trained["streams.0.conv1_1.weight"])
    assert not torch.equal(initial["lstm.weight_ih"], trained["lstm.weight_ih"])
    assert len(method.epoch_probabilities) == 2  # the watched epochs are the recurrent stage's


def test_icegan_trains_with_gan_steps_and_classifies_with_its_discriminator(
        casme2_table: pd.DataFrame, input_cache: str, monkeypatch: pytest.MonkeyPatch) -> None:
    method = get_method("icegan", small_config("icegan", input_cache), len(NAMES))
    method.prepare(method.read(casme2_table))
    steps = []
    original = baseline_methods.train_step

    def step(generator, discriminator, onset, apex, labels, optimisers, **options):
        steps.append((float(onset.min()), float(apex.max()), len(labels)))
        return original(generator, discriminator, onset, apex, labels, optimisers, **options)

    monkeypatch.setattr(baseline_methods, "train_step", step)
    torch.manual_seed(0)
    initial = method.build()
    method.fit(np.arange(16))
    assert len(steps) == 1 and steps[0][2] == 16  # one epoch of one batch
    assert -1.0 <= steps[0][0] and steps[0][1] <= 1.0  # faces scaled to [-1, 1]
    changed = [name for name, value in method.network.generator.state_dict().items()
               if not torch.equal(value, initial.generator.state_dict()[name])]
    assert changed  # the generator trained too
    probabilities = method.predict_proba(np.arange(4))
    assert probabilities.shape == (4, len(NAMES)) and np.allclose(probabilities.sum(axis=1), 1.0)


# ------------------------------------------------------------------------------------------------ MiE-X
def test_synthetic_pretraining_changes_the_result_and_uses_only_synthetic_samples(
        casme2_table: pd.DataFrame, input_cache: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synthetic = {"train.pretrain_on_synthetic": 6, "baselines.synthetic.size": 32,
                 "baselines.synthetic.duration_s": [0.02, 0.05], "baselines.synthetic.nuisance_strength": 0.0}
    calls = []
    original = baseline_methods.train_network

    def spy(network, inputs, labels, *args, **options):
        calls.append((inputs[0][:].clone(), np.asarray(labels).copy()))
        return original(network, inputs, labels, *args, **options)

    monkeypatch.setattr(baseline_methods, "train_network", spy)
    plain = evaluate(casme2_table, "ststnet", small_config("ststnet", input_cache), tmp_path / "plain", NAMES)
    calls.clear()
    config = small_config("ststnet", input_cache, synthetic)
    pretrained = evaluate(casme2_table, "ststnet", config, tmp_path / "mie", NAMES)
    assert len(calls) == 8  # per fold: the synthetic set, then the fold's training samples
    real = get_method("ststnet", config, len(NAMES)).read(casme2_table).batch.tensors[0]
    for (pre_inputs, pre_labels), (train_inputs, _) in zip(calls[0::2], calls[1::2]):
        assert len(pre_inputs) == 6 and len(train_inputs) == 12
        assert torch.equal(pre_inputs, calls[0][0]) and np.array_equal(pre_labels, calls[0][1])  # same every fold
        assert not any(torch.equal(sample, row) for sample in pre_inputs for row in real)
    facts = pretrained.synthetic
    assert facts["samples"] == 6 and sum(facts["classes"].values()) == 6
    assert _folds(tmp_path / "mie")[0]["probabilities"] != _folds(tmp_path / "plain")[0]["probabilities"]
    assert all(len(fold["pretrain_loss"]) == 1 for fold in _folds(tmp_path / "mie"))
    assert plain.synthetic is None and "synthetic AU micro-expressions" in (tmp_path / "mie" / "results.md").read_text()


def test_synthetic_classes_map_onto_the_runs_scheme_or_are_refused() -> None:
    megc = list(get_scheme("megc2019-3class").classes)
    assert synthetic_class_map(megc) == {"happiness": 1, "surprise": 2, "disgust": 0, "repression": 0}
    assert synthetic_class_map(NAMES) == {"happiness": 0, "surprise": 1, "disgust": 2, "repression": 3, "others": 4}
    with pytest.raises(ValueError, match=r"\['anger', 'contempt'\]"):
        synthetic_class_map(list(get_scheme("samm-5class").classes))


# ------------------------------------------------------------------------------------------------ classical
def test_tgsr_runs_leave_one_dataset_out_and_refuses_other_protocols(casme2_table: pd.DataFrame, input_cache: str,
                                                                     tmp_path: Path) -> None:
    config = small_config("tgsr", input_cache, {"baselines.size": 16, "baselines.length": 9})
    with pytest.raises(ValueError, match="tgsr is a cross-database method.*--protocol lodo"):
        evaluate(casme2_table, "tgsr", config, tmp_path / "loso", NAMES)
    two = casme2_table.copy()
    two.loc[two["subject"].isin(["casme2/sub03", "casme2/sub04"]), "dataset"] = "other"
    result = evaluate(two, "tgsr", config, tmp_path / "lodo", NAMES, protocol="lodo")
    assert result.metrics["num_samples"] == len(two) and set(result.per_dataset) >= {"casme2", "other"}
    with pytest.raises(ValueError, match="tgsr is a cross-database method"):
        finetune(two, config, tmp_path / "model", NAMES, method="tgsr", log=lambda message: None)


# ------------------------------------------------------------------------------------------------ save and load
@pytest.mark.parametrize("method", ["ststnet", "stcnn"])
def test_a_saved_baseline_loads_and_predicts_the_same_probabilities(method: str, casme2_table: pd.DataFrame,
                                                                    input_cache: str, tmp_path: Path) -> None:
    config = small_config(method, input_cache)
    trained = get_method(method, config, len(NAMES))
    trained.prepare(trained.read(casme2_table))
    trained.fit(np.arange(len(casme2_table)))
    expected = trained.predict_proba(np.arange(len(casme2_table)))
    trained.save(tmp_path / "model", NAMES)
    saved = json.loads((tmp_path / "model" / "method.json").read_text())
    assert (saved["method"], saved["card"], saved["classes"], saved["recipe"]["name"]) == (method, method, NAMES,
                                                                                          "default")
    loaded = load_method(tmp_path / "model")
    probabilities, batch = predict_samples(loaded, casme2_table.drop(columns=["label"]).assign(label=pd.NA))
    assert len(batch) == len(casme2_table)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-6)
    if method == "ststnet":
        row = casme2_table.iloc[3]
        onset, apex = (read_frame(frame_path(list(row["frames"]), int(row[name]))) for name in ("onset", "apex"))
        np.testing.assert_allclose(predict_pair(loaded, onset, apex), expected[3], rtol=0, atol=1e-6)
    else:
        with pytest.raises(ValueError, match="needs a clip"):
            predict_pair(loaded, np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))


def test_finetune_writes_a_network_baseline_and_damaged_files_are_named(casme2_table: pd.DataFrame, input_cache: str,
                                                                        tmp_path: Path) -> None:
    out = finetune(casme2_table, small_config("ststnet", input_cache), tmp_path / "run", NAMES, method="ststnet",
                   log=lambda message: None)
    classes = json.loads((out / "classes.json").read_text())
    assert classes["method"] == "ststnet" and classes["samples"] == len(casme2_table)
    assert load_method(out / "model").class_names == NAMES
    (out / "model" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        load_method(out / "model")
    with pytest.raises(FileNotFoundError, match="no saved method"):
        load_method(tmp_path)


# ------------------------------------------------------------------------------------------------ configuration
def test_user_weights_start_a_network_and_cards_without_a_loader_refuse_them(
        casme2_table: pd.DataFrame, input_cache: str, tmp_path: Path) -> None:
    torch.manual_seed(1)
    state = get_method("ststnet", small_config("ststnet", input_cache), len(NAMES)).build().state_dict()
    save_file({key: value.contiguous() for key, value in state.items()}, str(tmp_path / "ststnet.safetensors"))
    weights = {"baselines.weights": {"ststnet": str(tmp_path / "ststnet.safetensors")}}
    config = small_config("ststnet", input_cache, weights)
    method = get_method("ststnet", config, len(NAMES))
    assert all(torch.equal(value, state[key]) for key, value in method.build().state_dict().items())
    result = evaluate(casme2_table, "ststnet", config, tmp_path / "run", NAMES)
    assert "ststnet.safetensors" in result.details["started_from"]
    assert "started from: the user's weights file" in (tmp_path / "run" / "results.md").read_text()
    refused = small_config("offapexnet", input_cache, {"baselines.weights": {"offapexnet": "w.pth"}})
    with pytest.raises(ValueError, match="offapexnet does not load pre-trained weights"):
        evaluate(casme2_table, "offapexnet", refused, tmp_path / "refused", NAMES)


def test_per_method_settings_take_aliases_and_refuse_unknown_names(casme2_table: pd.DataFrame, tmp_path: Path) -> None:
    config = recognition_config({"baselines.recipes": {"dssn-mul": {"epochs": 3}, "ststnet": {"lr": 0.01}}})
    assert get_method("dssn", config, 3).recipe().epochs == 3 and get_method("ststnet", config, 3).recipe().lr == 0.01
    with pytest.raises(ValueError, match="baselines.recipes.stsnet: no method is called 'stsnet'"):
        evaluate(casme2_table, "ststnet", recognition_config({"baselines.recipes.stsnet.epochs": 1}), tmp_path, NAMES)


def test_architecture_options_are_checked(casme2_table: pd.DataFrame, input_cache: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ststnet has no architecture options"):
        evaluate(casme2_table, "ststnet", small_config("ststnet", input_cache,
                                                       {"baselines.networks": {"ststnet": {"width": 2}}}),
                 tmp_path / "a", NAMES)
    with pytest.raises(ValueError, match="unknown option.*lstm_size.*known:.*lstm_units"):
        evaluate(casme2_table, "elrcn-se", small_config("elrcn-se", input_cache,
                                                        {"baselines.networks": {"elrcn-se": {"lstm_size": 2}}}),
                 tmp_path / "b", NAMES)


def test_recipe_schedules_step_cosine_and_inverse_time_decay() -> None:
    step = Recipe("sgd", 0.1, epochs=4, batch_size=2, lr_steps=(2,), lr_gamma=0.5)
    cosine = Recipe("adam", 0.1, epochs=4, batch_size=2, schedule="cosine")
    assert [epoch_learning_rate(step, e) for e in range(4)] == [0.1, 0.1, 0.05, 0.05]
    assert [round(epoch_learning_rate(cosine, e), 6) for e in range(4)] == [0.1, 0.085355, 0.05, 0.014645]
    decayed = Recipe("sgd", 0.1, epochs=2, batch_size=2, decay=0.5)
    optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    rates = []

    def update(batch: torch.Tensor) -> torch.Tensor:
        rates.append(optimiser.param_groups[0]["lr"])
        return torch.zeros(())

    run_epochs([optimiser], 4, update, decayed, seed=0)
    assert rates == pytest.approx([0.1 / (1 + 0.5 * k) for k in range(4)])
    with pytest.raises(ValueError, match="schedule must be one of"):
        Recipe("adam", 0.1, epochs=1, batch_size=1, schedule="linear")
