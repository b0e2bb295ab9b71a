"""Precomputed images as researchers hold them: onset-to-apex flow images and apex face crops.

The STSTNet / HTNet line distributes the MEGC 2019 composite as image folders rather than frames
(docs/DATASETS.md, "Precomputed inputs in circulation"). ``read_image_folder`` reads both layouts into
micronbert's sample table (one row per sample, ``frames`` empty, ``image`` the image's path):

- the leave-one-subject-out tree ``DIR/<subject>/u_train|u_test/<label>/<file>``: each sample's test copy
  defines its subject and label; its train copies (the same sample in every other subject's ``u_train``) must
  hold the same pixels (the PNG encoding may differ), are checked and never counted twice;
- a flat folder of ``<name>.png`` (or ``.jpg``) files with a ground truth: the official MEGC 2019
  ``combined_3class_gt.csv`` (no header: database, subject, clip, label) or the HTNet-style CSV
  (``dataset,sub,filename_o,label,apex,imagename,sub_filename``); the format is told from the first row.

File names are matched to the ground truth under the rules of ``MATCH_RULES`` (the quirks of the published
names); the report records which rules matched each file. A subject's dataset comes from the ground truth
or, without one, from the naming convention (``subNN`` CASME II, ``sNN`` SMIC, ``NNN`` SAMM).
"""
from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from micronbert.data.datasets.ids import casme2_subject, samm_subject, smic_clip, smic_subject
from micronbert.data.datasets.megc2019 import SCHEME as MEGC_SCHEME
from micronbert.data.datasets.megc2019 import SOURCES as MEGC_FPS
from micronbert.data.datasets.megc2019 import read_gt
from micronbert.data.datasets.schemes import ClassScheme, get_scheme
from micronbert.data.datasets.sheets import normalise_name, parse_frame_number, read_grid
from micronbert.data.table import (
    REPORT_FILE,
    TABLE_FILE,
    LoadReport,
    make_table,
    sample_key,
    save_table,
    validate_table,
)
from micronbert.io import write_json_atomically

KINDS: tuple[str, ...] = ("flow", "apex")
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
TEST_SPLIT, TRAIN_SPLIT = "u_test", "u_train"
FLOW_CHANNELS = 3
DEFAULT_SCHEME = MEGC_SCHEME
FROM_GT, FROM_NAMING = "ground truth", "naming convention"
GT_MEGC2019, GT_HTNET = "megc2019", "htnet"
HTNET_COLUMNS: tuple[str, ...] = ("dataset", "sub", "filenameo", "label")
MATCH_RULES: Mapping[str, str] = {
    "exact": "the name is <subject>_<clip> as the ground truth (or, without one, the subject folder) writes them",
    "space-before-extension": "whitespace between the name and its extension ('sub01_EP02_01f .png')",
    "letter-case": "the name differs from the ground truth in letter case only",
    "samm-subject-padding": "SAMM subject zero-padded in the name but not in the ground truth ('006' vs '6'), "
    "or the reverse",
    "smic-subject-padding": "SMIC subject number without zero padding ('s1' vs 's01'), or the reverse",
    "smic-clip-padding": "SMIC clip with its subject number unpadded ('s1_ne_01' vs 's01_ne_01'), or the reverse",
    "casme2-subject-spelling": "CASME II subject written otherwise than in the ground truth ('sub01' vs '1')",
    "no-subject-prefix": "the name is the clip alone (SAMM and SMIC clips begin with their subject)",
    "gt-imagename": "the name given in the imagename column of the HTNet-style ground truth",
}
_SUBJECT_NAMING: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"sub\d+", re.IGNORECASE), "casme2"),
    (re.compile(r"s\d+", re.IGNORECASE), "smic"),
    (re.compile(r"\d+"), "samm"),
)
_SUBJECT_IDS: Mapping[str, Callable[[object], str]] = {
    "casme2": casme2_subject, "samm": samm_subject, "smic": smic_subject,
}
_CLIP_WITH_SUBJECT: Mapping[str, re.Pattern[str]] = {
    "samm": re.compile(r"(\d+)_\d+_\d+"),
    "smic": re.compile(r"s(\d+)_[a-z]+_\d+", re.IGNORECASE),
}
_SMIC_CLIP = re.compile(r"s(\d+)_([a-z]+)_(\d+)", re.IGNORECASE)
_EXAMPLES = 5


