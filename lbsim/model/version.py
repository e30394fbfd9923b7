"""The model's declared version: shipped results are stale only when it changes.

``MODEL_VERSION`` names the behaviour of the simulator (lbsim/model/, the kernel profiles,
the config rules and simulate).  It changes only when a simulated number does, and
tests/test_model_version.py enforces that: it fails once tests/data/reference_outputs.json
(the golden outputs of tests/test_reference.py) no longer hashes to ``REFERENCE_SHA256``.
A comment or a refactor leaves the golden outputs, hence the version, alone.

On a behaviour change: regenerate the golden outputs, bump ``MODEL_VERSION``, put the new
file's sha256 into ``REFERENCE_SHA256``, then ``make results``.
"""

#: bump on every change of simulated numbers (every run stores it in its ``model_version`` column)
MODEL_VERSION = 9
#: sha256 of tests/data/reference_outputs.json as made by this version of the model
REFERENCE_SHA256 = "4a2e2149440d0c6f3be5997aaeb450d50175b19988c2ac54f208b1ca317943d1"
