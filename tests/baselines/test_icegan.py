from __future__ import annotations

import math

import pytest
import torch

from micronbert.baselines.icegan import (
    ICEGAN,
    ICEGAN_CARD,
    GraphReasoningModule,
    ICEGANConfig,
    ICEGANLosses,
    encoder_widths,
    gan_optimisers,
    margin_loss,
    sample_classes,
    squash,
    train_step,
)
from micronbert.baselines.seqnets import count_parameters
from micronbert.data.inputs.spec import InputSpec

META = torch.device("meta")
SMALL = ICEGANConfig(size=16)


@pytest.fixture(scope="module")
def published() -> ICEGAN:
    with META:
        return ICEGAN_CARD.build(ICEGAN_CARD.classes, ICEGAN_CARD.inputs)


def _faces(batch: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ------------------------------------------------------------------------------------------------ published layout
def test_the_discriminator_is_about_97_m_of_which_the_decoder_is_about_90_m(published):
    assert round(count_parameters(published.discriminator) / 1e6) == 97
    assert round(count_parameters(published.discriminator.decoder) / 1e6) == 90
    # decoder: masked 3 × 16-d class capsules → 512 → 1024 → 5120 → 128·128
    widths = (3 * 16, 512, 1024, 5120, 128 * 128)
    assert count_parameters(published.discriminator.decoder) == sum(a * b + b for a, b in zip(widths, widths[1:]))


def test_the_card_counts_generator_and_discriminator(published):
    assert ICEGAN_CARD.parameters == count_parameters(published)
    assert count_parameters(published) == count_parameters(published.generator) + count_parameters(
        published.discriminator)


def test_published_shapes_bottleneck_1x1_trunk_128x8x8_and_1024_primary_capsules(published):
    assert encoder_widths(128) == (64, 128, 256, 512, 512, 512, 320)
    faces = torch.empty(2, 1, 128, 128, device=META)
    embedding, skips = published.generator.encode(faces)
    assert embedding.shape == (2, 320, 1, 1)
    assert [skip.shape[1:] for skip in skips] == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8),
                                                 (512, 4, 4), (512, 2, 2)]
    assert published.discriminator.trunk(faces).shape == (2, 128, 8, 8)
    assert published.discriminator.primary_capsules(faces).shape == (2, 1024, 8)
    assert published.discriminator.class_capsules(faces).shape == (2, 3, 16)
    synthetic = published.generator(faces, torch.zeros(2, dtype=torch.long, device=META),
                                    torch.empty(2, 100, device=META))
    assert synthetic.shape == (2, 1, 128, 128)


def test_smaller_u_nets_keep_a_1x1_bottleneck():
    assert encoder_widths(32) == (64, 128, 256, 512, 320)
    assert encoder_widths(16) == (64, 128, 256, 320)
    with pytest.raises(ValueError, match="power-of-two"):
        ICEGANConfig(size=48)


# ------------------------------------------------------------------------------------------------ pieces
def test_margin_loss_matches_the_formula():
    losses = ICEGANLosses()
    onehot = torch.tensor([[1.0, 0.0]])
    assert margin_loss(torch.tensor([[0.95, 0.05]]), onehot, losses).item() == 0.0
    # present 0.5 → (0.9 − 0.5)² = 0.16; absent 0.5 → 0.5 · (0.5 − 0.1)² = 0.08
    assert margin_loss(torch.tensor([[0.5, 0.5]]), onehot, losses).item() == pytest.approx(0.24)


