"""Paired augmentation: both frames of a pair move alike."""
from __future__ import annotations

import torch

from micronbert.train.augment import AugmentConfig, paired_augment


def test_paired_augmentation_moves_both_frames_alike() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(4, 3, 32, 32)
    onset, apex = paired_augment(image, image.clone(), AugmentConfig(), generator)
    assert torch.equal(onset, apex)
    assert not torch.allclose(onset, image)
    flip_only = AugmentConfig(crop_scale=(1.0, 1.0), max_rotation=0.0, max_translate=0.0)
    onset, _ = paired_augment(image, image, flip_only, torch.Generator().manual_seed(1))
    for sample in range(4):
        assert (torch.allclose(onset[sample], image[sample], atol=1e-5)
                or torch.allclose(onset[sample], image[sample].flip(-1), atol=1e-5))
    disabled = AugmentConfig(enabled=False)
    assert paired_augment(image, image, disabled, generator)[0] is image