# --- ground truth ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GroundTruthRow:
    """One ground-truth sample: canonical ids (``subject`` not namespaced), the cells as written, its
    MEGC 2019 class index, and what the HTNet-style CSV adds (apex frame, apex image name)."""

    line: int
    dataset: str
    subject: str
    clip: str
    label: int
    subject_text: str
    clip_text: str
    apex: int | None = None
    image_name: str | None = None


@dataclass(frozen=True)
class GroundTruth:
    """A ground-truth file, its format (``megc2019`` or ``htnet``) and its rows in file order."""

    path: Path
    format: str
    rows: tuple[GroundTruthRow, ...]


def read_ground_truth(path: str | Path, report: LoadReport) -> GroundTruth:
    """Read the official MEGC 2019 ground truth or the HTNet-style CSV, telling which from the first row.

    Rows are parsed by the MEGC 2019 reader (database, subject, clip, label 0/1/2, ids normalised); the
    HTNet-style columns ``apex`` and ``imagename`` are read beside them. ValueError names the file and line.
    """
    source = Path(path).expanduser()
    grid = read_grid(source)
    if grid.empty:
        raise ValueError(f"{source}: the ground-truth file is empty")
    header = [normalise_name(cell) for cell in grid.iloc[0]]
    gt_format = _ground_truth_format(source, header)
    extra = {name: header.index(name) for name in ("apex", "imagename") if gt_format == GT_HTNET and name in header}
    rows = []
    for line, dataset, subject, clip, label in _parsed_rows(source, report):
        cells = grid.iloc[line - 1]
        apex_text = cells[extra["apex"]] if "apex" in extra else None
        apex = parse_frame_number(apex_text)
        if apex.problem is not None and apex_text is not None:
            report.warn(f"{source} line {line}: apex {apex_text!r} unusable ({apex.problem})")
        rows.append(GroundTruthRow(
            line, dataset, subject, clip, label, str(cells[1]), str(cells[2]), apex.value,
            cells[extra["imagename"]] if "imagename" in extra else None,
        ))
    report.note(f"ground truth {source} ({gt_format} format): {len(rows)} samples")
    return GroundTruth(source, gt_format, tuple(rows))


def _parsed_rows(source: Path, report: LoadReport) -> list[tuple[int, str, str, str, int]]:
    try:
        return read_gt(source, report)
    except ValueError as error:
        if str(source) in str(error):
            raise
        raise ValueError(f"{source}: {error}") from None


def _ground_truth_format(source: Path, header: list[str]) -> str:
    if {"filenameo", "imagename"} & set(header):
        if tuple(header[:4]) != HTNET_COLUMNS:
            raise ValueError(f"{source}: an HTNet-style ground truth must begin with the columns dataset, sub, "
                             f"filename_o, label; its header is {header}")
        return GT_HTNET
    if len(header) >= 4 and (header[0] in MEGC_FPS or header[3] == "label"):
        return GT_MEGC2019
    raise ValueError(f"{source}: neither the MEGC 2019 ground truth (database, subject, clip, label 0/1/2, no "
                     "header) nor the HTNet-style CSV (dataset,sub,filename_o,label,apex,imagename,sub_filename); "
                     f"its first row reads {header}")


# --- images ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageFormat:
    """Height, width, channel count and pixel type of an image."""

    height: int
    width: int
    channels: int
    dtype: str

    def describe(self) -> str:
        """``28x28, 3 channels, uint8``."""
        return f"{self.height}x{self.width}, {self.channels} channel{'s' if self.channels != 1 else ''}, {self.dtype}"


@dataclass(frozen=True)
class ImageFile:
    """An image read from disk: its path, format and a digest of its decoded pixels."""

    path: Path
    format: ImageFormat
    digest: str


