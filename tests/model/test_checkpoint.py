"""The published checkpoint layout (METHOD.md §9) is rebuilt here from its description, with random tensors."""
import argparse
import os
import pickle

import pytest
import torch

import micronbert
from micronbert.cli import main as cli_main

DIM, MLP, PATCH, TOKENS = 512, 2048, 8, 785


def block_tensors(prefix: str, dim: int = DIM, mlp: int = MLP) -> dict[str, tuple[int, ...]]:
    return {
        f"{prefix}norm1.weight": (dim,), f"{prefix}norm1.bias": (dim,),
        f"{prefix}attn.qkv.weight": (3 * dim, dim), f"{prefix}attn.qkv.bias": (3 * dim,),
        f"{prefix}attn.proj.weight": (dim, dim), f"{prefix}attn.proj.bias": (dim,),
        f"{prefix}norm2.weight": (dim,), f"{prefix}norm2.bias": (dim,),
        f"{prefix}mlp.fc1.weight": (mlp, dim), f"{prefix}mlp.fc1.bias": (mlp,),
        f"{prefix}mlp.fc2.weight": (dim, mlp), f"{prefix}mlp.fc2.bias": (dim,),
    }


def backbone_shapes(prefix: str) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}cls_token": (1, 1, DIM), f"{prefix}pos_embed": (1, TOKENS, DIM),
              f"{prefix}patch_embed.proj.weight": (DIM, 3, PATCH, PATCH), f"{prefix}patch_embed.proj.bias": (DIM,)}
    for i in range(4):
        shapes |= block_tensors(f"{prefix}blocks.{i}.")
    return shapes | {f"{prefix}norm.weight": (DIM,), f"{prefix}norm.bias": (DIM,)}


def dino_head_shapes(prefix: str) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}mlp.0.weight": (2048, DIM), f"{prefix}mlp.0.bias": (2048,),
            f"{prefix}mlp.2.weight": (2048, 2048), f"{prefix}mlp.2.bias": (2048,),
            f"{prefix}mlp.4.weight": (256, 2048), f"{prefix}mlp.4.bias": (256,),
            f"{prefix}last_layer.weight_g": (128, 1), f"{prefix}last_layer.weight_v": (128, 256)}


def published_shapes(dino: bool) -> dict[str, tuple[int, ...]]:
    shapes = {"decoder_pos_embed": (1, TOKENS, DIM)} | backbone_shapes("backbone.")
    for name in ("to_q", "to_k", "to_v", "proj"):
        shapes |= {f"att.{name}.weight": (DIM, DIM), f"att.{name}.bias": (DIM,)}
    shapes |= {"decoder_embed.weight": (DIM, DIM), "decoder_embed.bias": (DIM,)}
    for i in range(4):
        shapes |= block_tensors(f"decoder_blocks.{i}.")
    shapes |= {"decoder_norm.weight": (DIM,), "decoder_norm.bias": (DIM,),
               "decoder_pred.weight": (192, DIM), "decoder_pred.bias": (192,)}
    if dino:
        shapes |= backbone_shapes("student.backbone.") | dino_head_shapes("student.head.")
        shapes |= backbone_shapes("teacher.backbone.") | dino_head_shapes("teacher.head.")
        shapes |= {"dino_loss_fn.center": (1, 128)}
    return shapes


def published_state(dino: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(shape, generator=g) * 0.02 for k, shape in published_shapes(dino).items()}
    for key in list(state):
        if key.startswith("student.backbone."):
            state[key] = state["backbone." + key.removeprefix("student.backbone.")]
    return state


def write_published(path, state, prefix="module.", with_args=True):
    args = argparse.Namespace(model_name="mae_vit_small_patch8", img_size=224, diag_att=False, enable_dino=True,
                              has_decoder=True, out_dim=128, local_crops_number=8, lr=2.5e-4, epochs=200,
                              batch_size_per_gpu=16, dataset="CASME2")
    payload = {"model": {prefix + k: v for k, v in state.items()}, "epoch": 199}
    if with_args:
        payload["args"] = args
    torch.save(payload, path)
    return path


