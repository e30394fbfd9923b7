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
MODEL_VERSION = 10
#: sha256 of tests/data/reference_outputs.json as made by this version of the model
REFERENCE_SHA256 = "32ec0b96635eabfb2e9adf630b79daac030c8b363c982b6c4a019c1bf7d82cb2"