def read_image_file(path: Path) -> ImageFile:
    """Decode ``path`` as stored (no channel conversion); ValueError naming the file when it is unreadable."""
    try:
        image = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except (OSError, cv2.error) as error:
        raise ValueError(f"{path}: not a readable image ({type(error).__name__}: {error})") from None
    if image is None or image.size == 0:
        raise ValueError(f"{path}: not a readable image (the decoder found no picture in it)")
    channels = 1 if image.ndim == 2 else int(image.shape[2])
    shape = ImageFormat(int(image.shape[0]), int(image.shape[1]), channels, str(image.dtype))
    return ImageFile(path, shape, hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest())


def check_image_formats(images: list[ImageFile], kind: str) -> ImageFormat:
    """The format all ``images`` share; ValueError naming the first image that differs from the most common one
    (and, for flow images, one without 3 channels)."""
    if kind == "flow":
        odd = next((image for image in images if image.format.channels != FLOW_CHANNELS), None)
        if odd is not None:
            raise ValueError(f"{odd.path}: a flow image needs {FLOW_CHANNELS} channels (u, v, strain); "
                             f"this one is {odd.format.describe()}")
    counts = Counter(image.format for image in images)
    common, count = counts.most_common(1)[0]
    odd_images = [image for image in images if image.format != common]
    if odd_images:
        raise ValueError(f"{odd_images[0].path}: {odd_images[0].format.describe()}, but {count} of {len(images)} "
                         f"images of the folder are {common.describe()} (all images of one folder must share size "
                         f"and channels; {len(odd_images)} differ)")
    return common


# --- report ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NameMatch:
    """How one image file was tied to its sample: the file (relative to the root), the sample and the rules."""

    file: str
    sample: str
    rules: tuple[str, ...]


@dataclass
class ImageFolderReport:
    """What ``read_image_folder`` found: layout, ground truth, image format, how each file was matched, where
    each subject's dataset came from, the train copies checked, and the dropped samples, warnings and notes."""

    root: Path
    kind: str
    scheme: str
    layout: str = ""
    ground_truth: Path | None = None
    ground_truth_format: str | None = None
    image_format: ImageFormat | None = None
    matches: list[NameMatch] = field(default_factory=list)
    subject_sources: dict[str, str] = field(default_factory=dict)
    train_copies_checked: int = 0
    train_copies_missing: int = 0
    load: LoadReport = field(default_factory=lambda: LoadReport("image-folder"))

    def summary(self) -> str:
        """A few lines for the command line: layout, ground truth, matching rules used, where each subject's
        dataset came from, train copies checked, and the load report's summary."""
        sources = Counter(self.subject_sources.values())
        rules = ", ".join(f"{rule} {count}" for rule, count in self.rule_counts().items()) or "none"
        truth = f"{self.ground_truth} ({self.ground_truth_format})" if self.ground_truth else "none"
        return "\n".join([
            f"{self.kind} images, {self.layout} layout under {self.root}; ground truth: {truth}",
            f"file names matched by: {rules}",
            "subjects' datasets from: " + (", ".join(f"{k} {v}" for k, v in sorted(sources.items())) or "none"),
            f"train copies checked: {self.train_copies_checked} (missing: {self.train_copies_missing})",
            self.load.summary()])

    def rule_counts(self) -> dict[str, int]:
        """How many files each matching rule applied to."""
        counts: Counter[str] = Counter(rule for match in self.matches for rule in match.rules)
        return dict(sorted(counts.items()))

    def to_dict(self, table: pd.DataFrame | None = None) -> dict[str, Any]:
        """The report as JSON-ready data (``prepare_report.json``); ``table`` adds sample counts per dataset."""
        data: dict[str, Any] = {
            "dataset": f"{self.kind}-images",
            "scheme": self.scheme,
            "kind": self.kind,
            "layout": self.layout,
            "root": str(self.root),
            "ground_truth": None if self.ground_truth is None else {
                "path": str(self.ground_truth), "format": self.ground_truth_format},
            "image_format": None if self.image_format is None else asdict(self.image_format),
            "subject_dataset_sources": dict(sorted(self.subject_sources.items())),
            "matching": {
                "rules": {name: MATCH_RULES[name] for name in self.rule_counts()},
                "counts": self.rule_counts(),
                "files": [{"file": m.file, "sample": m.sample, "rules": list(m.rules)} for m in self.matches],
            },
            "dropped": [{"sample": d.key, "reason": d.reason} for d in self.load.dropped],
            "warnings": self.load.warnings,
            "notes": self.load.notes,
        }
        if self.layout == "loso-tree":
            data["train_copies"] = {"checked": self.train_copies_checked, "missing": self.train_copies_missing}
        if table is not None:
            data["samples"] = len(table)
            data["datasets"] = {str(k): int(v) for k, v in table["dataset"].value_counts().sort_index().items()}
        return data