def test_published_layout_sizes():
    assert len(published_shapes(False)) == 117
    assert len(published_shapes(True)) == 242
    total = sum(torch.Size(s).numel() for s in published_shapes(False).values())
    assert total == 27_536_064


@pytest.mark.parametrize("dino", [False, True])
@pytest.mark.parametrize("prefix", ["module.", ""])
def test_published_checkpoint_loads_every_tensor(tmp_path, dino, prefix):
    state = published_state(dino)
    path = write_published(tmp_path / "ckpt.pth", state, prefix)
    model = micronbert.load_official_checkpoint(path)
    c = model.config
    assert (c.dma_query, c.poi, c.dma_heads, c.agreement) == ("swapped", "off", 1, "dino" if dino else "off")
    loaded = model.state_dict()
    assert torch.equal(loaded["att.to_q.weight"], state["att.to_q.weight"])
    assert torch.equal(loaded["backbone.pos_embed"], state["backbone.pos_embed"])
    if dino:
        assert torch.equal(loaded["agreement.teacher.blocks.3.mlp.fc2.bias"],
                           state["teacher.backbone.blocks.3.mlp.fc2.bias"])
        assert torch.equal(loaded["agreement.student_head.last_layer.weight_v"],
                           state["student.head.last_layer.weight_v"])
        assert torch.equal(loaded["agreement.center"], state["dino_loss_fn.center"])
        assert len(loaded) == 242 - 54  # the shared student backbone is stored once


def test_optional_aux_classifier_loads(tmp_path):
    state = published_state(False) | {"fc.weight": torch.randn(1, DIM), "fc.bias": torch.randn(1)}
    model = micronbert.load_official_checkpoint(write_published(tmp_path / "c.pth", state, with_args=False))
    assert torch.equal(model.fc.weight, state["fc.weight"])


def test_convert_official_round_trip_gives_identical_outputs(tmp_path):
    source = write_published(tmp_path / "ckpt.pth", published_state(True))
    out = tmp_path / "converted"
    assert cli_main(["convert-official", str(source), str(out)]) == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    original = micronbert.load_official_checkpoint(source)
    converted = micronbert.load(out)
    assert converted.config == original.config
    g = torch.Generator().manual_seed(0)
    onset, apex = torch.randn(2, 3, 224, 224, generator=g), torch.randn(2, 3, 224, 224, generator=g)
    with torch.no_grad():
        a = original.eval()(onset, apex, generator=torch.Generator().manual_seed(1))
        b = converted.eval()(onset, apex, generator=torch.Generator().manual_seed(1))
        assert torch.equal(a["pred"], b["pred"]) and torch.equal(a["dma_map"], b["dma_map"])
        assert torch.equal(original.encode(onset), converted.encode(onset))


def test_save_load_round_trip_and_overwrite(tmp_path):
    model = micronbert.create_model("tiny", num_classes=3, agreement="dino")
    micronbert.save(model, tmp_path / "m")
    micronbert.save(model, tmp_path / "m")  # overwriting keeps a valid checkpoint
    again = micronbert.load(tmp_path / "m" / "model.safetensors")
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_runs_code_is_refused_and_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"model": published_state(False), "args": RunsCode()}, path)
    with pytest.raises(ValueError, match="evil.pth: refused to load.*nothing was executed"):
        micronbert.load_official_checkpoint(path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(RunsCode()))
    with pytest.raises(ValueError, match="raw.pkl"):
        micronbert.load_official_checkpoint(raw)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_truncated_file(tmp_path):
    path = write_published(tmp_path / "ckpt.pth", published_state(False))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="ckpt.pth: not a readable PyTorch checkpoint"):
        micronbert.load_official_checkpoint(path)
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.pth"):
        micronbert.load_official_checkpoint(empty)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        micronbert.load_official_checkpoint(tmp_path / "missing.pth")


