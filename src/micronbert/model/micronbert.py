"""The μ-BERT model, readable top to bottom (METHOD.md §1–§8).

Pre-training, ``model(frame_t, frame_t_delta)``:
    1. blockwise swapping corrupts I_t with co-located blocks of I_{t+δ}, giving I_{t/s};
    2. one shared ViT encodes I_{t+δ}, I_{t/s} (and the agreement crops) in one batch;
    3. Diagonal Micro-Attention compares co-located patches of the two frames;
    4. the Patch-of-Interest saliency weights the DMA features;
    5. a decoder reconstructs I_t; the contextual agreement trains the contextual token;
    6. optionally (``motion_weight > 0``, a micronbert extension) the motion head learns the flow of a known warp;
    7. optionally (``volatility_weight > 0``, a micronbert extension) the volatility head learns how much each patch
       of I_{t+δ} is expected to change between the frames.
Recognition, ``model.recognize(onset=..., apex=...)``: the onset takes the I_t slot and the apex the I_{t+δ} slot,
no swapping, and a head reads the saliency-weighted DMA features (or, with ``head="motion"``, the per-patch
flow of the motion head).

Inputs are float images (B, C, H, W), already normalised (see ``micronbert.data.transforms``).
Parameter names follow the published checkpoint (``backbone``, ``att``, ``decoder_*``).
"""
from __future__ import annotations

import torch
from torch import nn

from .agreement import build_agreement, build_encoder
from .config import ModelConfig
from .dma import DiagonalMicroAttention, relative_change_map
from .draws import StepDraws, draw_step
from .heads import RecognitionHead, pool_patches
from .motion import MotionHead, centred_flow, warped_pair
from .poi import poi_saliency
from .swapping import swap_patches
from .vit import Block, init_vit_weights, resize_pos_table, sincos_2d
from .volatility import VolatilityHead, patch_change_energy, surprise_map, volatility_loss