# --- reading --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Sample:
    dataset: str
    subject: str
    clip: str
    label: int
    emotion: str
    image: Path
    apex: int | None = None


@dataclass(frozen=True)
class _TreeImage:
    path: Path
    subject_folder: str
    label_folder: str


def read_image_folder(
    root: str | Path,
    gt: str | Path | None = None,
    kind: str = "flow",
    scheme: str | ClassScheme = DEFAULT_SCHEME,
    *,
    skip_missing: bool = False,
) -> tuple[pd.DataFrame, ImageFolderReport]:
    """Read a folder of precomputed ``flow`` (onset-to-apex) or ``apex`` images into a validated sample table.

    root: a leave-one-subject-out tree ``root/<subject>/u_train|u_test/<label>/<file>`` (labels are class
    indices or names of ``scheme``) or a flat folder of images, which needs ``gt``.
    gt: the MEGC 2019 ground truth or the HTNet-style CSV; with a tree it gives each subject's dataset and is
    checked against the tree's labels.
    skip_missing: leave out (and report) ground-truth rows without an image instead of raising.
    Raises ValueError (or FileNotFoundError) naming the file at fault.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    chosen = get_scheme(scheme)
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    report = ImageFolderReport(folder, kind, chosen.name, load=LoadReport(f"{kind}-images"))
    truth = None if gt is None else read_ground_truth(gt, report.load)
    if truth is not None:
        report.ground_truth, report.ground_truth_format = truth.path, truth.format
    report.layout = _layout(folder)
    if report.layout == "loso-tree":
        samples = _read_tree(folder, truth, chosen, report)
    elif truth is None:
        raise ValueError(f"{folder}: a flat folder of images needs a ground truth (gt=FILE) for subjects and labels")
    else:
        samples = _read_flat(folder, truth, chosen, report)
    if truth is not None:
        samples = _in_ground_truth_order(samples, truth, skip_missing, report)
    for sample in samples:
        _check_scheme_applies(chosen, sample)
    table = make_table(_table_row(sample) for sample in samples)
    validate_table(table)
    report.load.note(f"{len(table)} {kind} images read from {folder} ({report.layout} layout)")
    return table, report


def write_image_table(table: pd.DataFrame, report: ImageFolderReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``table.csv`` and ``prepare_report.json`` (naming the scheme, as ``micronbert prepare`` does) into
    ``out_dir``; returns both paths."""
    out = Path(out_dir).expanduser()
    table_path = save_table(table, out / TABLE_FILE)
    report_path = write_json_atomically(out / REPORT_FILE, report.to_dict(table))
    return table_path, report_path


def _layout(folder: Path) -> str:
    entries = _visible(folder.iterdir())
    is_tree = any(entry.is_dir() and ((entry / TEST_SPLIT).is_dir() or (entry / TRAIN_SPLIT).is_dir())
                  for entry in entries)
    has_images = any(_is_image(entry) for entry in entries)
    if is_tree and has_images:
        raise ValueError(f"{folder}: holds both images and <subject>/{TEST_SPLIT} folders; give one layout")
    if is_tree:
        return "loso-tree"
    if has_images:
        return "flat"
    raise ValueError(f"{folder}: neither <subject>/{TEST_SPLIT}|{TRAIN_SPLIT}/<label>/ folders nor images "
                     f"({', '.join(IMAGE_SUFFIXES)})")


