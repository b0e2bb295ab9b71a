"""Spotting signals and spotters on small synthetic streams of aligned crops: peaks at the inserted motion, head motion
and blinks ignored, streaming memory, the frame-rate stride, fitting on training videos only, and leave-one-subject-out
spotting end to end."""
from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import micronbert
from micronbert.data.faces.align import AlignConfig, similarity_from_eyes
from micronbert.data.synthetic import NuisanceConfig, Scene, SyntheticFace, sample_expression
from micronbert.spotting import spotting_scores
from micronbert.spotting.signals import (
    EYE_CENTRES,
    REGION_BOXES,
    FlowSignalConfig,
    FrameSignal,
    MicronBertSignalConfig,
    MicronBertStream,
    RoiFlowStream,
    face_regions,
    micronbert_signal,
    roi_flow_signal,
    temporal_stride,
)
from micronbert.spotting.spotters import (
    SPOTTERS,
    ClassSettings,
    FlowRoiSpotter,
    SignalCache,
    Spotter,
    SpotterConfig,
    SpotVideo,
    available_spotters,
    get_spotter,
    register_spotter,
    spot_loso,
)

SIZE = 64
ALIGN = AlignConfig(output_size=SIZE)
FLOW = FlowSignalConfig(size=None, align=ALIGN)
Event = tuple[int, int, int, str, tuple[float, float]]  # onset, apex, offset, region, peak shift (px)


def texture(seed: int) -> np.ndarray:
    """A smooth random RGB image: something for the optical flow to follow."""
    noise = np.random.default_rng(seed).uniform(0, 255, (SIZE, SIZE, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 1.5) * 2 - 127, 0, 255).astype(np.uint8)


def crop_point(dx: float, dy: float) -> tuple[float, float]:
    """Crop pixel at (dx, dy) inter-ocular distances from the eye midpoint."""
    centre_x, centre_y = ALIGN.target_eye_midpoint
    return centre_x + dx * ALIGN.target_eye_distance, centre_y + dy * ALIGN.target_eye_distance


def region_centre(name: str) -> tuple[float, float]:
    x0, y0, x1, y1 = REGION_BOXES[name]
    return crop_point((x0 + x1) / 2, (y0 + y1) / 2)


def triangle(t: int, onset: int, apex: int, offset: int) -> float:
    if t <= onset or t >= offset:
        return 0.0
    return (t - onset) / (apex - onset) if t <= apex else (offset - t) / (offset - apex)


