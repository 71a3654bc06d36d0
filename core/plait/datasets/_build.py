"""Rebuild the bundled subsets in ``data/`` from the full source files (maintainers only).

    python -m plait.datasets._build SOURCE_DIR

SOURCE_DIR holds the source files laid out as ``gsm8k/``, ``squad/``, ``hotpotqa/``, ``sst2/``
(see the NOTICE files for where each came from). Every source file is checked against its
recorded sha256 first, the selections are seeded, and gzip is written with a zero timestamp, so
a rebuild gives byte-identical files. Nothing here runs when plait is used: the loaders read only
``data/``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import random
import sys
from pathlib import Path

SOURCE_SHA256 = {
    "gsm8k/train.jsonl": "17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465",
    "gsm8k/test.jsonl": "3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14",
    "squad/dev-v1.1.json": "95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9",
    "hotpotqa/dev_subsampled.jsonl":
        "837a919903fedf521211c4271f168ad5458488198e9c4d967bf5f3a579525ce8",
    "hotpotqa/hotpot_dev_v1_simplified.json":
        "05001dcdeb2b2b2243a88f23daaf8de9237494cd387e13bc25854d3e031101d3",
    "sst2/train.tsv": "c3c410c1cd1307a8dfcbc51f69086c61fc7d95c0fc353b80009dfe5fb4970172",
    "sst2/dev.tsv": "46cc9126f5e3bf1634991d8eeed3a5e8dc81869622444af859729d720c58d815",
}

HOTPOTQA_PER_TYPE = 150      # 150 bridge + 150 comparison questions
SQUAD_QUESTIONS = 500        # one question from each of 500 distinct paragraphs
GSM8K_TRAIN, GSM8K_TEST = 500, 300
SST2_TRAIN = 1000
SST2_MIN_TOKENS = 5          # SST-2 train is mostly short phrases; keep sentence-like ones
SELECTION_SEED = 0


def _checked_bytes(source: Path, name: str) -> bytes:
    data = (source / name).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256[name]:
        raise SystemExit(f"{name}: sha256 {digest} is not the recorded {SOURCE_SHA256[name]}")
    return data


def _write_gzip(target: Path, lines: list[str]) -> None:
    payload = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    # mtime=0 and no file name in the header: rebuilding gives the same bytes.
    with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                   compresslevel=9, mtime=0) as out:
        out.write(payload.encode("utf-8"))


def _sample_in_order(items: list, count: int, rng: random.Random) -> list:
    """``count`` items drawn with ``rng``, kept in their source order."""
    chosen = sorted(rng.sample(range(len(items)), count))
    return [items[i] for i in chosen]


def build_hotpotqa(source: Path, target: Path) -> None:
    lines = _checked_bytes(source, "hotpotqa/dev_subsampled.jsonl").decode("utf-8").splitlines()
    simplified = json.loads(_checked_bytes(source, "hotpotqa/hotpot_dev_v1_simplified.json"))
    type_of = {row["question"]: row["type"] for row in simplified}
    by_type: dict[str, list[dict]] = {"bridge": [], "comparison": []}
    for line in lines:
        row = json.loads(line)
        by_type[type_of[row["question_text"]]].append(row)
    rng = random.Random(SELECTION_SEED)
    chosen = [row for kind in ("bridge", "comparison")
              for row in _sample_in_order(by_type[kind], HOTPOTQA_PER_TYPE, rng)]
    out = []
    for row in chosen:
        (answer,) = row["answers_objects"][0]["spans"]
        out.append(json.dumps({
            "id": row["question_id"], "question": row["question_text"], "answer": answer,
            "type": type_of[row["question_text"]],
            "paragraphs": [{"title": c["title"], "text": c["paragraph_text"],
                            "supporting": c["is_supporting"]} for c in row["contexts"]],
        }, ensure_ascii=False))
    _write_gzip(target / "hotpotqa_dev.jsonl.gz", out)


def build_squad(source: Path, target: Path) -> None:
    articles = json.loads(_checked_bytes(source, "squad/dev-v1.1.json"))["data"]
    paragraphs = [(article["title"], paragraph) for article in articles
                  for paragraph in article["paragraphs"]]
    rng = random.Random(SELECTION_SEED)
    out = []
    for title, paragraph in _sample_in_order(paragraphs, SQUAD_QUESTIONS, rng):
        qa = paragraph["qas"][rng.randrange(len(paragraph["qas"]))]
        out.append(json.dumps({"id": qa["id"], "title": title, "context": paragraph["context"],
                               "question": qa["question"], "answers": qa["answers"]},
                              ensure_ascii=False))
    _write_gzip(target / "squad_dev.jsonl.gz", out)


def build_gsm8k(source: Path, target: Path) -> None:
    for split, count in (("train", GSM8K_TRAIN), ("test", GSM8K_TEST)):
        lines = _checked_bytes(source, f"gsm8k/{split}.jsonl").decode("utf-8").splitlines()
        # Source lines are kept byte for byte.
        chosen = _sample_in_order(lines, count, random.Random(SELECTION_SEED))
        _write_gzip(target / f"gsm8k_{split}.jsonl.gz", chosen)


def build_sst2(source: Path, target: Path) -> None:
    train = _checked_bytes(source, "sst2/train.tsv").decode("utf-8").splitlines()
    header, rows = train[0], train[1:]
    seen: set[str] = set()
    eligible = []
    for row in rows:
        text = row.split("\t")[0].strip()
        if len(text.split()) >= SST2_MIN_TOKENS and text not in seen:
            seen.add(text)
            eligible.append(row)
    chosen = _sample_in_order(eligible, SST2_TRAIN, random.Random(SELECTION_SEED))
    _write_gzip(target / "sst2_train.tsv.gz", [header, *chosen])
    dev = _checked_bytes(source, "sst2/dev.tsv").decode("utf-8").splitlines()
    _write_gzip(target / "sst2_dev.tsv.gz", dev)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    source, target = Path(argv[0]), Path(__file__).parent / "data"
    for build in (build_hotpotqa, build_squad, build_gsm8k, build_sst2):
        build(source, target)
    for path in sorted(target.glob("*.gz")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.name}\t{path.stat().st_size}\t{digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