def _visible(entries: Iterable[Path]) -> list[Path]:
    return sorted(entry for entry in entries if not entry.name.startswith((".", "__")))


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES


def _image_files(folder: Path, report: ImageFolderReport) -> list[Path]:
    entries = _visible(folder.iterdir())
    ignored = [entry.name for entry in entries if not _is_image(entry)]
    if ignored:
        report.load.note(f"{folder}: ignored {len(ignored)} entries that are not images, e.g. {ignored[:_EXAMPLES]}")
    return [entry for entry in entries if _is_image(entry)]


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


# --- flat layout ----------------------------------------------------------------------------------------------
def _read_flat(folder: Path, truth: GroundTruth, scheme: ClassScheme, report: ImageFolderReport) -> list[_Sample]:
    images = [read_image_file(path) for path in _image_files(folder, report)]
    report.image_format = check_image_formats(images, report.kind)
    index = _NameIndex(truth)
    samples = []
    for image in images:
        row, rules = index.match(image.path)
        samples.append(_gt_sample(row, image.path, scheme, truth))
        report.matches.append(NameMatch(_relative(image.path, folder), _row_key(row), rules))
        report.subject_sources[f"{row.dataset}/{row.subject}"] = FROM_GT
    return samples


class _NameIndex:
    """Every accepted spelling of every ground-truth row's file name, lower-cased, with the rules it implies."""

    def __init__(self, truth: GroundTruth) -> None:
        self.truth = truth
        self.names: dict[str, list[tuple[GroundTruthRow, str, tuple[str, ...]]]] = {}
        for row in truth.rows:
            for text, rules in _name_variants(row):
                entries = self.names.setdefault(text.lower(), [])
                if all(entry[0] is not row for entry in entries):
                    entries.append((row, text, rules))

    def match(self, path: Path) -> tuple[GroundTruthRow, tuple[str, ...]]:
        """The row ``path`` names and the rules used; ValueError when no row or several rows fit."""
        stem = path.stem.rstrip()
        rules = ["space-before-extension"] if stem != path.stem else []
        entries = self.names.get(stem.lower(), [])
        if not entries:
            raise ValueError(f"{path}: no row of the ground truth {self.truth.path} matches this image's name "
                             f"(rules tried: {', '.join(MATCH_RULES)})")
        if len(entries) > 1:
            lines = ", ".join(str(entry[0].line) for entry in entries)
            raise ValueError(f"{path}: the name fits several rows of {self.truth.path} (lines {lines})")
        row, text, variant_rules = entries[0]
        rules += variant_rules
        if text != stem:
            rules.append("letter-case")
        return row, tuple(rules) or ("exact",)


def _name_variants(row: GroundTruthRow) -> list[tuple[str, tuple[str, ...]]]:
    subjects = _subject_forms(row.dataset, row.subject_text, row.subject)
    clips = _clip_forms(row.dataset, row.clip_text, row.clip)
    variants = [(f"{s}_{c}", s_rules + c_rules) for s, s_rules in subjects.items() for c, c_rules in clips.items()]
    if row.dataset in _CLIP_WITH_SUBJECT:
        variants += [(c, ("no-subject-prefix", *c_rules)) for c, c_rules in clips.items()]
    if row.image_name:
        variants.append((Path(row.image_name).stem.rstrip(), ("gt-imagename",)))
    unique: dict[str, tuple[str, ...]] = {}
    for text, rules in variants:
        unique.setdefault(text, rules)
    return list(unique.items())


