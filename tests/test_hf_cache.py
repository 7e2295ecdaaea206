"""The Hugging Face cache through huggingface_hub, and checkpoints counted once.

Fake caches are built in ``tmp_path`` with the hub's layout (``models--org--name/refs/main``,
``snapshots/<sha>/`` whose files link into ``blobs/``); nothing reaches a hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from hwaccel.errors import ModelReferenceError
from hwaccel.estimates.footprint import checkpoint_of
from hwaccel.kit import paths
from hwaccel.models.checkpoint_files import checkpoint_files
from hwaccel.models.resolve import cached_models, not_cached_message, resolve_model

SHA = "0123456789abcdef0123456789abcdef01234567"
CACHE_VARS = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")


def cache_repo(hub: Path, hub_id: str, files: dict[str, bytes], *, commit: str = SHA,
               ref: str | None = SHA) -> Path:
    """A cached model as huggingface_hub stores it: blobs, a snapshot of links, refs/main."""
    repo = hub / ("models--" + hub_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / f"{abs(hash((commit, name))):x}"
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(ref, encoding="utf-8")
    return snapshot


CONFIG = json.dumps({"model_type": "bert", "architectures": ["BertModel"]}).encode()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    for var in CACHE_VARS:
        monkeypatch.delenv(var, raising=False)
    folder = tmp_path / "hub"
    folder.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(folder))
    return folder


# -- the cache folder ------------------------------------------------------------------------


@pytest.mark.parametrize("present", [CACHE_VARS, CACHE_VARS[1:], CACHE_VARS[2:],
                                     CACHE_VARS[3:], ()])
def test_the_cache_folder_follows_huggingface_hubs_precedence(tmp_path, monkeypatch, present):
    """Each variable, the more important ones unset: the folder huggingface_hub computes
    itself (in a fresh interpreter, as it reads them on import)."""
    env = {k: v for k, v in os.environ.items() if k not in CACHE_VARS}
    env["HOME"] = str(tmp_path / "home")
    env.update({var: str(tmp_path / var.lower()) for var in present})
    expected = subprocess.run(
        [sys.executable, "-c", "from huggingface_hub import constants; "
                               "print(constants.HF_HUB_CACHE)"],
        env=env, capture_output=True, text=True, check=True).stdout.strip()
    for var in CACHE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", env["HOME"])
    for var in present:
        monkeypatch.setenv(var, env[var])
    assert paths.hf_hub_cache() == Path(expected)


def test_a_model_is_found_under_hf_home_set_after_import(tmp_path, monkeypatch):
    for var in CACHE_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    snapshot = cache_repo(tmp_path / "hf-home" / "hub", "org/name", {"config.json": CONFIG})
    ref = resolve_model("org/name")
    assert (ref.kind, ref.signal, Path(ref.path)) == ("hub", "hf-cache", snapshot)
    assert cached_models() == ["org/name"]


# -- containment ---------------------------------------------------------------------------


@pytest.mark.parametrize("hostile", ["/etc", "../../outside", f"../{SHA}", "..", ".",
                                     f"{SHA}/../../.."])
def test_a_ref_that_escapes_the_cache_is_refused(hub, tmp_path, hostile):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_bytes(CONFIG)
    cache_repo(hub, "org/name", {"config.json": CONFIG}, ref=hostile)
    ref = resolve_model("org/name")
    assert ref.path is None and ref.signal == "none"
    assert "refused" in ref.evidence
    assert "refused" in not_cached_message("org/name")
    assert cached_models() == []


@pytest.mark.parametrize("kind", ["link out of the cache", "folder"])
def test_a_ref_that_is_no_short_file_in_the_cache_is_refused(hub, tmp_path, kind):
    cache_repo(hub, "org/name", {"config.json": CONFIG}, ref=None)
    ref_file = hub / "models--org--name" / "refs" / "main"
    ref_file.parent.mkdir()
    if kind == "link out of the cache":
        (tmp_path / "elsewhere").write_text(SHA)
        ref_file.symlink_to(tmp_path / "elsewhere")
    else:
        ref_file.mkdir()
    ref = resolve_model("org/name")
    assert ref.path is None and "refused" in ref.evidence
    assert "refused" in not_cached_message("org/name")


def test_a_snapshot_linking_out_of_the_cache_is_refused(hub, tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_bytes(CONFIG)
    snapshot = cache_repo(hub, "org/name", {"model.safetensors": b"x"})
    (snapshot / "config.json").symlink_to(secret)
    ref = resolve_model("org/name")
    assert ref.path is None and "outside the cache" in ref.evidence
    assert not ref.loadable


def test_a_snapshot_folder_linking_out_of_the_cache_is_refused(hub, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_bytes(CONFIG)
    snapshots = hub / "models--org--name" / "snapshots"
    snapshots.mkdir(parents=True)
    (snapshots / SHA).symlink_to(elsewhere, target_is_directory=True)
    (hub / "models--org--name" / "refs").mkdir()
    (hub / "models--org--name" / "refs" / "main").write_text(SHA)
    assert resolve_model("org/name").path is None


def test_refs_main_names_the_snapshot_among_several(hub):
    old = cache_repo(hub, "org/name", {"config.json": b'{"model_type": "t5"}'},
                     commit="f" * 40, ref=None)
    new = cache_repo(hub, "org/name", {"config.json": CONFIG})
    os.utime(old, (2e9, 2e9))  # the newer folder is not the one refs/main names
    ref = resolve_model("org/name")
    assert Path(ref.path) == new and ref.model_type == "bert"


# -- listing the cache ---------------------------------------------------------------------


def test_cached_models_lists_intact_model_repos(hub):
    cache_repo(hub, "org/first", {"config.json": CONFIG})
    cache_repo(hub, "other/second", {"model_index.json": b'{"_class_name": "DDPMPipeline"}'})
    cache_repo(hub, "org/no-config", {"README.md": b"hello"})
    cache_repo(hub, "org/escaping", {"config.json": CONFIG}, ref="/etc")
    broken = cache_repo(hub, "org/broken-link", {"config.json": CONFIG})
    (snapshot_blob := (broken / "config.json").resolve()).unlink()
    assert not snapshot_blob.exists()
    (hub / "datasets--org--data" / "snapshots" / SHA).mkdir(parents=True)
    (hub / "datasets--org--data" / "snapshots" / SHA / "config.json").write_bytes(CONFIG)
    (hub / "not-a-repo.txt").write_text("stray")
    assert cached_models() == ["org/first", "other/second"]


@pytest.mark.parametrize("setup", ["absent", "a file"])
def test_an_absent_or_unusable_cache_lists_nothing(hub, setup):
    hub.rmdir()
    if setup == "a file":
        hub.write_text("not a folder")
    assert cached_models() == []
    assert resolve_model("org/name").path is None


def test_an_undecodable_ref_is_not_cached_and_hides_no_other_model(hub):
    """huggingface_hub's scan stops at a ref that is not text; the other models still list."""
    cache_repo(hub, "org/name", {"config.json": CONFIG}, ref=None)
    (hub / "models--org--name" / "refs").mkdir()
    (hub / "models--org--name" / "refs" / "main").write_bytes(b"\xff\xfe\x00")
    cache_repo(hub, "org/fine", {"config.json": CONFIG})
    assert resolve_model("org/name").path is None
    assert cached_models() == ["org/fine"]


