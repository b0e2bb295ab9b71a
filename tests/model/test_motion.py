import pytest
import torch

import micronbert
from micronbert.model import load, save
from micronbert.model.draws import draw_warp
from micronbert.model.motion import centred_flow, patch_flow, random_warp_field, warp_images
from micronbert.model.motion import warped_pair as warped_pair_from
from micronbert.train.finetune import head_inputs, trainable_modules


def smooth_images(batch: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    """Low-frequency random images, so that a warp of a pixel or two changes them measurably."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(batch, 3, 8, 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)


def test_warp_by_a_whole_pixel_shifts_the_image():
    images = smooth_images(2)
    offset = torch.zeros(2, 2, 64, 64)
    offset[:, 0] = 1.0  # sample one pixel to the right: the content moves one pixel to the left
    warped = warp_images(images, offset)
    torch.testing.assert_close(warped[..., :-1], images[..., 1:], atol=1e-5, rtol=0)
    flow = patch_flow(offset, 8)
    assert flow.shape == (2, 64, 2)
    torch.testing.assert_close(flow, torch.tensor([-1.0, 0.0]).expand(2, 64, 2))


def test_random_warp_field_is_reproducible_scaled_and_off_when_zero():
    config = micronbert.create_model("tiny").config
    first = random_warp_field(3, 64, 64, config, torch.Generator().manual_seed(4))
    again = random_warp_field(3, 64, 64, config, torch.Generator().manual_seed(4))
    assert first.shape == (3, 2, 64, 64) and torch.equal(first, again)
    bound = 64 * (config.motion_bumps * config.motion_amplitude + config.motion_shift) + 32 * 2 * 3.1416 / 180 * 1.5
    assert 0 < first.abs().max() <= bound
    still = config.replace(motion_amplitude=0.0, motion_rotation_deg=0.0, motion_shift=0.0)
    assert random_warp_field(3, 64, 64, still, torch.Generator().manual_seed(4)).abs().max() == 0


def warped_pair(images: torch.Tensor, config, generator: torch.Generator):
    """The pretext's pair of ``images`` with a warp drawn from ``generator``."""
    return warped_pair_from(images, *draw_warp(config, *images.shape, generator), config.patch_size)


def test_warped_pair_returns_noisy_copies_and_the_true_flow():
    config = micronbert.create_model("tiny").config.replace(motion_amplitude=0.0, motion_rotation_deg=0.0)
    images = smooth_images(4)
    still, moved, flow = warped_pair(images, config, torch.Generator().manual_seed(1))
    assert still.shape == moved.shape == images.shape and flow.shape == (4, 64, 2)
    assert 0 < (still - images).std() < 0.1
    # a pure shift: every patch has the same flow, of at most motion_shift × width per axis
    torch.testing.assert_close(flow, flow[:, :1].expand_as(flow))
    assert flow.abs().max() <= config.motion_shift * 64 + 1e-5


def test_centred_flow_cancels_a_global_shift():
    flow = torch.randn(2, 64, 2)
    torch.testing.assert_close(centred_flow(flow + torch.tensor([0.7, -1.2])), centred_flow(flow))


def test_motion_term_is_added_to_the_loss_and_trains_the_motion_head():
    model = micronbert.create_model("tiny", motion_weight=0.5)
    images = smooth_images(2)
    out = model(images, images + 0.01, generator=torch.Generator().manual_seed(0))
    assert out["motion_loss"] > 0
    torch.testing.assert_close(out["loss"], out["rec_loss"] + out["agree_loss"] + 0.5 * out["motion_loss"])
    out["loss"].backward()
    assert model.motion_head.fc1.weight.grad.abs().sum() > 0
    plain = micronbert.create_model("tiny")
    assert plain.motion_head is None and plain(images, images)["motion_loss"] == 0
    with pytest.raises(ValueError, match="no motion head"):
        plain.motion(plain.encode(images), plain.encode(images))


def test_motion_term_is_learnable():
    """A few hundred steps on the pretext alone bring the flow error well below predicting no motion."""
    torch.manual_seed(0)
    model = micronbert.create_model("tiny", motion_weight=1.0, agreement="off")
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3)
    config = model.config
    generator = torch.Generator().manual_seed(0)
    for step in range(150):  # 32 px frames keep this quick; the warps scale with the width
        still, moved, flow = warped_pair(smooth_images(16, size=32, seed=step), config, generator)
        loss = (model.motion(model.encode(still), model.encode(moved)) - flow).pow(2).sum(-1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    still, moved, flow = warped_pair(smooth_images(64, size=32, seed=10_000), config, torch.Generator().manual_seed(99))
    with torch.no_grad():
        error = (model.motion(model.encode(still), model.encode(moved)) - flow).pow(2).sum(-1).mean()
    baseline = flow.pow(2).sum(-1).mean()
    assert error < 0.5 * baseline, (float(error), float(baseline))


def test_motion_head_reads_the_centred_flow_and_survives_save_and_load(tmp_path):
    torch.manual_seed(0)
    model = micronbert.create_model("tiny", head="motion", num_classes=3).eval()
    assert model.head_features == 2 * 64 and model.head.fc.in_features == 128
    onset, apex = smooth_images(2, seed=1), smooth_images(2, seed=2)
    onset_tokens, apex_tokens = model.encode(onset), model.encode(apex)
    expected = centred_flow(model.motion(onset_tokens, apex_tokens)).flatten(1)
    torch.testing.assert_close(model.head_input(onset_tokens=onset_tokens, apex_tokens=apex_tokens), expected)
    torch.testing.assert_close(head_inputs(model, onset_tokens, apex_tokens), expected)
    logits = model.recognize(onset=onset, apex=apex)["logits"]
    torch.testing.assert_close(logits, model.head(expected))
    save(model, tmp_path / "model")
    torch.testing.assert_close(load(tmp_path / "model").eval().recognize(onset=onset, apex=apex)["logits"], logits)
    motion_parameters = {id(p) for p in model.motion_head.parameters()}
    assert motion_parameters <= {id(p) for p in trainable_modules(model, "frozen")["rest"]}


@pytest.mark.parametrize(("field", "value", "message"), [("motion_weight", -1.0, "motion_weight"),
                                                         ("motion_amplitude", float("nan"), "motion_amplitude"),
                                                         ("head", "pixels", "head must be one of")])
def test_bad_motion_options_are_rejected(field, value, message):
    with pytest.raises(ValueError, match=message):
        micronbert.create_model("tiny", **{field: value})
