"""The network and classical baselines as registered methods, all reading the input layer.

Every network card (:mod:`micronbert.baselines.flownets`, :mod:`~micronbert.baselines.apexnets`,
:mod:`~micronbert.baselines.seqnets`, :mod:`~micronbert.baselines.icegan`) runs through one
:class:`NetworkMethod`: its inputs are the card's input specs resized to ``baselines.size`` and
``baselines.length`` (a ``flow_cells`` grid keeps its side), built once per sample by
:func:`micronbert.data.inputs.build_inputs` and cached on disk for every fold and run; each fold builds the
network afresh from the run's seed (from a user's weights file when ``baselines.weights`` names one and the card
loads weights), trains it with the run's recipe (``baselines.recipe``, changed by ``baselines.recipes``) and keeps
the last epoch. Two cards train their own way: ELRCN in two stages (:class:`ELRCNMethod`) and ICE-GAN as a GAN
(:class:`ICEGANMethod`). The classical methods read the onset→offset grey clip: ``lbptop`` (LBP-TOP and a linear
SVM, the MEGC2019 baseline) and ``tgsr`` (cross-database, leave-one-dataset-out only).

[PROPOSED] choices made here:

- input scaling of STCNN and FuseNet (the card's ``mean-max``): the global mean and maximum are those of each
  fold's training samples (the original code used the whole dataset, test samples included); with synthetic
  pre-training they stay those of the real training samples;
- with synthetic pre-training (``train.pretrain_on_synthetic``) a network first trains on every synthetic sample
  with the run's recipe, then on the fold's training samples with the same recipe; the classical methods, whose
  fits are convex, add the synthetic samples to every fold's training samples instead;
- ``lbptop`` and ``tgsr`` read a 128×128 grey clip resampled to 20 frames (the ``sequence`` input; TIM-like
  lengths of 10–30 frames were usual for LBP-TOP), rounded to whole grey levels; their features are cached like the
  other inputs, keyed by the clip's pixels and the descriptor's settings;
- ``tgsr`` runs only under ``lodo``: each fold's source is every other dataset, its target the held-out dataset,
  whose unlabelled features the fit reads (the transductive setting of cross-database recognition);
- a saved network (:meth:`NetworkMethod.save`) is ``model.safetensors`` (the state dict) and ``method.json`` (the
  method, card, input specs, flow method, input scaling, recipe, architecture options, classes).
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from micronbert.baselines.apexnets import APEX_CARDS
from micronbert.baselines.card import NetworkCard, Recipe
from micronbert.baselines.flownets import (
    DSSN_ADD_CARD,
    DSSN_CARD,
    DSSN_CAT_CARD,
    DUAL_INCEPTION_CARD,
    OFFAPEXNET_CARD,
    SSSN_CARD,
    STSTNET_CARD,
)
from micronbert.baselines.icegan import ICEGAN_CARD, gan_optimisers, split_pair, train_step
from micronbert.baselines.lbptop import LBPTOPClassifier, LBPTOPConfig, lbptop_features
from micronbert.baselines.seqnets import (
    ELRCN_SE_CARD,
    ELRCN_TE_CARD,
    FUSENET_CARD,
    FUSENET_LATE_CARD,
    STCNN_CARD,
    atnet_card,
)
from micronbert.baselines.tgsr import TGSR, TGSR_LBPTOP, TGSRConfig, region_grouped_features, region_groups
from micronbert.baselines.training import (
    Rows,
    ScaledRows,
    back_to_training,
    class_weights_for,
    make_optimiser,
    predict_network,
    run_epochs,
    train_network,
)
from micronbert.data.inputs.builders import ClipFrames, resolve_flow_method
from micronbert.data.inputs.cache import InputCache, default_cache_dir, pixel_digest
from micronbert.data.inputs.layer import InputBatch, build_inputs, compute_input
from micronbert.data.inputs.spec import FLOW_KINDS, InputSpec
from micronbert.data.labelled_pairs import SampleError, row_key
from micronbert.evaluation.methods import Method, register_method
from micronbert.io import read_json_mapping, write_json_atomically
from micronbert.train.device import pick_device
from micronbert.train.finetune import FinetuneConfig

SAVED_FORMAT = "micronbert-baseline"
SAVED_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
METHOD_FILE = "method.json"
PAIR_KINDS = ("pair", "apex", "flow")
FEATURES_VERSION = "features-v1"


# ------------------------------------------------------------------------------------------------ samples
@dataclass
class LabelledInputs:
    """The input-layer arrays of a table's labelled rows: ``batch.tensors`` (one per spec), ``labels[i]`` of
    table row ``rows[i]`` named ``keys[i]``; ``skipped`` lists (sample key, reason) of the rows left out."""

    batch: InputBatch
    labels: np.ndarray
    rows: np.ndarray
    keys: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


def input_cache_dir(config: FinetuneConfig) -> Path:
    """Where the input layer caches a run's inputs: ``baselines.cache_dir``, else ``<cache.dir>/inputs`` when
    ``cache.dir`` is set, else :func:`micronbert.data.inputs.cache.default_cache_dir`."""
    if config.baselines.cache_dir:
        return Path(config.baselines.cache_dir).expanduser()
    if config.cache.dir:
        return Path(config.cache.dir).expanduser() / "inputs"
    return default_cache_dir()


def read_labelled_inputs(table: pd.DataFrame, specs: Sequence[InputSpec], config: FinetuneConfig,
                         skip_bad: bool = False, progress: bool = False) -> LabelledInputs:
    """The inputs of ``specs`` for every labelled, usable row of ``table`` (built once per sample and cached).

    A row without a label (the class scheme dropped it) or with unusable frames raises a
    :class:`~micronbert.data.labelled_pairs.SampleError` naming it, unless ``skip_bad``: then it is listed.
    """
    labelled, skipped = [], []
    for index, row in enumerate(table.itertuples(index=False)):
        if pd.isna(row.label):
            error = SampleError(f"{row_key(row)}: no class label (emotion {getattr(row, 'emotion', None)!r} is not "
                                "in the class scheme)")
            if not skip_bad:
                raise error
            skipped.append((row_key(row), str(error)))
            continue
        labelled.append(index)
    positions = np.asarray(labelled, dtype=np.int64)
    baselines = config.baselines
    batch = build_inputs(table.iloc[positions], specs, flow_method=baselines.flow_method,
                         cache_dir=input_cache_dir(config), progress=progress, skip_bad=skip_bad,
                         face_backend=baselines.face_backend)
    rows = positions[batch.rows]
    labels = np.asarray([int(value) for value in table["label"].to_numpy()[rows]], dtype=np.int64)
    return LabelledInputs(batch, labels, rows, list(batch.keys), skipped + list(batch.skipped))


def resized_specs(specs: Sequence[InputSpec], size: int | None, length: int | None) -> tuple[InputSpec, ...]:
    """``specs`` at side ``size`` (None: unchanged; a ``flow_cells`` grid keeps its side) and sequence ``length``
    (None: unchanged; only the kinds with a length)."""
    return tuple(spec.resized(spec.size if size is None or spec.kind == "flow_cells" else size, length)
                 for spec in specs)


# ------------------------------------------------------------------------------------------------ input scaling
def scaling_values(kind: str, tensors: Sequence[torch.Tensor], positions: np.ndarray) -> list[tuple[float, float]]:
    """(shift, scale) per input for an input scaling ``kind`` (:class:`NetworkCard`), from the training samples
    at ``positions``."""
    if kind == "none":
        return [(0.0, 1.0)] * len(tensors)
    if kind == "symmetric":
        return [(127.5, 127.5)] * len(tensors)
    values = []
    for tensor in tensors:
        rows = tensor[torch.as_tensor(positions, dtype=torch.long)].double()
        mean = float(rows.mean()) if rows.numel() else 0.0
        peak = float((rows - mean).max()) if rows.numel() else 1.0
        values.append((mean, peak if peak > 0 else 1.0))
    return values


def scaled(tensors: Sequence[torch.Tensor], values: Sequence[tuple[float, float]],
           positions: np.ndarray | None = None) -> list[ScaledRows]:
    """Every input's samples at ``positions`` (all when None) read as ``(tensor - shift) / scale``."""
    return [ScaledRows(tensor, positions, shift, scale) for tensor, (shift, scale) in zip(tensors, values)]


