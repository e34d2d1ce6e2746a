"""The short, stable hash that every data version of the graph is made of."""

from __future__ import annotations

import hashlib
import json

# json.dumps with these options builds a new encoder per call; a sync fingerprints 60,000 items
_FINGERPRINT_JSON = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def fingerprint(*parts: object) -> str:
    """A short, stable hash of JSON-serialisable parts: the unit of every data version here."""
    blob = _FINGERPRINT_JSON.encode(parts)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