def _subject_forms(dataset: str, written: str, canonical: str) -> dict[str, tuple[str, ...]]:
    forms: dict[str, tuple[str, ...]] = {written: ()}
    if dataset == "samm":
        number = int(canonical)
        for text in (f"{number:03d}", str(number)):
            forms.setdefault(text, ("samm-subject-padding",))
    elif dataset == "smic":
        number = int(canonical[1:])
        for text in (f"s{number:02d}", f"s{number}"):
            forms.setdefault(text, ("smic-subject-padding",))
    else:
        forms.setdefault(canonical, (f"{dataset}-subject-spelling",))
    return forms


def _clip_forms(dataset: str, written: str, canonical: str) -> dict[str, tuple[str, ...]]:
    forms: dict[str, tuple[str, ...]] = {written: ()}
    match = _SMIC_CLIP.fullmatch(canonical) if dataset == "smic" else None
    if match is not None:
        number, emotion, index = int(match.group(1)), match.group(2), match.group(3)
        for subject in (f"s{number:02d}", f"s{number}"):
            forms.setdefault(f"{subject}_{emotion}_{index}", ("smic-clip-padding",))
    return forms


def _row_key(row: GroundTruthRow) -> str:
    return sample_key(row.dataset, f"{row.dataset}/{row.subject}", row.clip, None)


def _gt_sample(row: GroundTruthRow, image: Path, scheme: ClassScheme, truth: GroundTruth) -> _Sample:
    emotion = get_scheme(MEGC_SCHEME).classes[row.label]
    label = scheme.label_of(emotion, row.dataset)
    if label is None:
        raise ValueError(f"{truth.path} line {row.line}: class {row.label} ({emotion}) of {row.dataset} is outside "
                         f"the scheme {scheme.name} ({', '.join(scheme.classes)})")
    return _Sample(row.dataset, row.subject, row.clip, label, emotion, image, row.apex)


def _in_ground_truth_order(samples: list[_Sample], truth: GroundTruth, skip_missing: bool,
                           report: ImageFolderReport) -> list[_Sample]:
    by_key: dict[tuple[str, str, str], _Sample] = {}
    for sample in samples:
        key = (sample.dataset, sample.subject, sample.clip)
        if key in by_key:
            raise ValueError(f"{sample.image} and {by_key[key].image} are images of the same ground-truth sample "
                             f"{' '.join(key)}")
        by_key[key] = sample
    missing = [row for row in truth.rows if (row.dataset, row.subject, row.clip) not in by_key]
    if missing and not skip_missing:
        first = missing[0]
        raise ValueError(f"{truth.path}: {len(missing)} ground-truth rows have no image in {report.root}, e.g. line "
                         f"{first.line} ({first.dataset} {first.subject_text} {first.clip_text}); pass "
                         "skip_missing to leave them out")
    for row in missing:
        report.load.drop(_row_key(row), f"ground-truth line {row.line} has no image")
    return [by_key[(r.dataset, r.subject, r.clip)] for r in truth.rows if (r.dataset, r.subject, r.clip) in by_key]


# --- leave-one-subject-out tree -------------------------------------------------------------------------------
def _read_tree(folder: Path, truth: GroundTruth | None, scheme: ClassScheme,
               report: ImageFolderReport) -> list[_Sample]:
    tests, trains = _list_tree(folder, report)
    test_images = {item.path.name: read_image_file(item.path) for item in tests}
    train_images = [read_image_file(item.path) for item in trains]
    report.image_format = check_image_formats(list(test_images.values()) + train_images, report.kind)
    by_name = {item.path.name: item for item in tests}
    _check_train_copies(folder, by_name, test_images, trains, train_images, report)
    if truth is None:
        return [_named_sample(folder, item, scheme, report) for item in tests]
    index = _NameIndex(truth)
    return [_tree_gt_sample(folder, item, index, scheme, report) for item in tests]