def displaced(image: np.ndarray, centre: tuple[float, float], shift: tuple[float, float]) -> np.ndarray:
    """``image`` with a Gaussian blob of skin around ``centre`` moved by ``shift`` pixels."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    sigma = 0.25 * ALIGN.target_eye_distance
    weight = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))
    return cv2.remap(image, xs - shift[0] * weight, ys - shift[1] * weight, cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def moved_head(image: np.ndarray, dx: float, dy: float, angle_deg: float = 0.0) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(crop_point(0.0, 0.5), angle_deg, 1.0)
    matrix[:, 2] += (dx, dy)
    return cv2.warpAffine(image, matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def local_motion_frames(n: int, events: Sequence[Event], seed: int = 0) -> Iterator[np.ndarray]:
    base = texture(seed)
    for t in range(n):
        frame = base
        for onset, apex, offset, region, (sx, sy) in events:
            amount = triangle(t, onset, apex, offset)
            if amount:
                frame = displaced(frame, region_centre(region), (sx * amount, sy * amount))
        yield frame


def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return micronbert.create_model("tiny")


# --- signals -----------------------------------------------------------------------------------------------------


def aligned_expression_clip() -> tuple[list[np.ndarray], int]:
    """A rendered synthetic face making one expression, aligned by its known eye positions, and the apex frame."""
    face = SyntheticFace.sample(0)
    expression = sample_expression(np.random.default_rng(0), "positive", 30, 12, amplitude=(0.05, 0.05),
                                   duration_s=(0.3, 0.3))
    scene = Scene(face, [expression], 30, 96, NuisanceConfig.none(), 0)
    half = face.width / 2
    eyes = [((face.centre_x + side * face.eye_dx * half) * 96 - 0.5, (face.centre_y + face.eye_y * half) * 96 - 0.5)
            for side in (-1, 1)]
    matrix = similarity_from_eyes(eyes[0], eyes[1], ALIGN)
    frames = [cv2.warpAffine(scene.frame(i), matrix, (SIZE, SIZE)) for i in range(36)]
    return frames, expression.frame_timing(30).apex


def test_both_signals_peak_at_the_apex_of_a_synthetic_expression() -> None:
    frames, apex = aligned_expression_clip()
    flow = roi_flow_signal(frames, 30, 4, FLOW).column(4)
    change = micronbert_signal(tiny_model(), frames, 4, fps=30,
                               config=MicronBertSignalConfig(align=ALIGN, batch_size=16)).column(4)
    assert abs(int(np.nanargmax(flow)) - apex) <= 1
    assert abs(int(np.nanargmax(change)) - apex) <= 2  # a random tiny model: the mechanics only
    assert np.nanmax(flow[:8]) < 0.1 * np.nanmax(flow)  # still face before the onset


def test_local_motion_peak_in_both_signals_and_both_features() -> None:
    events = [(15, 18, 21, "mouth_r", (2.0, -1.0))]
    for feature in ("centred", "forward"):
        flow = roi_flow_signal(local_motion_frames(40, events), 30, 3, FLOW.replace(feature=feature)).column(3)
        change = micronbert_signal(tiny_model(), local_motion_frames(40, events), 3, fps=30,
                                   config=MicronBertSignalConfig(align=ALIGN, batch_size=8, feature=feature)).column(3)
        assert np.nanmax(flow[:12]) == pytest.approx(0.0, abs=0.02)
        if feature == "centred":  # one peak, at the apex
            assert int(np.nanargmax(flow)) == 18 and int(np.nanargmax(change)) == 18
        else:  # the flow from t-3 to t: largest from the onset side to the apex or from the apex to the offset side
            assert 18 <= int(np.nanargmax(flow)) <= 21 and 18 <= int(np.nanargmax(change)) <= 21


@pytest.mark.parametrize("head_motion", ["nose", "similarity"])
def test_head_shift_is_removed_by_the_anchor(head_motion: str) -> None:
    base = texture(1)
    shift = np.hypot(3.0, 2.0)  # 3.6 px at the apex, frame 15
    shifted = [moved_head(base, 3.0 * triangle(t, 10, 15, 20), -2.0 * triangle(t, 10, 15, 20)) for t in range(30)]
    raised = list(local_motion_frames(30, [(10, 15, 20, "brow_l", (0.0, -2.0))], seed=1))
    config = FLOW.replace(head_motion=head_motion)
    head = roi_flow_signal(shifted, 30, 5, config).column(5)
    brow = roi_flow_signal(raised, 30, 5, config).column(5)
    assert np.nanmax(head) < 0.05 * shift
    assert np.nanmax(head) < 0.5 * np.nanmax(brow)  # a 2 px brow raise stands out


def test_similarity_also_removes_a_head_turn() -> None:
    turned = [moved_head(texture(2), 0.0, 0.0, 4.0 * triangle(t, 10, 15, 20)) for t in range(30)]
    nose = roi_flow_signal(turned, 30, 5, FLOW.replace(head_motion="nose")).column(5)
    similarity = roi_flow_signal(turned, 30, 5, FLOW.replace(head_motion="similarity")).column(5)
    assert np.nanmax(nose) > 1.0  # a 4° turn about the nose moves the brows and the chin by more than 1 px
    assert np.nanmax(similarity) < 0.15 * np.nanmax(nose)


def blink_frames(centres: Sequence[tuple[float, float]]) -> list[np.ndarray]:
    """Dark eyelids (0.3 × 0.15 inter-ocular distances) closing over ``centres`` and opening again."""
    base = texture(3)
    frames = []
    for t in range(30):
        frame = base.copy()
        closure = triangle(t, 10, 13, 18)
        for x, y in centres:
            axes = (round(0.3 * ALIGN.target_eye_distance), max(1, round(0.15 * ALIGN.target_eye_distance * closure)))
            if closure:
                cv2.ellipse(frame, (round(x), round(y)), axes, 0, 0, 360, (30, 20, 20), -1)
        frames.append(frame)
    return frames


def test_a_blink_does_not_trigger_flow_roi() -> None:
    regions = face_regions(SIZE, ALIGN)
    assert not any((mask & regions.eyes).any() for mask in regions.rois.values())
    eyes = blink_frames([crop_point(x, y) for x, y in EYE_CENTRES])
    same_change_on_the_mouth = blink_frames([region_centre("mouth_l"), region_centre("mouth_r")])
    blink = roi_flow_signal(eyes, 30, 3, FLOW).column(3)
    mouth = roi_flow_signal(same_change_on_the_mouth, 30, 3, FLOW).column(3)
    assert np.nanmax(mouth) > 0.3
    assert np.nanmax(blink) < 0.05 * np.nanmax(mouth)
    # without filling the eyes, the flow of the lids spreads past the masks into the regions around them
    unmasked = roi_flow_signal(eyes, 30, 3, FLOW.replace(mask_eyes=False)).column(3)
    assert np.nanmax(unmasked) > 5 * max(np.nanmax(blink), 0.01)


def test_frames_without_a_face_give_no_value() -> None:
    frames: list[np.ndarray | None] = list(local_motion_frames(30, [(10, 13, 16, "chin", (1.0, 1.0))]))
    frames[20] = None
    signal = roi_flow_signal(frames, 30, 2, FLOW.replace(feature="forward")).column(2)
    assert np.isnan(signal[[0, 1, 20, 22]]).all()  # before k frames exist, and every pair touching frame 20
    assert np.isfinite(signal[[2, 19, 21, 23]]).all()


def test_bad_frames_are_refused_with_their_index() -> None:
    frames = [texture(0), texture(0)[:, :32]]
    with pytest.raises(ValueError, match="frame 1"):
        roi_flow_signal(frames, 30, 1, FLOW)
    with pytest.raises(ValueError, match="frame 0"):
        roi_flow_signal([texture(0).astype(np.float32)], 30, 1, FLOW)
    with pytest.raises(ValueError, match="k must"):
        roi_flow_signal([], 30, 0, FLOW)


# --- streaming and frame rate ------------------------------------------------------------------------------------


class TrackedFrame(np.ndarray):
    """An ndarray that can be weakly referenced, to see which frames are still alive."""


def test_flow_stream_keeps_a_bounded_window() -> None:
    alive: list[weakref.ref] = []
    stream = RoiFlowStream((2, 5), 30, FLOW)
    rows = []
    for t, frame in enumerate(local_motion_frames(300, [(100, 104, 108, "cheek_l", (1.0, 1.0))])):
        tracked = frame.view(TrackedFrame)
        alive.append(weakref.ref(tracked))
        rows += stream.feed(tracked)
        del tracked
        assert len(stream.window) <= 6 and len(stream.steps) <= 6
        assert len(rows) == max(0, t + 1 - 5)  # rows come out max(k) frames behind the input
    rows += stream.flush()
    assert len(rows) == 300
    assert sum(ref() is not None for ref in alive) == 0  # no input frame is held


def test_micronbert_stream_keeps_a_bounded_window() -> None:
    model = tiny_model().eval()
    stream = MicronBertStream(model, (2, 4), 30, MicronBertSignalConfig(align=ALIGN, batch_size=8))
    rows = []
    for frame in local_motion_frames(50, [(20, 23, 26, "mouth_r", (2.0, 0.0))]):
        rows += stream.feed(frame)
        assert len(stream.window) <= 4 and len(stream.pending) < 8 and len(stream.steps) <= 4
    rows += stream.flush()
    assert len(rows) == 50 and not stream.steps


def test_temporal_stride() -> None:
    assert [temporal_stride(fps) for fps in (25, 30, 50, 60, 100, 200)] == [1, 1, 2, 2, 3, 7]
    assert temporal_stride(200, 100) == 2
    with pytest.raises(ValueError, match="fps"):
        temporal_stride(0)


def test_samm_rate_is_spotted_with_a_stride() -> None:
    # 200 fps: frames every 7th are kept; a 0.3 s expression (frames 700-760, apex 721) must still be found, with the
    # interval in the video's own frame numbers
    events = [(700, 721, 760, "mouth_r", (2.5, 0.0))]
    video = SpotVideo("006_1", 200.0, lambda: local_motion_frames(1400, events), subject="006")
    spotter = get_spotter("flow-roi", {"flow": FLOW.to_dict(), "micro_duration_s": 0.3, "classes": ["micro"],
                                       "micro_p": 0.5})
    cache = SignalCache()
    predicted = spotter.spot(video, cache)
    signal = cache.signal(spotter.signal_key(), "006_1", [spotter.settings["micro"].k(200.0, 7)])
    assert signal.stride == 7 and signal.values.shape[0] == 200 and signal.n_frames == 1400
    assert spotter.settings["micro"].k(200.0, 7) == 4  # N = 0.3 s = 8.6 kept frames: (8.6 + 1) // 2
    assert len(predicted) == 1
    row = predicted.iloc[0]
    assert abs(row.apex - (1 + 721)) <= 7  # frame numbers from 1
    assert row.offset - row.onset == 60 and row.type == "micro"  # 0.3 s at 200 fps


# --- spotters, fitting and leave-one-subject-out -----------------------------------------------------------------


def test_registry() -> None:
    assert {"flow-roi", "micronbert"} <= set(available_spotters())
    assert isinstance(get_spotter("flow-roi"), FlowRoiSpotter)
    assert get_spotter("flow-roi", {"micro_p": 0.4}).settings["micro"].p == 0.4
    with pytest.raises(ValueError, match="unknown spotter"):
        get_spotter("nope")
    with pytest.raises(ValueError, match="registered twice"):
        register_spotter(FlowRoiSpotter)
    with pytest.raises(ValueError, match="unknown option"):
        get_spotter("flow-roi", {"micro_q": 0.4})
    assert SPOTTERS["micronbert"].config_class().change.measure == "relative"


def test_spot_video_validation() -> None:
    with pytest.raises(ValueError, match="read only once"):
        SpotVideo("a", 30, iter([]))
    with pytest.raises(ValueError, match="fps"):
        SpotVideo("a", 0, [])
    with pytest.raises(ValueError, match="video id"):
        SpotVideo("", 30, [])
    with pytest.raises(ValueError, match="repeat"):
        get_spotter("flow-roi").spot([SpotVideo("a", 30, []), SpotVideo("a", 30, [])])


class RecordingSpotter(Spotter):
    """A spotter on stored signals, recording what each fit was given and which videos' signals were read."""

    name = "recording"  # not registered

    def __init__(self, config: SpotterConfig | None = None, settings: dict[str, ClassSettings] | None = None,
                 signals: dict[str, np.ndarray] | None = None, log: list | None = None) -> None:
        super().__init__(config, settings)
        self.signals = signals if signals is not None else {}
        self.log = log if log is not None else []

    def with_settings(self, settings: Mapping[str, ClassSettings]) -> Spotter:
        return RecordingSpotter(self.config, dict(settings), self.signals, self.log)

    def signal_key(self) -> str:
        return self.name

    def signal(self, video: SpotVideo, ks: Sequence[int]) -> FrameSignal:
        self.log.append(("signal", video.video))
        values = np.repeat(self.signals[video.video][:, None], len(ks), axis=1)
        return FrameSignal(values, tuple(ks), 1, len(values))

    def fit(self, videos: Sequence[SpotVideo], truth: pd.DataFrame, cache: SignalCache | None = None) -> Spotter:
        self.log.append(("fit", sorted(v.video for v in videos), sorted(set(truth["video"]))))
        return super().fit(videos, truth, cache)


