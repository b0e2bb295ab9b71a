"""The registry of recognition methods: every method the harness can run, behind one surface.

A :class:`Method` is built with the run's :class:`~micronbert.train.finetune.FinetuneConfig` and class count.
:meth:`Method.read` reads the labelled samples of a table its own way (μ-BERT and the linear baselines read
(onset, apex) pairs at their input size, the other baselines the arrays of the input layer,
:func:`micronbert.data.inputs.build_inputs`) and returns :class:`Samples` with the same bookkeeping: the table
rows used, their labels and keys, the rows skipped with the reason. :meth:`Method.prepare` does once what every
fold shares (encoding, features), then :meth:`Method.fit` trains on the samples at some positions (after the
synthetic pre-training samples when there are any) and :meth:`Method.predict_proba` scores others.

Register a new method with :func:`register_method`; :func:`available_methods` lists them, :func:`get_method`
builds one by name or alias. The network and classical baselines live in
:mod:`micronbert.evaluation.baseline_methods`.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
import torch

from micronbert.baselines import (
    FlowGridClassifier,
    FrameDifferenceClassifier,
    LinearReadout,
    PairFeatureClassifier,
)
from micronbert.data.labelled_pairs import LabelledPairs, load_labelled_pairs
from micronbert.model import named_config, save
from micronbert.train.finetune import (
    EpochEnd,
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

NOT_IN_EPOCHS = "the method is not trained in epochs"


class Samples(Protocol):
    """What a method read for the usable labelled rows of a table: ``labels[i]`` of table row ``rows[i]``, named
    ``keys[i]``; ``skipped`` lists (sample key, reason) of the rows left out."""

    labels: np.ndarray
    rows: np.ndarray
    keys: list[str]
    skipped: list[tuple[str, str]]

    def __len__(self) -> int: ...


class Method:
    """A recognition method: ``read`` and ``prepare`` once on all samples, then ``fit`` / ``predict_proba`` per fold.

    ``family``: what kind of method it is (reported); ``transductive``: ``fit`` reads the unlabelled samples of
    the fold's test part (cross-database adaptation), the others never see them. After ``fit``: ``train_loss``,
    the mean training loss of each epoch (None for a method trained without epochs); ``pretrain_loss``, the same
    for the synthetic pre-training (None without it); ``epoch_probabilities``, the class probabilities of the
    ``watch`` samples after each epoch (``--select-on-test`` only). ``progress``: show progress bars (one long
    fit, as in ``micronbert finetune``).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    family: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    transductive: ClassVar[bool] = False
    train_loss: list[float] | None = None
    pretrain_loss: list[float] | None = None
    epoch_probabilities: list[np.ndarray] | None = None
    progress: bool = False

    def __init__(self, config: FinetuneConfig, num_classes: int) -> None:
        self.config = config
        self.num_classes = num_classes

    def input_size(self) -> int:
        """Side of the frames the method reads (the pairs are loaded at this size): the named model's."""
        model = self.config.model
        return named_config(model.name, **model.overrides).img_size

    def read(self, table: pd.DataFrame, skip_bad: bool = False, progress: bool = False) -> Samples:
        """The labelled samples of ``table`` as this method reads them; an unlabelled or unusable row raises a
        :class:`~micronbert.data.labelled_pairs.SampleError` naming it unless ``skip_bad`` (then it is listed in
        ``skipped``). The default: (onset, apex) pairs at :meth:`input_size`."""
        return load_labelled_pairs(table, self.input_size(), skip_bad=skip_bad)

    def check_protocol(self, protocol: str) -> None:
        """Raise ValueError when the method cannot run under ``protocol`` (``None``: training on all samples)."""

    def prepare(self, samples: Samples, synthetic: Samples | None = None) -> None:
        """Work shared by every fold (encoding, features); ``synthetic``: samples read from the synthetic
        pre-training set (``train.pretrain_on_synthetic``). The default keeps both."""
        self.samples, self.synthetic = samples, synthetic

    def fit(self, train: np.ndarray, *, target: np.ndarray | None = None, watch: np.ndarray | None = None) -> None:
        """Train on the samples at positions ``train``. ``target``: the unlabelled test positions, given to
        :attr:`transductive` methods only. ``watch``: positions whose probabilities are recorded after every
        training epoch in :attr:`epoch_probabilities` (``--select-on-test``; it must not change the training)."""
        raise NotImplementedError

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        """Class probabilities (len(test), classes) of the samples at positions ``test``."""
        raise NotImplementedError

    def select_on_test_unavailable(self) -> str | None:
        """Why ``--select-on-test`` cannot score this method epoch by epoch (None when it can)."""
        return NOT_IN_EPOCHS

    def save(self, folder: Path, class_names: Sequence[str] | None = None) -> None:
        """Write the trained model to ``folder`` (``micronbert finetune``)."""
        raise ValueError(f"method {self.name} cannot be saved yet: finetune trains micronbert, vit-scratch and the "
                         "network baselines")

    def identity(self) -> dict[str, Any]:
        """What, beyond the configuration, decides the results (e.g. the optical flow actually used): part of the
        identity of a resumable run, known after :meth:`read`."""
        return {}

    def info(self) -> dict[str, Any]:
        """Facts about the run worth reporting (e.g. how many frames were encoded)."""
        return {}

    def warnings(self) -> list[str]:
        """What the report should warn about this method's configuration."""
        return []


