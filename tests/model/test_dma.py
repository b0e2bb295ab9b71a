import pytest
import torch

from micronbert.model.dma import DiagonalMicroAttention, change_map, relative_change_map, softmax_diagonal


def naive_dma(module: DiagonalMicroAttention, reference, swapped):
    """Full attention matrix, softmax, full product with V, then the diagonal (the reference)."""
    batch, n, dim = reference.shape
    h = module.heads
    query_in, key_in = (reference, swapped) if module.query == "reference" else (swapped, reference)
    q = module.to_q(query_in).reshape(batch, n, h, dim // h).transpose(1, 2)
    k = module.to_k(key_in).reshape(batch, n, h, dim // h).transpose(1, 2)
    v = module.to_v(swapped).reshape(batch, n, h, dim // h).transpose(1, 2)
    attn = ((q @ k.transpose(-2, -1)) * (dim // h) ** -0.5).softmax(-1)
    diag = torch.diagonal(attn, dim1=-2, dim2=-1)
    eye = torch.eye(n, dtype=torch.bool)
    out = (attn * eye) @ v  # only the diagonal weights
    return module.proj(out.transpose(1, 2).reshape(batch, n, dim)), diag


@pytest.mark.parametrize("query", ["reference", "swapped"])
@pytest.mark.parametrize("heads", [1, 4])
def test_dma_equals_naive_full_matrix(query, heads):
    torch.manual_seed(0)
    module = DiagonalMicroAttention(64, heads, query)
    reference, swapped = torch.randn(3, 49, 64), torch.randn(3, 49, 64)
    features, diagonal = module(reference, swapped)
    want_features, want_diagonal = naive_dma(module, reference, swapped)
    assert features.shape == (3, 49, 64) and diagonal.shape == (3, heads, 49)
    torch.testing.assert_close(diagonal, want_diagonal, atol=1e-5, rtol=0)
    torch.testing.assert_close(features, want_features, atol=1e-5, rtol=0)


def test_softmax_diagonal_is_stable_and_its_gradient_exact():
    torch.manual_seed(0)
    scores = (torch.randn(2, 3, 10, 10, dtype=torch.float64) * 50).requires_grad_()
    diagonal = softmax_diagonal(scores)
    want = torch.diagonal(scores.softmax(-1), dim1=-2, dim2=-1)
    assert diagonal.dtype == torch.float32 and torch.isfinite(diagonal).all()
    torch.testing.assert_close(diagonal.double(), want, atol=1e-6, rtol=0)
    weights = torch.randn(2, 3, 10, dtype=torch.float64)
    grad, = torch.autograd.grad((diagonal.double() * weights).sum(), scores)
    want_grad, = torch.autograd.grad((want * weights).sum(), scores)
    torch.testing.assert_close(grad, want_grad, atol=1e-5, rtol=1e-4)


def test_softmax_diagonal_of_bfloat16_scores_is_float32():
    scores = torch.randn(4, 64, 64)
    diagonal = softmax_diagonal(scores.bfloat16())
    assert diagonal.dtype == torch.float32
    torch.testing.assert_close(diagonal, softmax_diagonal(scores.bfloat16().float()))


def test_query_mode_changes_the_result():
    torch.manual_seed(0)
    ref_mode = DiagonalMicroAttention(32, 1, "reference")
    swp_mode = DiagonalMicroAttention(32, 1, "swapped")
    swp_mode.load_state_dict(ref_mode.state_dict())
    reference, swapped = torch.randn(2, 16, 32), torch.randn(2, 16, 32)
    assert not torch.allclose(ref_mode(reference, swapped)[1], swp_mode(reference, swapped)[1])


def test_change_map_is_one_minus_normalised_diagonal():
    diagonal = torch.tensor([[[0.5, 0.25, 0.5, 0.125]]])
    torch.testing.assert_close(change_map(diagonal), torch.tensor([[0.0, 0.5, 0.0, 0.75]]))



def test_relative_change_map_is_the_drop_against_the_onset_with_itself_averaged_over_heads():
    self_diagonal = torch.tensor([[[0.5, 0.2, 0.1, 0.4], [0.5, 0.2, 0.1, 0.4]]])
    diagonal = torch.tensor([[[0.25, 0.2, 0.2, 0.1], [0.5, 0.1, 0.0, 0.1]]])
    # head 0: 0.5, 0, max(0, -1) = 0, 0.75; head 1: 0, 0.5, 1, 0.75
    torch.testing.assert_close(relative_change_map(diagonal, self_diagonal), torch.tensor([[0.25, 0.25, 0.5, 0.75]]))
    torch.testing.assert_close(relative_change_map(self_diagonal, self_diagonal), torch.zeros(1, 4))
    with pytest.raises(ValueError, match="differ in shape"):
        relative_change_map(diagonal, self_diagonal[:, :1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="query"):
        DiagonalMicroAttention(32, 1, "both")
    with pytest.raises(ValueError, match="heads=3"):
        DiagonalMicroAttention(32, 3)
    with pytest.raises(ValueError, match="equal shape"):
        DiagonalMicroAttention(32)(torch.randn(1, 4, 32), torch.randn(1, 5, 32))


def test_bf16_autocast_keeps_the_diagonal_within_a_percent_or_two_of_float32():
    """Under bf16 autocast the encoder's tokens are rounded, but the DMA scores and their diagonal are computed in
    float32: on the tiny model the diagonal stays within 1.5 % (max) and 0.5 % (mean) of the float32 one."""
    from micronbert import create_model

    torch.manual_seed(0)
    model = create_model("tiny", num_classes=3).eval()
    generator = torch.Generator().manual_seed(0)
    onset = torch.randn(4, 3, 64, 64, generator=generator)
    apex = onset + 0.1 * torch.randn(onset.shape, generator=generator)
    with torch.no_grad():
        exact = model.recognize(onset=onset, apex=apex)["dma_map"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            rounded = model.recognize(onset=onset, apex=apex)["dma_map"]
    assert rounded.dtype == torch.float32
    relative = (rounded - exact).abs() / exact
    assert relative.max() < 0.015 and relative.mean() < 0.005