# ------------------------------------------------------------------------------------------------ networks
class NetworkMethod(Method):
    """A network baseline described by a :class:`~micronbert.baselines.card.NetworkCard`, reading the input
    layer and trained with the configured recipe (:class:`~micronbert.baselines.config.BaselinesConfig`)."""

    card: ClassVar[NetworkCard]
    stages: ClassVar[str] = "one cross-entropy stage"

    def __init__(self, config: FinetuneConfig, num_classes: int) -> None:
        super().__init__(config, num_classes)
        self.saved_specs: tuple[InputSpec, ...] | None = None
        self.flow_used: str | None = None
        self.scaling: list[tuple[float, float]] = []
        self.parameter_count: int | None = None
        self.input_stats: dict[str, int] = {}
        self.class_names: list[str] | None = None

    # ---- configuration
    def own(self, section: str) -> Any:
        """This method's entry of the per-method section ``baselines.<section>`` (by its name or an alias)."""
        entries = getattr(self.config.baselines, section)
        return next((entries[key] for key in (self.name, *self.aliases) if key in entries), None)

    def recipe(self) -> Recipe:
        """The recipe this run trains with: the named recipe with this method's ``baselines.recipes`` changes."""
        base = self.card.recipes[self.config.baselines.recipe]
        return Recipe.from_dict({**base.to_dict(), **(self.own("recipes") or {})}, f"baselines.recipes.{self.name}")

    def specs(self) -> tuple[InputSpec, ...]:
        """The inputs at the configured size and length (the published ones when none is set)."""
        if self.saved_specs is not None:
            return self.saved_specs
        baselines = self.config.baselines
        return resized_specs(self.card.inputs, baselines.size, baselines.length)

    def architecture(self) -> dict[str, Any]:
        """The architecture options this run changes (``baselines.networks``); empty: the published layout."""
        changes = dict(self.own("networks") or {})
        if changes and self.card.options is None:
            raise ValueError(f"baselines.networks.{self.name}: {self.name} has no architecture options")
        if changes:
            known = {item.name for item in dataclasses.fields(self.card.options)}
            unknown = sorted(set(changes) - known)
            if unknown:
                raise ValueError(f"baselines.networks.{self.name}: unknown option(s) {', '.join(unknown)}; known: "
                                 f"{', '.join(sorted(known))}")
        return {key: tuple(value) if isinstance(value, list) else value for key, value in changes.items()}

    def weights_file(self) -> str | None:
        """The user's pre-trained weights this run starts from (``baselines.weights``), if any."""
        path = self.own("weights")
        if path is not None and self.card.load_weights is None:
            raise ValueError(f"baselines.weights.{self.name}: {self.name} does not load pre-trained weights (the "
                             "original trained from scratch or its weights have no loader)")
        return path

    def build(self, user_weights: bool = True) -> nn.Module:
        """A new network for this run's inputs and classes, its weights from the user's file when one is given
        and ``user_weights``."""
        changes = self.architecture()
        try:
            options = {"config": self.card.options(**changes)} if changes else {}
        except (TypeError, ValueError) as err:
            raise ValueError(f"baselines.networks.{self.name}: {err}") from None
        network = self.card.build(self.num_classes, self.specs(), **options)
        path = self.weights_file() if user_weights else None
        if path is not None:
            self.card.load_weights(network, path)
        return network

    def device(self) -> torch.device:
        """Where the network trains."""
        return pick_device(self.config.train.device)

    # ---- reading and preparing
    def read(self, table: pd.DataFrame, skip_bad: bool = False, progress: bool = False) -> LabelledInputs:
        samples = read_labelled_inputs(table, self.specs(), self.config, skip_bad, progress)
        self.flow_used = self.flow_used or samples.batch.flow_method
        for name in ("computed", "cached"):
            self.input_stats[name] = self.input_stats.get(name, 0) + getattr(samples.batch.stats, name)
        return samples

    def prepare(self, samples: LabelledInputs, synthetic: LabelledInputs | None = None) -> None:
        self.samples, self.synthetic = samples, synthetic
        self.tensors = list(samples.batch.tensors)
        self.architecture()
        path = self.weights_file()
        if path is not None and not Path(path).expanduser().is_file():
            raise FileNotFoundError(f"baselines.weights.{self.name}: {path}: no such weights file")

    def identity(self) -> dict[str, Any]:
        return {"flow_method": self.flow_used} if self.flow_used else {}

    # ---- training
    def fit(self, train: np.ndarray, *, target: np.ndarray | None = None, watch: np.ndarray | None = None) -> None:
        seed = self.config.train.seed
        torch.manual_seed(seed)
        self.network = self.build()
        self.parameter_count = sum(parameter.numel() for parameter in self.network.parameters())
        self.scaling = scaling_values(self.card.input_scaling, self.tensors, train)
        self.pretrain_loss = None
        if self.synthetic is not None:
            self.pretrain_loss = self.train(scaled(self.synthetic.batch.tensors, self.scaling),
                                            self.synthetic.labels, None)
        self.epoch_probabilities = [] if watch is not None else None
        bar = tqdm(total=self.recipe().epochs, desc="epochs", unit="epoch", disable=not self.progress)

        def epoch_end(epoch: int, loss: float) -> None:
            bar.update()
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            if watch is not None:
                self.epoch_probabilities.append(self.predict_proba(watch))

        try:
            self.train_loss = self.train(scaled(self.tensors, self.scaling, train), self.samples.labels[train],
                                         epoch_end)
        finally:
            bar.close()

    def train(self, tensors: list[Rows], labels: np.ndarray,
              epoch_end: Callable[[int, float], None] | None) -> list[float]:
        """Train ``self.network`` on scaled ``tensors`` with ``labels``; ``epoch_end`` after every epoch whose
        network classifies samples (the watched epochs). Returns the mean training loss of each epoch."""
        return train_network(self.network, tensors, labels, self.recipe(), self.num_classes, self.config.train.seed,
                             self.device(), epoch_end)

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        return predict_network(self.network, scaled(self.tensors, self.scaling, test))

    def select_on_test_unavailable(self) -> str | None:
        return None

    def predict_inputs(self, tensors: Sequence[torch.Tensor]) -> np.ndarray:
        """Class probabilities (n, classes) of unscaled input tensors (one per spec, as the input layer gives)."""
        return predict_network(self.network, scaled(tensors, self.scaling))

    # ---- reporting
    def started_from(self) -> str:
        """Where the network's weights start (reported)."""
        path = self.own("weights")
        if path:
            return f"the user's weights file {path}"
        original = f" (the original started from {self.card.pretrained_from})" if self.card.pretrained_from else ""
        return f"scratch{original}"

    def info(self) -> dict[str, Any]:
        recipe = self.recipe()
        return {
            "family": self.family, "card": self.card.name, "recipe": self.config.baselines.recipe,
            "recipe_fields": recipe.to_dict(), "training": self.stages,
            "inputs": [spec.describe() for spec in self.specs()], "flow_method": self.flow_used,
            "input_cache": str(input_cache_dir(self.config)), "inputs_computed": self.input_stats.get("computed", 0),
            "inputs_from_cache": self.input_stats.get("cached", 0), "input_scaling": self.card.input_scaling,
            "started_from": self.started_from(), "parameters": self.parameter_count,
            "published_parameters": self.card.parameters, "architecture": self.architecture() or "published",
        }

    def warnings(self) -> list[str]:
        notes = []
        changes = self.architecture()
        if changes:
            notes.append(f"{self.name}: architecture changed by baselines.networks ({changes}): not the published "
                         "network")
        return notes

    # ---- saving
    def save(self, folder: Path, class_names: Sequence[str] | None = None) -> None:
        """``folder/model.safetensors`` (the trained network's state dict) and ``folder/method.json`` (what
        :func:`load_method` needs), written into a new folder that replaces ``folder`` in one step."""
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            state = {key: value.detach().contiguous().cpu() for key, value in self.network.state_dict().items()}
            save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": SAVED_FORMAT})
            write_json_atomically(staging / METHOD_FILE, {
                "format": SAVED_FORMAT, "version": SAVED_VERSION, "method": self.name, "card": self.card.name,
                "inputs": [dataclasses.asdict(spec) for spec in self.specs()], "flow_method": self.flow_used,
                "input_scaling": {"kind": self.card.input_scaling, "values": [list(pair) for pair in self.scaling]},
                "recipe": {"name": self.config.baselines.recipe, "fields": self.recipe().to_dict()},
                "architecture": self.architecture(), "num_classes": self.num_classes,
                "classes": list(class_names) if class_names is not None else None,
                "started_from": self.started_from(), "config": self.config.to_dict()})
            _replace_folder(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def _replace_folder(new: Path, target: Path) -> None:
    if target.exists() and not (target / METHOD_FILE).is_file() and any(target.iterdir()):
        raise ValueError(f"{target}: exists and is not a saved method folder; choose another output folder")
    if target.exists():
        backup = target.with_name(f".{target.name}.old")
        shutil.rmtree(backup, ignore_errors=True)
        os.replace(target, backup)
        os.replace(new, target)
        shutil.rmtree(backup, ignore_errors=True)
        return
    os.replace(new, target)


# ------------------------------------------------------------------------------------------------ ELRCN, ICE-GAN
class ELRCNMethod(NetworkMethod):
    """ELRCN trained in its two stages, each for the recipe's epochs: stage 1 the VGG-16 stream(s) frame-wise
    (every flow frame labelled with its clip's label), stage 2 the LSTM on the fc7 features of the frozen streams
    (extracted once, in evaluation mode). ``train_loss`` lists stage 1's epochs, then stage 2's; the epochs
    ``--select-on-test`` scores are stage 2's."""

    stages = "two stages: the frame CNN(s) frame-wise, then the LSTM on their frozen fc7 features"

    def train(self, tensors: list[Rows], labels: np.ndarray,
              epoch_end: Callable[[int, float], None] | None) -> list[float]:
        (clips,) = tensors
        recipe, seed, device, network = self.recipe(), self.config.train.seed, self.device(), self.network
        network.to(device)
        targets = torch.as_tensor(labels).to(device)
        weights = class_weights_for(labels, self.num_classes, recipe, device)
        spatial = make_optimiser(list(network.spatial_parameters()), recipe)

        def spatial_step(batch: torch.Tensor) -> torch.Tensor:
            loss = network.spatial_loss(clips[batch].to(device), targets[batch.to(device)], weights)
            return _update(spatial, loss)

        network.train()
        first = run_epochs([spatial], len(labels), spatial_step, recipe, seed)
        features = torch.cat([network.extract_features(clips[start:start + recipe.batch_size].to(device))
                              for start in range(0, len(clips), recipe.batch_size)])
        temporal = make_optimiser(list(network.temporal_parameters()), recipe)

        def temporal_step(batch: torch.Tensor) -> torch.Tensor:
            index = batch.to(device)
            loss = F.cross_entropy(network.classify_features(features[index]), targets[index], weight=weights)
            return _update(temporal, loss)

        second = run_epochs([temporal], len(labels), temporal_step, recipe, seed, epoch_end=epoch_end)
        network.eval()
        return first + second


class ICEGANMethod(NetworkMethod):
    """ICE-GAN trained as a GAN with :func:`~micronbert.baselines.icegan.train_step` (one discriminator, then one
    generator update per batch, the recipe's optimiser for each network); the pair's onset feeds the generator,
    its apex the discriminator, whose expression capsules classify. ``train_loss`` is the discriminator's loss."""

    stages = "GAN steps (discriminator, then generator); prediction from the discriminator's expression capsules"

    def train(self, tensors: list[Rows], labels: np.ndarray,
              epoch_end: Callable[[int, float], None] | None) -> list[float]:
        (pairs,) = tensors
        recipe, seed, device, network = self.recipe(), self.config.train.seed, self.device(), self.network
        network.to(device)
        targets = torch.as_tensor(labels).to(device)
        optimisers = gan_optimisers(network, recipe)
        rng = torch.Generator().manual_seed(seed)
        channels = network.config.channels

        def step(batch: torch.Tensor) -> torch.Tensor:
            onset, apex = split_pair(pairs[batch].to(device), channels)
            losses = train_step(network.generator, network.discriminator, onset, apex, targets[batch.to(device)],
                                optimisers, rng=rng)
            return torch.tensor(losses["discriminator"])

        network.train()
        losses = run_epochs(list(optimisers), len(labels), step, recipe, seed, smallest_batch=2,
                            epoch_end=back_to_training(network, epoch_end))
        network.eval()
        return losses


def _update(optimiser: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach()


# ------------------------------------------------------------------------------------------------ registration
SUMMARIES = {
    "ststnet": "STSTNet on onset-apex optical flow (u, v, strain)",
    "offapexnet": "OFF-ApexNet: two CNN streams on onset-apex flow u and v",
    "dual-inception": "Dual-Inception: two Inception streams on onset-apex flow u and v",
    "sssn": "single-stream shallow network (AlexNet conv1-2) on flow (u, v, magnitude)",
    "dssn": "dual-stream shallow network, streams merged by product",
    "dssn-add": "dual-stream shallow network, streams merged by sum",
    "dssn-cat": "dual-stream shallow network, streams concatenated",
    "micro-attention": "pre-activation ResNet-10 with micro-attention units on the grey apex",
    "elrcn-se": "ELRCN-SE: VGG-16 on stacked flow + strain frames, then an LSTM (two stages)",
    "elrcn-te": "ELRCN-TE: one VGG-16 per feature stream, then an LSTM (two stages)",
    "stcnn": "MicroExpSTCNN: a 3D CNN on the grey onset-offset clip",
    "fusenet": "MicroExpFuseNet, intermediate fusion of eye and nose-mouth clips",
    "fusenet-late": "MicroExpFuseNet, late fusion of eye and nose-mouth clips",
    "atnet": "ATNet: ResNet-10 on the apex and LSTMs on per-cell flow over time",
    "icegan": "ICE-GAN: capsule discriminator trained with an AU-conditioned generator",
}


def _method_class(card: NetworkCard, family: str, base: type[NetworkMethod] = NetworkMethod) -> type[NetworkMethod]:
    words = "".join(part.capitalize() for part in card.name.replace("-", " ").split())
    return type(f"{words}Method", (base,), {
        "__doc__": f"{SUMMARIES[card.name]} (card {card.name}; {card.notes})", "name": card.name,
        "summary": SUMMARIES[card.name], "family": family, "card": card, "aliases": card.aliases,
        "__module__": __name__})


@register_method
class STSTNetMethod(NetworkMethod):
    """STSTNet trained from scratch on (u, v, strain) onset→apex flow images of the input layer (28×28)."""

    name = "ststnet"
    summary = SUMMARIES["ststnet"]
    family = "flow"
    card = STSTNET_CARD
    aliases = STSTNET_CARD.aliases


for _card in (OFFAPEXNET_CARD, DUAL_INCEPTION_CARD, SSSN_CARD, DSSN_CARD, DSSN_ADD_CARD, DSSN_CAT_CARD):
    register_method(_method_class(_card, "flow"))
for _card in APEX_CARDS:
    register_method(_method_class(_card, "apex"))
for _card in (ELRCN_SE_CARD, ELRCN_TE_CARD):
    register_method(_method_class(_card, "sequence", ELRCNMethod))
for _card in (STCNN_CARD, FUSENET_CARD, FUSENET_LATE_CARD, atnet_card()):
    register_method(_method_class(_card, "sequence"))
register_method(_method_class(ICEGAN_CARD, "gan", ICEGANMethod))


# ------------------------------------------------------------------------------------------------ classical
CLIP_INPUT = InputSpec("sequence", 128, ("grey",), length=20)


class ClipFeatureMethod(Method):
    """A classical method on features of the onset→offset grey clip (:data:`CLIP_INPUT`), computed once per
    sample and cached; synthetic pre-training samples join every fold's training samples."""

    family = "classical"
    features_name: ClassVar[str] = ""

    def spec(self) -> InputSpec:
        """The clip this method reads, at ``baselines.size`` and ``baselines.length`` when set."""
        baselines = self.config.baselines
        return resized_specs((CLIP_INPUT,), baselines.size, baselines.length)[0]

    def clip_features(self, clip: np.ndarray) -> np.ndarray:
        """The feature vector of one grey uint8 clip (T, H, W)."""
        raise NotImplementedError

    def settings(self) -> str:
        """The descriptor's settings (part of the feature cache key)."""
        raise NotImplementedError

    def read(self, table: pd.DataFrame, skip_bad: bool = False, progress: bool = False) -> LabelledInputs:
        return read_labelled_inputs(table, (self.spec(),), self.config, skip_bad, progress)

    def prepare(self, samples: LabelledInputs, synthetic: LabelledInputs | None = None) -> None:
        self.samples, self.synthetic = samples, synthetic
        self.cache = InputCache(input_cache_dir(self.config))
        self.features = self._features(samples)
        self.synthetic_features = self._features(synthetic) if synthetic is not None else None

    def _features(self, samples: LabelledInputs) -> np.ndarray:
        rows = []
        for key, clip in zip(samples.keys, samples.batch.tensors[0]):
            grey = np.clip(np.rint(clip[0].numpy()), 0, 255).astype(np.uint8)
            entry = hashlib.sha256(f"{FEATURES_VERSION}|{self.features_name}|{self.settings()}|"
                                   f"{pixel_digest(grey)}".encode()).hexdigest()
            values = self.cache.read(entry, (self._width(grey),))
            if values is None:
                try:
                    values = self.clip_features(grey)
                except ValueError as err:
                    raise ValueError(f"{key}: {self.features_name} features: {err}") from None
                self.cache.write(entry, values, f"{key}: {self.features_name} {self.settings()}")
            rows.append(values)
        return np.stack(rows) if rows else np.zeros((0, 0))

    def _width(self, clip: np.ndarray) -> int:
        raise NotImplementedError

    def training_set(self, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features and labels of the training positions, synthetic samples first when there are any."""
        features, labels = self.features[train], self.samples.labels[train]
        if self.synthetic is not None:
            features = np.concatenate([self.synthetic_features, features])
            labels = np.concatenate([self.synthetic.labels, labels])
        return features, labels

    def info(self) -> dict[str, Any]:
        return {"family": self.family, "inputs": [self.spec().describe()], "features": self.settings(),
                "input_cache": str(input_cache_dir(self.config)), "started_from": "not a network (fitted per fold)"}


@register_method
class LBPTOPMethod(ClipFeatureMethod):
    """LBP-TOP over a 5×5 block grid of the grey clip and a linear SVM fitted per fold (the MEGC2019 recognition
    baseline; :mod:`micronbert.baselines.lbptop` gives the descriptor's settings and sources)."""

    name = "lbptop"
    summary = "LBP-TOP features of the onset-offset grey clip and a linear SVM (the MEGC2019 baseline)"
    features_name = "lbptop"
    lbptop = LBPTOPConfig()

    def settings(self) -> str:
        return repr(self.lbptop)

    def clip_features(self, clip: np.ndarray) -> np.ndarray:
        return lbptop_features(clip, self.lbptop)

    def _width(self, clip: np.ndarray) -> int:
        return self.lbptop.feature_length

    def fit(self, train: np.ndarray, *, target: np.ndarray | None = None, watch: np.ndarray | None = None) -> None:
        classifier = LBPTOPClassifier(self.num_classes, dataclasses.replace(self.lbptop, seed=self.config.train.seed))
        self.classifier = classifier.fit(*self.training_set(train))

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        return self.classifier.predict_proba(self.features[test])


@register_method
class TGSRMethod(ClipFeatureMethod):
    """Transfer group-sparse regression (:mod:`micronbert.baselines.tgsr`) on region-grouped LBP-TOP features,
    for leave-one-dataset-out only: each fold fits on the source datasets' labelled samples and the target
    dataset's unlabelled ones, then classifies the target."""

    name = "tgsr"
    summary = "cross-database transfer group-sparse regression (leave-one-dataset-out only)"
    features_name = "tgsr-regions"
    transductive = True

    def settings(self) -> str:
        return f"levels=(1, 2, 4, 8)|{TGSR_LBPTOP!r}"

    def clip_features(self, clip: np.ndarray) -> np.ndarray:
        return region_grouped_features(clip)

    def _width(self, clip: np.ndarray) -> int:
        return len(region_groups())

    def check_protocol(self, protocol: str | None) -> None:
        if protocol != "lodo":
            raise ValueError(f"tgsr is a cross-database method: each fold fits on the source datasets with the "
                             f"held-out dataset's unlabelled samples; run it with --protocol lodo on a table of "
                             f"two or more datasets (got {protocol or 'training on all samples'})")

    def fit(self, train: np.ndarray, *, target: np.ndarray | None = None, watch: np.ndarray | None = None) -> None:
        if target is None or len(target) == 0:
            raise ValueError("tgsr needs the target dataset's unlabelled samples")
        features, labels = self.training_set(train)
        self.model = TGSR(self.num_classes, TGSRConfig()).fit(features, labels, self.features[target],
                                                              region_groups())

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(self.features[test])


# ------------------------------------------------------------------------------------------------ saved methods
def load_method(folder: str | Path, device: str | None = None) -> NetworkMethod:
    """A network baseline saved by :meth:`NetworkMethod.save` (``micronbert finetune --method …``), ready for
    :func:`predict_samples` and :func:`predict_pair`; ``device`` overrides the saved ``train.device``.

    The weights are read with safetensors (nothing is unpickled); a folder that is not a saved method, or whose
    files do not match, raises ValueError naming the file.
    """
    folder = Path(folder)
    meta_path = folder / METHOD_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path}: no saved method here (micronbert finetune writes it)")
    meta = read_json_mapping(meta_path, "saved method")
    if meta.get("format") != SAVED_FORMAT or meta.get("version") != SAVED_VERSION:
        raise ValueError(f"{meta_path}: not a {SAVED_FORMAT} file of version {SAVED_VERSION}")
    from micronbert.evaluation.methods import METHODS

    name = meta.get("method")
    if name not in METHODS or not issubclass(METHODS[name], NetworkMethod):
        raise ValueError(f"{meta_path}: method {name!r} is not a registered network baseline")
    try:
        config = FinetuneConfig.from_dict(meta["config"], "config")
        if device is not None:
            config = config.replace(train={**config.train.to_dict(), "device": device})
        method = METHODS[name](config, int(meta["num_classes"]))
        method.saved_specs = tuple(InputSpec(**{**spec, "channels": tuple(spec["channels"])})
                                   for spec in meta["inputs"])
        method.scaling = [(float(shift), float(scale)) for shift, scale in meta["input_scaling"]["values"]]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{meta_path}: {err}") from None
    method.flow_used = meta.get("flow_method")
    method.class_names = meta.get("classes")
    method.network = method.build(user_weights=False)
    _load_state(method.network, folder / WEIGHTS_FILE)
    method.network.to(method.device()).eval()
    return method


def _load_state(network: nn.Module, path: Path) -> None:
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or ["mismatch"])[0][:300]
        raise ValueError(f"{path}: the weights do not fit the saved network ({first})") from None


def predict_samples(method: NetworkMethod, table: pd.DataFrame, skip_bad: bool = False,
                    progress: bool = False) -> tuple[np.ndarray, InputBatch]:
    """Class probabilities (n, classes) of the usable rows of a sample table (labels not needed) and the input
    batch (which rows, which were skipped and why), the inputs built with the saved specs and flow method."""
    flow = method.flow_used or method.config.baselines.flow_method
    batch = build_inputs(table, method.specs(), flow_method=flow, cache_dir=input_cache_dir(method.config),
                         progress=progress, skip_bad=skip_bad, face_backend=method.config.baselines.face_backend)
    if len(batch) == 0:
        return np.zeros((0, method.num_classes)), batch
    return method.predict_inputs(batch.tensors), batch


def predict_pair(method: NetworkMethod, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
    """Class probabilities (classes,) of one (onset, apex) pair of RGB uint8 frames, for the methods whose inputs
    come from the pair alone (pair, apex, flow); a method that reads a clip raises ValueError naming its inputs."""
    kinds = [spec.kind for spec in method.specs()]
    if any(kind not in PAIR_KINDS for kind in kinds):
        raise ValueError(f"method {method.name} reads {kinds}: it needs a clip from onset to offset, not a pair; "
                         "predict from a sample table instead")
    for name, image in (("onset", onset), ("apex", apex)):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"the {name} frame must be an RGB uint8 array (H, W, 3), got "
                             f"{getattr(image, 'shape', type(image).__name__)}")
    if onset.shape != apex.shape:
        raise ValueError(f"onset and apex frames differ in size: {onset.shape[:2]} vs {apex.shape[:2]}")
    flow = resolve_flow_method(method.flow_used or method.config.baselines.flow_method) \
        if any(kind in FLOW_KINDS for kind in kinds) else None
    clip = ClipFrames({0: onset, 1: apex}, onset=0, apex=1)
    arrays = [compute_input(spec, clip, None, flow, None) for spec in method.specs()]
    tensors = [torch.from_numpy(np.asarray(array, dtype=np.float32)[None]) for array in arrays]
    return method.predict_inputs(tensors)[0]
