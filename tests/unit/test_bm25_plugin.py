"""plait_bm25: lazy rebuilds, filters, upserts, persistence (atomic, reloadable, corruption reported), threads."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

import plait
from plait.errors import MissingExtraError

pytest.importorskip("bm25s", reason="the bm25 extra is not installed: pip install 'plait[bm25]'")

from plait_bm25 import CorruptIndexError  # noqa: E402  (after the skip check)

FRUIT = ["Apples grow on apple trees in orchards.", "Bananas are yellow and grow in bunches.",
         "Cherries are small red stone fruits.", "Dates grow on date palms in deserts."]


def test_importing_the_plugin_does_not_import_bm25s():
    code = ("import sys, plait, plait_bm25; from plait import registry; registry.backends('retriever'); "
            "print('bm25s' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_registered_with_its_extra():
    from plait import registry
    backend = registry.backends("retriever")["bm25"].backend
    assert backend.extra == "bm25" and backend.requires == ("bm25s",)


def test_adds_are_lazy_and_the_next_search_rebuilds_once():
    retriever = plait.retriever("bm25")
    for number in range(200):
        retriever.add([f"passage number {number} about topic{number % 7}"], ids=[f"p{number}"])
    assert retriever.builds == 0 and len(retriever) == 200
    assert retriever("topic3", k=1)[0].id in {f"p{n}" for n in range(3, 200, 7)}
    retriever("topic4", k=2)
    assert retriever.builds == 1
    retriever.add(["a brand new passage about zebras"], ids=["zebra"])
    assert retriever("zebras", k=1)[0].id == "zebra"
    assert retriever.builds == 2


def test_upsert_replaces_text_and_metadata():
    retriever = plait.retriever("bm25")
    retriever.add(FRUIT, ids=["a", "b", "c", "d"], metadata=[{"n": i} for i in range(4)])
    retriever.add(["Blueberries are blue."], ids=["b"], metadata=[{"n": 99}])
    assert len(retriever) == 4
    top = retriever("blueberries", k=1)[0]
    assert (top.id, top.text, top.metadata["n"]) == ("b", "Blueberries are blue.", 99)
    assert all(p.score == 0.0 for p in retriever("bananas yellow bunches", k=4))


def test_scores_are_python_floats_sorted_and_zero_for_no_match():
    retriever = plait.retriever("bm25")
    retriever.add(FRUIT)
    found = retriever("red cherries", k=4)
    assert all(type(p.score) is float for p in found)
    assert found[0].text.startswith("Cherries") and found[0].score > 0
    assert [p.score for p in found[1:]] == [0.0, 0.0, 0.0]


def test_filter_finds_matches_below_many_better_non_matching_passages():
    retriever = plait.retriever("bm25")
    strong = [f"apple apple apple orchard {i}" for i in range(50)]
    weak = ["an apple and many other words here", "one apple among pears and plums", "apple"]
    retriever.add(strong + weak, ids=[f"s{i}" for i in range(50)] + ["w0", "w1", "w2"],
                  metadata=[{"kind": "strong"}] * 50 + [{"kind": "weak"}] * 3)
    found = retriever("apple", k=3, filter={"kind": "weak"})
    assert {p.id for p in found} == {"w0", "w1", "w2"}
    assert all(p.score > 0 for p in found)
    assert retriever("apple", k=2, filter={"kind": ["weak", "strong"]})[0].id.startswith("s")
    assert retriever("apple", k=3, filter={"kind": "none-such"}) == []


def test_stopwords_and_a_custom_stemmer():
    plain = plait.retriever("bm25", stopwords=None)
    english = plait.retriever("bm25", stopwords="en")
    for retriever in (plain, english):
        retriever.add(["the the the cat", "a dog"], ids=["cat", "dog"])
    assert plain("the", k=1)[0].score > 0
    assert english("the", k=2)[0].score == 0.0
    custom = plait.retriever("bm25", stopwords=["dog"])
    custom.add(["the cat", "a dog"], ids=["cat", "dog"])
    assert custom("dog", k=1)[0].score == 0.0

    stemmed = plait.retriever("bm25", stemmer=lambda words: [w.rstrip("s") for w in words])
    stemmed.add(["many cats sleep", "one dog barks"], ids=["cats", "dog"])
    assert stemmed("cat", k=1)[0].id == "cats" and stemmed("cat", k=1)[0].score > 0


def test_a_stemmer_name_needs_pystemmer():
    try:
        import Stemmer  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match="PyStemmer"):
            plait.retriever("bm25", stemmer="english")
    else:
        retriever = plait.retriever("bm25", stemmer="english")
        retriever.add(["running quickly"], ids=["r"])
        assert retriever("runs", k=1)[0].score > 0


@pytest.mark.parametrize("config, error", [
    ({"k1": True}, ValueError), ({"k1": -0.1}, ValueError), ({"b": 2}, ValueError),
    ({"method": "okapi-ish"}, ValueError), ({"stemmer": 5}, TypeError), ({"stopwords": "klingon"}, ValueError), ({"stopwords": 5}, TypeError),
    ({"k": 0}, ValueError)])
def test_bad_configuration_is_rejected(config, error):
    with pytest.raises(error):
        plait.retriever("bm25", **config)


# --- persistence ---------------------------------------------------------------------------

def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_adds_append_segments_and_a_search_compacts_them_with_the_index(tmp_path):
    folder = tmp_path / "idx"
    retriever = plait.retriever("bm25", path=folder)
    assert not folder.exists()            # created on the first add
    retriever.add(FRUIT[:2], ids=["a", "b"])
    retriever.add(FRUIT[2:], ids=["c", "d"])
    assert _files(folder) == ["corpus-000001.jsonl", "corpus-000002.jsonl", "manifest.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["index"] is None and manifest["count"] == 4
    retriever("apples", k=1)
    assert _files(folder) == ["corpus-000003.jsonl", "index-000003", "manifest.json"]
    assert (folder / "index-000003" / "vocab.index.json").exists()
    reloaded = plait.retriever("bm25", path=folder)
    assert reloaded("dates palms", k=1)[0].id == "d" and reloaded.builds == 0


def test_reload_keeps_ids_metadata_and_upserts(tmp_path):
    folder = tmp_path / "idx"
    first = plait.retriever("bm25", path=folder)
    first.add(FRUIT, ids=["a", "b", "c", "d"], metadata=[{"n": i, "tags": ["x", i]} for i in range(4)])
    first.add(["Blueberries are blue."], ids=["b"], metadata=[{"n": 99}])
    second = plait.retriever("bm25", path=folder)
    assert len(second) == 4 and second.builds == 0
    top = second("blueberries", k=1)[0]
    assert (top.id, top.metadata) == ("b", {"n": 99})
    assert second("cherries", k=1)[0].metadata == {"n": 2, "tags": ["x", 2]}


def test_other_parameters_rebuild_from_the_saved_corpus(tmp_path):
    folder = tmp_path / "idx"
    first = plait.retriever("bm25", path=folder)
    first.add(FRUIT)
    default_score = first("apple trees", k=1)[0].score
    other = plait.retriever("bm25", path=folder, k1=0.5, b=0.1)
    assert other("apple trees", k=1)[0].score != pytest.approx(default_score)
    assert other.builds == 1
    again = plait.retriever("bm25", path=folder, k1=0.5, b=0.1)
    again("apple trees", k=1)
    assert again.builds == 0              # the rebuilt index was saved with the new parameters


def test_an_unnamed_stemmer_always_rebuilds_on_load(tmp_path):
    folder = tmp_path / "idx"
    stem = lambda words: [w.rstrip("s") for w in words]  # noqa: E731
    first = plait.retriever("bm25", path=folder, stemmer=stem)
    first.add(["many cats"], ids=["c"])
    first("cat", k=1)
    second = plait.retriever("bm25", path=folder, stemmer=stem)
    assert second("cat", k=1)[0].score > 0 and second.builds == 1


def test_metadata_that_json_cannot_hold_is_refused_before_anything_changes(tmp_path):
    retriever = plait.retriever("bm25", path=tmp_path / "idx")
    retriever.add(["first"], ids=["one"])
    with pytest.raises(TypeError, match="JSON"):
        retriever.add(["second"], ids=["two"], metadata=[{"when": object()}])
    assert len(retriever) == 1 and _files(tmp_path / "idx") == ["corpus-000001.jsonl", "manifest.json"]


def test_leftovers_of_an_interrupted_write_are_ignored_and_cleaned(tmp_path):
    folder = tmp_path / "idx"
    plait.retriever("bm25", path=folder).add(FRUIT, ids=["a", "b", "c", "d"])
    (folder / ".corpus-000002.jsonl.tmp").write_text("half a line")
    (folder / "corpus-000009.jsonl").write_text('{"id": "ghost", "text": "never committed", "metadata": {}}\n')
    (folder / ".index-000002.tmp").mkdir()
    reloaded = plait.retriever("bm25", path=folder)
    assert len(reloaded) == 4
    reloaded("apple", k=1)                # writes a new generation and removes unnamed files
    assert _files(folder) == ["corpus-000002.jsonl", "index-000002", "manifest.json"]


def _corrupt_manifest(folder):
    (folder / "manifest.json").write_text("{not json")


def _drop_segment(folder):
    next(folder.glob("corpus-*.jsonl")).unlink()


def _garble_segment(folder):
    segment = next(folder.glob("corpus-*.jsonl"))
    segment.write_text(segment.read_text() + "this is not json\n")


def _wrong_count(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["count"] = 17
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _break_index(folder):
    next(folder.glob("index-*")).joinpath("data.csc.index.npy").write_bytes(b"garbage")


def _foreign_manifest(folder):
    (folder / "manifest.json").write_text(json.dumps({"format": "something-else"}))


@pytest.mark.parametrize("damage", [_corrupt_manifest, _drop_segment, _garble_segment, _wrong_count, _break_index,
                                    _foreign_manifest])
def test_a_corrupt_folder_is_a_clear_error_naming_it(tmp_path, damage):
    folder = tmp_path / "idx"
    retriever = plait.retriever("bm25", path=folder)
    retriever.add(FRUIT)
    retriever("apple", k=1)               # index files written
    damage(folder)
    with pytest.raises(CorruptIndexError, match=str(folder)):
        plait.retriever("bm25", path=folder)


def test_a_folder_that_is_not_an_index_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("my files")
    with pytest.raises(CorruptIndexError, match="no manifest.json"):
        plait.retriever("bm25", path=tmp_path)
    (tmp_path / "afile").write_text("")
    with pytest.raises(CorruptIndexError, match="file, not a folder"):
        plait.retriever("bm25", path=tmp_path / "afile")


def test_an_empty_folder_is_a_new_index(tmp_path):
    retriever = plait.retriever("bm25", path=tmp_path)
    assert len(retriever) == 0 and retriever("anything", k=2) == []


def test_save_needs_a_path_and_writes_the_index(tmp_path):
    with pytest.raises(ValueError, match="path="):
        plait.retriever("bm25").save()
    retriever = plait.retriever("bm25", path=tmp_path / "idx")
    retriever.add(FRUIT)
    retriever.save()
    assert retriever.builds == 1 and any(p.name.startswith("index-") for p in (tmp_path / "idx").iterdir())


# --- threads -------------------------------------------------------------------------------

@pytest.mark.parametrize("persisted", [False, True])
def test_concurrent_adds_and_searches(tmp_path, persisted):
    retriever = plait.retriever("bm25", path=tmp_path / "idx" if persisted else None)
    retriever.add(["seed passage about owls"], ids=["seed"])
    errors: list[BaseException] = []

    def writer(worker):
        try:
            for number in range(15):
                retriever.add([f"worker{worker} passage {number} about newts"], ids=[f"w{worker}-{number}"])
        except BaseException as exc:   # collected and re-raised in the test thread
            errors.append(exc)

    def reader():
        try:
            for _ in range(15):
                found = retriever(["owls", "newts"], k=3)
                assert found[0][0].id == "seed"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)] + \
              [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(retriever) == 46
    assert len(retriever("newts passage", k=200)) == 46
    if persisted:
        assert len(plait.retriever("bm25", path=tmp_path / "idx")) == 46
