"""Retrieval: Passage, the Retriever and Embedder base classes, Retrieve, the in-memory index."""

from plait.retrieve.embedder import Embedder, HashingEmbedder
from plait.retrieve.memory import InMemoryRetriever
from plait.retrieve.passage import Passage
from plait.retrieve.retrieve_module import Retrieve
from plait.retrieve.retriever import Retriever, check_add_args, matches_filter, retrieve, text_id

__all__ = ["Embedder", "HashingEmbedder", "InMemoryRetriever", "Passage", "Retrieve", "Retriever",
           "check_add_args", "matches_filter", "retrieve", "text_id"]