# -- checkpoints ---------------------------------------------------------------------------


def tensors(seed: int, *shapes: tuple[int, ...]) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {f"layer{seed}.{i}": torch.randn(shape, generator=generator)
            for i, shape in enumerate(shapes)}


def test_shards_count_once_beside_a_consolidated_file(hub, tmp_path):
    shard_tensors = [tensors(1, (8, 4), (4,)), tensors(2, (16, 3))]
    staging = tmp_path / "staging"
    staging.mkdir()
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for name, part in zip(names, shard_tensors, strict=True):
        save_file(part, staging / name)
        weight_map.update(dict.fromkeys(part, name))
    save_file({k: v for part in shard_tensors for k, v in part.items()},
              staging / "consolidated.safetensors")
    index = json.dumps({"metadata": {}, "weight_map": weight_map}).encode()
    files = {p.name: p.read_bytes() for p in staging.iterdir()}
    snapshot = cache_repo(hub, "org/sharded", {"config.json": CONFIG,
                                               "model.safetensors.index.json": index, **files})
    checkpoint = checkpoint_of(resolve_model("org/sharded").path)
    elements = sum(t.numel() for part in shard_tensors for t in part.values())
    assert checkpoint.parameters == elements
    assert checkpoint.files == 2
    assert checkpoint.bytes == sum((staging / n).stat().st_size for n in names)
    assert checkpoint.dtypes == ("F32",)
    assert [p.name for p in checkpoint_files(snapshot)] == names


def test_safetensors_and_bin_of_one_model_count_once(tmp_path):
    weights = tensors(3, (10, 10))
    save_file(weights, tmp_path / "model.safetensors")
    torch.save(weights, tmp_path / "pytorch_model.bin")
    (tmp_path / "tf_model.h5").write_bytes(b"h" * 50)
    checkpoint = checkpoint_of(tmp_path)
    assert (checkpoint.files, checkpoint.parameters) == (1, 100)
    assert checkpoint.bytes == (tmp_path / "model.safetensors").stat().st_size


