"""plait.datasets: bundled subsets, seeded disjoint splits, HotPotQA corpus, GSM8K parsing."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plait
from plait.datasets import GSM8K, SST2, HotPotQA, SQuAD, gsm8k_metric
from plait.datasets._base import carve_splits
from plait.datasets.gsm8k import last_number, parse_solution
from plait.primitives.example import Example

PACKAGE_DIR = Path(plait.__file__).parent
DATA_DIR = PACKAGE_DIR / "datasets" / "data"
LOADERS = (HotPotQA, SQuAD, GSM8K, SST2)


def keys_of(split: list[Example]) -> list[str]:
    """A record's identity within one data set: its question or sentence."""
    return [e.get("question", e.get("sentence")) for e in split]


# --- sizes --------------------------------------------------------------------------------

@pytest.mark.parametrize(("loader", "sizes"), [
    (HotPotQA, (150, 150, 0)), (SQuAD, (200, 300, 0)), (GSM8K, (200, 300, 300)),
    (SST2, (1000, 872, 0)),
])
def test_default_split_sizes(loader, sizes):
    data = loader()
    assert (len(data.train), len(data.dev), len(data.test)) == sizes


def test_requested_sizes_and_none_takes_the_rest():
    data = HotPotQA(train_size=20, dev_size=50, test_size=30)
    assert (len(data.train), len(data.dev), len(data.test)) == (20, 50, 30)
    rest = HotPotQA(dev_size=100, test_size=50)   # train_size=None: all 150 left
    assert len(rest.train) == 150
    sst = SST2(test_size=72)                      # dev_size=None: the dev pool minus test
    assert (len(sst.dev), len(sst.test)) == (800, 72)
    assert len(GSM8K(train_size=0, dev_size=500, test_size=10).dev) == 500


# --- determinism and disjointness -----------------------------------------------------------

@pytest.mark.parametrize("loader", LOADERS)
def test_same_seeds_give_the_same_splits(loader):
    first, second = loader(train_size=30, dev_size=40), loader(train_size=30, dev_size=40)
    for split in ("train", "dev", "test"):
        assert getattr(first, split) == getattr(second, split)
        assert all(e.inputs().keys() == set(loader.default_input_keys)
                   for e in getattr(first, split))


@pytest.mark.parametrize("loader", LOADERS)
def test_splits_are_disjoint(loader):
    for seed in (0, 1, 7):
        data = loader(train_size=50, dev_size=40, test_size=30, seed=seed)
        train, dev, test = (set(keys_of(getattr(data, s))) for s in ("train", "dev", "test"))
        assert (len(train), len(dev), len(test)) == (50, 40, 30)
        assert not train & dev and not train & test and not dev & test


def test_seeds_change_the_draw_and_dev_does_not_follow_train():
    base = HotPotQA(train_size=40, dev_size=60)
    other_train = HotPotQA(train_size=40, dev_size=60, train_seed=2)
    other_eval = HotPotQA(train_size=40, dev_size=60, eval_seed=1)
    assert keys_of(other_train.dev) == keys_of(base.dev)
    assert keys_of(other_train.train) != keys_of(base.train)
    assert set(keys_of(other_eval.dev)) != set(keys_of(base.dev))
    # A bigger train extends a smaller one; dev ignores train_size.
    bigger = HotPotQA(train_size=90, dev_size=60)
    assert keys_of(bigger.train)[:40] == keys_of(base.train)
    assert keys_of(bigger.dev) == keys_of(base.dev)
    # seed= sets both seeds.
    both = HotPotQA(seed=5, train_size=10, dev_size=10)
    assert (both.train_seed, both.eval_seed) == (5, 5)
    assert both.dev == HotPotQA(train_seed=5, eval_seed=5, train_size=10, dev_size=10).dev


@settings(max_examples=60, deadline=None)
@given(pool=st.integers(0, 40), dev=st.integers(0, 40), test=st.integers(0, 40),
       train=st.one_of(st.none(), st.integers(0, 40)), train_seed=st.integers(0, 10**6),
       eval_seed=st.integers(0, 10**6))
def test_carve_splits_partitions_one_pool(pool, dev, test, train, train_seed, eval_seed):
    sources = {"train": "p", "dev": "p", "test": "p"}
    sizes = {"train": train, "dev": dev, "test": test}
    if dev + test + (train or 0) > pool:
        with pytest.raises(ValueError, match=f"more than the {pool} records"):
            carve_splits("X", {"p": pool}, sources, sizes, train_seed, eval_seed)
        return
    picked = carve_splits("X", {"p": pool}, sources, sizes, train_seed, eval_seed)
    expected_train = pool - dev - test if train is None else train
    assert [len(picked[s]) for s in ("train", "dev", "test")] == [expected_train, dev, test]
    chosen = [i for s in ("train", "dev", "test") for _, i in picked[s]]
    assert len(set(chosen)) == len(chosen) and all(0 <= i < pool for i in chosen)
    again = carve_splits("X", {"p": pool}, sources, sizes, train_seed, eval_seed)
    assert again == picked


