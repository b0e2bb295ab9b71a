import pytest
import torch

from micronbert.model.swapping import blockwise_swap_mask, patch_mask_to_pixels, random_blocks, swap_count, swap_patches


def neighbour_share(mask: torch.Tensor, grid: int) -> float:
    """Share of selected patches with at least one selected 4-neighbour."""
    m = mask.reshape(-1, grid, grid).float()
    padded = torch.nn.functional.pad(m, (1, 1, 1, 1))
    neighbours = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    return float(((neighbours > 0) & (m > 0)).sum() / m.sum())


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.75])
@pytest.mark.parametrize("grid", [8, 28])
def test_exact_count(ratio, grid):
    g = torch.Generator().manual_seed(1)
    mask = blockwise_swap_mask(16, grid, grid, ratio, generator=g)
    assert mask.dtype == torch.bool and mask.shape == (16, grid * grid)
    assert (mask.sum(1) == swap_count(grid * grid, ratio)).all()
    assert swap_count(784, 0.5) == 392


def test_blocks_are_contiguous_rectangles():
    g = torch.Generator().manual_seed(0)
    blocks = random_blocks(64, 14, 14, torch.full((64,), 30), 4, (0.3, 3.3), g)
    for block in blocks:
        rows = block.any(1).nonzero().flatten()
        cols = block.any(0).nonzero().flatten()
        assert block.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert block[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()


def test_union_is_blocky_not_per_patch_random():
    g = torch.Generator().manual_seed(0)
    grid = 28
    mask = blockwise_swap_mask(32, grid, grid, 0.2, generator=g)
    random_mask = torch.zeros(32, grid * grid, dtype=torch.bool)
    random_mask[:, :swap_count(grid * grid, 0.2)] = True
    random_mask = random_mask[:, torch.randperm(grid * grid, generator=g)]
    assert neighbour_share(mask, grid) > 0.93
    assert neighbour_share(random_mask, grid) < 0.7


def test_same_generator_same_mask_and_different_seed_differs():
    a = blockwise_swap_mask(4, 14, 14, 0.5, generator=torch.Generator().manual_seed(7))
    b = blockwise_swap_mask(4, 14, 14, 0.5, generator=torch.Generator().manual_seed(7))
    c = blockwise_swap_mask(4, 14, 14, 0.5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_samples_of_a_batch_differ():
    mask = blockwise_swap_mask(8, 14, 14, 0.5, generator=torch.Generator().manual_seed(0))
    assert len({tuple(m.tolist()) for m in mask}) == 8


def test_mask_is_consistent_with_pixels():
    patch, grid = 4, 6
    g = torch.Generator().manual_seed(3)
    frame_t = torch.rand(2, 3, grid * patch, grid * patch, generator=g)
    frame_d = torch.rand(2, 3, grid * patch, grid * patch, generator=g) + 2.0
    mask = blockwise_swap_mask(2, grid, grid, 0.5, generator=g)
    swapped = swap_patches(frame_t, frame_d, mask, patch)
    for b in range(2):
        for index in range(grid * grid):
            r, c = divmod(index, grid)
            tile = swapped[b, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch]
            source = frame_d if mask[b, index] else frame_t
            assert torch.equal(tile, source[b, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch])
    pixels = patch_mask_to_pixels(mask, grid, grid, patch)
    assert pixels.shape == (2, 1, grid * patch, grid * patch)
    assert int(pixels.sum()) == int(mask.sum()) * patch * patch


def test_bad_ratio():
    with pytest.raises(ValueError, match="ratio"):
        blockwise_swap_mask(1, 4, 4, 1.0)
