"""The registry of recognition methods: every method the harness can run, behind one surface.

A :class:`Method` is built with the run's :class:`~micronbert.train.finetune.FinetuneConfig` and class count;
:meth:`Method.prepare` does once what every fold shares (reading inputs, encoding, features), then
:meth:`Method.fit` trains on the samples at some positions and :meth:`Method.predict_proba` scores others.
Register a new method with :func:`register_method`; :func:`available_methods` lists them.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from micronbert.baselines import (
    FlowGridClassifier,
    FrameDifferenceClassifier,
    LinearReadout,
    PairFeatureClassifier,
    STSTNet,
    flow_images_to_tensor,
)
from micronbert.baselines.card import NetworkCard, Recipe
from micronbert.baselines.training import predict_network, train_network
from micronbert.data.flow import flow_features
from micronbert.data.inputs.spec import InputSpec
from micronbert.data.labelled_pairs import LabelledPairs
from micronbert.model import named_config, save
from micronbert.train.device import pick_device
from micronbert.train.finetune import (
    FinetuneConfig,
    build_model,
    cached_pair_tokens,
    head_inputs,
    predict_features,
    predict_pairs,
    predict_tokens,
    train_head_on_features,
    train_on_pairs,
    train_on_tokens,
)


class Method:
    """A recognition method: ``prepare`` once on all samples, then ``fit`` / ``predict_proba`` per fold.

    ``train_loss``: the mean training loss of each epoch of the last ``fit`` (None for a method trained without
    epochs); ``progress``: show a progress bar while training (one long fit, as in ``micronbert finetune``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    train_loss: list[float] | None = None
    progress: bool = False

    def __init__(self, config: FinetuneConfig, num_classes: int) -> None:
        self.config = config
        self.num_classes = num_classes

    def input_size(self) -> int:
        """Side of the frames the method reads (the pairs are loaded at this size): the named model's."""
        model = self.config.model
        return named_config(model.name, **model.overrides).img_size

    def prepare(self, pairs: LabelledPairs) -> None:
        """Work shared by every fold (encoding, flow, features); the default keeps the pairs."""
        self.pairs = pairs

    def fit(self, train: np.ndarray) -> None:
        """Train on the samples at positions ``train``."""
        raise NotImplementedError

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        """Class probabilities (len(test), classes) of the samples at positions ``test``."""
        raise NotImplementedError

    def save(self, folder: Path) -> None:
        """Write the trained model to ``folder`` (``micronbert finetune``)."""
        raise ValueError(f"method {self.name} cannot be saved yet: finetune trains micronbert and vit-scratch")

    def info(self) -> dict[str, Any]:
        """Facts about the run worth reporting (e.g. how many frames were encoded)."""
        return {}

    def warnings(self) -> list[str]:
        """What the report should warn about this method's configuration."""
        return []


METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator adding a :class:`Method` to the registry under its ``name``."""
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or registered twice")
    METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Names of the registered methods."""
    return list(METHODS)


def get_method(name: str, config: FinetuneConfig, num_classes: int) -> Method:
    """An instance of the method called ``name``; ``ValueError`` lists the names."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")
    return METHODS[name](config, num_classes)


# ------------------------------------------------------------------------------------------------ μ-BERT
@register_method
class MicronBertMethod(Method):
    """μ-BERT with the configured weights and mode (the recognition head of METHOD.md §8)."""

    name = "micronbert"
    summary = "μ-BERT from its pre-trained weights (model.weights or --weights)"
    pretrained = True

    def input_size(self) -> int:
        return self.config.model.model_config().img_size if self.pretrained else super().input_size()

    def prepare(self, pairs: LabelledPairs) -> None:
        self.pairs = pairs
        torch.manual_seed(self.config.train.seed)  # the random encoder of vit-scratch depends on the seed alone
        self.initial = build_model(self.config, self.num_classes, pretrained=self.pretrained)
        self.cache_stats = None
        if self.config.train.mode == "frozen":
            self.onset_tokens, self.apex_tokens, self.cache_stats = cached_pair_tokens(self.initial, pairs,
                                                                                       self.config)
            if self.config.train.frozen_train == "head":
                self.features = head_inputs(self.initial, self.onset_tokens, self.apex_tokens)

    def info(self) -> dict[str, Any]:
        if self.cache_stats is None:
            return {}
        return {"frames_encoded": self.cache_stats.encoded, "frames_from_cache": self.cache_stats.hits}

    def warnings(self) -> list[str]:
        if self.pretrained and not self.config.model.weights:
            return ["method micronbert without weights starts from random initialisation, as vit-scratch does; "
                    "give the pre-trained model with --weights (or model.weights in the configuration)"]
        return []

    def fit(self, train: np.ndarray) -> None:
        torch.manual_seed(self.config.train.seed)
        self.model = copy.deepcopy(self.initial)
        self.model.reset_head(self.num_classes, dropout=self.config.train.head_dropout)
        labels = self.pairs.labels[train]
        train_config = self.config.train
        if train_config.mode == "frozen" and train_config.frozen_train == "head":
            self.train_loss = train_head_on_features(self.model, self.features[train], labels, self.config,
                                                     self.progress)
        elif train_config.mode == "frozen":
            self.train_loss = train_on_tokens(self.model, self.onset_tokens[train], self.apex_tokens[train], labels,
                                              self.config, self.progress)
        else:
            self.train_loss = train_on_pairs(self.model, self.pairs.onsets[train], self.pairs.apexes[train], labels,
                                             self.config, progress=self.progress)

    def save(self, folder: Path) -> None:
        save(self.model, folder)

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        train_config = self.config.train
        if train_config.mode == "frozen" and train_config.frozen_train == "head":
            return predict_features(self.model, self.features[test])
        if train_config.mode == "frozen":
            return predict_tokens(self.model, self.onset_tokens[test], self.apex_tokens[test])
        return predict_pairs(self.model, self.pairs.onsets[test], self.pairs.apexes[test])


@register_method
class VitScratchMethod(MicronBertMethod):
    """The same encoder, DMA and head from random initialisation (no pre-training)."""

    name = "vit-scratch"
    summary = "the same network from random initialisation (what pre-training buys)"
    pretrained = False



# ---------------------------------------------------------------------------------------- network baselines
class NetworkMethod(Method):
    """A network baseline described by a :class:`~micronbert.baselines.card.NetworkCard`, trained with the
    configured recipe (:class:`~micronbert.baselines.config.BaselinesConfig`)."""

    card: ClassVar[NetworkCard]

    def recipe(self) -> Recipe:
        """The recipe this run trains with."""
        return self.config.baselines.recipe_for(self.name, dict(self.card.recipes))

    def specs(self) -> tuple[InputSpec, ...]:
        """The inputs at the configured size (the published size when none is set)."""
        size = self.config.baselines.size
        return tuple(spec.resized(size) if size else spec for spec in self.card.inputs)

    def inputs(self, pairs: LabelledPairs) -> list[torch.Tensor]:
        """One tensor per input spec for every pair."""
        raise NotImplementedError

    def prepare(self, pairs: LabelledPairs) -> None:
        self.pairs = pairs
        self.tensors = self.inputs(pairs)

    def fit(self, train: np.ndarray) -> None:
        seed = self.config.train.seed
        torch.manual_seed(seed)
        self.network = self.card.build(self.num_classes, self.specs())
        self.train_loss = train_network(self.network, [tensor[train] for tensor in self.tensors],
                                        self.pairs.labels[train], self.recipe(), self.num_classes, seed,
                                        pick_device(self.config.train.device))

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        return predict_network(self.network, [tensor[test] for tensor in self.tensors])

    def info(self) -> dict[str, Any]:
        return {"recipe": self.config.baselines.recipe, "recipe_fields": self.recipe().to_dict(),
                "inputs": [spec.__dict__ for spec in self.specs()],
                "pretrained_from": self.card.pretrained_from or "none (trained from scratch)"}


def _build_ststnet(num_classes: int, inputs: tuple[InputSpec, ...]) -> STSTNet:
    return STSTNet(num_classes, in_channels=len(inputs[0].channels))


STSTNET_CARD = NetworkCard(
    name="ststnet", build=_build_ststnet,
    inputs=(InputSpec("flow", 28, ("u", "v", "strain")),),
    recipes={"published": Recipe("adam", 5e-5, 500, 256, class_weighted=False,
                                 source="STSTNet official code: Adam 5e-5, batch 256, 500 epochs"),
             "default": Recipe("adam", 5e-4, 40, 16, source="[PROPOSED] micronbert: 40 epochs of batch 16 on a CPU")},
    parameters=1651)


@register_method
class STSTNetMethod(NetworkMethod):
    """STSTNet trained from scratch on 28×28 (u, v, strain) onset→apex flow images."""

    name = "ststnet"
    summary = "STSTNet on onset-apex optical flow"
    card = STSTNET_CARD

    def inputs(self, pairs: LabelledPairs) -> list[torch.Tensor]:
        images = [flow_features(onset, apex, method=self.config.baselines.flow_method)
                  for onset, apex in zip(pairs.onsets, pairs.apexes)]
        return [flow_images_to_tensor(np.stack(images)) if images else torch.zeros(0, 3, 28, 28)]


# ---------------------------------------------------------------------------------------- feature baselines
class LinearBaselineMethod(Method):
    """A :class:`~micronbert.baselines.PairFeatureClassifier`: features of every pair computed once, a linear
    read-out fitted per fold."""

    def classifier(self) -> PairFeatureClassifier:
        raise NotImplementedError

    def prepare(self, pairs: LabelledPairs) -> None:
        self.pairs = pairs
        classifier = self.classifier()
        self.readout_config = classifier.config
        self.features = (classifier.features(list(pairs.onsets), list(pairs.apexes)) if len(pairs.labels)
                         else np.zeros((0, 1)))

    def fit(self, train: np.ndarray) -> None:
        self.readout = LinearReadout(max(self.num_classes, 2), self.readout_config)
        self.readout.fit(self.features[train], self.pairs.labels[train])

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        return self.readout.predict_proba(self.features[test])[:, :self.num_classes]


@register_method
class FrameDiffMethod(LinearBaselineMethod):
    """Grey apex − onset difference, downsampled, multinomial logistic regression."""

    name = "framediff"
    summary = "a linear classifier on the grey frame difference"

    def classifier(self) -> PairFeatureClassifier:
        return FrameDifferenceClassifier(max(self.num_classes, 2), self.config.baselines.framediff)


@register_method
class FlowGridMethod(LinearBaselineMethod):
    """Onset→apex optical flow averaged per grid cell, median removed, multinomial logistic regression."""

    name = "flowgrid"
    summary = "a linear classifier on the onset-apex optical flow averaged per grid cell"

    def classifier(self) -> PairFeatureClassifier:
        return FlowGridClassifier(max(self.num_classes, 2), self.config.baselines.flowgrid)