def test_a_bin_index_counts_its_shards_by_size(tmp_path):
    (tmp_path / "pytorch_model-1.bin").write_bytes(b"a" * 30)
    (tmp_path / "pytorch_model-2.bin").write_bytes(b"b" * 12)
    (tmp_path / "pytorch_model.bin").write_bytes(b"c" * 99)  # an older, unsharded copy
    (tmp_path / "pytorch_model.bin.index.json").write_text(json.dumps(
        {"weight_map": {"w1": "pytorch_model-1.bin", "w2": "pytorch_model-2.bin",
                        "w3": "pytorch_model-2.bin"}}))
    checkpoint = checkpoint_of(tmp_path)
    assert (checkpoint.files, checkpoint.bytes, checkpoint.parameters) == (2, 42, None)


def test_a_diffusers_pipeline_counts_its_components_without_variants(tmp_path):
    for component, seed in (("unet", 4), ("vae", 5)):
        (tmp_path / component).mkdir()
        save_file(tensors(seed, (6, 2)),
                  tmp_path / component / "diffusion_pytorch_model.safetensors")
        save_file({k: v.half() for k, v in tensors(seed, (6, 2)).items()},
                  tmp_path / component / "diffusion_pytorch_model.fp16.safetensors")
    checkpoint = checkpoint_of(tmp_path)
    assert (checkpoint.parameters, checkpoint.files, checkpoint.dtypes) == (24, 2, ("F32",))


@pytest.mark.parametrize("index, message", [
    ("{not json", "malformed checkpoint index"),
    ('{"weight_map": ["model.safetensors"]}', "weight_map must map"),
    ('{"weight_map": {"w": "../../elsewhere.safetensors"}}', "outside its folder"),
    ('{"weight_map": {"w": "/etc/passwd"}}', "outside its folder"),
    ('{"weight_map": {"w": "model-00002-of-00002.safetensors"}}', "which is missing"),
])
def test_a_broken_index_is_one_line(tmp_path, index, message):
    save_file(tensors(6, (2, 2)), tmp_path / "model.safetensors")
    (tmp_path / "model.safetensors.index.json").write_text(index)
    with pytest.raises(ModelReferenceError, match=message) as caught:
        checkpoint_of(tmp_path)
    assert "\n" not in str(caught.value)


def test_a_broken_checkpoint_is_one_line_from_the_cli(hub, tmp_path):
    cache_repo(hub, "org/broken", {"config.json": CONFIG,
                                   "model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{"})
    from conftest import run_cli

    done = run_cli("resources", "--no-measure", "org/broken", env={"HF_HUB_CACHE": str(hub)},
                   timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and lines[0].startswith("hwaccel: error: ")
    assert "not a valid safetensors file" in lines[0]


@pytest.mark.parametrize("files", [
    {"model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{"},
    {"model.safetensors": b"x", "model.safetensors.index.json": b"{not json"},
])
def test_a_broken_checkpoint_is_recorded_model_unavailable_without_running(hub, tmp_db,
                                                                           files):
    """The model's own broken files: not the harness's failure, and no job is started."""
    from conftest import hardware_rows, run_cli

    cache_repo(hub, "org/broken", {"config.json": CONFIG, **files})
    ref = resolve_model("org/broken")
    assert not ref.loadable and "\n" not in ref.unavailable_message()
    done = run_cli("benchmark", "org/broken", "--backend", "cpu", "--db", str(tmp_db),
                   "--iterations", "2", "--warmup", "1", env={"HF_HUB_CACHE": str(hub)},
                   timeout=120)
    assert done.returncode == 1, done.stderr
    (row,) = hardware_rows(tmp_db)
    assert (row["success"], row["error_category"]) == (False, "model-unavailable")
    assert row["error"] == ref.unavailable_message()
    assert row["wall_time_s"] is None


def test_calibration_never_picks_an_example_whose_checkpoint_is_broken(hub):
    from hwaccel.estimates.calibration import Calibrator

    cache_repo(hub, "org/broken", {"config.json": CONFIG,
                                   "model.safetensors": b"\x10\x00\x00\x00\x00\x00\x00\x00{"})
    cache_repo(hub, "org/fine", {"config.json": CONFIG, "pytorch_model.bin": b"w" * 64})
    assert Calibrator._size("org/broken") == -1
    assert Calibrator._size("org/fine") == 64
