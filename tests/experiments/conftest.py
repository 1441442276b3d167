"""Make ``fake_reach_env`` (tests/policies) importable here, as pytest does for its own folder."""

import sys
from pathlib import Path

_POLICY_TESTS = str(Path(__file__).resolve().parents[1] / "policies")
if _POLICY_TESTS not in sys.path:
    sys.path.append(_POLICY_TESTS)