# --- fields -------------------------------------------------------------------------------

def test_hotpotqa_keep_details_levels():
    plain = HotPotQA(keep_details=False, train_size=5, dev_size=5)
    assert all(set(e.keys()) == {"question", "answer"} for e in plain.train + plain.dev)
    titles = HotPotQA(train_size=5, dev_size=5, test_size=5)   # "dev_titles", DSPy's default
    assert all(set(e.keys()) == {"question", "answer"} for e in titles.train)
    for e in titles.dev + titles.test:
        assert set(e.keys()) == {"question", "answer", "gold_titles"}
        assert isinstance(e.gold_titles, set) and len(e.gold_titles) == 2
    full = HotPotQA(keep_details=True, train_size=5, dev_size=5)
    for e in full.train + full.dev:
        assert set(e.keys()) == {"question", "answer", "gold_titles", "id", "type",
                                 "supporting_paragraphs", "paragraphs"}
        assert e.type in ("bridge", "comparison")
        assert {p["title"] for p in e.supporting_paragraphs} == e.gold_titles
        assert all(p in e.paragraphs for p in e.supporting_paragraphs)
        assert e.inputs().toDict() == {"question": e.question}
    everything = HotPotQA(keep_details=True, train_size=None, dev_size=0)
    kinds = [e.type for e in everything.train]
    assert kinds.count("bridge") == kinds.count("comparison") == 150


def test_hotpotqa_corpus_has_unique_ids_and_every_gold_paragraph():
    corpus = HotPotQA.corpus()
    assert len(corpus) == 2917
    ids = [p["id"] for p in corpus]
    assert len(set(ids)) == len(ids)
    assert all(set(p) == {"id", "title", "text"} and p["text"].startswith(p["title"] + " | ")
               for p in corpus)
    by_id = {p["id"]: p for p in corpus}
    data = HotPotQA(keep_details=True, train_size=None, dev_size=0)
    for example in data.train:
        for paragraph in example.paragraphs:
            assert by_id[paragraph["id"]] == paragraph
    # Recall@k is computable: an oracle that returns the gold ids scores 1.
    example = data.train[0]
    gold = {p["id"] for p in example.supporting_paragraphs}
    retrieved = [p["id"] for p in example.paragraphs]
    assert gold <= set(retrieved) and len(gold) == 2
    assert HotPotQA.corpus() == corpus   # the same for every call


def test_examples_do_not_share_state_with_the_cache():
    data = HotPotQA(keep_details=True, train_size=3, dev_size=3)
    data.train[0].gold_titles.add("changed")
    data.train[0].supporting_paragraphs[0]["text"] = "changed"
    data.train[0].answer = "changed"
    fresh = HotPotQA(keep_details=True, train_size=3, dev_size=3)
    assert "changed" not in fresh.train[0].gold_titles
    assert fresh.train[0].supporting_paragraphs[0]["text"] != "changed"
    assert fresh.train[0].answer != "changed"
    assert all(p["text"] != "changed" for p in HotPotQA.corpus())


def test_squad_fields_and_corpus():
    data = SQuAD(train_size=10, dev_size=10)
    corpus = {p["id"]: p for p in SQuAD.corpus()}
    assert len(corpus) == 500
    for e in data.train + data.dev:
        assert e.answer == e.answers[0] and len(e.answers) == len(set(e.answers))
        assert corpus[e.context_id]["text"] == e.context
        assert corpus[e.context_id]["title"] == e.title
        assert any(answer in e.context for answer in e.answers)
        assert set(e.inputs().keys()) == {"context", "question"}
    question_only = SQuAD(train_size=2, dev_size=2, input_keys=("question",))
    assert set(question_only.dev[0].inputs().keys()) == {"question"}


def test_sst2_labels_and_full_dev():
    data = SST2()
    labels = [e.label for e in data.dev]
    assert (labels.count("negative"), labels.count("positive")) == (428, 444)
    assert {e.label for e in data.train} == {"negative", "positive"}
    assert all(e.sentence == e.sentence.strip() and len(e.sentence.split()) >= 5
               for e in data.train)
    assert all(set(e.inputs().keys()) == {"sentence"} for e in data.train[:5])


# --- GSM8K ---------------------------------------------------------------------------------

