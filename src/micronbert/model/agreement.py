"""The contextual agreement of PoI (METHOD.md §6): the objective that makes the contextual token (CT) describe the
face, not the background. A random crop of I_{t+δ} must give the CT of the whole frame, either against an EMA
teacher with a small predictor (``ema-mse``) or by DINO self-distillation (``dino``, as in the published code).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .crops import crop_and_resize
from .vit import VisionTransformer


def build_encoder(config: ModelConfig) -> VisionTransformer:
    return VisionTransformer(config.img_size, config.patch_size, config.in_chans, config.dim, config.depth,
                             config.heads, config.mlp_dim, config.ln_eps)


def frozen_copy(encoder: nn.Module, config: ModelConfig) -> VisionTransformer:
    """A teacher encoder that starts equal to ``encoder`` and receives no gradient."""
    teacher = build_encoder(config)
    teacher.load_state_dict(encoder.state_dict())
    teacher.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """teacher ← momentum·teacher + (1 − momentum)·student, parameter by parameter."""
    teacher_params = list(teacher.parameters())
    student_params = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(teacher_params, momentum)
    torch._foreach_add_(teacher_params, student_params, alpha=1.0 - momentum)


class Agreement(nn.Module):
    """Interface of the contextual-agreement objectives.

    ``views(frame, boxes)`` gives the student's inputs, the crops of ``frame`` at the drawn ``boxes`` (views, B, 4;
    :func:`micronbert.model.draws.draw_step`): ``(global_views, local_views)``, the first at the model's input size
    (so the model can encode them in the same batch as the frames), the second at another size or ``None``.
    ``loss(frame, global_ct, local_ct)`` gets the student's contextual tokens of those views.
    ``update_teacher(encoder, momentum)`` is the EMA step the training loop calls after each optimiser step.
    """

    teacher: VisionTransformer

    def views(self, frame: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError

    def loss(self, frame: torch.Tensor, global_ct: torch.Tensor, local_ct: torch.Tensor | None,
             global_views: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update_teacher(self, encoder: nn.Module, momentum: float) -> None:
        ema_update(self.teacher, encoder, momentum)


class EmaMseAgreement(Agreement):
    """Predictor(CT of a crop) must match the EMA teacher's CT of the whole frame (L2-normalised).

    The loss is ‖n(pred) − n(target)‖² = 2 − 2·cos, averaged over the batch.
    """

    def __init__(self, config: ModelConfig, encoder: VisionTransformer) -> None:
        super().__init__()
        hidden = config.predictor_hidden or 2 * config.dim
        self.img_size = config.img_size
        self.teacher = frozen_copy(encoder, config)
        self.predictor = nn.Sequential(nn.Linear(config.dim, hidden), nn.GELU(), nn.Linear(hidden, config.dim))

    def views(self, frame, boxes):
        return crop_and_resize(frame, boxes[0], frame.shape[-1]), None

    def loss(self, frame, global_ct, local_ct, global_views):
        with torch.no_grad():
            target = self.teacher(frame)[:, 0]
        prediction = self.predictor(global_ct)
        return (F.normalize(prediction, dim=-1) - F.normalize(target.float(), dim=-1)).pow(2).sum(-1).mean()


class WeightNormLinear(nn.Module):
    """Linear layer without bias, weight = g · v / ‖v‖ per output row (published names weight_g, weight_v)."""

    def __init__(self, in_features: int, out_features: int, fix_norm: bool = True) -> None:
        super().__init__()
        self.weight_v = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.trunc_normal_(self.weight_v, std=0.02)
        self.weight_g = nn.Parameter(torch.ones(out_features, 1), requires_grad=not fix_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_g * self.weight_v / self.weight_v.norm(dim=1, keepdim=True)
        return F.linear(x, weight)


class DinoHead(nn.Module):
    """MLP (dim → hidden → hidden → bottleneck) → L2 normalisation → weight-normed projection to out_dim."""

    def __init__(self, dim: int, hidden: int, bottleneck: int, out_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.trunc_normal_(layer.weight, std=0.02)
                nn.init.zeros_(layer.bias)
        self.last_layer = WeightNormLinear(bottleneck, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class DinoAgreement(Agreement):
    """DINO self-distillation on the contextual token: 2 global + k local crops, EMA teacher,
    centring and sharpening of the teacher's output."""

    def __init__(self, config: ModelConfig, encoder: VisionTransformer) -> None:
        super().__init__()
        self.local_crops = config.dino_local_crops
        patch = config.patch_size
        self.local_size = max(patch, round(config.img_size * 96 / 224 / patch) * patch)
        self.teacher_temp = config.dino_teacher_temp
        self.student_temp = config.dino_student_temp
        self.center_momentum = config.dino_center_momentum
        head_args = (config.dim, config.dino_hidden, config.dino_bottleneck, config.dino_out_dim)
        self.student_head = DinoHead(*head_args)
        self.teacher = frozen_copy(encoder, config)
        self.teacher_head = DinoHead(*head_args)
        self.teacher_head.load_state_dict(self.student_head.state_dict())
        self.teacher_head.requires_grad_(False)
        self.register_buffer("center", torch.zeros(1, config.dino_out_dim))

    def views(self, frame, boxes):
        size = frame.shape[-1]
        global_views = torch.cat([crop_and_resize(frame, view, size) for view in boxes[:2]])
        if self.local_crops == 0:
            return global_views, None
        local_views = torch.cat([crop_and_resize(frame, view, self.local_size) for view in boxes[2:]])
        return global_views, local_views

    def loss(self, frame, global_ct, local_ct, global_views):
        with torch.no_grad():
            teacher_out = self.teacher_head(self.teacher(global_views)[:, 0]).float()
            targets = F.softmax((teacher_out - self.center) / self.teacher_temp, dim=-1).chunk(2)
        student_ct = global_ct if local_ct is None else torch.cat([global_ct, local_ct])
        student_logp = F.log_softmax(self.student_head(student_ct).float() / self.student_temp, dim=-1)
        student_views = student_logp.chunk(student_logp.shape[0] // frame.shape[0])
        terms = [-(target * logp).sum(-1).mean()
                 for t, target in enumerate(targets) for v, logp in enumerate(student_views) if v != t]
        if self.training:
            self._update_center(teacher_out)
        return torch.stack(terms).mean()

    @torch.no_grad()
    def _update_center(self, teacher_out: torch.Tensor) -> None:
        batch_center = teacher_out.sum(0, keepdim=True)
        count = torch.tensor(float(teacher_out.shape[0]), device=teacher_out.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(batch_center)
            dist.all_reduce(count)
        self.center.mul_(self.center_momentum).add_(batch_center / count, alpha=1 - self.center_momentum)

    def update_teacher(self, encoder: nn.Module, momentum: float) -> None:
        ema_update(self.teacher, encoder, momentum)
        ema_update(self.teacher_head, self.student_head, momentum)


def build_agreement(config: ModelConfig, encoder: VisionTransformer) -> Agreement | None:
    """The agreement objective named by ``config.agreement`` (``None`` for ``off``)."""
    if config.agreement == "ema-mse":
        return EmaMseAgreement(config, encoder)
    if config.agreement == "dino":
        return DinoAgreement(config, encoder)
    return None