def bumps(n: int, apexes: Sequence[int], heights: Sequence[float], half_width: int = 12) -> np.ndarray:
    signal = np.zeros(n)
    for apex, height in zip(apexes, heights):
        for t in range(apex - half_width, apex + half_width + 1):
            signal[t] = max(signal[t], height * (1 - abs(t - apex) / (half_width + 1)))
    return signal


def test_fit_chooses_p_on_training_videos_only() -> None:
    # each video: two annotated macro-expressions of 25 frames (signal bumps of height 1, contrast 0.92 at k = 12) and
    # a distractor (height 0.4, contrast 0.37); a factor p putting the threshold between the two spots exactly the
    # annotated ones (0.6: T = 0.57; 0.95: T = 0.88), a lower one the distractors too
    truth = pd.DataFrame([(f"v{i}", f"s{i}", apex - 11, apex + 1, apex + 13, "macro")
                          for i in range(3) for apex in (40, 160)],
                         columns=["video", "subject", "onset", "apex", "offset", "type"])
    signals = {f"v{i}": bumps(300, [40, 160, 100], [1.0, 1.0, 0.4]) for i in range(3)}
    videos = [SpotVideo(f"v{i}", 30.0, [], subject=f"s{i}") for i in range(3)]
    config = SpotterConfig(classes=("macro",), p_grid=(0.05, 0.3, 0.6, 0.95))
    log: list = []
    spotter = RecordingSpotter(config, signals=signals, log=log)
    result = spot_loso(videos, truth, spotter)

    fits = [entry for entry in log if entry[0] == "fit"]
    assert len(fits) == 3
    for held_out, (_, trained_on, truth_videos) in zip(("v0", "v1", "v2"), fits):
        assert held_out not in trained_on and held_out not in truth_videos
        assert len(trained_on) == 2 and len(truth_videos) == 2
    signals_read = [entry[1] for entry in log if entry[0] == "signal"]
    assert sorted(signals_read) == ["v0", "v1", "v2"]  # each video read once, the cache does the rest
    chosen = result.settings[result.settings["type"] == "macro"]
    assert chosen["subject"].tolist() == ["s0", "s1", "s2"]
    assert chosen["duration_s"].tolist() == pytest.approx([24 / 30] * 3)  # from the training truth
    assert chosen["p"].tolist() == [0.6] * 3  # 0.6 and 0.95 tie on F1 and predictions: the first wins
    scores = spotting_scores(result.predictions, truth)
    assert scores["macro"].f1 == 1.0 and scores["macro"].n_pred == 6

    table = spotter.fit(videos[:2], truth).fit_table
    assert table["p"].tolist() == [0.05, 0.3, 0.6, 0.95]
    assert table["n_pred"].tolist() == [6, 6, 4, 4]  # the two distractors are spotted below p = 0.6
    assert table["f1"].tolist() == pytest.approx([0.8, 0.8, 1.0, 1.0])