def _list_tree(folder: Path, report: ImageFolderReport) -> tuple[list[_TreeImage], list[_TreeImage]]:
    tests: list[_TreeImage] = []
    trains: list[_TreeImage] = []
    for subject_dir in (entry for entry in _visible(folder.iterdir()) if entry.is_dir()):
        subject_tests = _split_images(subject_dir, TEST_SPLIT, report)
        if not subject_tests:
            raise ValueError(f"{subject_dir}: subject {subject_dir.name!r} has no test samples (no images under "
                             f"{TEST_SPLIT}/<label>/)")
        tests += subject_tests
        trains += _split_images(subject_dir, TRAIN_SPLIT, report)
    seen: dict[str, Path] = {}
    for item in tests:
        if item.path.name in seen:
            raise ValueError(f"{item.path} and {seen[item.path.name]}: the same file name is a test sample of two "
                             "subjects; names must be unique across a leave-one-subject-out tree")
        seen[item.path.name] = item.path
    return tests, trains


def _split_images(subject_dir: Path, split: str, report: ImageFolderReport) -> list[_TreeImage]:
    split_dir = subject_dir / split
    if not split_dir.is_dir():
        return []
    stray = [entry for entry in _visible(split_dir.iterdir()) if _is_image(entry)]
    if stray:
        raise ValueError(f"{stray[0]}: images of a leave-one-subject-out tree belong in {split}/<label>/")
    return [
        _TreeImage(path, subject_dir.name, label_dir.name)
        for label_dir in _visible(split_dir.iterdir()) if label_dir.is_dir()
        for path in _image_files(label_dir, report)
    ]


def _check_train_copies(folder: Path, tests: Mapping[str, _TreeImage], test_images: Mapping[str, ImageFile],
                        trains: list[_TreeImage], train_images: list[ImageFile], report: ImageFolderReport) -> None:
    present: set[tuple[str, str]] = set()
    for item, image in zip(trains, train_images):
        test = tests.get(item.path.name)
        if test is None:
            raise ValueError(f"{item.path}: a train copy with no test copy in any subject's {TEST_SPLIT}/")
        if test.subject_folder == item.subject_folder:
            raise ValueError(f"{item.path}: a test sample of subject {test.subject_folder!r} is also in its own "
                             f"{TRAIN_SPLIT}/ ({test.path}); the fold would train on its test subject")
        if test.label_folder != item.label_folder:
            raise ValueError(f"{item.path} is labelled {item.label_folder!r} but its test copy {test.path} is "
                             f"labelled {test.label_folder!r}")
        if image.digest != test_images[item.path.name].digest:
            raise ValueError(f"{item.path} and its test copy {test.path} hold different pixels")
        present.add((item.subject_folder, item.path.name))
    folds = sorted({item.subject_folder for item in tests.values()})
    missing = [(fold, name) for fold in folds for name, test in tests.items()
               if test.subject_folder != fold and (fold, name) not in present]
    report.train_copies_checked = len(trains)
    report.train_copies_missing = len(missing)
    report.load.note(f"{len(trains)} train copies checked: each holds the pixels of its test copy")
    if missing:
        examples = [f"{fold}/{TRAIN_SPLIT}/.../{name}" for fold, name in missing[:_EXAMPLES]]
        report.load.warn(f"{folder}: {len(missing)} train copies are absent from folds that should hold them, "
                         f"e.g. {examples}")


def _named_sample(folder: Path, item: _TreeImage, scheme: ClassScheme, report: ImageFolderReport) -> _Sample:
    dataset = _dataset_by_naming(folder / item.subject_folder)
    subject = _SUBJECT_IDS[dataset](item.subject_folder)
    label = _folder_label(item, scheme)
    clip, rules = _clip_from_name(item, dataset, subject)
    embedded = _CLIP_WITH_SUBJECT.get(dataset)
    found = embedded.fullmatch(clip) if embedded is not None else None
    if found is not None and int(found.group(1)) != int(re.sub(r"\D", "", subject)):
        report.load.warn(f"{item.path}: clip {clip!r} names another subject than its folder {item.subject_folder!r}; "
                         "the folder is used")
    report.subject_sources[f"{dataset}/{subject}"] = FROM_NAMING
    report.matches.append(NameMatch(_relative(item.path, folder), sample_key(dataset, f"{dataset}/{subject}", clip,
                                                                             None), rules))
    return _Sample(dataset, subject, clip, label, scheme.classes[label], item.path)