METHODS: dict[str, type[Method]] = {}
ALIASES: dict[str, str] = {}


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator adding a :class:`Method` to the registry under its ``name`` and ``aliases``."""
    names = (cls.name, *cls.aliases)
    if not cls.name or any(name in METHODS or name in ALIASES for name in names):
        raise ValueError(f"method name {cls.name!r} (aliases {cls.aliases}) is empty or registered twice")
    METHODS[cls.name] = cls
    ALIASES.update({alias: cls.name for alias in cls.aliases})
    return cls


def available_methods() -> list[str]:
    """Names of the registered methods (aliases left out)."""
    return list(METHODS)


def canonical_method_name(name: str) -> str:
    """The registered name of ``name`` (a name or an alias); ``ValueError`` lists the names."""
    if name in METHODS:
        return name
    if name in ALIASES:
        return ALIASES[name]
    raise ValueError(f"unknown method {name!r}; available: {', '.join(METHODS)}")


def check_method_sections(config: FinetuneConfig) -> None:
    """Raise ValueError for a key of ``baselines.recipes``, ``baselines.networks`` or ``baselines.weights`` that
    names no registered method (a typo would otherwise be ignored)."""
    for section in ("recipes", "networks", "weights"):
        for key in getattr(config.baselines, section):
            if key not in METHODS and key not in ALIASES:
                raise ValueError(f"baselines.{section}.{key}: no method is called {key!r}; available: "
                                 f"{', '.join(METHODS)}")


def get_method(name: str, config: FinetuneConfig, num_classes: int) -> Method:
    """An instance of the method called ``name`` (or an alias of it); ``ValueError`` lists the names."""
    return METHODS[canonical_method_name(name)](config, num_classes)


# ------------------------------------------------------------------------------------------------ μ-BERT
@register_method
class MicronBertMethod(Method):
    """μ-BERT with the configured weights and mode (the recognition head of METHOD.md §8).

    With synthetic pre-training, each fold's model first trains on the synthetic pairs in the configured mode
    (the same epochs, batch and learning rates), then on the fold's training pairs.
    """

    name = "micronbert"
    summary = "μ-BERT from its pre-trained weights (model.weights or --weights)"
    family = "transformer"
    pretrained = True

    def input_size(self) -> int:
        return self.config.model.model_config().img_size if self.pretrained else super().input_size()

    def prepare(self, samples: LabelledPairs, synthetic: LabelledPairs | None = None) -> None:
        self.pairs, self.synthetic = samples, synthetic
        torch.manual_seed(self.config.train.seed)  # the random encoder of vit-scratch depends on the seed alone
        self.initial = build_model(self.config, self.num_classes, pretrained=self.pretrained)
        self.cache_stats = None
        self.tokens = self.synthetic_tokens = None
        self.features = self.synthetic_features = None
        if self.config.train.mode == "frozen":
            onset, apex, self.cache_stats = cached_pair_tokens(self.initial, samples, self.config)
            self.tokens = (onset, apex)
            if synthetic is not None:
                onset, apex, _ = cached_pair_tokens(self.initial, synthetic, self.config)
                self.synthetic_tokens = (onset, apex)
            if self.config.train.frozen_train == "head":
                self.features = head_inputs(self.initial, *self.tokens)
                if synthetic is not None:
                    self.synthetic_features = head_inputs(self.initial, *self.synthetic_tokens)

    def info(self) -> dict[str, Any]:
        if self.cache_stats is None:
            return {}
        return {"frames_encoded": self.cache_stats.encoded, "frames_from_cache": self.cache_stats.hits}

    def warnings(self) -> list[str]:
        if self.pretrained and not self.config.model.weights:
            return ["method micronbert without weights starts from random initialisation, as vit-scratch does; "
                    "give the pre-trained model with --weights (or model.weights in the configuration)"]
        return []

    def select_on_test_unavailable(self) -> str | None:
        return None

    def fit(self, train: np.ndarray, *, target: np.ndarray | None = None, watch: np.ndarray | None = None) -> None:
        torch.manual_seed(self.config.train.seed)
        self.model = copy.deepcopy(self.initial)
        self.model.reset_head(self.num_classes, dropout=self.config.train.head_dropout)
        if self.synthetic is not None:
            every = np.arange(len(self.synthetic))
            self.pretrain_loss = self._train(every, self.synthetic, self.synthetic_tokens, self.synthetic_features)
        self.epoch_probabilities = [] if watch is not None else None

        def score_watched(epoch: int, loss: float) -> None:  # --select-on-test: the watched samples after each epoch
            self.epoch_probabilities.append(self.predict_proba(watch))
            self.model.train()

        self.train_loss = self._train(train, self.pairs, self.tokens, self.features,
                                      score_watched if watch is not None else None)

    def _train(self, positions: np.ndarray, pairs: LabelledPairs, tokens: tuple[torch.Tensor, torch.Tensor] | None,
               features: torch.Tensor | None, epoch_end: EpochEnd | None = None) -> list[float]:
        labels = pairs.labels[positions]
        if features is not None:
            return train_head_on_features(self.model, features[positions], labels, self.config, self.progress,
                                          epoch_end)
        if tokens is not None:
            return train_on_tokens(self.model, tokens[0][positions], tokens[1][positions], labels, self.config,
                                   self.progress, epoch_end)
        return train_on_pairs(self.model, pairs.onsets[positions], pairs.apexes[positions], labels, self.config,
                              progress=self.progress, epoch_end=epoch_end)

    def save(self, folder: Path, class_names: Sequence[str] | None = None) -> None:
        save(self.model, folder)

    def predict_proba(self, test: np.ndarray) -> np.ndarray:
        if self.features is not None:
            return predict_features(self.model, self.features[test])
        if self.tokens is not None:
            return predict_tokens(self.model, self.tokens[0][test], self.tokens[1][test])
        return predict_pairs(self.model, self.pairs.onsets[test], self.pairs.apexes[test])


@register_method
class VitScratchMethod(MicronBertMethod):
    """The same encoder, DMA and head from random initialisation (no pre-training)."""

    name = "vit-scratch"
    summary = "the same network from random initialisation (what pre-training buys)"
    pretrained = False


# ---------------------------------------------------------------------------------------- feature baselines
class LinearBaselineMethod(Method):
    """A :class:`~micronbert.baselines.PairFeatureClassifier`: features of every pair computed once, a linear
    read-out fitted per fold. Synthetic pre-training samples join every fold's training samples ([PROPOSED]: a
    convex read-out fitted twice keeps only its second fit, so "pre-train, then train" becomes training on both)."""

    family = "linear"

    def classifier(self) -> PairFeatureClassifier:
        raise NotImplementedError

    def prepare(self, samples: LabelledPairs, synthetic: LabelledPairs | None = None) -> None:
        self.pairs, self.synthetic = samples, synthetic
        classifier = self.classifier()
        self.readout_config = classifier.config
        self.features = (classifier.features(list(samples.onsets), list(samples.apexes)) if len(samples.labels)
                         else np.zeros((0, 1)))
        self.synthetic_features = (classifier.features(list(synthetic.onsets), list(synthetic.apexes))
                                   if synthetic is not None else None)

    def fit(self, train: np.ndarray, *, target: np.ndarray | None = None, watch: np.ndarray | None = None) -> None:
        features, labels = self.features[train], self.pairs.labels[train]
        if self.synthetic is not None:
            features = np.concatenate([self.synthetic_features, features])
            labels = np.concatenate([self.synthetic.labels, labels])
        self.readout = LinearReadout(max(self.num_classes, 2), self.readout_config)
        self.readout.fit(features, labels)

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