def test_squash_keeps_the_direction_and_maps_the_length():
    vectors = torch.tensor([[3.0, 4.0], [0.3, 0.4]])
    squashed = squash(vectors)
    lengths = torch.tensor([25 / 26, 0.25 / 1.25])
    torch.testing.assert_close(squashed.norm(dim=-1), lengths, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(squashed / squashed.norm(dim=-1, keepdim=True), vectors / vectors.norm(dim=-1,
                                                                                                      keepdim=True))


def test_the_graph_reasoning_module_is_a_residual_on_its_input():
    torch.manual_seed(0)
    module = GraphReasoningModule(16)
    features = torch.randn(2, 16, 4, 4)
    assert module(features).shape == features.shape
    with torch.no_grad():
        module.project.weight.zero_()
        module.project.bias.zero_()
    torch.testing.assert_close(module(features), features)


def test_sampled_classes_are_the_labels_or_uniform_draws():
    labels = torch.tensor([0, 1, 2] * 200)
    assert torch.equal(sample_classes(labels, 3, 1.0), labels)
    drawn = sample_classes(labels, 3, 0.0, torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=3)
    assert counts.min() > 150 and drawn.max() < 3


# ------------------------------------------------------------------------------------------------ recognition path
def test_the_prediction_module_classifies_the_apex_of_a_pair_and_ignores_the_onset():
    torch.manual_seed(0)
    model = ICEGAN_CARD.build(4, (InputSpec("pair", 16),)).eval()
    pair = torch.cat([_faces(3, seed=1), _faces(3, seed=2)], dim=1)
    logits = model(pair)
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()
    other_onset = torch.cat([_faces(3, seed=3), pair[:, 1:]], dim=1)
    torch.testing.assert_close(model(other_onset), logits)
    lengths = model.discriminator.class_capsules(pair[:, 1:]).norm(dim=-1)
    assert torch.equal(logits.argmax(dim=1), lengths.argmax(dim=1))


def test_a_card_resized_to_32_pixels_builds_a_five_level_generator():
    model = ICEGAN_CARD.build(3, tuple(spec.resized(32) for spec in ICEGAN_CARD.inputs))
    assert len(model.generator.down) == int(math.log2(32))
    assert model.eval()(torch.rand(2, 2, 32, 32) * 2 - 1).shape == (2, 3)


# ------------------------------------------------------------------------------------------------ GAN step
def test_one_gan_step_gives_finite_losses_and_updates_both_networks():
    torch.manual_seed(0)
    model = ICEGAN(3, SMALL)
    optimisers = gan_optimisers(model, ICEGAN_CARD.recipes["default"])
    generator_before = [p.detach().clone() for p in model.generator.parameters()]
    discriminator_before = [p.detach().clone() for p in model.discriminator.parameters()]
    losses = train_step(model.generator, model.discriminator, _faces(4, seed=1), _faces(4, seed=2),
                        torch.tensor([0, 1, 2, 1]), optimisers, rng=torch.Generator().manual_seed(0))
    assert {"discriminator", "generator", "g_l1", "g_identity", "d_reconstruction"} <= set(losses)
    assert all(math.isfinite(value) for value in losses.values())
    assert losses["discriminator"] > 0 and losses["generator"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(generator_before, model.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(discriminator_before, model.discriminator.parameters()))
    assert all(p.grad is None for p in model.discriminator.parameters())


def test_the_l1_term_only_counts_samples_synthesised_as_their_true_class():
    torch.manual_seed(0)
    model = ICEGAN(3, SMALL)
    optimisers = gan_optimisers(model, ICEGAN_CARD.recipes["published"])
    labels = torch.zeros(4, dtype=torch.long)
    seed = next(seed for seed in range(100)
                if (sample_classes(labels, 3, 0.0, torch.Generator().manual_seed(seed)) != labels).all())
    never_true = train_step(model.generator, model.discriminator, _faces(4, seed=1), _faces(4, seed=2), labels,
                            optimisers, ICEGANLosses(true_class_probability=0.0), torch.Generator().manual_seed(seed))
    always_true = train_step(model.generator, model.discriminator, _faces(4, seed=1), _faces(4, seed=2), labels,
                             optimisers, ICEGANLosses(true_class_probability=1.0))
    assert never_true["g_l1"] == 0.0 and always_true["g_l1"] > 0.0


# ------------------------------------------------------------------------------------------------ bad inputs
def test_wrong_shapes_and_labels_raise_value_errors_naming_the_expected_shape():
    model = ICEGAN(3, SMALL)
    optimisers = gan_optimisers(model, ICEGAN_CARD.recipes["default"])
    with pytest.raises(ValueError, match=r"\(B, 2, 16, 16\)"):
        model(torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"apex faces of shape \(B, 1, 16, 16\)"):
        train_step(model.generator, model.discriminator, _faces(2), _faces(2, size=32), torch.tensor([0, 1]),
                   optimisers)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        train_step(model.generator, model.discriminator, _faces(2), _faces(2), torch.tensor([0, 3]), optimisers)
    with pytest.raises(ValueError, match="as many"):
        train_step(model.generator, model.discriminator, _faces(2), _faces(2), torch.tensor([0]), optimisers)
    with pytest.raises(ValueError, match="pair"):
        ICEGAN_CARD.build(3, (InputSpec("apex", 128),))


# ------------------------------------------------------------------------------------------------ card
def test_the_card_has_the_published_recipe_and_names_what_was_re_derived():
    recipe = ICEGAN_CARD.recipes["published"]
    assert (recipe.optimiser, recipe.lr, recipe.epochs, recipe.batch_size) == ("adam", 1e-3, 100, 16)
    assert ICEGAN_CARD.recipes["default"].source.startswith("[PROPOSED]")
    assert "[PROPOSED]" in ICEGAN_CARD.notes and "adversarial" in ICEGAN_CARD.notes
    assert ICEGAN_CARD.inputs == (InputSpec("pair", 128, ("grey",)),)
