"""The fault suite, smaller: 4,000 events, 6 SIGKILLs (one under a new consumer name), one
Redis restart, poison, duplicates and forged plans; the goal holds on the real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from damestoilet_contracts.bench._chaos import EXPECTED_REASONS, run_chaos

pytestmark = pytest.mark.redis


def test_the_fault_suite_loses_nothing_and_dead_letters_every_poison(tmp_path: Path) -> None:
    report = run_chaos(
        events=4000,
        kills=6,
        redis_restarts=1,
        poison_share=0.02,
        duplicate_share=0.02,
        unrelated=1000,
        workdir=tmp_path,
    )
    text = "\n".join(report.lines())
    assert report.kills == 6 and report.new_consumers == 1 and report.redis_restarts == 1
    assert set(report.poison_sent) == set(EXPECTED_REASONS), text  # every kind was sent
    assert report.purged == 4000, text
    assert report.lost == 0 and report.stale_keys == 0 and report.unrelated_lost == 0, text
    assert report.dead_lettered == report.poison_sent, text
    assert report.innocent_dead_lettered == 0 and report.dead_lettered_twice == 0, text
    assert report.goal_met
