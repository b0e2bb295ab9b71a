"""Every registered recognition method on a synthetic MEGC2019-sized composite: wall time, peak memory and UF1/UAR.

The composite (:mod:`micronbert.data.synthetic.composite`) has the real one's shape: 68 subjects and 442 samples,
SMIC 16 / 164, CASME II 24 / 145, SAMM 28 / 133, three classes; its parts are synthetic CASME II-like datasets with
their own seeds, frame rates and frame sizes. Every method runs alone, one after the other, each run in its own
process, with its ``default`` recipe under ``--protocol megc2019`` (68 folds; ``tgsr``, a cross-database method,
under ``lodo``, 3 folds):

- run 1: the whole evaluation. The input layer's cache starts empty, so the first method that reads an input
  computes it and every later method that reads the same input (kind, size, channels, length) takes it from the
  cache; ``inputs_s`` shows which;
- run 2: the same method's inputs read again, now from the cache, with its per-run preparation and without the
  folds: what a second run of the method spends before training.

Peak memory is each process's peak resident set (``ru_maxrss``: the interpreter, torch, the inputs, the network).
Methods whose published input makes a CPU run of hours run at a smaller ``baselines.size`` / ``baselines.length``
(and, where even that takes hours, with narrower layers through ``baselines.networks``); the ``reduced`` column says
so and why. A method too slow for a whole LOSO even then trains one fold, and its LOSO time is extrapolated (no
scores). For the flow family, whose target is a whole composite LOSO within 15 minutes on 2 cores with the default
recipe, a method run at a reduced size also trains one fold at its published size for two epochs, and the LOSO time
at that size is extrapolated from it (the inputs, plus 68 folds × the epochs of the recipe × the time per epoch).

    python benchmarks/bench_baselines.py --quick                        # a smoke test: 3 x 4 subjects x 4 clips
    python benchmarks/bench_baselines.py --data /tmp/composite          # the composite (hours; run it alone)
    python benchmarks/bench_baselines.py --methods ststnet,offapexnet   # some methods only

Before a full run the benchmark waits (up to ``--wait-minutes``) for the 1-minute load average to fall to 1.5, and
it records the load at the start, at the end and around every method. Results go to
``benchmarks/results/bench_baselines_cpu_<date>.{json,md}`` (``--quick``: printed only); after every method the
results so far are written to ``<data folder>/bench_baselines_partial.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_info, markdown_table, write_results  # noqa: E402
from micronbert.io import write_json_atomically  # noqa: E402

TARGET_S = 15 * 60
PARTIAL_NAME = "bench_baselines_partial.json"
WORK_NAME = "bench_work"
LOAD_LIMIT = 1.5
PROBE_EPOCHS = 2
SKIPPED = {"micronbert": "needs pre-trained μ-BERT weights, which this machine has none of; without them it is "
                         "vit-scratch (random initialisation) with a warning, so vit-scratch stands for it"}
PROTOCOLS = {"tgsr": "lodo"}  # a cross-database method: leave one dataset out, not the megc2019 protocol
FAMILY_ORDER = ("flow", "linear", "classical", "transformer", "sequence", "apex", "gan")
DATASETS = ("all", "casme2", "samm", "smic")
NOT_NETWORKS = ("lbptop", "tgsr", "framediff", "flowgrid", "vit-scratch")
TINY_ELRCN = {"conv_widths": [4, 4, 8, 8, 8], "fc_width": 16, "lstm_units": 8, "hidden_units": 8}
TINY_ICEGAN = {"decoder_widths": [16, 16, 16], "latent_dim": 4}

Log = Callable[[str], None]


@dataclass(frozen=True)
class Setting:
    """How one method runs: ``baselines.size`` / ``baselines.length`` (None: the published input),
    ``baselines.networks`` options (None: the published layers) and why they differ from the published ones;
    ``one_fold``: too slow for a whole LOSO here, so one fold is trained and the LOSO time extrapolated (no
    scores)."""

    size: int | None = None
    length: int | None = None
    networks: dict[str, Any] | None = None
    why: str = ""
    one_fold: bool = False

    @property
    def reduced(self) -> bool:
        """Whether the method runs at other than its published inputs and layers."""
        return (self.size, self.length, self.networks) != (None, None, None)


_SHALLOW = Setting(48, why="AlexNet conv1-2 streams at 227 px: hours for a LOSO here (extrapolated below); 48 px")
FULL: dict[str, Setting] = {
    "sssn": _SHALLOW, "dssn": _SHALLOW, "dssn-add": _SHALLOW, "dssn-cat": _SHALLOW,
    "micro-attention": Setting(32, why="ResNet-10 at 224 px: days for a LOSO here; 32 px"),
    "elrcn-se": Setting(32, 3, TINY_ELRCN, why="VGG-16 at 224 px on 9 steps and an LSTM of 3000 (220 M "
                        "parameters): weeks here; 32 px, 3 steps, VGG widths 4-8, fc 16, LSTM 8"),
    "elrcn-te": Setting(32, 3, TINY_ELRCN, why="two VGG-16s at 224 px on 9 steps and an LSTM of 3000 (403 M "
                        "parameters): weeks here; 32 px, 3 steps, VGG widths 4-8, fc 16, LSTM 8"),
    "stcnn": Setting(32, 18, why="64 px x 96 frames (44 M parameters): days here; 32 px, 18 frames (the card's "
                     "LOSO advice)"),
    "fusenet": Setting(16, 18, why="two 32 px x 96-frame regions (177 M parameters): days here; 16 px, 18 frames"),
    "fusenet-late": Setting(16, 18, why="two 32 px x 96-frame regions (177 M parameters): days here; 16 px, "
                            "18 frames"),
    "atnet": Setting(16, 8, one_fold=True, why="ResNet-10 at 224 px and two LSTMs of 512 over 64 steps: days "
                     "here; 16 px, 8 steps, one fold (8.3 M parameters whatever the size: hours for a LOSO)"),
    "icegan": Setting(16, None, TINY_ICEGAN, one_fold=True,
                      why="U-Net generator and capsule discriminator at 128 px: weeks here; 16 px, narrow "
                          "decoder, one fold (hours for a LOSO even so)"),
}


def _quick(size: int, length: int | None = None, networks: dict[str, Any] | None = None) -> Setting:
    return Setting(size, length, networks, why="--quick: small inputs")


QUICK: dict[str, Setting] = {
    "ststnet": _quick(16), "offapexnet": _quick(16), "dual-inception": _quick(16),
    "sssn": _quick(40), "dssn": _quick(40), "dssn-add": _quick(40), "dssn-cat": _quick(40),
    "micro-attention": _quick(16),
    "elrcn-se": _quick(32, 3, TINY_ELRCN), "elrcn-te": _quick(32, 3, TINY_ELRCN),
    "stcnn": _quick(16, 6), "fusenet": _quick(16, 6), "fusenet-late": _quick(16, 6),
    "atnet": _quick(16, 4), "icegan": _quick(16, None, TINY_ICEGAN), "lbptop": _quick(16, 9), "tgsr": _quick(16, 9),
}


# ------------------------------------------------------------------------------------------------ one process
@dataclass
class Job:
    """What one worker process runs: ``mode`` ``loso`` (the whole evaluation), ``inputs`` (read and prepare
    only) or ``fold`` (one fold, the first subject held out)."""

    method: str
    mode: str
    table: str
    out: str
    values: dict[str, Any]
    protocol: str = "megc2019"
    threads: int = 0
    result: str = ""


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` in this process and return what it measured."""
    import warnings

    from micronbert.config import set_values
    from micronbert.data.synthetic.composite import composite_classes
    from micronbert.data.table import load_table
    from micronbert.evaluation.methods import get_method
    from micronbert.evaluation.runner import evaluate
    from micronbert.train.finetune import FinetuneConfig

    warnings.simplefilter("ignore")
    if job.threads:
        import torch

        torch.set_num_threads(job.threads)
    table = load_table(job.table)
    config = FinetuneConfig.from_dict(set_values({}, job.values))
    classes = composite_classes()
    started = time.perf_counter()
    if job.mode == "profile":
        return {**step_profile(get_method(job.method, config, len(classes)), table),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if job.mode == "inputs":
        method = get_method(job.method, config, len(classes))
        samples = method.read(table, skip_bad=True)
        method.prepare(samples, None)
        measured: dict[str, Any] = {"inputs_s": time.perf_counter() - started, "samples": len(samples),
                                    "details": method.info()}
    else:
        options: dict[str, Any] = {"protocol": job.protocol, "skip_bad": True}
        if job.mode == "fold":
            options.update(protocol="split", test_subjects=[sorted(set(table["subject"]))[0]])
        result = evaluate(table, job.method, config, job.out, classes, **options)
        measured = {"timings": result.timings, "details": result.details, "samples": result.metrics["num_samples"],
                    "folds": result.folds_done, "skipped_samples": len(result.skipped_samples),
                    "skipped_folds": len(result.skipped_folds),
                    "per_dataset": {name: {"uf1": values["uf1"], "uar": values["uar"]}
                                    for name, values in result.per_dataset.items()}}
    if not measured["details"].get("inputs"):
        side = get_method(job.method, config, len(classes)).input_size()
        measured["details"]["inputs"] = [f"kind=pair|size={side}|channels=r,g,b|length=0|region="]
    measured["loso_folds"] = int(table["dataset" if job.protocol == "lodo" else "subject"].nunique())
    measured["elapsed_s"] = time.perf_counter() - started
    measured["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return measured


def forward_macs(network: Any, inputs: list[Any]) -> int:
    """Multiply-accumulates of one sample's forward pass through the convolutions and linear layers of
    ``network`` (``inputs``: one batch of one sample per input), counted by forward hooks."""
    import torch
    from torch import nn

    counted: list[int] = []

    def count(layer: nn.Module, _: Any, output: torch.Tensor) -> None:
        if isinstance(layer, nn.Linear):
            counted.append(output.numel() * layer.in_features)
        else:
            counted.append(output.numel() * layer.in_channels // layer.groups * int(torch.tensor(
                layer.kernel_size).prod()))

    hooks = [layer.register_forward_hook(count) for layer in network.modules()
             if isinstance(layer, (nn.Linear, nn.Conv2d, nn.Conv3d))]
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            network(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
        network.train(was_training)
    return sum(counted)


def step_profile(method: Any, table: Any, repeats: int = 20) -> dict[str, Any]:
    """Where a plain cross-entropy network's training time goes, on random inputs of its run's shape: one step at
    the recipe's batch (forward + backward, then the optimiser) and at batch 2 (about the fixed cost of a step:
    BatchNorm needs two samples), the multiply-accumulates of a sample's forward pass and the rate achieved
    (forward + backward counted as 3 forward passes), and the number of steps of a composite LOSO (every fold's
    training samples in batches, times the epochs)."""
    import torch
    from torch.nn import functional as F

    from micronbert.baselines.training import make_optimiser
    from micronbert.data.inputs.builders import output_shape

    recipe = method.recipe()
    torch.manual_seed(0)
    network = method.build()
    optimiser = make_optimiser(list(network.parameters()), recipe)
    network.train()
    timed: dict[str, Any] = {}
    for batch in (recipe.batch_size, 2):
        inputs = [torch.rand((batch, *output_shape(spec))) * 255 for spec in method.specs()]
        targets = torch.randint(0, 3, (batch,))
        passes, updates = [], []
        for step in range(repeats + 3):
            clock = time.perf_counter()
            loss = F.cross_entropy(network(*inputs), targets)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            middle = time.perf_counter()
            optimiser.step()
            if step >= 3:
                passes.append(middle - clock)
                updates.append(time.perf_counter() - middle)
        timed[batch] = (sorted(passes)[len(passes) // 2], sorted(updates)[len(updates) // 2])
    counts = table["subject"].value_counts()
    per_epoch = sum(-(-(len(table) - count) // recipe.batch_size) for count in counts)
    steps = per_epoch * recipe.epochs
    passes = sum(len(table) - count for count in counts) * recipe.epochs
    (forward_backward, update), (small_pass, small_update) = timed[recipe.batch_size], timed[2]
    parameters = sum(parameter.numel() for parameter in network.parameters())
    macs = forward_macs(network, [torch.rand((1, *output_shape(spec))) * 255 for spec in method.specs()])
    return {"batch": recipe.batch_size, "epochs": recipe.epochs, "parameters": parameters,
            "forward_mmacs": macs / 1e6, "gflops": 6 * macs * recipe.batch_size / forward_backward / 1e9,
            "forward_backward_ms": 1000 * forward_backward, "optimiser_ms": 1000 * update,
            "step_ms": 1000 * (forward_backward + update), "batch2_step_ms": 1000 * (small_pass + small_update),
            "loso_steps": steps, "loso_sample_passes": passes,
            "loso_train_estimate_s": steps * (forward_backward + update),
            "inputs": [spec.describe() for spec in method.specs()]}


def spawn(job: Job, folder: Path) -> dict[str, Any]:
    """Run ``job`` in a new Python process; its measurements with the process's wall time (imports included),
    or ``error`` with the end of its output."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = folder / f"{job.method}_{job.mode}.json"
    job.result = str(folder / f"{job.method}_{job.mode}_result.json")
    write_json_atomically(spec, asdict(job))
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, __file__, "--worker", str(spec)], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        tail = (completed.stderr or completed.stdout).strip().splitlines()[-8:]
        return {"error": " / ".join(tail), "wall_s": wall}
    return {**json.loads(Path(job.result).read_text(encoding="utf-8")), "wall_s": wall}


# ------------------------------------------------------------------------------------------------ plan
def config_values(method: str, setting: Setting, work: Path, epochs: int | None) -> dict[str, Any]:
    """The dotted configuration values of one method's runs (``epochs``: every network's, None: the recipe's)."""
    values: dict[str, Any] = {"baselines.cache_dir": str(work / "inputs"), "cache.dir": str(work / "tokens"),
                              "train.device": "cpu", "train.seed": 0, "baselines.recipe": "default"}
    if setting.size is not None:
        values["baselines.size"] = setting.size
    if setting.length is not None:
        values["baselines.length"] = setting.length
    if setting.networks is not None:
        values[f"baselines.networks.{method}"] = setting.networks
    if epochs is not None and method not in NOT_NETWORKS:
        values[f"baselines.recipes.{method}.epochs"] = epochs
    return values


def selected_methods(requested: str | None) -> list[str]:
    """The methods to run, the flow family first (``--methods a,b`` selects; unknown names stop the run)."""
    from micronbert.evaluation.methods import available_methods, canonical_method_name

    names = [name for name in available_methods() if name not in SKIPPED]
    if requested:
        chosen = [canonical_method_name(name.strip()) for name in requested.split(",") if name.strip()]
        refused = [name for name in chosen if name in SKIPPED]
        if refused:
            raise SystemExit(f"{refused[0]}: {SKIPPED[refused[0]]}")
        names = [name for name in names if name in chosen]
    return sorted(names, key=lambda name: FAMILY_ORDER.index(family_of(name)))


def family_of(method: str) -> str:
    """The registered method's family."""
    from micronbert.evaluation.methods import METHODS

    return METHODS[method].family


def default_epochs(method: str) -> int | None:
    """The epochs of a network's default recipe (None for the other methods)."""
    from micronbert.evaluation.methods import METHODS

    card = getattr(METHODS[method], "card", None)
    return None if card is None else card.recipes["default"].epochs


# ------------------------------------------------------------------------------------------------ the machine
def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(value, 2) for value in os.getloadavg()]


def uptime_text() -> str:
    """``uptime``'s line."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"load average: {load_average()}"


def wait_for_quiet(minutes: float, log: Log) -> dict[str, Any]:
    """Wait, a minute at a time, until the 1-minute load is at most :data:`LOAD_LIMIT` or ``minutes`` passed."""
    started = time.perf_counter()
    while load_average()[0] > LOAD_LIMIT and time.perf_counter() - started < minutes * 60:
        log(f"load {load_average()} above {LOAD_LIMIT}: waiting ({(time.perf_counter() - started) / 60:.0f} min)")
        time.sleep(60)
    return {"waited_min": round((time.perf_counter() - started) / 60, 1), "quiet": load_average()[0] <= LOAD_LIMIT,
            "load": load_average()}


# ------------------------------------------------------------------------------------------------ rows
def inputs_text(details: dict[str, Any]) -> str:
    """The inputs a run read, short: ``flow 28px u,v,strain``, ``sequence 32px grey T=18``."""
    shown = []
    for spec in details.get("inputs", []):
        fields = dict(item.split("=", 1) for item in spec.split("|"))
        text = f"{fields['kind']} {fields['size']}px {fields['channels']}"
        text += f" T={fields['length']}" if fields.get("length", "0") != "0" else ""
        text += f" {fields['region']}" if fields.get("region") else ""
        shown.append(text)
    return "; ".join(shown)


def method_row(method: str, setting: Setting, protocol: str, runs: dict[str, dict[str, Any]],
               loads: list[list[float]]) -> dict[str, Any]:
    """One result row from the method's runs (``loso`` or ``fold``, ``inputs``, ``probe``)."""
    row: dict[str, Any] = {"method": method, "family": family_of(method), "protocol": protocol,
                           "reduced": setting.why if setting.reduced else "no", "load_1_5_15": loads}
    first = runs["fold"] if setting.one_fold else runs["loso"]
    if "error" in first:
        return {**row, "error": first["error"], "wall_s": first["wall_s"]}
    details = first["details"]
    row.update({
        "inputs": inputs_text(details), "samples": first["samples"], "folds": first["folds"],
        "skipped_samples": first["skipped_samples"], "skipped_folds": first["skipped_folds"],
        "parameters": details.get("parameters"), "published_parameters": details.get("published_parameters"),
        "flow_method": details.get("flow_method"), "recipe": details.get("recipe", "(not a network)"),
        "started_from": details.get("started_from"),
        "inputs_computed": details.get("inputs_computed", details.get("frames_encoded")),
        "inputs_from_cache": details.get("inputs_from_cache", details.get("frames_from_cache")),
        "inputs_s": first["timings"]["prepare_s"], "train_s": first["timings"]["train_s"],
        "predict_s": first["timings"]["predict_s"], "wall_s": first["wall_s"], "peak_mb": first["peak_rss_mb"],
    })
    if setting.one_fold:
        row.update(one_fold_estimate(row, first))
    else:
        for name in DATASETS:
            scores = first["per_dataset"].get(name, {})
            row[f"uf1_{name}"], row[f"uar_{name}"] = scores.get("uf1"), scores.get("uar")
    second = runs.get("inputs", {"error": "not run"})
    if "error" in second:
        row["second_error"] = second["error"]
    else:
        row.update({"second_inputs_s": second["inputs_s"], "second_wall_s": second["wall_s"],
                    "second_peak_mb": second["peak_rss_mb"],
                    "second_from_cache": second["details"].get("inputs_from_cache",
                                                               second["details"].get("frames_from_cache"))})
    if row["family"] == "flow":
        row.update(target_estimate(method, row, runs.get("probe")))
        profile = runs.get("profile")
        if profile is not None:
            row["profile"] = profile
    return row


def one_fold_estimate(row: dict[str, Any], fold: dict[str, Any]) -> dict[str, Any]:
    """The LOSO time of a method run on one fold: its inputs and every fold's training and prediction."""
    per_fold = fold["timings"]["train_s"] + fold["timings"]["predict_s"]
    folds = fold["loso_folds"]
    return {"fold_s": per_fold, "loso_estimate_s": fold["timings"]["prepare_s"] + folds * per_fold,
            "folds": f"1 of {folds} (extrapolated)"}


def target_estimate(method: str, row: dict[str, Any], probe: dict[str, Any] | None) -> dict[str, Any]:
    """Whether a flow method meets the 15-minute target: measured when it ran at its published inputs, else
    extrapolated from one fold at the published inputs trained for :data:`PROBE_EPOCHS` epochs."""
    if row["reduced"] == "no":
        return {"loso_published_s": row["wall_s"], "target_basis": "measured",
                "meets_target": row["wall_s"] <= TARGET_S}
    if probe is None or "error" in probe:
        return {"target_basis": "not measured at the published size", "probe_error": (probe or {}).get("error")}
    epochs = default_epochs(method) or PROBE_EPOCHS
    per_fold = probe["timings"]["train_s"] * epochs / PROBE_EPOCHS + probe["timings"]["predict_s"]
    estimate = probe["timings"]["prepare_s"] + row["folds"] * per_fold
    return {"published_fold_s": per_fold, "published_inputs_s": probe["timings"]["prepare_s"],
            "published_peak_mb": probe["peak_rss_mb"], "loso_published_s": estimate,
            "target_basis": f"extrapolated from one fold at the published size ({PROBE_EPOCHS} of {epochs} epochs)",
            "meets_target": estimate <= TARGET_S}


# ------------------------------------------------------------------------------------------------ report
COLUMNS = ["method", "family", "inputs", "reduced", "parameters", "samples", "uf1_all", "uar_all", "uf1_casme2",
           "uar_casme2", "uf1_samm", "uar_samm", "uf1_smic", "uar_smic", "inputs_s", "train_s", "wall_s", "peak_mb",
           "second_inputs_s", "second_peak_mb"]
TARGET_COLUMNS = ["method", "inputs", "wall_s", "published_fold_s", "loso_published_s", "target_basis",
                  "meets_target"]
PROFILE_COLUMNS = ["method", "inputs", "parameters", "forward_mmacs", "batch", "epochs", "forward_backward_ms",
                   "optimiser_ms", "step_ms", "batch2_step_ms", "gflops", "loso_steps", "loso_sample_passes",
                   "loso_train_estimate_s", "train_s"]
CACHE_COLUMNS = ["method", "inputs", "inputs_computed", "inputs_from_cache", "inputs_s", "second_from_cache",
                 "second_inputs_s"]
QUICK_NOTE = " Quick run: a smoke test, not the benchmark."
ONE_FOLD_COLUMNS = ["method", "inputs", "reduced", "parameters", "fold_s", "loso_estimate_s", "peak_mb"]


def markdown_report(payload: dict[str, Any]) -> str:
    """The results as Markdown: the conditions, the table, the flow family's target and the input cache."""
    rows = [row for row in payload["rows"] if "error" not in row]
    scored = [row for row in rows if "uf1_all" in row]
    one_fold = [row for row in rows if "loso_estimate_s" in row]
    failed = [row for row in payload["rows"] if "error" in row]
    composite, wait = payload["composite"], payload["wait"]
    epochs = "" if payload["epochs"] is None else f" with every network's epochs set to {payload['epochs']}"
    lines = [
        "# bench_baselines", "", f"{payload['machine']}", "",
        f"Composite: {composite['samples']} samples, {composite['subjects']} subjects ({composite['per_dataset']}), "
        f"written in {composite['written_s']:.0f} s.{QUICK_NOTE if payload['quick'] else ''}",
        f"Load at the start: `{payload['uptime_start']}`; at the end: `{payload['uptime_end']}`; waited "
        f"{wait['waited_min']} min for a 1-minute load <= {LOAD_LIMIT} (reached: {wait['quiet']}).",
        f"Recipe: default{epochs}; seed 0; torch threads per run: {payload.get('threads')}; one method at a time, "
        "each run in its own process.", "",
        "inputs_s: reading the inputs (computed, or from the input cache when an earlier method read the same input) "
        "and the per-run preparation, before the folds; train_s: training summed over the folds; wall_s: the whole "
        "process, imports included; peak_mb: its peak resident set. second_*: run 2, the same inputs read again "
        "from the cache (no training). UF1/UAR pooled over the folds, per dataset as the MEGC2019 protocol reports "
        "them (tgsr: leave one dataset out).", "",
        markdown_table(scored, COLUMNS), ""]
    if one_fold:
        lines += ["## Too slow for a whole LOSO here: one fold, extrapolated", "", markdown_table(one_fold,
                                                                                                 ONE_FOLD_COLUMNS), ""]
    flow = [row for row in rows if row["family"] == "flow"]
    profiles = [{**row["profile"], "method": row["method"], "inputs": inputs_text(row["profile"]),
                 "train_s": row["train_s"] if row["reduced"] == "no" else "(run reduced)"}
                for row in flow if "error" not in row.get("profile", {"error": ""})]
    lines += ["## Flow family: a composite LOSO within 15 minutes on 2 cores (default recipe)", "",
              markdown_table(flow, TARGET_COLUMNS), "",
              "Where the training time goes, at the published inputs (random inputs of the run's shape, median of "
              "20 steps; forward_mmacs: multiply-accumulates of one sample's forward pass, in millions; "
              "batch2_step_ms: a step of 2 samples, about the fixed cost of a step; gflops: the rate of the "
              "forward and backward pass, counted as 3 forward passes; loso_sample_passes: training samples x "
              "epochs over the 68 folds; loso_train_estimate_s: loso_steps x step_ms; train_s: measured in run 1):",
              "", markdown_table(profiles, PROFILE_COLUMNS), "",
              "## Input layer: computed once, shared", "", markdown_table(rows, CACHE_COLUMNS), ""]
    if payload["skipped_methods"]:
        lines += ["## Not run", ""] + [f"- {name}: {why}" for name, why in payload["skipped_methods"].items()] + [""]
    if failed:
        lines += ["## Failed", ""] + [f"- {row['method']}: {row['error']}" for row in failed] + [""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main
def composite_table(folder: Path, quick: bool, log: Log) -> tuple[Path, dict[str, Any]]:
    """The composite's table under ``folder`` (written unless it is there) and facts about it."""
    from micronbert.data.synthetic.composite import (
        MEGC2019_PARTS,
        TABLE_NAME,
        quick_parts,
        read_synthetic_composite,
        write_synthetic_composite,
    )

    started = time.perf_counter()
    if (folder / TABLE_NAME).is_file():
        table = read_synthetic_composite(folder)
        log(f"composite read from {folder}")
    else:
        log(f"writing the synthetic composite into {folder}")
        table = write_synthetic_composite(folder, quick_parts() if quick else MEGC2019_PARTS)
    facts = {"samples": len(table), "subjects": int(table["subject"].nunique()),
             "per_dataset": {str(name): {"subjects": int(part["subject"].nunique()), "samples": len(part),
                                         "fps": float(part["fps"].iloc[0])}
                             for name, part in table.groupby("dataset")},
             "written_s": time.perf_counter() - started, "folder": str(folder)}
    return folder / TABLE_NAME, facts


def run_method(method: str, setting: Setting, table: Path, work: Path, epochs: int | None, threads: int,
               probe: bool, log: Log) -> dict[str, Any]:
    """Run 1 (or one fold), run 2 and, for the flow family, the step profile and (when run reduced) one fold at the
    published size; the method's row."""
    protocol = PROTOCOLS.get(method, "megc2019")
    values = config_values(method, setting, work, epochs)

    def run(mode: str, label: str, job_values: dict[str, Any]) -> dict[str, Any]:
        out = work / "runs" / f"{method}-{label}"
        shutil.rmtree(out, ignore_errors=True)  # a resumed benchmark times every fold again
        return spawn(Job(method, mode, str(table), str(out), job_values, protocol, threads), work / "jobs" / label)

    loads, runs = [load_average()], {}
    first = "fold" if setting.one_fold else "loso"
    log(f"{method}: run 1 ({first}, {protocol}; {setting.why or 'published inputs'})")
    runs[first] = run(first, "first", values)
    log(f"{method}: run 1 {'FAILED' if 'error' in runs[first] else 'done'} in {runs[first]['wall_s']:.0f} s; run 2")
    runs["inputs"] = run("inputs", "second", values)
    loads.append(load_average())
    if probe and family_of(method) == "flow":
        log(f"{method}: step profile at the published size")
        runs["profile"] = run("profile", "profile", config_values(method, Setting(), work, None))
        if setting.reduced:
            log(f"{method}: one fold at the published size, {PROBE_EPOCHS} epochs")
            runs["probe"] = run("fold", "published", config_values(method, Setting(), work, PROBE_EPOCHS))
        loads.append(load_average())
    return method_row(method, setting, protocol, runs, loads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 x 4 subjects x 4 clips, small inputs, 2 epochs")
    parser.add_argument("--methods", help="comma-separated methods (default: every registered one but micronbert)")
    parser.add_argument("--data", help="folder of the synthetic composite, written there once and then reused, with "
                        "the benchmark's caches and results so far (default: a temporary folder)")
    parser.add_argument("--resume", action="store_true", help="keep the methods already in --data's "
                        f"{PARTIAL_NAME} and their input cache, and run the others")
    parser.add_argument("--epochs", type=int, help="every network's epochs (default: its default recipe's; "
                        "--quick: 2)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads of every run (default: torch's, one "
                        "per core)")
    parser.add_argument("--wait-minutes", type=float, default=40.0,
                        help=f"wait up to this long for a 1-minute load <= {LOAD_LIMIT} (default 40; 0: start now)")
    parser.add_argument("--no-probe", action="store_true", help="no step profile and no fold at the published size "
                        "for the flow family")
    parser.add_argument("--report-from", metavar="JSON", help="write the report of an earlier run again from its "
                        "results file, completing the step profiles written before they counted operations")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = Job(**json.loads(Path(args.worker).read_text(encoding="utf-8")))
        write_json_atomically(Path(job.result), run_job(job))
        return
    if args.report_from:
        payload = completed_profiles(json.loads(Path(args.report_from).read_text(encoding="utf-8")))
        json_path, md_path = write_results("bench_baselines", payload, markdown_report(payload))
        print(f"wrote {json_path} and {md_path}")
        return
    if args.resume and not args.data:
        parser.error("--resume needs --data (the folder of the interrupted run)")
    methods = selected_methods(args.methods)
    settings = QUICK if args.quick else FULL
    epochs = args.epochs if args.epochs is not None else (2 if args.quick else None)

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_baselines_") as scratch:
        data = Path(args.data) if args.data else Path(scratch) / "composite"
        table, composite = composite_table(data, args.quick, log)
        work = data / WORK_NAME
        if not args.resume:
            shutil.rmtree(work, ignore_errors=True)
        wait = (wait_for_quiet(args.wait_minutes, log) if not args.quick else
                {"waited_min": 0, "quiet": load_average()[0] <= LOAD_LIMIT, "load": load_average()})
        payload = (resumed_payload(data / PARTIAL_NAME, wait) if args.resume else {
            "machine": machine_info(), "quick": args.quick, "epochs": epochs, "threads": args.threads or "torch's",
            "composite": composite, "wait": wait, "uptime_start": uptime_text(), "target_s": TARGET_S,
            "skipped_methods": dict(SKIPPED), "settings": {}, "rows": []})
        done = {row["method"] for row in payload["rows"]}
        for method in [name for name in methods if name not in done]:
            setting = settings.get(method, Setting())
            payload["settings"][method] = asdict(setting)
            row = run_method(method, setting, table, work, epochs, args.threads,
                             not args.quick and not args.no_probe, log)
            payload["rows"].append(row)
            write_json_atomically(data / PARTIAL_NAME, payload)
            log(f"{method}: " + ", ".join(f"{key} {row[key]:.4g}" for key in ("uf1_all", "uar_all", "wall_s",
                                                                               "peak_mb") if row.get(key) is not None))
        payload["uptime_end"] = uptime_text()
    markdown = markdown_report(payload)
    if not args.quick:
        json_path, md_path = write_results("bench_baselines", payload, markdown)
        log(f"wrote {json_path} and {md_path}")
    print(markdown)


def completed_profiles(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with the operation counts and sample passes of every step profile that lacks them (computed
    from the network at its published inputs and the composite's table; the times are left as measured)."""
    import torch

    from micronbert.data.inputs.builders import output_shape
    from micronbert.data.synthetic.composite import read_synthetic_composite
    from micronbert.evaluation.methods import get_method
    from micronbert.train.finetune import FinetuneConfig

    table = read_synthetic_composite(payload["composite"]["folder"])
    counts = table["subject"].value_counts()
    for row in payload["rows"]:
        profile = row.get("profile")
        if not profile or "error" in profile or "forward_mmacs" in profile:
            continue
        method = get_method(row["method"], FinetuneConfig(), 3)
        macs = forward_macs(method.build(), [torch.rand((1, *output_shape(spec))) for spec in method.specs()])
        profile["forward_mmacs"] = macs / 1e6
        profile["gflops"] = 6 * macs * profile["batch"] / (profile["forward_backward_ms"] / 1000) / 1e9
        profile["loso_sample_passes"] = sum(len(table) - count for count in counts) * profile["epochs"]
    return payload


def resumed_payload(path: Path, wait: dict[str, Any]) -> dict[str, Any]:
    """The results so far of an interrupted run, with the load of this restart recorded."""
    if not path.is_file():
        raise SystemExit(f"{path}: no results of an earlier run to resume")
    payload = json.loads(path.read_text(encoding="utf-8"))
    payload.setdefault("restarts", []).append({"uptime": uptime_text(), "wait": wait})
    return payload


if __name__ == "__main__":
    main()
