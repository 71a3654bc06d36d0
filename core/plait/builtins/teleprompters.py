"""Built-in optimizers, registered like any plugin's: ``plait.teleprompter("bootstrap-few-shot")``.

Each factory imports its optimizer only when asked for, so registering costs no imports.
"""

from __future__ import annotations

from typing import Any

from plait.backends import TeleprompterBackend
from plait.hookspecs import hookimpl


def _labeled_few_shot(**config: Any) -> Any:
    from plait.teleprompt.labeled import LabeledFewShot
    return LabeledFewShot(**config)


def _bootstrap_few_shot(**config: Any) -> Any:
    from plait.teleprompt.bootstrap import BootstrapFewShot
    return BootstrapFewShot(**config)


def _bootstrap_random_search(**config: Any) -> Any:
    from plait.teleprompt.random_search import BootstrapFewShotWithRandomSearch
    return BootstrapFewShotWithRandomSearch(**config)


def _knn_few_shot(**config: Any) -> Any:
    from plait.teleprompt.knn import KNNFewShot
    return KNNFewShot(**config)


def _ensemble(**config: Any) -> Any:
    from plait.teleprompt.ensemble import Ensemble
    return Ensemble(**config)


def _copro(**config: Any) -> Any:
    from plait.teleprompt.copro import COPRO
    return COPRO(**config)


def _miprov2(**config: Any) -> Any:
    from plait.teleprompt.mipro import MIPROv2
    return MIPROv2(**config)


def _bootstrap_finetune(**config: Any) -> Any:
    from plait.teleprompt.finetune import BootstrapFinetune
    return BootstrapFinetune(**config)


@hookimpl
def plait_register_teleprompters() -> list[TeleprompterBackend]:
    return [
        TeleprompterBackend("labeled-few-shot", _labeled_few_shot,
                            summary="k labelled training examples as demos per predictor (no LM calls)"),
        TeleprompterBackend("bootstrap-few-shot", _bootstrap_few_shot,
                            summary="demos from the teacher's traces that pass the metric, topped up with labelled ones"),
        TeleprompterBackend("bootstrap-random-search", _bootstrap_random_search,
                            summary="several bootstrapped demo sets scored on a valset; the best wins"),
        TeleprompterBackend("knn-few-shot", _knn_few_shot, extra="embeddings", requires=("numpy",),
                            summary="per call, demos bootstrapped from the nearest training examples"),
        TeleprompterBackend("ensemble", _ensemble,
                            summary="runs several programs and reduces their outputs (e.g. plait.majority)"),
        TeleprompterBackend("copro", _copro,
                            summary="instruction search: breadth proposals x depth rounds, scored"),
        TeleprompterBackend("miprov2", _miprov2,
                            summary="instruction x demo-set search on minibatches (Bayesian with optuna, "
                                    "random without)"),
        TeleprompterBackend("bootstrap-finetune", _bootstrap_finetune, extra="finetune", requires=("transformers", "peft", "torch"),
                            summary="LoRA-finetunes a small local causal LM on passing traces"),
    ]
