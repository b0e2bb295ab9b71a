"""Shared helpers of the benchmarks: machine description and result files."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
from pathlib import Path

from micronbert.io import write_json_atomically, write_text_atomically

RESULTS = Path(__file__).resolve().parent / "results"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, object]:
    """What the numbers were measured on."""
    import torch

    info: dict[str, object] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def write_results(name: str, payload: dict[str, object], markdown: str) -> tuple[Path, Path]:
    """Write ``<name>_<date>.json`` and ``.md`` under benchmarks/results/ and return their paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = _dt.date.today().isoformat()
    device = "gpu" if "gpu" in payload.get("machine", {}) else "cpu"
    json_path = RESULTS / f"{name}_{device}_{stamp}.json"
    md_path = json_path.with_suffix(".md")
    write_json_atomically(json_path, payload)
    write_text_atomically(md_path, markdown)
    return json_path, md_path


def markdown_table(rows: list[dict[str, object]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