def test_fit_ignores_truth_of_other_videos() -> None:
    truth = pd.DataFrame([("v0", 29, 41, 53, "macro"), ("other", 1, 2, 900, "macro")],
                         columns=["video", "onset", "apex", "offset", "type"])
    spotter = RecordingSpotter(SpotterConfig(classes=("macro",), p_grid=(0.3,)),
                               signals={"v0": bumps(100, [40], [1.0])})
    fitted = spotter.fit([SpotVideo("v0", 30.0, [])], truth)
    assert fitted.settings["macro"].duration_s == pytest.approx(24 / 30)


def clear_expression_videos() -> tuple[list[SpotVideo], pd.DataFrame]:
    """Three subjects, one video each: two macro-expressions (1 s, 2.5 px) on brows and mouth, one micro-expression
    (0.27 s, 2 px) on a cheek, on a still textured face."""
    plans = {
        "s1_v": [(20, 35, 50, "brow_l", (0.0, -2.5)), (90, 98, 106, "cheek_r", (2.0, 0.0)),
                 (140, 155, 170, "mouth_r", (2.5, -1.0))],
        "s2_v": [(15, 30, 45, "mouth_l", (-2.5, -1.0)), (80, 88, 96, "cheek_l", (-2.0, 0.0)),
                 (150, 165, 180, "brow_r", (0.0, -2.5))],
        "s3_v": [(25, 40, 55, "brow_r", (0.0, -2.5)), (100, 108, 116, "cheek_r", (0.0, -2.0)),
                 (135, 150, 165, "mouth_l", (-2.5, 1.0))],
    }
    videos, rows = [], []
    for index, (name, events) in enumerate(plans.items()):
        videos.append(SpotVideo(name, 30.0, lambda e=events, i=index: local_motion_frames(200, e, seed=i),
                                subject=name[:2]))
        rows += [(name, name[:2], onset + 1, apex + 1, offset + 1, "macro" if offset - onset > 15 else "micro")
                 for onset, apex, offset, _, _ in events]
    return videos, pd.DataFrame(rows, columns=["video", "subject", "onset", "apex", "offset", "type"])


