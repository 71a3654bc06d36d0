"""Marqo retriever and indexer for plait: ``plait.retriever("marqo", index=..., url=...)``.

Install with ``pip install 'plait[marqo]'`` (the ``marqo`` client 3.x, for Marqo 2.x servers).
Configuration:

- ``index`` (required), ``url`` (default ``http://localhost:8882``), ``api_key`` (Marqo Cloud),
  or an injected ``client=`` (a ``marqo.Client``).
- ``text_field`` (default "text"): the document field holding the passage text; every other
  field of a hit comes back as metadata.
- ``searchable_attributes``: the tensor fields to search (default: all of them).
- ``filter_string``: a native Marqo filter ANDed into every search. Per call, ``filter=`` takes
  plait's portable dict (``{"topic": "x", "year": [2001, 2002]}`` becomes
  ``topic:(x) AND (year:2001 OR year:2002)``, DSL characters escaped) or a Marqo filter string.
  Marqo filters strings up to the index's ``filterStringMaxLength`` only.
- ``create_index=True`` creates a missing index (``model=`` / ``model_properties=`` pick the
  server-side model; Marqo's default otherwise).

Embeddings, the choice made: by default Marqo embeds server-side with the index's model (the
text field is a tensor field; queries are sent as text). With ``embedder=`` plait embeds
instead and sends custom vectors, which Marqo 2.x supports for unstructured indexes: the text
field is mapped as ``{"type": "custom_vector"}`` and each document carries
``{"content": text, "vector": [...]}`` (Marqo stores the content as the field's value, so hits
still return the text); queries are sent as ``context={"tensor": [{"vector": v, "weight": 1}]}``
with no ``q``, so Marqo runs no model at all. An index made for custom vectors should use
``model="no_model"`` with ``modelProperties={"type": "no_model", "dimensions": N}``; that is
what ``create_index=True`` does when an embedder is given.

Scores are Marqo's ``_score`` (higher is better). Failures: the client does not retry, so plait
retries connection errors, timeouts and 429/5xx answers (``max_retries``, default 3, with
backoff 0.25 s, 0.5 s, 1 s) and then raises :class:`MarqoUnavailableError` naming the URL.

Importing this package does not import ``marqo``: the client loads on first use.
DSPy-style alias: ``MarqoRM(marqo_index_name, marqo_client, k=3, page_content="document",
filter_string=None)``.
"""

from __future__ import annotations

from typing import Any

from plait.backends import RetrieverBackend
from plait.plugins import hookimpl
from plait_marqo.retriever import MarqoRetriever, MarqoRM, MarqoUnavailableError, to_marqo_filter

__all__ = ["MarqoRM", "MarqoRetriever", "MarqoUnavailableError", "make_marqo_retriever",
           "plait_register_retrievers", "to_marqo_filter"]


def make_marqo_retriever(**config: Any) -> MarqoRetriever:
    """The factory behind ``plait.retriever("marqo", ...)`` (checks the client is importable)."""
    import marqo  # noqa: F401  (an ImportError here becomes MissingExtraError with the pip command)
    return MarqoRetriever(**config)


@hookimpl
def plait_register_retrievers() -> list[RetrieverBackend]:
    return [RetrieverBackend("marqo", make_marqo_retriever, extra="marqo", requires=("marqo",),
                             summary="Marqo index: server-side embedding, or custom vectors from any plait embedder")]
