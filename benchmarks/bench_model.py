"""Model speed: micronbert's μ-BERT against a straightforward implementation of the same model.

Measures forward+backward time per pre-training sample and forward time per recognition pair, for
``official-small`` at 224 and ``tiny``, on the CPU (and, when a GPU is present, in bf16 at batch 64 and
256 with and without ``torch.compile``), with achieved FLOP/s counted by ``torch.utils.flop_counter``.
The reference below uses the same weights but explicit softmax attention matrices, full DMA
cross-attention followed by taking the diagonal, and a Python loop for swapping; its outputs are checked
against the package's. Results go to benchmarks/results/.

    python benchmarks/bench_model.py            # CPU (and GPU when available)
    python benchmarks/bench_model.py --quick    # fewer repetitions
    python benchmarks/bench_model.py --quick --skip-cpu   # the GPU rows alone (benchmarks/gpu_session.sh)
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import micronbert  # noqa: E402
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.diagnostics import count_host_reads  # noqa: E402
from micronbert.model.draws import draw_step  # noqa: E402
from micronbert.model.swapping import blockwise_swap_mask  # noqa: E402
from micronbert.model.vit import resize_pos_table  # noqa: E402
from micronbert.train.optim import OptimConfig, build_optimizer  # noqa: E402


# ------------------------------------------------------------------------ the straightforward reference
def reference_attention(attn, x):
    batch, tokens, dim = x.shape
    q, k, v = attn.qkv(x).reshape(batch, tokens, 3, attn.heads, dim // attn.heads).permute(2, 0, 3, 1, 4)
    weights = ((q @ k.transpose(-2, -1)) * (dim // attn.heads) ** -0.5).softmax(dim=-1)
    return attn.proj((weights @ v).transpose(1, 2).reshape(batch, tokens, dim))


def reference_block(block, x):
    x = x + reference_attention(block.attn, block.norm1(x))
    return x + block.mlp(block.norm2(x))


def reference_encode(model, images):
    vit = model.backbone
    x = vit.patch_embed(images)
    x = torch.cat([vit.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + vit.pos_embed
    for block in vit.blocks:
        x = reference_block(block, x)
    return vit.norm(x)


def reference_dma(att, reference, swapped):
    batch, tokens, dim = reference.shape
    heads = att.heads
    query_in, key_in = (reference, swapped) if att.query == "reference" else (swapped, reference)
    split = lambda t: t.reshape(batch, tokens, heads, dim // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(att.to_q(query_in)), split(att.to_k(key_in)), split(att.to_v(swapped))
    weights = ((q @ k.transpose(-2, -1)) * (dim // heads) ** -0.5).softmax(dim=-1)
    diagonal = torch.diagonal(weights, dim1=-2, dim2=-1)
    eye = torch.eye(tokens, device=weights.device, dtype=weights.dtype)
    out = (weights * eye) @ v
    return att.proj(out.transpose(1, 2).reshape(batch, tokens, dim)), diagonal


def reference_swap(frame_t, frame_d, mask, patch):
    swapped = frame_t.clone()
    grid = frame_t.shape[-1] // patch
    for b in range(mask.shape[0]):
        for index in range(mask.shape[1]):
            if mask[b, index]:
                r, c = divmod(index, grid)
                swapped[b, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch] = \
                    frame_d[b, :, r * patch:(r + 1) * patch, c * patch:(c + 1) * patch]
    return swapped


def reference_pretrain(model, frame_t, frame_d, seed):
    c = model.config
    grid = frame_t.shape[-1] // c.patch_size
    mask = blockwise_swap_mask(frame_t.shape[0], grid, grid, c.swap_ratio, min_block=c.swap_min_block,
                               aspect=c.swap_aspect, generator=_generator(frame_t.device, seed))
    swapped = reference_swap(frame_t, frame_d, mask, c.patch_size)
    tokens = reference_encode(model, torch.cat([frame_d, swapped]))
    ref, swp = tokens[:frame_t.shape[0]], tokens[frame_t.shape[0]:]
    features, diagonal = reference_dma(model.att, ref[:, 1:], swp[:, 1:])
    saliency = model.saliency(ref)
    x = model.decoder_embed(model.weighted(features, saliency))
    x = x + resize_pos_table(model.decoder_pos_embed, grid, grid)[:, 1:]
    for block in model.decoder_blocks:
        x = reference_block(block, x)
    pred = model.decoder_pred(model.decoder_norm(x))
    return {"loss": model.reconstruction_loss(frame_t, pred, mask), "pred": pred, "dma_map": diagonal}


def reference_recognize(model, onset, apex):
    tokens = reference_encode(model, torch.cat([apex, onset]))
    apex_t, onset_t = tokens[:onset.shape[0]], tokens[onset.shape[0]:]
    features, diagonal = reference_dma(model.att, apex_t[:, 1:], onset_t[:, 1:])
    saliency = model.saliency(apex_t)
    return {"logits": model.head(features, saliency), "dma_map": diagonal}


# ------------------------------------------------------------------------------------------ timing
def _generator(device, seed):
    return torch.Generator(device=device).manual_seed(seed)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def median_seconds(step: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call, with attention decomposed into matmuls so the counter sees all of it."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def pretrain_step(model, frame_t, frame_d, seed, reference=False):
    def run():
        model.zero_grad(set_to_none=True)
        out = reference_pretrain(model, frame_t, frame_d, seed) if reference else \
            model(frame_t, frame_d, generator=_generator(frame_t.device, seed))
        out["loss"].backward()
        return out
    return run


def recognize_step(model, onset, apex, reference=False):
    def run():
        with torch.no_grad():
            return reference_recognize(model, onset, apex) if reference else model.recognize(onset=onset, apex=apex)
    return run


def check_same_outputs(model, frame_t, frame_d) -> float:
    """Largest absolute difference between the package's and the reference's outputs (eval mode)."""
    model.eval()
    with torch.no_grad():
        ours = model(frame_t, frame_d, generator=_generator(frame_t.device, 0))
        theirs = reference_pretrain(model, frame_t, frame_d, 0)
        ours_rec = model.recognize(onset=frame_t, apex=frame_d)
        theirs_rec = reference_recognize(model, frame_t, frame_d)
    model.train()
    diffs = [(ours[k] - theirs[k]).abs().max() for k in ("pred", "dma_map", "loss")]
    diffs += [(ours_rec[k] - theirs_rec[k]).abs().max() for k in ("logits", "dma_map")]
    return float(max(diffs))


def bench_case(name: str, batch: int, device: torch.device, repeats: int, dtype: torch.dtype | None = None,
               compile_model: bool = False, with_reference: bool = True) -> dict[str, object]:
    torch.manual_seed(0)
    model = micronbert.create_model(name, agreement="off", num_classes=3, head_dropout=0.0).to(device)
    size = model.config.img_size
    g = _generator(device, 1)
    frame_t = torch.randn(batch, 3, size, size, device=device, generator=g)
    frame_d = frame_t + 0.05 * torch.randn(batch, 3, size, size, device=device, generator=g)
    max_diff = check_same_outputs(model, frame_t, frame_d) if with_reference else None
    runner = torch.compile(model) if compile_model else model
    autocast = torch.autocast(device.type, dtype=dtype) if dtype is not None else _null()
    row: dict[str, object] = {"model": name, "device": device.type, "batch": batch,
                              "dtype": str(dtype or torch.float32).removeprefix("torch."), "compile": compile_model}
    with autocast:
        pre = pretrain_step(runner, frame_t, frame_d, 0)
        rec = recognize_step(runner, frame_t, frame_d)
        pre_flops, rec_flops = count_flops(pretrain_step(model, frame_t, frame_d, 0)), count_flops(
            recognize_step(model, frame_t, frame_d))
        pre_s = median_seconds(pre, device, repeats, warmup=3 if compile_model else 1)
        rec_s = median_seconds(rec, device, repeats, warmup=3 if compile_model else 1)
        row.update(pretrain_ms_per_sample=1e3 * pre_s / batch, recognize_ms_per_pair=1e3 * rec_s / batch,
                   pretrain_tflops=pre_flops / pre_s / 1e12, recognize_tflops=rec_flops / rec_s / 1e12,
                   pretrain_gflop_per_sample=pre_flops / batch / 1e9)
        if with_reference:
            ref_pre = median_seconds(pretrain_step(model, frame_t, frame_d, 0, reference=True), device, repeats)
            ref_rec = median_seconds(recognize_step(model, frame_t, frame_d, reference=True), device, repeats)
            row.update(reference_pretrain_ms_per_sample=1e3 * ref_pre / batch,
                       reference_recognize_ms_per_pair=1e3 * ref_rec / batch,
                       pretrain_speedup=ref_pre / pre_s, recognize_speedup=ref_rec / rec_s,
                       max_abs_output_diff=max_diff)
    print(row, flush=True)
    return row


def host_reads_per_step(name: str, device: torch.device) -> dict[str, object]:
    """Tensor-to-Python reads (each a host synchronisation on a GPU) in one training step as the pre-training loop
    runs it (draws made beforehand, input check off, fused AdamW, clipping) and in a step that draws its own
    randomness and checks its input (the model called plainly)."""
    torch.manual_seed(0)
    model = micronbert.create_model(name, motion_weight=1.0).to(device)
    size = model.config.img_size
    frame_t = torch.randn(4, 3, size, size, device=device)
    frame_d = frame_t + 0.05 * torch.randn_like(frame_t)
    optimiser = build_optimizer(model, OptimConfig(), fused=True)
    draws = draw_step(model.config, 4, 3, size, size, torch.Generator().manual_seed(0)).to(device)

    def loop_step() -> None:
        model(frame_t, frame_d, draws=draws, check=False)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        optimiser.zero_grad(set_to_none=True)
        model.update_teacher()

    loop_step()  # the optimiser's state is built on the first step
    with count_host_reads() as in_loop:
        loop_step()
    with count_host_reads() as plain:
        model(frame_t, frame_d, generator=torch.Generator(device).manual_seed(0))["loss"].backward()
    return {"model": name, "device": device.type, "reads_training_loop_step": len(in_loop),
            "reads_plain_call": len(plain)}


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--cpu-batch", type=int, default=8)
    parser.add_argument("--skip-cpu", action="store_true", help="only the GPU rows (for a short device session)")
    args = parser.parse_args()
    if args.skip_cpu and not torch.cuda.is_available():
        parser.error("--skip-cpu leaves nothing to measure on a machine without a GPU")
    repeats = 3 if args.quick else 5
    rows = []
    cpu = torch.device("cpu")
    if not args.skip_cpu:
        rows.append(bench_case("tiny", 32, cpu, repeats * 4))  # milliseconds per call: more repeats against jitter
        rows.append(bench_case("official-small", args.cpu_batch, cpu, repeats))
    if torch.cuda.is_available():
        gpu = torch.device("cuda")
        torch.backends.cuda.matmul.allow_tf32 = True
        for batch in (64, 256):
            for compile_model in (False, True):
                rows.append(bench_case("official-small", batch, gpu, repeats, torch.bfloat16, compile_model,
                                       with_reference=not compile_model))
    reads = [host_reads_per_step("tiny", cpu)]
    if torch.cuda.is_available():
        reads.append(host_reads_per_step("official-small", torch.device("cuda")))
    print(reads, flush=True)
    machine = machine_info()
    columns = ["model", "device", "batch", "dtype", "compile", "pretrain_ms_per_sample",
               "reference_pretrain_ms_per_sample", "pretrain_speedup", "recognize_ms_per_pair",
               "reference_recognize_ms_per_pair", "recognize_speedup", "pretrain_tflops", "recognize_tflops",
               "pretrain_gflop_per_sample", "max_abs_output_diff"]
    markdown = (f"# bench_model\n\n{machine}\n\nagreement off (published layout), DMA query 'reference', PoI "
                "saliency; speedup = reference time / package time; TFLOP/s from torch.utils.flop_counter.\n\n"
                + markdown_table(rows, columns) + "\n\nTensor-to-Python reads (host synchronisations on a GPU) per "
                "pre-training step, as the training loop runs it and for a plain call of the model:\n\n"
                + markdown_table(reads, list(reads[0])) + "\n")
    paths = write_results("bench_model", {"machine": machine, "rows": rows, "host_reads": reads}, markdown)
    print(markdown)
    print("wrote", *paths)


if __name__ == "__main__":
    main()
