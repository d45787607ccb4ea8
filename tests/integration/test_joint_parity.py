"""The joint replay's parity with the daemon on the synthetic market (no ../shared needed):
its option chains move every hour, so the options leg held between the options strategy's
checks is marked as the daemon marks it, and those marks size the spot strategies' fills
through the account-wide cap (tests/integration/joint_parity.py)."""

from __future__ import annotations

import pytest

from tests.integration.joint_parity import check_joint_parity

pytestmark = pytest.mark.slow


def test_a_whole_config_replayed_together_on_the_synthetic_market_fills_exactly_as_the_daemon(tmp_path):
    check_joint_parity(tmp_path, {"source": "synthetic", "seed": 42})
