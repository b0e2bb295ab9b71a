import pytest
import torch
import yaml

import micronbert
from micronbert.model import MicronBERT, ModelConfig, change_map, reconstruct_images


def pair(batch=2, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    frame_t = torch.randn(batch, 3, size, size, generator=g)
    return frame_t, frame_t + 0.1 * torch.randn(batch, 3, size, size, generator=g)


def test_named_configurations():
    assert set(micronbert.list_models()) >= {"official-small", "base", "tiny"}
    base = micronbert.create_model("base").config
    assert (base.patch_size, base.dim, base.depth, base.heads, base.decoder_depth, base.decoder_heads) == \
        (16, 768, 12, 12, 8, 16)
    tiny = micronbert.create_model("tiny", dma_heads=2)
    assert tiny.config.img_size == 64 and tiny.att.heads == 2
    with pytest.raises(ValueError, match="unknown model"):
        micronbert.create_model("huge")
    with pytest.raises(ValueError, match="unknown option\\(s\\) dma_quer"):
        micronbert.create_model("tiny", dma_quer="swapped")
    with pytest.raises(ValueError, match="dma_query"):
        micronbert.create_model("tiny", dma_query="both")
    with pytest.raises(ValueError, match="dim must be a positive integer, got 0"):
        micronbert.create_model("tiny", dim=0)
    for bad in (2.5, "96", True):
        with pytest.raises(ValueError, match=f"dim: expected an integer, got {bad!r}"):
            micronbert.create_model("tiny", dim=bad)


def test_config_from_yaml(tmp_path):
    path = tmp_path / "model.yaml"
    config = micronbert.create_model("tiny", agreement="dino").config
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert ModelConfig.from_yaml(path) == config
    path.write_text("{dim: 96, colour: red}")
    with pytest.raises(ValueError, match=r"model.yaml: unknown option\(s\) colour"):
        ModelConfig.from_yaml(path)


def test_official_small_state_dict_size():
    model = micronbert.create_model("official-small", dma_query="swapped", agreement="off", poi="off")
    state = model.state_dict()
    assert len(state) == 117
    assert sum(v.numel() for v in state.values()) == 27_536_064
    assert model.trainable_parameters() == 26_732_224


def test_pretraining_forward_outputs():
    model = micronbert.create_model("tiny", dma_heads=2)
    out = model(*pair())
    n = (64 // 8) ** 2
    assert set(out) >= {"loss", "rec_loss", "agree_loss", "pred", "swap_mask", "dma_map", "saliency"}
    assert out["pred"].shape == (2, n, 8 * 8 * 3)
    assert out["swap_mask"].shape == (2, n) and (out["swap_mask"].sum(1) == n // 2).all()
    assert out["dma_map"].shape == (2, 2, n)
    torch.testing.assert_close(out["saliency"].mean(1), torch.ones(2))
    torch.testing.assert_close(out["loss"], out["rec_loss"] + out["agree_loss"])
    assert change_map(out["dma_map"]).shape == (2, n)


def test_generator_makes_the_step_reproducible():
    model = micronbert.create_model("tiny")
    a = model(*pair(), generator=torch.Generator().manual_seed(5))
    b = model(*pair(), generator=torch.Generator().manual_seed(5))
    assert torch.equal(a["swap_mask"], b["swap_mask"])
    torch.testing.assert_close(a["loss"], b["loss"])


def test_reconstruction_targets_and_normalisation():
    frame_t, frame_d = pair()
    model = micronbert.create_model("tiny", agreement="off", rec_target="swapped", norm_pix_loss=True)
    out = model(frame_t, frame_d, generator=torch.Generator().manual_seed(0))
    target = model.patchify(frame_t)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = (out["pred"] - target).pow(2).mean(-1)
    torch.testing.assert_close(out["rec_loss"], per_patch[out["swap_mask"]].mean())
    image = reconstruct_images(model, model.patchify(frame_t) * 0 + target, frame_t)
    torch.testing.assert_close(image, frame_t, atol=1e-4, rtol=1e-4)


def test_residual_decoder_starts_from_the_copy_and_learns_the_change():
    frame_t, frame_d = pair()
    model = micronbert.create_model("tiny", agreement="off", decoder_residual=True)
    out = model(frame_t, frame_d, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out["pred"], model.patchify(out["swapped"]))  # zero last layer: the copy
    copy = model.reconstruction_loss(frame_t, model.patchify(out["swapped"]), out["swap_mask"])
    torch.testing.assert_close(out["rec_loss"], copy)
    out["rec_loss"].backward()
    assert model.decoder_pred.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="decoder_residual needs norm_pix_loss off"):
        ModelConfig(decoder_residual=True, norm_pix_loss=True)


@pytest.mark.parametrize("detach", [False, True])
def test_detach_saliency_stops_the_reconstruction_gradient_at_the_saliency(detach, monkeypatch):
    model = micronbert.create_model("tiny", agreement="off", detach_saliency=detach)
    kept = {}

    def saliency_keeping_grad(ref_tokens):
        kept["saliency"] = MicronBERT.saliency(model, ref_tokens)
        kept["saliency"].retain_grad()
        return kept["saliency"]

    monkeypatch.setattr(model, "saliency", saliency_keeping_grad)
    out = model(*pair(), generator=torch.Generator().manual_seed(0))
    out["rec_loss"].backward()
    if detach:
        assert kept["saliency"].grad is None
    else:
        assert kept["saliency"].grad.abs().sum() > 0
    assert model.backbone.cls_token.grad is not None  # the encoder still trains through the features


def test_patchify_order_and_inverse():
    model = micronbert.create_model("tiny")
    images = torch.randn(2, 3, 64, 64)
    patches = model.patchify(images)
    # patch (0, 1), pixel (row 2, column 3), channel 1
    assert patches[0, 1, (2 * 8 + 3) * 3 + 1] == images[0, 1, 2, 8 + 3]
    torch.testing.assert_close(model.unpatchify(patches, 8, 8), images)


@pytest.mark.parametrize("frames, message", [
    ((torch.randn(1, 3, 60, 64), torch.randn(1, 3, 60, 64)), "not a multiple of the patch"),
    ((torch.randn(1, 3, 64, 64), torch.randn(1, 3, 72, 64)), "same shape"),
    ((torch.randn(1, 1, 64, 64), torch.randn(1, 1, 64, 64)), "expected 3 channels, got 1"),
    ((torch.full((1, 3, 64, 64), float("nan")), torch.randn(1, 3, 64, 64)), "frame_t: contains NaN"),
    ((torch.zeros(1, 3, 64, 64, dtype=torch.uint8),) * 2, "float tensor"),
    ((torch.randn(3, 64, 64),) * 2, r"\(B, C, H, W\)"),
])
def test_bad_inputs_raise_value_error(frames, message):
    model = micronbert.create_model("tiny", num_classes=3)
    with pytest.raises(ValueError, match=message):
        model(*frames)
    with pytest.raises(ValueError, match=message.replace("frame_t", "onset")):
        model.recognize(onset=frames[0], apex=frames[1])


@pytest.mark.parametrize("overrides", [
    dict(agreement="ema-mse", poi="saliency", dma_query="reference"),
    dict(agreement="dino", poi="saliency", dma_query="swapped", dma_heads=2),
    dict(agreement="off", poi="off", dma_query="reference"),
])
def test_gradients_reach_every_trainable_parameter(overrides):
    torch.manual_seed(0)
    model = micronbert.create_model("tiny", dino_local_crops=2, **overrides).train()
    model(*pair())["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert missing == []
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    if overrides["agreement"] != "off":
        assert frozen and all("agreement.teacher" in n or n.endswith("weight_g") for n in frozen)


def test_recognition_gradients_and_outputs():
    torch.manual_seed(0)
    model = micronbert.create_model("tiny", num_classes=4, agreement="off")
    out = model.recognize(onset=pair(batch=3)[0], apex=pair(batch=3)[1])
    assert out["logits"].shape == (3, 4) and out["dma_map"].shape == (3, 1, 64) and out["saliency"].shape == (3, 64)
    out["logits"].sum().backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    without_grad = {n for n, p in model.named_parameters() if p.grad is None}
    assert without_grad == {n for n in trainable if n.startswith("decoder")}


def test_missing_head_is_a_clear_error_and_reset_head_adds_one():
    model = micronbert.create_model("tiny")
    with pytest.raises(ValueError, match="no recognition head"):
        model.recognize(onset=pair()[0], apex=pair()[1])
    model.reset_head(5)
    assert model.recognize(onset=pair()[0], apex=pair()[1])["logits"].shape == (2, 5)
    assert model.config.num_classes == 5


def test_teacher_follows_student_with_ema():
    model = micronbert.create_model("tiny", agreement="ema-mse")
    teacher, student = model.agreement.teacher, model.backbone
    with torch.no_grad():
        student.cls_token.add_(1.0)
    before = teacher.cls_token.clone()
    model.update_teacher(momentum=0.75)
    torch.testing.assert_close(teacher.cls_token, 0.75 * before + 0.25 * student.cls_token)


def test_tiny_trains_and_the_loss_goes_down():
    torch.manual_seed(0)
    model = micronbert.create_model("tiny")
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(0)
    frame_t = torch.nn.functional.interpolate(torch.randn(8, 3, 8, 8, generator=g), size=64, mode="bilinear")
    frame_d = frame_t.roll(1, dims=-1)
    losses = []
    for step in range(30):
        out = model(frame_t, frame_d, generator=torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
        model.update_teacher()
        losses.append(float(out["rec_loss"].detach()))
    assert sum(losses[-5:]) < 0.75 * sum(losses[:5])


def test_eval_mode_skips_agreement():
    model = micronbert.create_model("tiny").eval()
    with torch.no_grad():
        out = model(*pair())
    assert float(out["agree_loss"]) == 0.0
    assert isinstance(model, MicronBERT)


@pytest.mark.parametrize("agreement", ["ema-mse", "dino"])
def test_a_bf16_autocast_step_stays_close_to_float32(agreement):
    """What the GPU runs (bfloat16 autocast), checked on the CPU's bf16 autocast: no dtype clash in DMA,
    PoI or the losses, finite gradients, and losses within bf16 rounding of float32."""
    torch.manual_seed(0)
    model = micronbert.create_model("tiny", agreement=agreement, dino_local_crops=2, num_classes=3).train()
    frames = pair(batch=4)
    full = model(*frames, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = model(*frames, generator=torch.Generator().manual_seed(1))
        logits = model.recognize(onset=frames[0], apex=frames[1])["logits"]
    full["loss"].backward()
    trained = {name for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    half["loss"].backward()

    assert half["loss"].dtype == torch.float32 and logits.dtype == torch.bfloat16
    torch.testing.assert_close(half["rec_loss"], full["rec_loss"], rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(half["agree_loss"], full["agree_loss"], rtol=5e-2, atol=1e-3)
    assert torch.equal(half["swap_mask"], full["swap_mask"])
    grads = {name: p.grad for name, p in model.named_parameters() if p.grad is not None}
    assert set(grads) == trained and all(bool(torch.isfinite(g).all()) for g in grads.values())


def test_device_is_where_the_parameters_are():
    model = micronbert.create_model("tiny")
    assert model.device == torch.device("cpu")
    assert model.to(torch.float64).device == torch.device("cpu")
    meta = micronbert.create_model("tiny").to("meta")
    assert meta.device == torch.device("meta")
