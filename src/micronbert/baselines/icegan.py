"""ICE-GAN (Yu, Zhang, Song, Cai, IJCNN 2021), written on torch alone from docs/BASELINES.md

The generator (:class:`ICEGANGenerator`) is a 7-level U-Net on the grey 128×128 onset face: 4×4/2 spectral-norm
convolutions 64 → 128 → 256 → 512 → 512 → 512 → 320 (a 1×1 identity-aware embedding e), e concatenated with a
(latent 100 + class one-hot) code, 4×4/2 spectral-norm transposed convolutions back up with InstanceNorm and
LeakyReLU 0.2 and a Tanh output; every skip connection passes through a graph reasoning module
(:class:`GraphReasoningModule`) before it is concatenated. The capsule discriminator
(:class:`CapsuleDiscriminator`) has a spectral-norm PatchGAN trunk to 128×8×8, 1024 primary capsules of dimension
8, two digit-capsule layers routed by agreement (3 iterations): ``aux`` (one 16-d capsule per class: expression)
and ``adv`` (one capsule: real or synthetic), and a reconstruction decoder (FC 512 → 1024 → 5120 → H·W, sigmoid)
from the class capsules masked by the label. Recognition uses the discriminator's expression capsules on the real
apex (:class:`ICEGAN`'s ``forward``); :func:`train_step` is one GAN step.

Published: the discriminator's margin loss (m⁺ 0.9, m⁻ 0.1, λ 0.5) plus 0.0005 × MSE reconstruction; Adam lr
1e-3, cosine schedule, batch 16, 100 epochs. The generator's losses, the adversarial loss and the training loop
were never released; micronbert's re-derivations, all [PROPOSED] (docs/BASELINES.md):

- adversarial loss: the margin loss on the length of the ``adv`` capsule, real → 1, synthetic → 0, both terms
  weighted 1;
- the discriminator's expression loss is on real apex frames only; its reconstruction targets the real apex
  mapped from [-1, 1] to [0, 1];
- generator loss = adversarial (synthetic → 1) + 1 × margin loss of the synthetic face as the sampled class c
  + 10 × L1 to the real apex on samples where c is the true label + 1 × L1 between the encoder embeddings
  e(X_syn) and e(X_on) (identity);
- c is the true label with probability 0.5, otherwise drawn uniformly; one discriminator step, then one generator
  step; Adam with torch's default betas;
- layer details the tables leave open: no InstanceNorm on the first and the bottleneck level of the encoder (it
  would zero a 1×1 map), the discriminator's first convolution without BatchNorm, its 4×4/1 convolutions padded
  "same" (1 before, 2 after), LeakyReLU after the 1×1/2 convolution, none after the last 1×1 (capsules are
  squashed); the GRM's graph convolution mixes rows then columns of the (C/4)×(C/4) affinity;
- at sizes below 128 the U-Net keeps a 1×1 bottleneck with log2(size) levels (widths 64·2^k capped at 512, then
  320); ``forward``'s logits are the log-odds of the class-capsule lengths.

Images are grey faces scaled to [-1, 1]. A ``pair`` tensor is (B, 2·C, H, W): onset channels, then apex channels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from micronbert.baselines.card import NetworkCard, Recipe
from micronbert.data.inputs.spec import InputSpec

LEAK = 0.2
TRUNK_CHANNELS = 128
LENGTH_EPS = 1e-6


@dataclass(frozen=True)
class ICEGANConfig:
    """Sizes of ICE-GAN; the defaults are the published ones (docs/BASELINES.md)."""

    size: int = 128
    channels: int = 1
    latent_dim: int = 100
    bottleneck: int = 320
    primary_types: int = 16
    primary_dim: int = 8
    capsule_dim: int = 16
    routing_iterations: int = 3
    decoder_widths: tuple[int, ...] = (512, 1024, 5120)

    def __post_init__(self) -> None:
        if self.size < 16 or self.size & (self.size - 1):
            raise ValueError(f"ICE-GAN needs a power-of-two image side >= 16, got {self.size}")
        if self.channels < 1 or self.latent_dim < 0:
            raise ValueError(f"ICE-GAN needs channels >= 1 and latent_dim >= 0, got {self.channels}, "
                             f"{self.latent_dim}")
        if self.primary_types * self.primary_dim != TRUNK_CHANNELS:
            raise ValueError(f"primary capsules must split the trunk's {TRUNK_CHANNELS} channels, got "
                             f"{self.primary_types} types of dimension {self.primary_dim}")

    def check_images(self, what: str, images: torch.Tensor, frames: int = 1) -> None:
        """Raise ``ValueError`` naming the expected shape (B, frames·C, S, S) unless ``images`` has it."""
        expected = (frames * self.channels, self.size, self.size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"ICE-GAN expects {what} of shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(images.shape)}")


@dataclass(frozen=True)
class ICEGANLosses:
    """Loss constants: the published margin-loss and reconstruction values, and the [PROPOSED] weights of the
    generator's terms and the class sampling (module docstring)."""

    margin_positive: float = 0.9
    margin_negative: float = 0.1
    absent_weight: float = 0.5
    reconstruction: float = 0.0005
    adversarial: float = 1.0
    classification: float = 1.0
    l1: float = 10.0
    identity: float = 1.0
    true_class_probability: float = 0.5


