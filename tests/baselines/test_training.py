"""The baselines' optimisers: fused on a CPU, the same update as torch's plain loop up to rounding."""
from __future__ import annotations

import pytest
import torch

from micronbert.baselines.card import Recipe
from micronbert.baselines.training import can_fuse, make_optimiser

PLAIN = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


@pytest.mark.parametrize("name", sorted(PLAIN))
def test_fused_optimiser_matches_the_plain_one(name: str) -> None:
    recipe = Recipe(name, 1e-2, epochs=1, batch_size=2, weight_decay=1e-3)
    torch.manual_seed(0)
    fused_parameters = [torch.nn.Parameter(torch.randn(shape)) for shape in ((40, 30), (30,), (3, 3, 5, 5))]
    plain_parameters = [torch.nn.Parameter(parameter.detach().clone()) for parameter in fused_parameters]
    fused = make_optimiser(fused_parameters, recipe)
    extra = {"momentum": recipe.momentum} if name == "sgd" else {}
    plain = PLAIN[name](plain_parameters, lr=recipe.lr, weight_decay=recipe.weight_decay, **extra)
    assert fused.defaults["fused"] is True
    for _ in range(25):
        for mine, theirs in zip(fused_parameters, plain_parameters, strict=True):
            mine.grad = torch.randn_like(mine)
            theirs.grad = mine.grad.clone()
        fused.step()
        plain.step()
    for mine, theirs in zip(fused_parameters, plain_parameters, strict=True):
        assert not torch.equal(mine, mine.new_zeros(mine.shape))
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6)


def test_only_floating_parameters_on_one_cpu_or_cuda_device_are_fused() -> None:
    floating = torch.nn.Parameter(torch.zeros(3))
    assert can_fuse([floating])
    assert not can_fuse([])
    assert not can_fuse([floating, torch.nn.Parameter(torch.zeros(3, device="meta"))])
    meta = make_optimiser([torch.nn.Parameter(torch.zeros(2, device="meta"))], Recipe("adam", 1e-3, 1, 2))
    assert not meta.defaults["fused"]
