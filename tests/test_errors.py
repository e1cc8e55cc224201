"""The exception tree and the kinds of failure: one base class, behaviour decided by kind."""

from __future__ import annotations

import errno
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

from crawlfleet.shared import errors
from crawlfleet.shared.errors import (
    CrawlfleetError,
    GuardError,
    HandBack,
    JobDeferred,
    LinkRefused,
    LostTry,
    NoTurn,
    RecordedFailure,
)
from crawlfleet.shared.failures import Failure, FailureKind, sitemap_reason, status_reason
from crawlfleet.workers.fetch import FetchResult, failed

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "scheduler", "workers")


def defined_exceptions() -> list[type[BaseException]]:
    """Every exception class the product's modules define (entry points left out: importing
    them runs them)."""
    found: list[type[BaseException]] = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], f"crawlfleet.{package}."):
            if info.name.endswith("__main__"):
                continue
            module = importlib.import_module(info.name)
            found += [
                cls
                for _, cls in inspect.getmembers(module, inspect.isclass)
                if cls.__module__ == module.__name__ and issubclass(cls, BaseException)
            ]
    return found


def test_every_exception_crawlfleet_defines_is_in_the_tree() -> None:
    """One base class: whatever crawlfleet raises on purpose is a CrawlfleetError, and the
    tree drawn in shared/errors.py names it."""
    classes = defined_exceptions()
    assert {c.__name__ for c in classes} >= {"HandBack", "NoTurn", "LostTry", "GuardError"}
    assert [c for c in classes if not issubclass(c, CrawlfleetError)] == []
    drawn = errors.__doc__ or ""
    named = re.findall(r"(?:── |^    )([A-Z]\w+)", drawn, re.MULTILINE)
    assert sorted(c.__name__ for c in classes) == sorted(named)


def test_a_failure_is_written_kind_then_detail() -> None:
    """``kind: detail``, or the kind alone; what the crawl counts is the kind (an error
    status with its number, a sitemap's behind ``sitemap: ``)."""
    assert str(Failure(FailureKind.BLOCKED, "10.0.0.1 is private")) == (
        "blocked address: 10.0.0.1 is private"
    )
    assert str(Failure(FailureKind.HOST_UNRESPONSIVE)) == "host unresponsive"
    assert status_reason(404) == "http 404"
    assert sitemap_reason(FailureKind.MALFORMED_XML) == "sitemap: malformed XML"
    assert sitemap_reason(status_reason(410)) == "sitemap: http 410"


def _result(kind: FailureKind, detail: str) -> FetchResult:
    return failed("http://a.test/", Failure(kind, detail))


@pytest.mark.parametrize(
    ("kind", "transient", "timed_out"),
    [
        (FailureKind.TIMEOUT, True, True),
        (FailureKind.DNS_TIMEOUT, True, True),
        (FailureKind.CONNECT, True, False),
        (FailureKind.PROTOCOL, True, False),
        (FailureKind.DNS, False, False),
        (FailureKind.TLS, False, False),
        (FailureKind.BLOCKED, False, False),
        (FailureKind.OTHER, False, False),
        (FailureKind.ROBOTS_UNREACHABLE, False, False),
    ],
)
def test_what_a_worker_does_follows_the_kind_never_the_text(
    kind: FailureKind, transient: bool, timed_out: bool
) -> None:
    """Tried again or not, a strike against the host or not: the kind decides, whatever its
    detail says (here the words of a timeout and of a refused connection)."""
    for detail in ("timeout: 5s deadline", "connect: refused", ""):
        result = _result(kind, detail)
        assert (result.transient, result.timed_out) == (transient, timed_out)
        assert result.reason == kind.value


def test_an_error_status_counts_with_its_number() -> None:
    """A response is counted by its status when it is an error, never by a kind of failure."""
    ok = FetchResult(
        url="http://a.test/", final_url=None, status=503, content_type=None, body=b"",
        truncated=False, error=None, duration_ms=1,
    )  # fmt: skip
    assert (ok.reason, ok.transient, ok.timed_out) == ("http 503", True, False)


def test_job_deferrals_are_one_branch() -> None:
    """No free fetch turn is a routine hand-back; a hand-back's try is not counted, a lost
    try's is: two classes under one branch, each with its wait."""
    assert issubclass(NoTurn, HandBack) and NoTurn.routine and not HandBack.routine
    assert issubclass(LostTry, JobDeferred) and not issubclass(LostTry, HandBack)
    assert NoTurn("no fetch turn free in 5s", 0.7).defer_s == 0.7


def test_errors_that_must_be_os_errors_still_are() -> None:
    """aiohttp's connector takes the guard's refusals as OSErrors, storage code a link's: in
    the tree and still OSErrors, with their failure or message."""
    guard = GuardError(FailureKind.DNS, "Name or service not known")
    assert isinstance(guard, OSError) and isinstance(guard, RecordedFailure)
    assert str(guard) == "dns: Name or service not known"
    link = LinkRefused(errno.ELOOP, "data/c1 is a symbolic link")
    assert isinstance(link, OSError) and link.errno == errno.ELOOP
    assert str(link) == "data/c1 is a symbolic link"