def encoder_widths(size: int, bottleneck: int = 320) -> tuple[int, ...]:
    """Output channels of the U-Net's down-sampling levels: log2(size) levels to a 1×1 map, 64·2^k capped at 512,
    the last ``bottleneck`` (128 → 64, 128, 256, 512, 512, 512, 320 as published)."""
    levels = int(math.log2(size))
    return tuple(min(64 * 2 ** level, 512) for level in range(levels - 1)) + (bottleneck,)


def _leaky() -> nn.LeakyReLU:
    return nn.LeakyReLU(LEAK)


# ------------------------------------------------------------------------------------------------ generator
class GraphReasoningModule(nn.Module):
    """GRM on a skip connection: projections φ, θ to C/4 channels, affinity φθᵀ/(C/4) as a graph, a graph
    convolution (1-D convolution across nodes with a residual, ReLU, 1-D convolution across the other axis),
    re-projection onto θ, 1×1 convolution back to C, InstanceNorm, residual add to the input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.nodes = max(1, channels // 4)
        self.phi = nn.Conv2d(channels, self.nodes, 1)
        self.theta = nn.Conv2d(channels, self.nodes, 1)
        self.node_conv = nn.Conv1d(self.nodes, self.nodes, 1)
        self.state_conv = nn.Conv1d(self.nodes, self.nodes, 1)
        self.project = nn.Conv2d(self.nodes, channels, 1)
        self.norm = nn.InstanceNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        phi, theta = self.phi(x).flatten(2), self.theta(x).flatten(2)
        graph = phi @ theta.transpose(1, 2) / self.nodes
        graph = graph + self.node_conv(graph.transpose(1, 2)).transpose(1, 2)
        graph = self.state_conv(F.relu(graph))
        reasoned = (graph @ theta).unflatten(2, x.shape[2:])
        return x + self.norm(self.project(reasoned))


def _down(in_channels: int, out_channels: int, normalise: bool) -> nn.Sequential:
    layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, out_channels, 4, stride=2, padding=1))]
    if normalise:
        layers.append(nn.InstanceNorm2d(out_channels))
    return nn.Sequential(*layers, _leaky())


def _up(in_channels: int, out_channels: int, last: bool) -> nn.Sequential:
    conv = spectral_norm(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1))
    if last:
        return nn.Sequential(conv, nn.Tanh())
    return nn.Sequential(conv, nn.InstanceNorm2d(out_channels), _leaky())


class ICEGANGenerator(nn.Module):
    """U-Net generator: onset (B, C, S, S), class labels (B,) and noise (B, latent_dim) → a face (B, C, S, S)."""

    def __init__(self, num_classes: int = 3, config: ICEGANConfig | None = None) -> None:
        super().__init__()
        config = config or ICEGANConfig()
        self.config = config
        self.num_classes = num_classes
        widths = encoder_widths(config.size, config.bottleneck)
        inputs = (config.channels, *widths[:-1])
        last = len(widths) - 1
        self.down = nn.ModuleList(_down(c_in, c_out, normalise=0 < level < last)
                                  for level, (c_in, c_out) in enumerate(zip(inputs, widths)))
        self.graphs = nn.ModuleList(GraphReasoningModule(width) for width in widths[:-1])
        up_inputs = (config.bottleneck + config.latent_dim + num_classes, *(2 * w for w in reversed(widths[:-1])))
        up_outputs = (*reversed(widths[:-1]), config.channels)
        self.up = nn.ModuleList(_up(c_in, c_out, last=index == last)
                                for index, (c_in, c_out) in enumerate(zip(up_inputs, up_outputs)))

    def encode(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The identity-aware embedding e (B, bottleneck, 1, 1) and the skip maps, shallowest first."""
        skips = []
        for level in self.down:
            image = level(image)
            skips.append(image)
        return skips[-1], skips[:-1]

    def forward(self, onset: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        embedding, skips = self.encode(onset)
        code = torch.cat([noise, F.one_hot(labels, self.num_classes).to(noise.dtype)], dim=1)
        x = torch.cat([embedding, code[:, :, None, None]], dim=1)
        for index, up in enumerate(self.up):
            if index:
                skip = len(skips) - index
                x = torch.cat([x, self.graphs[skip](skips[skip])], dim=1)
            x = up(x)
        return x


# ------------------------------------------------------------------------------------------------ discriminator
def squash(vectors: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Capsule non-linearity: direction kept, length mapped to |s|² / (1 + |s|²)."""
    squared = (vectors ** 2).sum(dim=dim, keepdim=True)
    return vectors * squared / (1 + squared) / torch.sqrt(squared + LENGTH_EPS)


class DigitCapsules(nn.Module):
    """A capsule layer routed by agreement: (B, N_in, D_in) → (B, N_out, D_out)."""

    def __init__(self, in_capsules: int, in_dim: int, out_capsules: int, out_dim: int, iterations: int) -> None:
        super().__init__()
        self.iterations = iterations
        self.weight = nn.Parameter(0.01 * torch.randn(in_capsules, out_capsules, out_dim, in_dim))

    def forward(self, capsules: torch.Tensor) -> torch.Tensor:
        votes = torch.einsum("iodk,bik->biod", self.weight, capsules)
        logits = votes.new_zeros(votes.shape[:3])
        for iteration in range(self.iterations):
            coupling = logits.softmax(dim=2)
            outputs = squash((coupling[..., None] * votes).sum(dim=1))
            if iteration + 1 < self.iterations:
                logits = logits + (votes * outputs[:, None]).sum(dim=-1)
        return outputs


class DiscriminatorOutput(NamedTuple):
    """Class-capsule lengths (B, classes), validity (B,) and the reconstruction (B, C, S, S) in [0, 1]."""

    class_lengths: torch.Tensor
    validity: torch.Tensor
    reconstruction: torch.Tensor


def _trunk(channels: int) -> nn.Sequential:
    def conv(c_in: int, c_out: int, kernel: int, stride: int, padding: int = 0) -> nn.Module:
        return spectral_norm(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding))

    return nn.Sequential(
        conv(channels, 64, 4, 2, 1), _leaky(),
        conv(64, 128, 4, 2, 1), nn.BatchNorm2d(128), _leaky(),
        conv(128, 256, 4, 2, 1), nn.BatchNorm2d(256), _leaky(),
        nn.ZeroPad2d((1, 2, 1, 2)), conv(256, 512, 4, 1), nn.BatchNorm2d(512), _leaky(),
        nn.ZeroPad2d((1, 2, 1, 2)), conv(512, 512, 4, 1), nn.BatchNorm2d(512), _leaky(),
        conv(512, 64, 1, 2), _leaky(),
        conv(64, TRUNK_CHANNELS, 1, 1),
    )


class CapsuleDiscriminator(nn.Module):
    """Capsule discriminator on a face (B, C, S, S): expression capsules, validity capsule, reconstruction."""

    def __init__(self, num_classes: int = 3, config: ICEGANConfig | None = None) -> None:
        super().__init__()
        config = config or ICEGANConfig()
        self.config = config
        self.num_classes = num_classes
        self.trunk = _trunk(config.channels)
        side = config.size // 16
        primaries = config.primary_types * side * side
        self.aux = DigitCapsules(primaries, config.primary_dim, num_classes, config.capsule_dim,
                                 config.routing_iterations)
        self.adv = DigitCapsules(primaries, config.primary_dim, 1, config.capsule_dim, config.routing_iterations)
        widths = (num_classes * config.capsule_dim, *config.decoder_widths)
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(c_in, c_out), nn.ReLU()]
        self.decoder = nn.Sequential(*layers, nn.Linear(widths[-1], config.channels * config.size ** 2), nn.Sigmoid())

    def primary_capsules(self, image: torch.Tensor) -> torch.Tensor:
        """(B, types·h·w, primary_dim) squashed capsules from the trunk's 128-channel map."""
        features = self.trunk(image)
        batch, _, height, width = features.shape
        capsules = features.view(batch, self.config.primary_types, self.config.primary_dim, height, width)
        return squash(capsules.permute(0, 1, 3, 4, 2).reshape(batch, -1, self.config.primary_dim))

    def class_capsules(self, image: torch.Tensor) -> torch.Tensor:
        """The expression capsules (B, classes, capsule_dim)."""
        return self.aux(self.primary_capsules(image))

    def expression_logits(self, image: torch.Tensor) -> torch.Tensor:
        """Recognition logits (B, classes): log-odds of the expression-capsule lengths ([PROPOSED]; same ranking)."""
        lengths = self.class_capsules(image).norm(dim=-1)
        return torch.logit(lengths.clamp(LENGTH_EPS, 1 - LENGTH_EPS))

    def judge(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Expression capsules (B, classes, capsule_dim), their lengths (B, classes) and validity (B,)."""
        primaries = self.primary_capsules(image)
        classes = self.aux(primaries)
        return classes, classes.norm(dim=-1), self.adv(primaries).norm(dim=-1)[:, 0]

    def forward(self, image: torch.Tensor, labels: torch.Tensor | None = None) -> DiscriminatorOutput:
        """All three outputs; the reconstruction reads the capsule of ``labels`` (the longest one without)."""
        classes, lengths, validity = self.judge(image)
        chosen = lengths.argmax(dim=1) if labels is None else labels
        masked = classes * F.one_hot(chosen, self.num_classes).to(classes.dtype)[..., None]
        return DiscriminatorOutput(lengths, validity, self.decoder(masked.flatten(1)).view_as(image))


# ------------------------------------------------------------------------------------------------ the GAN
def split_pair(pair: torch.Tensor, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Onset and apex (B, C, H, W) each from a ``pair`` tensor (B, 2·C, H, W)."""
    return pair[:, :channels], pair[:, channels:]


class ICEGAN(nn.Module):
    """Generator and discriminator; ``forward(pair)`` classifies the apex of a ``pair`` (B, 2·C, S, S) with the
    discriminator's expression capsules and returns logits (B, num_classes)."""

    def __init__(self, num_classes: int = 3, config: ICEGANConfig | None = None) -> None:
        super().__init__()
        self.config = config or ICEGANConfig()
        self.num_classes = num_classes
        self.generator = ICEGANGenerator(num_classes, self.config)
        self.discriminator = CapsuleDiscriminator(num_classes, self.config)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        self.config.check_images("a pair (onset and apex channels)", pair, frames=2)
        return self.discriminator.expression_logits(split_pair(pair, self.config.channels)[1])


def build_icegan(num_classes: int, inputs: tuple[InputSpec, ...], config: ICEGANConfig | None = None) -> ICEGAN:
    """ICE-GAN for one ``pair`` input (its size and channel count replace those of ``config``)."""
    if len(inputs) != 1 or inputs[0].kind != "pair":
        raise ValueError(f"ICE-GAN reads one pair input (onset → generator, apex → discriminator), got "
                         f"{[spec.kind for spec in inputs]}")
    spec = inputs[0]
    return ICEGAN(num_classes, replace(config or ICEGANConfig(), size=spec.size, channels=len(spec.channels)))


def margin_loss(lengths: torch.Tensor, targets: torch.Tensor, losses: ICEGANLosses,
                absent_weight: float | None = None) -> torch.Tensor:
    """Capsule margin loss: T·max(0, m⁺ − |v|)² + λ(1 − T)·max(0, |v| − m⁻)², summed over capsules, batch mean.

    targets: one-hot (B, K) floats; absent_weight: λ (default the published 0.5).
    """
    weight = losses.absent_weight if absent_weight is None else absent_weight
    present = targets * F.relu(losses.margin_positive - lengths) ** 2
    absent = weight * (1 - targets) * F.relu(lengths - losses.margin_negative) ** 2
    return (present + absent).sum(dim=1).mean()


def adversarial_loss(validity: torch.Tensor, real: bool, losses: ICEGANLosses) -> torch.Tensor:
    """[PROPOSED] margin loss on the validity capsule's length, real → 1, synthetic → 0, both weighted 1."""
    targets = torch.full_like(validity, float(real))[:, None]
    return margin_loss(validity[:, None], targets, losses, absent_weight=1.0)


class GANOptimisers(NamedTuple):
    """One optimiser per network."""

    generator: torch.optim.Optimizer
    discriminator: torch.optim.Optimizer


def gan_optimisers(model: ICEGAN, recipe: Recipe) -> GANOptimisers:
    """An optimiser of the recipe's kind, learning rate and weight decay for each network (torch's defaults
    otherwise: Adam's betas are unpublished)."""
    def make(parameters) -> torch.optim.Optimizer:
        if recipe.optimiser == "sgd":
            return torch.optim.SGD(parameters, lr=recipe.lr, momentum=recipe.momentum,
                                   weight_decay=recipe.weight_decay)
        kind = torch.optim.Adam if recipe.optimiser == "adam" else torch.optim.AdamW
        return kind(parameters, lr=recipe.lr, weight_decay=recipe.weight_decay)

    return GANOptimisers(make(model.generator.parameters()), make(model.discriminator.parameters()))


def sample_classes(labels: torch.Tensor, num_classes: int, probability: float,
                   rng: torch.Generator | None = None) -> torch.Tensor:
    """The class c to synthesise: the true label with ``probability``, otherwise uniform over the classes."""
    keep = torch.rand(labels.shape, generator=rng) < probability
    drawn = torch.randint(num_classes, labels.shape, generator=rng)
    return torch.where(keep, labels.cpu(), drawn).to(labels.device)


def _check_batch(generator: ICEGANGenerator, discriminator: CapsuleDiscriminator, onset: torch.Tensor,
                 apex: torch.Tensor, labels: torch.Tensor) -> None:
    if generator.config != discriminator.config or generator.num_classes != discriminator.num_classes:
        raise ValueError("ICE-GAN's generator and discriminator were built for different sizes or class counts")
    generator.config.check_images("onset faces", onset)
    generator.config.check_images("apex faces", apex)
    if labels.shape != (onset.shape[0],) or onset.shape[0] != apex.shape[0]:
        raise ValueError(f"ICE-GAN needs as many onsets, apexes and labels, got {onset.shape[0]}, {apex.shape[0]} "
                         f"and labels of shape {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= generator.num_classes):
        raise ValueError(f"ICE-GAN labels must lie in [0, {generator.num_classes}), got {labels.tolist()}")


def _discriminator_update(discriminator: CapsuleDiscriminator, apex: torch.Tensor, labels: torch.Tensor,
                          synthetic: torch.Tensor, losses: ICEGANLosses) -> dict[str, torch.Tensor]:
    real = discriminator(apex, labels)
    fake_validity = discriminator.judge(synthetic.detach())[2]
    truth = F.one_hot(labels, discriminator.num_classes).to(apex.dtype)
    terms = dict(
        d_expression=margin_loss(real.class_lengths, truth, losses),
        d_reconstruction=F.mse_loss(real.reconstruction, (apex + 1) / 2),
        d_adversarial=adversarial_loss(real.validity, True, losses) + adversarial_loss(fake_validity, False, losses),
    )
    terms["discriminator"] = (terms["d_expression"] + losses.reconstruction * terms["d_reconstruction"]
                              + terms["d_adversarial"])
    return terms


def _generator_update(generator: ICEGANGenerator, discriminator: CapsuleDiscriminator, onset: torch.Tensor,
                      apex: torch.Tensor, labels: torch.Tensor, classes: torch.Tensor, synthetic: torch.Tensor,
                      losses: ICEGANLosses) -> dict[str, torch.Tensor]:
    _, lengths, validity = discriminator.judge(synthetic)
    same = (classes == labels).to(apex.dtype)[:, None, None, None]
    terms = dict(
        g_adversarial=adversarial_loss(validity, True, losses),
        g_expression=margin_loss(lengths, F.one_hot(classes, generator.num_classes).to(apex.dtype), losses),
        g_l1=(same * (synthetic - apex).abs()).sum() / (same.sum() * synthetic[0].numel()).clamp(min=1),
        g_identity=F.l1_loss(generator.encode(synthetic)[0], generator.encode(onset)[0].detach()),
    )
    terms["generator"] = (losses.adversarial * terms["g_adversarial"] + losses.classification * terms["g_expression"]
                          + losses.l1 * terms["g_l1"] + losses.identity * terms["g_identity"])
    return terms


def train_step(generator: ICEGANGenerator, discriminator: CapsuleDiscriminator, onset: torch.Tensor,
               apex: torch.Tensor, labels: torch.Tensor, optimisers: GANOptimisers,
               losses: ICEGANLosses | None = None, rng: torch.Generator | None = None) -> dict[str, float]:
    """One GAN step on onset and apex faces (B, C, S, S) in [-1, 1] with labels (B,): synthesise a face of a sampled
    class from each onset, update the discriminator, then the generator. Returns both losses and their terms."""
    losses = losses or ICEGANLosses()
    _check_batch(generator, discriminator, onset, apex, labels)
    classes = sample_classes(labels, generator.num_classes, losses.true_class_probability, rng)
    noise = torch.randn((onset.shape[0], generator.config.latent_dim), generator=rng).to(onset)
    synthetic = generator(onset, classes, noise)

    optimisers.discriminator.zero_grad(set_to_none=True)
    d_terms = _discriminator_update(discriminator, apex, labels, synthetic, losses)
    d_terms["discriminator"].backward()
    optimisers.discriminator.step()

    optimisers.generator.zero_grad(set_to_none=True)
    g_terms = _generator_update(generator, discriminator, onset, apex, labels, classes, synthetic, losses)
    g_terms["generator"].backward()
    optimisers.generator.step()
    optimisers.discriminator.zero_grad(set_to_none=True)
    return {name: float(value.detach()) for name, value in {**d_terms, **g_terms}.items()}


# ------------------------------------------------------------------------------------------------ card
ICEGAN_CARD = NetworkCard(
    name="icegan",
    build=build_icegan,
    inputs=(InputSpec("pair", 128, ("grey",)),),
    recipes=MappingProxyType({
        "published": Recipe(
            optimiser="adam", lr=1e-3, epochs=100, batch_size=16, schedule="cosine", class_weighted=False,
            source="ICE-GAN code, model/run.log: Adam lr 1e-3 with a cosine schedule, batch 16, 100 epochs, seed 1",
        ),
        "default": Recipe(
            optimiser="adam", lr=2e-4, epochs=20, batch_size=16, class_weighted=False,
            source="[PROPOSED] cheap CPU budget, untuned: Adam 2e-4, 20 epochs, batch 16",
        ),
    }),
    parameters=137_503_169,
    options=ICEGANConfig,
    input_scaling="symmetric",
    notes=(
        "ICE-GAN: generator 40,284,737 and capsule discriminator 97,218,432 parameters (of which the "
        "reconstruction decoder 89,700,864) at 128×128 grey, 3 classes; the pair's onset feeds the generator, its"
        " apex the discriminator, whose expression capsules classify at prediction time (logits = log-odds of the"
        " capsule lengths); the pair tensor is (B, 2·C, H, W), onset channels then apex channels. Train with "
        "train_step and gan_optimisers (a plain cross-entropy fit of forward trains only the discriminator-only "
        "ablation of docs/BASELINES.md). Published and kept: the layer layout, the discriminator's margin loss "
        "(0.9 / 0.1 / 0.5) with 0.0005 × MSE reconstruction, Adam 1e-3, batch 16, 100 epochs. Re-derived "
        "([PROPOSED], docs/BASELINES.md; the generator's losses, the adversarial loss and the training loop were "
        "never released): adversarial margin loss on the validity capsule (real 1, synthetic 0, weight 1 each); "
        "discriminator expression loss on real apexes only; generator loss = adversarial + margin loss as the "
        "sampled class + 10 × L1 to the real apex where the sampled class is the true one + 1 × L1 between "
        "encoder embeddings of synthetic and onset (identity); the class is the true label with probability 0.5, "
        "else uniform; one discriminator then one generator update per step; Adam with torch's default betas; no "
        "InstanceNorm on the encoder's first and bottleneck levels; 'same' padding of the discriminator's 4×4/1 "
        "convolutions; below 128 px a log2(size)-level U-Net. Reported at the last epoch, per clip (the published"
        " log kept the best epoch per subject and probably scored frames)."
    ),
    aliases=("ice-gan",),
)
