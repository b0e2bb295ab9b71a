import math

import pytest
import torch

from micronbert.model.vit import VisionTransformer, resize_pos_table, sincos_1d, sincos_2d


def test_sincos_table_layout():
    table = sincos_2d(16, 4)
    assert table.shape == (17, 16)
    assert torch.equal(table[0], torch.zeros(16))
    # patch (row 1, column 2): first half encodes the column, second half the row
    patch = table[1 + 1 * 4 + 2]
    omega = 1.0 / 10000 ** (torch.arange(4, dtype=torch.float64) / 4)
    want_col = torch.cat([torch.sin(2 * omega), torch.cos(2 * omega)]).float()
    want_row = torch.cat([torch.sin(1 * omega), torch.cos(1 * omega)]).float()
    torch.testing.assert_close(patch, torch.cat([want_col, want_row]))
    with pytest.raises(ValueError):
        sincos_1d(3, torch.arange(2))


def test_resize_is_identity_at_native_size_and_bicubic_otherwise():
    table = sincos_2d(32, 8).unsqueeze(0)
    assert resize_pos_table(table, 8, 8) is table
    bigger = resize_pos_table(table, 12, 10)
    assert bigger.shape == (1, 1 + 120, 32)
    assert torch.equal(bigger[0, 0], table[0, 0])


def test_encoder_output_and_other_input_sizes():
    torch.manual_seed(0)
    vit = VisionTransformer(img_size=32, patch_size=8, in_chans=3, dim=32, depth=1, heads=2, mlp_dim=64)
    assert vit(torch.randn(2, 3, 32, 32)).shape == (2, 17, 32)
    assert vit(torch.randn(2, 3, 48, 40)).shape == (2, 1 + 6 * 5, 32)
    assert "pos_embed" in vit.state_dict() and not any(n == "pos_embed" for n, _ in vit.named_parameters())
    assert math.isclose(float(vit.state_dict()["pos_embed"][0, 0].abs().sum()), 0.0)
