import pytest
import torch

import micronbert
from micronbert.model import load, save, surprise_map
from micronbert.model.volatility import patch_change_energy, stability_weights, volatility_loss


def test_patch_change_energy_is_the_mean_squared_difference_per_patch():
    a = torch.zeros(1, 3, 16, 16)
    b = a.clone()
    b[:, :, :8, 8:] = 2.0  # the top-right patch changes by 2 in every pixel and channel
    b[:, 0, 8:, :8] = 3.0  # the bottom-left patch by 3 in one channel of three
    energy = patch_change_energy(a, b, 8)
    torch.testing.assert_close(energy, torch.tensor([[0.0, 4.0, 3.0, 0.0]]))


def test_volatility_loss_is_zero_at_the_observed_change_and_pulls_towards_it():
    energy = torch.tensor([[0.01, 0.5, 2.0]])
    assert float(volatility_loss(energy.log(), energy)) == pytest.approx(0.0, abs=1e-6)
    guess = torch.zeros(1, 3, requires_grad=True)
    loss = volatility_loss(guess, energy)
    assert loss > 0
    loss.backward()
    # d/ds of e·exp(−s) + s at s = 0 is 1 − e: up where the change is larger than predicted, down where smaller
    assert guess.grad[0, 0] > 0 and guess.grad[0, 2] < 0


def test_stability_weights_favour_patches_expected_to_stay_still():
    log_expected = torch.tensor([[-5.0, -5.0, 0.0, 0.0]])
    weights = stability_weights(log_expected)
    torch.testing.assert_close(weights.mean(-1), torch.ones(1))
    assert weights[0, 0] > 100 * weights[0, 2]
    change = torch.tensor([[0.1, 0.0, 0.5, 0.0]])
    surprise = surprise_map(change, log_expected)
    torch.testing.assert_close(surprise, change * weights)
    assert surprise[0, 0] > surprise[0, 2]  # a small change where none is expected outranks a large expected one
    with pytest.raises(ValueError, match="differ in shape"):
        surprise_map(change, log_expected[:, :3])


def test_volatility_term_is_added_to_the_loss_and_trains_the_head():
    model = micronbert.create_model("tiny", volatility_weight=0.5)
    images = torch.randn(2, 3, 64, 64)
    out = model(images, images + 0.1 * torch.randn_like(images), generator=torch.Generator().manual_seed(0))
    assert out["volatility_loss"] > 0
    torch.testing.assert_close(out["loss"], out["rec_loss"] + out["agree_loss"] + 0.5 * out["volatility_loss"])
    out["loss"].backward()
    assert model.volatility_head.fc.weight.grad.abs().sum() > 0
    plain = micronbert.create_model("tiny")
    assert plain.volatility_head is None and plain(images, images)["volatility_loss"] == 0
    with pytest.raises(ValueError, match="no volatility head"):
        plain.volatility(plain.encode(images))
    with pytest.raises(ValueError, match="volatility_weight"):
        micronbert.create_model("tiny", volatility_weight=-1.0)


def still_and_busy_pairs(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """32 px pairs whose left half, brighter, is redrawn between the frames and whose right half only gets faint
    noise (a blinking screen beside a still face)."""
    first = torch.randn(batch, 3, 32, 32, generator=generator)
    second = first + 0.02 * torch.randn(first.shape, generator=generator)
    first[..., :16] += 2.0
    second[..., :16] = torch.randn(batch, 3, 32, 16, generator=generator) + 2.0
    return first, second


def test_the_head_learns_where_change_is_expected_and_the_surprise_map_follows(tmp_path):
    torch.manual_seed(0)
    model = micronbert.create_model("tiny", volatility_weight=1.0)
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        first, second = still_and_busy_pairs(8, generator)
        loss = volatility_loss(model.volatility(model.encode(second)), patch_change_energy(first, second, 8))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    first, second = still_and_busy_pairs(4, generator)
    with torch.no_grad():
        log_expected = model.volatility(model.encode(second)).reshape(4, 4, 4)
    # the busy half changes by about 2 per element (log 0.69), the still half by 0.0004 (log −7.8)
    assert (log_expected[..., :2].mean() - log_expected[..., 2:].mean()) > 5.0
    # in the surprise map a change counts for far more in the still half than in the busy one
    onset, apex = still_and_busy_pairs(1, generator)
    with torch.no_grad():
        apex_tokens, onset_tokens = model.encode(apex), model.encode(onset)
        weights = stability_weights(model.volatility(apex_tokens))
        surprise = model.surprise(apex_tokens=apex_tokens, onset_tokens=onset_tokens)
    assert weights.reshape(4, 4)[:, 2:].min() > 100 * weights.reshape(4, 4)[:, :2].max()
    relative = model.relative_change(apex_tokens=apex_tokens, onset_tokens=onset_tokens)
    torch.testing.assert_close(surprise, relative * weights)
    save(model, tmp_path / "model")
    with torch.no_grad():
        torch.testing.assert_close(load(tmp_path / "model").eval().volatility(model.encode(second)),
                                   log_expected.reshape(4, 16))
