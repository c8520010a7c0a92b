"""The soak: minutes of steady mixed traffic while every fault is injected in turn.

Duration and rate come from GATEWAY_SOAK_SECONDS (default 180) and GATEWAY_SOAK_RATE
(default 20 requests a second); what is checked is `reliability.soak`'s docstring.
"""

from __future__ import annotations

import os

import pytest

from reliability.harness import FaultStack
from reliability.soak import SoakConfig, run

SECONDS = float(os.environ.get("GATEWAY_SOAK_SECONDS", "180"))
RATE = float(os.environ.get("GATEWAY_SOAK_RATE", "20"))


@pytest.mark.timeout(SECONDS + 600)
def test_soak_with_faults_answers_as_documented_and_loses_nothing(
    soak_stack: FaultStack,
) -> None:
    """Every fault in turn under steady load: documented answers only, no leak, nothing lost."""
    result = run(soak_stack, SoakConfig(duration_s=SECONDS, rate=RATE))
    print(result.summary())
    assert result.requests > 0
    assert result.faults_injected > 0
    assert result.undocumented == []
    assert result.isolation_breaches == []
    assert result.data_problems == {}
