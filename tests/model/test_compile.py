"""The model under torch.compile and torch.export: same outputs as eager, recognition in one graph.

The ``aot_eager`` backend traces and runs the graphs without generating kernels, so this checks on any CPU
what a GPU run with ``train.compile: true`` (or an exported recognition model) relies on.
"""
from __future__ import annotations

import pytest
import torch

from micronbert import create_model


@pytest.fixture(scope="module")
def pair() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    onset = torch.randn(3, 3, 64, 64, generator=generator)
    return onset, onset + 0.05 * torch.randn(onset.shape, generator=generator)


def test_recognition_compiles_to_one_graph_with_the_eager_outputs(pair):
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=3).eval()
    torch._dynamo.reset()

    onset, apex = pair
    compiled = torch.compile(model.recognize, backend="aot_eager", fullgraph=True)(onset=onset, apex=apex)
    eager = model.recognize(onset=onset, apex=apex)

    assert compiled.keys() == eager.keys()
    for key in eager:
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-5, atol=1e-6)


def test_recognition_exports_and_the_export_keeps_the_logits(pair):
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=3).eval()

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, onset: torch.Tensor, apex: torch.Tensor) -> torch.Tensor:
            return self.model.recognize(onset=onset, apex=apex)["logits"]

    exported = torch.export.export(Logits(), pair)

    torch.testing.assert_close(exported.module()(*pair), model.recognize(onset=pair[0], apex=pair[1])["logits"],
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("agreement", ["ema-mse", "off"])
def test_a_compiled_pretraining_step_matches_eager_for_the_same_generator(pair, agreement):
    torch.manual_seed(0)
    model = create_model("tiny", agreement=agreement).train()
    torch._dynamo.reset()
    compiled_model = torch.compile(model, backend="aot_eager")

    compiled = compiled_model(*pair, generator=torch.Generator().manual_seed(5))
    eager = model(*pair, generator=torch.Generator().manual_seed(5))

    assert torch.equal(compiled["swap_mask"], eager["swap_mask"])
    for key in ("loss", "rec_loss", "agree_loss", "pred", "dma_map", "saliency"):
        torch.testing.assert_close(compiled[key], eager[key], rtol=1e-5, atol=1e-6)
    compiled["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_pretraining_step_compiles_to_one_graph_with_its_draws_given(pair):
    """With the random draws made beforehand (as the training loop's DataLoader does) and the input check off,
    the whole pre-training forward pass, motion and volatility terms included, is one graph; loss and gradients
    equal eager ones."""
    from micronbert.model.draws import draw_step

    torch.manual_seed(0)
    model = create_model("tiny", motion_weight=1.0, volatility_weight=1.0, decoder_residual=True).train()
    frame_t, frame_d = pair
    draws = draw_step(model.config, frame_t.shape[0], 3, 64, 64, torch.Generator().manual_seed(1))
    torch._dynamo.reset()

    def step(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        return model(first, second, draws=draws, check=False)["loss"]

    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)(frame_t, frame_d)
    compiled.backward()
    compiled_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad()
    eager = step(frame_t, frame_d)
    eager.backward()
    eager_grads = [p.grad for p in model.parameters() if p.grad is not None]
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
    assert len(compiled_grads) == len(eager_grads) > 0
    for got, want in zip(compiled_grads, eager_grads):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