def test_wrong_shape_unknown_and_missing_keys(tmp_path):
    state = published_state(False)
    wrong = dict(state, **{"att.to_k.weight": torch.zeros(DIM, DIM + 1)})
    with pytest.raises(ValueError, match=r"'att.to_k.weight' has shape \(512, 513\)"):
        micronbert.load_official_checkpoint(write_published(tmp_path / "a.pth", wrong))
    extra = dict(state, **{"att.to_w.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="b.pth: unexpected key 'att.to_w.weight'"):
        micronbert.load_official_checkpoint(write_published(tmp_path / "b.pth", extra))
    missing = {k: v for k, v in state.items() if k != "decoder_norm.bias"}
    with pytest.raises(ValueError, match="c.pth: missing key 'decoder_norm.bias'"):
        micronbert.load_official_checkpoint(write_published(tmp_path / "c.pth", missing))
    torch.save([1, 2, 3], tmp_path / "d.pth")
    with pytest.raises(ValueError, match="d.pth: expected a dict"):
        micronbert.load_official_checkpoint(tmp_path / "d.pth")


def test_student_backbone_must_equal_backbone(tmp_path):
    state = published_state(True)
    state["student.backbone.norm.bias"] = state["student.backbone.norm.bias"] + 1
    with pytest.raises(ValueError, match="'student.backbone.norm.bias' differs from 'backbone.norm.bias'"):
        micronbert.load_official_checkpoint(write_published(tmp_path / "s.pth", state))


def test_own_format_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        micronbert.load(tmp_path / "nothing")
    folder = tmp_path / "broken"
    micronbert.save(micronbert.create_model("tiny"), folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        micronbert.load(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="config.json: not valid JSON"):
        micronbert.load(folder)


def test_own_format_config_and_folder_errors_name_the_file(tmp_path):
    folder = tmp_path / "run"
    micronbert.save(micronbert.create_model("tiny"), folder)
    config = folder / "config.json"
    original = config.read_text()
    config.write_text('{"format": "something-else", "model": {}}')
    with pytest.raises(ValueError, match="config.json: not a micronbert config"):
        micronbert.load(folder)
    config.write_text(original.replace('"dim": 96', '"dim": -96'))
    with pytest.raises(ValueError, match="config.json: .*dim"):
        micronbert.load(folder)
    config.write_text(original)
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors: missing"):
        micronbert.load(folder)
    config.unlink()
    with pytest.raises(FileNotFoundError, match="config.json: missing"):
        micronbert.load(folder)
    occupied = tmp_path / "occupied"
    occupied.write_text("a user's file")
    with pytest.raises(ValueError, match="occupied: exists and is not a micronbert checkpoint folder"):
        micronbert.save(micronbert.create_model("tiny"), occupied)
    assert occupied.read_text() == "a user's file"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".occupied")] == []


def test_bare_state_dict_and_non_tensor_entries(tmp_path):
    state = published_state(False)
    bare = tmp_path / "bare.pth"
    torch.save(state, bare)
    model = micronbert.load_official_checkpoint(bare)
    assert torch.equal(model.state_dict()["att.to_q.weight"], state["att.to_q.weight"])
    torch.save({"model": dict(state, note="trained on CASME II")}, tmp_path / "note.pth")
    with pytest.raises(ValueError, match="note.pth: entry 'note' of the state dict is not a tensor"):
        micronbert.load_official_checkpoint(tmp_path / "note.pth")
    without = {k: v for k, v in state.items() if k != "backbone.cls_token"}
    with pytest.raises(ValueError, match="e.pth: missing key 'backbone.cls_token'"):
        micronbert.load_official_checkpoint(write_published(tmp_path / "e.pth", without))
