"""Which failed fetches a page job tries again (``workers.jobs.running.worth_retrying``)."""

from __future__ import annotations

import pytest

from crawlfleet.shared.failures import Failure, FailureKind
from crawlfleet.workers.fetch import FetchResult, failed
from crawlfleet.workers.jobs.running import worth_retrying

URL = "http://inside.test/p1.html"
BLOCKED = failed(URL, Failure(FailureKind.BLOCKED, "10.89.0.3 is private"))


def answered(status: int) -> FetchResult:
    return FetchResult(URL, URL, status, "text/html", b"", False, None, 1)


@pytest.mark.parametrize("settled", [True, False])
def test_a_transient_failure_is_tried_again(settled: bool) -> None:
    assert worth_retrying(failed(URL, Failure(FailureKind.TIMEOUT, "4s deadline")), settled)
    assert worth_retrying(answered(503), settled)


def test_a_blocked_address_is_tried_again_only_while_the_policy_is_not_settled() -> None:
    """A crawl whose seed did not resolve in time is public for now: its own private host's
    pages, refused meanwhile, are tried again (the policy is asked again for the next try), not
    recorded as failed with their links lost; once the policy is settled, a refused address is
    final."""
    assert worth_retrying(BLOCKED, policy_settled=False)
    assert not worth_retrying(BLOCKED, policy_settled=True)


@pytest.mark.parametrize("settled", [True, False])
def test_a_final_failure_is_not_tried_again(settled: bool) -> None:
    assert not worth_retrying(answered(404), settled)
    assert not worth_retrying(failed(URL, Failure(FailureKind.TOO_MANY_REDIRECTS, "11")), settled)