def check_frames(patch_size: int, in_chans: int, **frames: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the argument at fault unless every frame batch is a finite float
    (B, in_chans, H, W) tensor with H, W multiples of the patch, all of one shape.

    Under ``torch.compile`` or ``torch.export`` the finiteness test is left out: it reads a value back to
    the host, which would split the graph (frames made from uint8 images are finite by construction)."""
    shapes = {}
    for name, frame in frames.items():
        if not isinstance(frame, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor, got {type(frame).__name__}")
        if frame.ndim != 4:
            raise ValueError(f"{name}: expected a (B, C, H, W) batch, got shape {tuple(frame.shape)}")
        if not frame.is_floating_point():
            raise ValueError(f"{name}: expected a float tensor (normalised image), got {frame.dtype}")
        if frame.shape[1] != in_chans:
            raise ValueError(f"{name}: expected {in_chans} channels, got {frame.shape[1]} "
                             "(replicate grey frames to 3 channels)")
        height, width = frame.shape[-2:]
        if height % patch_size or width % patch_size:
            raise ValueError(f"{name}: size {height}×{width} is not a multiple of the patch size {patch_size}")
        if not torch.compiler.is_compiling() and _has_non_finite(frame):
            raise ValueError(f"{name}: contains NaN or infinite values")
        shapes[name] = tuple(frame.shape)
    if len(set(shapes.values())) > 1:
        raise ValueError("frames of a pair must have the same shape, got "
                         + ", ".join(f"{name} {shape}" for name, shape in shapes.items()))


def _has_non_finite(frame: torch.Tensor) -> bool:
    return bool(frame.numel()) and not bool(torch.isfinite(torch.stack(torch.aminmax(frame))).all())  # NaN propagates


class MicronBERT(nn.Module):
    """μ-BERT: encoder, DMA, PoI, decoder, optional recognition head (see the module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.backbone = build_encoder(c)
        self.att = DiagonalMicroAttention(c.dim, c.dma_heads, c.dma_query)
        self.decoder_embed = nn.Linear(c.dim, c.decoder_dim)
        decoder_grid = (c.decoder_pos_size or c.img_size) // c.patch_size
        self.register_buffer("decoder_pos_embed", sincos_2d(c.decoder_dim, decoder_grid).unsqueeze(0))
        self.decoder_blocks = nn.ModuleList(Block(c.decoder_dim, c.decoder_heads, c.decoder_mlp_dim, c.ln_eps)
                                            for _ in range(c.decoder_depth))
        self.decoder_norm = nn.LayerNorm(c.decoder_dim, eps=c.ln_eps)
        self.decoder_pred = nn.Linear(c.decoder_dim, c.patch_dim)
        init_vit_weights(self.att)
        init_vit_weights(self.decoder_embed)
        init_vit_weights(self.decoder_blocks)
        init_vit_weights(self.decoder_norm)
        init_vit_weights(self.decoder_pred)
        if c.decoder_residual:
            nn.init.zeros_(self.decoder_pred.weight)
        self.agreement = build_agreement(c, self.backbone)
        self.motion_head = MotionHead(c.dim) if c.has_motion_head else None
        if self.motion_head is not None:
            init_vit_weights(self.motion_head)
        self.volatility_head = VolatilityHead(c.dim, c.ln_eps) if c.volatility_weight > 0 else None
        if self.volatility_head is not None:
            init_vit_weights(self.volatility_head)
            self.volatility_head.reset_output()
        self.head = (RecognitionHead(self.head_features, c.num_classes, c.head_dropout, c.ln_eps)
                     if c.num_classes else None)
        self.fc = nn.Linear(c.dim, 1) if c.aux_head else None

    # ----------------------------------------------------------------- building blocks (public API)
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Encoder output (B, 1 + N, dim), the contextual token first."""
        return self.backbone(images)

    def dma(self, ref_tokens: torch.Tensor, swp_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """DMA between two outputs of :meth:`encode` → (features (B, N, dim), diagonal (B, heads, N))."""
        return self.att(ref_tokens[:, 1:], swp_tokens[:, 1:])

    def relative_change(self, *, apex_tokens: torch.Tensor, onset_tokens: torch.Tensor,
                        diagonal: torch.Tensor | None = None) -> torch.Tensor:
        """Relative change map (B, N) of the apex (or any later frame) against the onset:
        :func:`~micronbert.model.dma.relative_change_map` of the DMA diagonal of the pair (``diagonal`` if already
        computed) and that of the onset with itself."""
        if diagonal is None:
            diagonal = self.dma(apex_tokens, onset_tokens)[1]
        return relative_change_map(diagonal, self.dma(onset_tokens, onset_tokens)[1])

    def motion(self, first_tokens: torch.Tensor, second_tokens: torch.Tensor) -> torch.Tensor:
        """Per-patch optical flow (B, N, 2) in pixels from the first frame to the second, from two outputs of
        :meth:`encode` (needs the motion head: ``motion_weight > 0`` or ``head="motion"``)."""
        if self.motion_head is None:
            raise ValueError("this model has no motion head: set motion_weight > 0 or head='motion' "
                             "(METHOD.md §10)")
        return self.motion_head(first_tokens[:, 1:], second_tokens[:, 1:])

    def volatility(self, tokens: torch.Tensor) -> torch.Tensor:
        """Each patch's volatility (B, N): the log of its expected mean squared change between frames, from one output
        of :meth:`encode` (needs the volatility head: ``volatility_weight > 0``)."""
        if self.volatility_head is None:
            raise ValueError("this model has no volatility head: set volatility_weight > 0 (METHOD.md §11)")
        return self.volatility_head(tokens[:, 1:])

    def surprise(self, *, apex_tokens: torch.Tensor, onset_tokens: torch.Tensor,
                 diagonal: torch.Tensor | None = None) -> torch.Tensor:
        """Surprise map (B, N): :meth:`relative_change` weighted by the precision that :meth:`volatility`
        predicts from the apex (:func:`~micronbert.model.volatility.surprise_map`)."""
        relative = self.relative_change(apex_tokens=apex_tokens, onset_tokens=onset_tokens, diagonal=diagonal)
        return surprise_map(relative, self.volatility(apex_tokens))

    def saliency(self, ref_tokens: torch.Tensor) -> torch.Tensor:
        """PoI saliency (B, N) of the reference frame, mean 1 per sample."""
        return poi_saliency(ref_tokens[:, 1:], ref_tokens[:, 0], self.config.ln_eps)

    def weighted(self, features: torch.Tensor, saliency: torch.Tensor) -> torch.Tensor:
        """F_i = S_i · DMA_i, or the DMA features unchanged when ``poi="off"``."""
        return features * saliency.unsqueeze(-1) if self.config.poi == "saliency" else features

    def decode(self, features: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        """Weighted DMA features (B, N, dim) → per-patch pixel predictions (B, N, p·p·C)."""
        x = self.decoder_embed(features)
        x = x + resize_pos_table(self.decoder_pos_embed, grid_h, grid_w)[:, 1:].to(x.dtype)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))

    def patchify(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, N, p·p·C), each patch flattened in (row, column, channel) order."""
        p = self.config.patch_size
        batch, chans, height, width = images.shape
        x = images.reshape(batch, chans, height // p, p, width // p, p)
        return x.permute(0, 2, 4, 3, 5, 1).reshape(batch, (height // p) * (width // p), p * p * chans)

    def unpatchify(self, patches: torch.Tensor, grid_h: int, grid_w: int) -> torch.Tensor:
        """Inverse of :meth:`patchify`."""
        p, chans = self.config.patch_size, self.config.in_chans
        x = patches.reshape(patches.shape[0], grid_h, grid_w, p, p, chans)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(patches.shape[0], chans, grid_h * p, grid_w * p)

    # ----------------------------------------------------------------------------- pre-training
    def forward(self, frame_t: torch.Tensor, frame_t_delta: torch.Tensor, generator: torch.Generator | None = None,
                draws: StepDraws | None = None, check: bool = True) -> dict[str, torch.Tensor]:
        """Self-supervised step on a pair (I_t, I_{t+δ}).

        The step's random choices (swap mask, agreement crops, warp) are ``draws`` when given (the training loop
        draws them in its data loader, :func:`~micronbert.model.draws.draw_step`), otherwise drawn here from
        ``generator``, the same way. ``check=False`` skips the input check, which reads the frames back to the host
        to look for NaN (the training loop feeds frames made from uint8 images).

        Returns ``loss`` (= rec_loss + λ·agree_loss + motion_weight·motion_loss + volatility_weight·volatility_loss),
        ``rec_loss``, ``agree_loss``, ``motion_loss`` and ``volatility_loss`` (0 when their terms are off), ``pred``
        (B, N, p·p·C),
        ``swap_mask`` (B, N) bool, ``swapped`` (the corrupted I_{t/s}), ``dma_map`` (the DMA diagonal,
        (B, heads, N); :func:`micronbert.model.dma.change_map` turns it into the change map) and
        ``saliency`` (B, N).
        """
        c = self.config
        if check:
            check_frames(c.patch_size, c.in_chans, frame_t=frame_t, frame_t_delta=frame_t_delta)
        batch = frame_t.shape[0]
        grid_h, grid_w = frame_t.shape[-2] // c.patch_size, frame_t.shape[-1] // c.patch_size
        if draws is None:
            draws = draw_step(c, batch, *frame_t.shape[1:], generator=generator, device=frame_t.device,
                              training=self.training)
        swap_mask = draws.swap_mask
        swapped = swap_patches(frame_t, frame_t_delta, swap_mask, c.patch_size)

        use_agreement = self.agreement is not None and self.training
        global_views, local_views = (self.agreement.views(frame_t_delta, draws.view_boxes) if use_agreement
                                     else (frame_t.new_zeros(0, *frame_t.shape[1:]), None))
        use_motion = c.motion_weight > 0 and self.training
        still, moved, true_flow = (warped_pair(frame_t_delta, draws.warp_offset, draws.warp_gain, draws.warp_bias,
                                               draws.warp_noise, c.patch_size) if use_motion
                                   else (frame_t[:0], frame_t[:0], None))
        tokens = self.encode(torch.cat([frame_t_delta, swapped, global_views, still, moved]))
        ref_tokens, swp_tokens = tokens[:batch], tokens[batch:2 * batch]
        view_tokens = tokens[2 * batch:2 * batch + global_views.shape[0]]

        features, diagonal = self.dma(ref_tokens, swp_tokens)
        saliency = self.saliency(ref_tokens)
        decoder_weights = saliency.detach() if c.detach_saliency else saliency
        pred = self.decode(self.weighted(features, decoder_weights), grid_h, grid_w)
        if c.decoder_residual:
            pred = pred.float() + self.patchify(swapped).float()
        rec_loss = self.reconstruction_loss(frame_t, pred, swap_mask)

        if use_agreement:
            local_ct = self.encode(local_views)[:, 0] if local_views is not None else None
            agree_loss = self.agreement.loss(frame_t_delta, view_tokens[:, 0], local_ct, global_views)
        else:
            agree_loss = torch.zeros((), device=frame_t.device)
        if use_motion:
            warp_tokens = tokens[2 * batch + global_views.shape[0]:]
            flow = self.motion(warp_tokens[:batch], warp_tokens[batch:])
            motion_loss = (flow.float() - true_flow).pow(2).sum(-1).mean()
        else:
            motion_loss = torch.zeros((), device=frame_t.device)
        if c.volatility_weight > 0:
            energy = patch_change_energy(frame_t, frame_t_delta, c.patch_size)
            change_loss = volatility_loss(self.volatility(ref_tokens), energy)
        else:
            change_loss = torch.zeros((), device=frame_t.device)
        loss = (rec_loss + c.agree_weight * agree_loss + c.motion_weight * motion_loss
                + c.volatility_weight * change_loss)
        return {"loss": loss, "rec_loss": rec_loss, "agree_loss": agree_loss, "motion_loss": motion_loss,
                "volatility_loss": change_loss, "pred": pred,
                "swap_mask": swap_mask, "swapped": swapped, "dma_map": diagonal, "saliency": saliency}

    def reconstruction_loss(self, frame_t: torch.Tensor, pred: torch.Tensor,
                            swap_mask: torch.Tensor) -> torch.Tensor:
        """MSE to patchify(I_t) over all patches or the swapped ones, optionally per-patch normalised."""
        target = self.patchify(frame_t)
        if self.config.norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        per_patch = (pred.float() - target.float()).pow(2).mean(-1)
        if self.config.rec_target == "swapped":
            weights = swap_mask.to(per_patch.dtype)
            return (per_patch * weights).sum() / weights.sum()
        return per_patch.mean()

    @torch.no_grad()
    def update_teacher(self, momentum: float | None = None) -> None:
        """EMA step of the agreement teacher (call after each optimiser step); no-op without agreement."""
        if self.agreement is not None:
            self.agreement.update_teacher(self.backbone, self.config.ema_momentum if momentum is None
                                          else momentum)

    # ------------------------------------------------------------------------------ recognition
    @property
    def device(self) -> torch.device:
        """Where the model's parameters are (inputs made from images go there)."""
        return next(self.parameters()).device

    @property
    def head_features(self) -> int:
        """Width of :meth:`head_input`: dim for the DMA head, 2·N for the motion head."""
        return 2 * self.config.num_patches if self.config.head == "motion" else self.config.dim

    def reset_head(self, num_classes: int, dropout: float | None = None) -> None:
        """Attach a fresh recognition head for ``num_classes`` classes (e.g. after pre-training)."""
        dropout = self.config.head_dropout if dropout is None else dropout
        self.config = self.config.replace(num_classes=num_classes, head_dropout=dropout)
        device = self.decoder_pred.weight.device
        self.head = RecognitionHead(self.head_features, num_classes, dropout, self.config.ln_eps).to(device)

    def head_input(self, *, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor,
                   features: torch.Tensor | None = None, saliency: torch.Tensor | None = None) -> torch.Tensor:
        """What the recognition head reads (B, :attr:`head_features`), from encoder outputs: the saliency-pooled
        DMA features (``head="dma"``; ``features`` and ``saliency`` if already computed), or the onset→apex flow
        per patch with its median over the patches removed (``head="motion"``)."""
        if self.config.head == "motion":
            return centred_flow(self.motion(onset_tokens, apex_tokens)).flatten(1)
        if features is None:
            features = self.dma(apex_tokens, onset_tokens)[0]
        if self.config.poi != "saliency":
            return pool_patches(features)
        return pool_patches(features, self.saliency(apex_tokens) if saliency is None else saliency)

    def recognize(self, *, onset: torch.Tensor, apex: torch.Tensor) -> dict[str, torch.Tensor]:
        """Classify (onset, apex) pairs: ``logits`` (B, classes), ``dma_map`` (B, heads, N),
        ``saliency`` (B, N) and the weighted DMA ``features`` (B, N, dim)."""
        c = self.config
        check_frames(c.patch_size, c.in_chans, onset=onset, apex=apex)
        tokens = self.encode(torch.cat([apex, onset]))
        return self.recognize_tokens(onset_tokens=tokens[onset.shape[0]:], apex_tokens=tokens[:onset.shape[0]])

    def recognize_tokens(self, *, onset_tokens: torch.Tensor, apex_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`recognize` from encoder outputs (used with cached tokens in ``frozen`` mode)."""
        if self.head is None:
            raise ValueError("this model has no recognition head: create it with num_classes=K "
                             "or call reset_head(K)")
        features, diagonal = self.dma(apex_tokens, onset_tokens)
        saliency = self.saliency(apex_tokens)
        logits = self.head(self.head_input(onset_tokens=onset_tokens, apex_tokens=apex_tokens, features=features,
                                           saliency=saliency))
        return {"logits": logits, "dma_map": diagonal, "saliency": saliency,
                "features": self.weighted(features, saliency)}

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def reconstruct_images(model: MicronBERT, pred: torch.Tensor, frame_t: torch.Tensor) -> torch.Tensor:
    """Turn ``pred`` back into an image shaped like ``frame_t`` (undoing per-patch normalisation with
    the statistics of ``frame_t`` when ``norm_pix_loss`` is on)."""
    p = model.config.patch_size
    grid_h, grid_w = frame_t.shape[-2] // p, frame_t.shape[-1] // p
    if model.config.norm_pix_loss:
        target = model.patchify(frame_t)
        pred = pred * (target.var(-1, keepdim=True) + 1e-6).sqrt() + target.mean(-1, keepdim=True)
    return model.unpatchify(pred, grid_h, grid_w)