def test_flow_roi_loso_end_to_end_spots_clear_expressions() -> None:
    videos, truth = clear_expression_videos()
    spotter = get_spotter("flow-roi", {"flow": FLOW.to_dict(), "p_grid": [0.1, 0.3, 0.5]})
    result = spot_loso(videos, truth, spotter)
    assert list(result.predictions.columns) == ["video", "onset", "offset", "apex", "type", "score", "subject"]
    assert (result.predictions["offset"] <= 200).all() and (result.predictions["onset"] >= 1).all()
    scores = spotting_scores(result.predictions, truth)
    assert scores["overall"].f1 > 0.5
    assert scores["macro"].tp >= 4


def test_micronbert_spotter_runs_the_same_pipeline() -> None:
    videos, truth = clear_expression_videos()
    spotter = get_spotter("micronbert", {"change": {"align": ALIGN.to_dict(), "batch_size": 16},
                                         "p_grid": [0.3]}, model=tiny_model())
    result = spot_loso(videos[:2], truth, spotter)
    assert set(result.predictions["video"]) <= {"s1_v", "s2_v"}
    assert set(result.predictions["type"]) <= {"micro", "macro"}
    assert len(result.predictions) > 0


def test_signal_cache_on_disk_is_read_back_only_under_its_key_and_scope(tmp_path) -> None:
    signal = FrameSignal(np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0]]), (2, 5), 7, 21)
    SignalCache(tmp_path, scope="track A").store("flow", "s15/0101", signal)
    again = SignalCache(tmp_path, scope="track A")
    assert again.missing("flow", "s15/0101", [2, 5, 9]) == [9]
    read = again.signal("flow", "s15/0101", [5, 2])
    np.testing.assert_array_equal(read.values, signal.values[:, ::-1])
    assert (read.stride, read.n_frames) == (7, 21) and again.read_from_disk == {"s15/0101"}
    assert SignalCache(tmp_path, scope="track B").missing("flow", "s15/0101", [2]) == [2]
    assert SignalCache(tmp_path, scope="track A").missing("change", "s15/0101", [2]) == [2]
    assert SignalCache(tmp_path, scope="track A").missing("flow", "s15_0101", [2]) == [2], "another video's file"
    assert not list(tmp_path.rglob("*.tmp")) and SignalCache().missing("flow", "s15/0101", [2]) == [2]


def test_the_micronbert_signal_key_names_the_weights_not_the_object() -> None:
    config = {"p_grid": [0.3]}
    first, same = (get_spotter("micronbert", config, model=tiny_model()) for _ in range(2))
    assert first.signal_key() == same.signal_key()
    assert first.with_settings(first.settings).signal_key() == first.signal_key()
    other = tiny_model()
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert get_spotter("micronbert", config, model=other).signal_key() != first.signal_key()