def test_parse_solution_and_last_number():
    solution = ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n"
                "She makes 9 * 2 = $<<9*2=18>>18 every day at the farmer's market.\n#### 18")
    reasoning, answer = parse_solution(solution)
    assert answer == "18"
    assert "<<" not in reasoning and reasoning.endswith("farmer's market.")
    assert parse_solution("x = 1,080\n#### 1,080") == ("x = 1,080", "1080")
    with pytest.raises(ValueError, match="####"):
        parse_solution("no final answer here")
    assert last_number("The answer is $1,200.") == "1200"
    assert last_number("went from -3 to -5") == "-5"
    assert last_number("about 2.50 dollars") == "2.50"
    assert last_number("none") is None and last_number(None) is None


def test_every_bundled_gsm8k_answer_is_a_number():
    data = GSM8K(train_size=None, dev_size=0, test_size=None)
    assert (len(data.train), len(data.test)) == (500, 300)
    for e in data.train + data.test:
        assert re.fullmatch(r"-?\d+(\.\d+)?", e.answer), e.answer
        assert e.gold_reasoning and "####" not in e.gold_reasoning
        assert set(e.inputs().keys()) == {"question"}


def test_gsm8k_metric():
    example = Example(question="q", answer="18").with_inputs("question")
    assert gsm8k_metric(example, Example(answer="So she makes $18.00 a day."))
    assert gsm8k_metric(example, Example(answer="18"), trace=object())
    assert gsm8k_metric(example, "the answer: 18")
    assert not gsm8k_metric(example, Example(answer="18 eggs, 9 left"))   # the last number counts
    assert not gsm8k_metric(example, Example(answer="eighteen"))
    assert not gsm8k_metric(example, Example(answer=None))
    assert gsm8k_metric(Example(answer="1200"), Example(answer="1,200"))
    real = GSM8K(train_size=1, dev_size=0, test_size=0).train[0]
    assert gsm8k_metric(real, Example(answer=f"It is {real.answer}."))


# --- errors ---------------------------------------------------------------------------------

def test_asking_for_too_much_names_the_maximum():
    with pytest.raises(ValueError, match=r"300 records.*train_size <= 150"):
        HotPotQA(train_size=200)
    with pytest.raises(ValueError, match=r"500 records.*dev_size <= 200 or train_size <= 200"):
        GSM8K(train_size=300)
    with pytest.raises(ValueError, match=r"300 records in the bundled 'test' pool"):
        GSM8K(test_size=301)
    with pytest.raises(ValueError, match=r"872 records.*dev_size <= 862"):
        SST2(dev_size=900, test_size=10)


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"train_size": -1}, ValueError, "train_size must be a whole number"),
    ({"dev_size": 2.5}, ValueError, "dev_size must be a whole number"),
    ({"test_size": True}, ValueError, "test_size must be a whole number"),
    ({"dev_size": None}, ValueError, "both None"),
    ({"train_seed": "1"}, TypeError, "train_seed must be an int"),
    ({"keep_details": "all"}, ValueError, "keep_details must be"),
    ({"keep_details": 1}, ValueError, "keep_details must be"),
    ({"input_keys": "question"}, TypeError, "sequence of names"),
])
def test_bad_arguments_are_explained(kwargs, error, message):
    with pytest.raises(error, match=message):
        HotPotQA(**kwargs)


# --- packaging -----------------------------------------------------------------------------

def test_importing_plait_datasets_reads_no_data_file():
    probe = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(str(args[0])) "
        "if event == 'open' and args and 'datasets' in str(args[0]) else None)\n"
        "import plait\n"
        "import plait.datasets\n"
        "from plait.datasets import HotPotQA, GSM8K\n"
        "print([p for p in opened if not p.endswith(('.py', '.pyc'))])\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]", result.stdout
    assert plait.datasets.HotPotQA is HotPotQA   # also reachable as a lazy attribute


def test_no_core_module_reaches_outside_the_repository():
    offenders = [str(path.relative_to(PACKAGE_DIR)) for path in PACKAGE_DIR.rglob("*.py")
                 if re.search(r"\.\./shared|/work/shared", path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_data_folder_is_small_flat_and_documented():
    files = sorted(DATA_DIR.iterdir())
    assert all(path.is_file() for path in files)   # package-data is "datasets/data/*"
    assert sum(path.stat().st_size for path in files) < 1_500_000
    notices = "".join(path.read_text(encoding="utf-8") for path in files
                      if path.name.startswith("NOTICE."))
    licences = (DATA_DIR / "LICENSES.md").read_text(encoding="utf-8")
    for path in files:
        if path.suffix == ".gz":
            assert path.name in licences
            assert hashlib.sha256(path.read_bytes()).hexdigest() in notices, path.name