def _dataset_by_naming(subject_dir: Path) -> str:
    for pattern, dataset in _SUBJECT_NAMING:
        if pattern.fullmatch(subject_dir.name):
            return dataset
    raise ValueError(f"{subject_dir}: subject folder {subject_dir.name!r} follows no naming convention (subNN CASME "
                     "II, sNN SMIC, NNN SAMM); give the ground truth to tell its dataset")


def _folder_label(item: _TreeImage, scheme: ClassScheme) -> int:
    text = item.label_folder.strip()
    names = [name.lower() for name in scheme.classes]
    if text.isdigit() and int(text) < len(scheme.classes):
        return int(text)
    if text.lower() in names:
        return names.index(text.lower())
    raise ValueError(f"{item.path}: label folder {item.label_folder!r} is outside the scheme {scheme.name} (class "
                     f"indices 0..{len(scheme.classes) - 1} or names {', '.join(scheme.classes)})")


def _clip_from_name(item: _TreeImage, dataset: str, subject: str) -> tuple[str, tuple[str, ...]]:
    stem = item.path.stem.rstrip()
    rules = ["space-before-extension"] if stem != item.path.stem else []
    clip, prefix_rules = stem, ("no-subject-prefix",)
    forms = _subject_forms(dataset, item.subject_folder, subject)
    for form, form_rules in sorted(forms.items(), key=lambda entry: -len(entry[0])):
        rest = stem[len(form) + 1:]
        if stem.lower().startswith(f"{form.lower()}_") and _is_clip(dataset, rest):
            clip, prefix_rules = rest, form_rules
            break
    rules += prefix_rules
    if dataset == "smic" and smic_clip(clip) != clip:
        clip = smic_clip(clip)
        rules.append("smic-clip-padding")
    return clip, tuple(rules) or ("exact",)


def _is_clip(dataset: str, text: str) -> bool:
    pattern = _CLIP_WITH_SUBJECT.get(dataset)
    return bool(text) and (pattern is None or pattern.fullmatch(text) is not None)


def _tree_gt_sample(folder: Path, item: _TreeImage, index: _NameIndex, scheme: ClassScheme,
                    report: ImageFolderReport) -> _Sample:
    row, rules = index.match(item.path)
    spellings = _subject_forms(row.dataset, row.subject_text, row.subject)
    if item.subject_folder.lower() not in {text.lower() for text in spellings}:
        raise ValueError(f"{item.path}: the name matches {index.truth.path} line {row.line} ({row.dataset} "
                         f"{row.subject_text}), not a sample of its subject folder {item.subject_folder!r}")
    sample = _gt_sample(row, item.path, scheme, index.truth)
    label = _folder_label(item, scheme)
    if label != sample.label:
        raise ValueError(f"{item.path}: label folder {item.label_folder!r} but {index.truth.path} line {row.line} "
                         f"gives class {sample.label} ({scheme.classes[sample.label]})")
    report.subject_sources[f"{row.dataset}/{row.subject}"] = FROM_GT
    report.matches.append(NameMatch(_relative(item.path, folder), _row_key(row), rules))
    return sample


# --- table ----------------------------------------------------------------------------------------------------
def _check_scheme_applies(scheme: ClassScheme, sample: _Sample) -> None:
    if not scheme.applies_to(sample.dataset):
        raise ValueError(f"{sample.image}: a {sample.dataset} sample, but the scheme {scheme.name} is for "
                         f"{sorted(scheme.datasets)}")


def _table_row(sample: _Sample) -> dict[str, Any]:
    return {
        "dataset": sample.dataset,
        "subject": f"{sample.dataset}/{sample.subject}",
        "clip": sample.clip,
        "frames": [],
        "onset": None,
        "apex": sample.apex,
        "offset": None,
        "fps": MEGC_FPS.get(sample.dataset),
        "emotion": sample.emotion,
        "action_units": [],
        "label": sample.label,
        "apex_source": "annotated" if sample.apex is not None else None,
        "image": str(sample.image.absolute()),
    }
