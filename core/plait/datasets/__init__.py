"""Small bundled data sets with DSPy-shaped loaders: HotPotQA, SQuAD, GSM8K, SST-2.

    from plait.datasets import HotPotQA
    data = HotPotQA(train_seed=1, train_size=20, eval_seed=2023, dev_size=50)
    data.train[0].question, data.dev[0].gold_titles, HotPotQA.corpus()[0]

Each loader gives ``.train``, ``.dev`` and ``.test`` lists of ``plait.Example`` with their input
keys set, drawn deterministically and disjointly for the given seeds (see ``_base``). The data
are small subsets copied into ``data/`` with their licences (data/LICENSES.md); nothing is read
until a loader is built, and nothing is downloaded.
"""

from plait.datasets._base import BundledDataset
from plait.datasets.gsm8k import GSM8K, gsm8k_metric
from plait.datasets.hotpotqa import HotPotQA
from plait.datasets.squad import SQuAD
from plait.datasets.sst2 import SST2

__all__ = ["BundledDataset", "HotPotQA", "SQuAD", "GSM8K", "gsm8k_metric", "SST2"]
