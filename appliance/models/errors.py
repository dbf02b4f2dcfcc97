"""Errors of the model supply chain: manifest, fetch, conversion.

Why separate types: ``ephemera build`` turns each into one clear line with a remedy (a hash
mismatch is a possible attack, no network needs ``--from-wheel``, an unsupported op is a
converter gap), and tests can assert which one happened.
"""

from __future__ import annotations


class ModelSupplyError(RuntimeError):
    """Base class: something between the pinned source and the built model went wrong."""

    remedy: str = ""

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(message)
        self.remedy = remedy


class ManifestError(ModelSupplyError):
    """engines/models.toml is missing, malformed or inconsistent."""


class FetchError(ModelSupplyError):
    """The pinned wheel could not be obtained (no network, offline with an empty cache)."""


class HashMismatchError(ModelSupplyError):
    """A file's sha256 differs from the pinned one: never use it."""


class ConversionError(ModelSupplyError):
    """The TFLite model uses something the converter does not handle; the message names it."""
