"""What the harness needs to know of a neural baseline: its :class:`NetworkCard` (how to build it, what it reads,
its published size) and its training :class:`Recipe` s, ``published`` (as the paper or its code trained) and
``default`` (what micronbert recommends on a CPU)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from micronbert.config import Config
from micronbert.data.inputs.spec import InputSpec
from micronbert.io import check_positive_int

OPTIMISERS = ("adam", "adamw", "sgd")
SCHEDULES = ("step", "cosine")
INPUT_SCALINGS = ("none", "mean-max", "symmetric")


@dataclass(frozen=True)
class Recipe(Config):
    """Optimiser, learning rate, epochs and batch of one training run (a fixed budget: the last epoch counts).

    schedule: ``step`` (the learning rate is multiplied by ``lr_gamma`` at each epoch of ``lr_steps``; no steps:
    constant) or ``cosine`` (annealed per epoch from ``lr`` towards 0 over ``epochs``, as torch's
    ``CosineAnnealingLR`` with ``T_max = epochs``); decay: Keras' inverse-time decay, the learning rate divided
    by ``1 + decay × updates so far`` on top of the schedule (0: off); class_weighted: balanced class weights in
    the cross-entropy; source: where the numbers come from (paper, code, or "[PROPOSED] ...").
    """

    optimiser: str
    lr: float
    epochs: int
    batch_size: int
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    schedule: str = "step"
    decay: float = 0.0
    class_weighted: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"recipe optimiser must be one of {OPTIMISERS}, got {self.optimiser!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"recipe schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        check_positive_int("recipe epochs", self.epochs)
        check_positive_int("recipe batch_size", self.batch_size)
        if not float(self.lr) > 0 or float(self.weight_decay) < 0 or not 0 <= float(self.momentum) < 1:
            raise ValueError(f"recipe needs lr > 0, weight_decay >= 0 and momentum in [0, 1), got lr={self.lr!r}, "
                             f"weight_decay={self.weight_decay!r}, momentum={self.momentum!r}")
        if not float(self.decay) >= 0:
            raise ValueError(f"recipe decay must be >= 0, got {self.decay!r}")
        object.__setattr__(self, "lr_steps", tuple(int(step) for step in self.lr_steps))


@dataclass(frozen=True)
class NetworkCard:
    """A registered network.

    build(num_classes, inputs) returns the module for ``inputs`` (the card's ``inputs``, possibly
    :meth:`InputSpec.resized`); its ``forward`` takes one tensor per input spec, in order, and returns logits.
    parameters: the published parameter count at ``inputs`` with ``classes`` classes (checked by a test);
    pretrained_from: what the original started from ("" when it trained from scratch); notes: every [PROPOSED]
    choice, in words.

    options: the dataclass of the network's architecture options (widths, …) when it has any; ``build`` then also
    takes ``config=`` an instance of it (``baselines.networks`` in a run's configuration: a smaller network for
    quick runs, not the published one). load_weights(module, path): loads a user's pre-trained weights file into a
    freshly built module (``baselines.weights``), None when the card reads none. input_scaling: what the harness
    does to the input tensors before the network sees them: ``none``; ``mean-max``: subtract the training samples'
    global mean, then divide by the global maximum of the result (per input, computed on each fold's training
    samples only); ``symmetric``: pixel values 0–255 mapped to [-1, 1].
    """

    name: str
    build: Callable[..., nn.Module]
    inputs: tuple[InputSpec, ...]
    recipes: Mapping[str, Recipe]
    parameters: int
    classes: int = 3
    pretrained_from: str = ""
    notes: str = ""
    aliases: tuple[str, ...] = ()
    options: type | None = None
    load_weights: Callable[[nn.Module, str | Path], Any] | None = None
    input_scaling: str = "none"

    def __post_init__(self) -> None:
        missing = {"published", "default"} - set(self.recipes)
        if missing:
            raise ValueError(f"network {self.name}: recipes {sorted(missing)} missing")
        if self.input_scaling not in INPUT_SCALINGS:
            raise ValueError(f"network {self.name}: input_scaling must be one of {INPUT_SCALINGS}, got "
                             f"{self.input_scaling!r}")
