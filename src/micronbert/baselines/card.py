"""What the harness needs to know of a neural baseline: its :class:`NetworkCard` (how to build it, what it reads,
its published size) and its training :class:`Recipe` s, ``published`` (as the paper or its code trained) and
``default`` (what micronbert recommends on a CPU)."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from torch import nn

from micronbert.config import Config
from micronbert.data.inputs.spec import InputSpec
from micronbert.io import check_positive_int

OPTIMISERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class Recipe(Config):
    """Optimiser, learning rate, epochs and batch of one training run (a fixed budget: the last epoch counts).

    lr_steps: epochs after which the learning rate is multiplied by ``lr_gamma``; class_weighted: balanced class
    weights in the cross-entropy; source: where the numbers come from (paper, code, or "[PROPOSED] ...").
    """

    optimiser: str
    lr: float
    epochs: int
    batch_size: int
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_steps: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    class_weighted: bool = True
    source: str = ""

    def __post_init__(self) -> None:
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"recipe optimiser must be one of {OPTIMISERS}, got {self.optimiser!r}")
        check_positive_int("recipe epochs", self.epochs)
        check_positive_int("recipe batch_size", self.batch_size)
        if not float(self.lr) > 0 or float(self.weight_decay) < 0 or not 0 <= float(self.momentum) < 1:
            raise ValueError(f"recipe needs lr > 0, weight_decay >= 0 and momentum in [0, 1), got lr={self.lr!r}, "
                             f"weight_decay={self.weight_decay!r}, momentum={self.momentum!r}")
        object.__setattr__(self, "lr_steps", tuple(int(step) for step in self.lr_steps))


@dataclass(frozen=True)
class NetworkCard:
    """A registered network.

    build(num_classes, inputs) returns the module for ``inputs`` (the card's ``inputs``, possibly
    :meth:`InputSpec.resized`); its ``forward`` takes one tensor per input spec, in order, and returns logits.
    parameters: the published parameter count at ``inputs`` with ``classes`` classes (checked by a test);
    pretrained_from: what the original started from ("" when it trained from scratch); notes: every [PROPOSED]
    choice, in words.
    """

    name: str
    build: Callable[[int, tuple[InputSpec, ...]], nn.Module]
    inputs: tuple[InputSpec, ...]
    recipes: Mapping[str, Recipe]
    parameters: int
    classes: int = 3
    pretrained_from: str = ""
    notes: str = ""
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        missing = {"published", "default"} - set(self.recipes)
        if missing:
            raise ValueError(f"network {self.name}: recipes {sorted(missing)} missing")
