"""Signatures: declare what an LM step takes and returns (``"question -> answer"``).

Importing this package does not import pydantic; ``plait.signatures.types`` imports it only
when a value or schema needs it.
"""

from plait.errors import SignatureError
from plait.signatures.fields import RESERVED_NAMES, Field, FieldSpec, InputField, OutputField
from plait.signatures.signature import Signature, ensure_signature, make_signature

__all__ = [
    "Signature",
    "Field",
    "FieldSpec",
    "InputField",
    "OutputField",
    "ensure_signature",
    "make_signature",
    "SignatureError",
    "RESERVED_NAMES",
]
