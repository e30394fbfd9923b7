"""A change of the model's behaviour forces a bump of its declared version (lbsim/model/version.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from lbsim.model.version import REFERENCE_SHA256

REFERENCE = Path(__file__).resolve().parent / "data" / "reference_outputs.json"


def test_golden_outputs_match_the_declared_model_version():
    digest = hashlib.sha256(REFERENCE.read_bytes()).hexdigest()
    assert digest == REFERENCE_SHA256, (
        "the golden reference outputs changed: the model's behaviour changed, so bump MODEL_VERSION in "
        "lbsim/model/version.py and update REFERENCE_SHA256")
