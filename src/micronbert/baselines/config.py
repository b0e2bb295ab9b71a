"""The ``baselines`` section of a recognition configuration: which recipe the network baselines train with, at
which input size, and the settings of the feature baselines."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from micronbert.baselines.card import Recipe
from micronbert.baselines.flowgrid import FlowGridConfig
from micronbert.baselines.framediff import FrameDifferenceConfig
from micronbert.config import Config
from micronbert.data.flow import FLOW_METHODS

RECIPES = ("default", "published")


@dataclass(frozen=True)
class BaselinesConfig(Config):
    """Settings of every baseline method.

    recipe: the named recipe every network baseline trains with, ``default`` (micronbert's, for a CPU) or
    ``published`` (the paper's or official code's); recipes: per-method changes to it, e.g.
    ``{ststnet: {epochs: 3}}``; size: input side of every network baseline (None: each one's published size;
    small values give quick runs); flow_method: optical flow of the flow inputs (``auto``: TV-L1 where
    opencv-contrib is installed, else DIS); framediff, flowgrid: the two linear feature baselines.
    """

    recipe: str = "default"
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    size: int | None = None
    flow_method: str = "auto"
    framediff: FrameDifferenceConfig = field(default_factory=FrameDifferenceConfig)
    flowgrid: FlowGridConfig = field(default_factory=FlowGridConfig)

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"baselines.recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if self.flow_method not in FLOW_METHODS:
            raise ValueError(f"baselines.flow_method must be one of {FLOW_METHODS}, got {self.flow_method!r}")
        if self.size is not None and self.size < 8:
            raise ValueError(f"baselines.size must be at least 8 pixels, got {self.size}")
        for method, changes in self.recipes.items():
            if not isinstance(changes, dict):
                raise ValueError(f"baselines.recipes.{method} must be a mapping of recipe fields, got {changes!r}")

    def recipe_for(self, method: str, recipes: dict[str, Recipe]) -> Recipe:
        """The recipe ``method`` trains with: the chosen named recipe with this configuration's changes."""
        base = recipes[self.recipe]
        changes = self.recipes.get(method, {})
        return Recipe.from_dict({**base.to_dict(), **changes}, f"baselines.recipes.{method}")
