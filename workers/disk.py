"""Whether a crawl's folder takes files, known before its pages are fetched.

A worker process checks a crawl's folder (``CrawlLayout.check_writable``) before it fetches
anything for the crawl, and again after any write of the crawl failed, so a data directory that
cannot take files costs no request. What a failure does depends on whether it may mend:

- a full disk or quota (ENOSPC, EDQUOT): space may be freed, so the page waits (it goes back to
  the queue, unfetched while the check fails) and is tried again, for ``storage_wait_s`` at most
  since the crawl's last page was stored here; then the crawl fails with the reason;
- anything else (a read-only file system, no permission, a file or a link in the way) will not
  mend by itself: the crawl fails at once with the reason, rather than every page being fetched
  again and again.
"""

from __future__ import annotations

import errno
import time
from dataclasses import dataclass

from crawlfleet.shared.failures import Failure, FailureKind
from crawlfleet.shared.storage import CrawlLayout

# storage errors that may mend while the crawl waits: space freed, a quota raised
_MAY_MEND = frozenset({errno.ENOSPC, errno.EDQUOT})


def storage_failure(layout: CrawlLayout, exc: OSError) -> Failure:
    """Why a crawl fails for ``exc``: its folder and the error, without a traceback."""
    return Failure(FailureKind.STORAGE, f"{layout.root} cannot take files: {exc.strerror or exc}")


@dataclass
class DiskCheck:
    """One worker process's knowledge of one crawl's folder."""

    writable: bool = False  # checked since the last failure
    failing_since: float | None = None  # first failure since a page was last stored here

    def check(self, layout: CrawlLayout, *, bodies: bool) -> None:
        """Check the folder (for body files too, with ``bodies``) unless it is known to take
        files; raises the OSError."""
        if not self.writable:
            layout.check_writable(bodies=bodies)
            self.writable = True

    def stored(self) -> None:
        """A page's files were written."""
        self.failing_since = None

    def gives_up(self, exc: OSError, wait_s: float) -> bool:
        """A check or write failed with ``exc``: True if the crawl is to fail, False if the
        page is to wait and be tried again (the folder is checked again first)."""
        self.writable = False
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        return exc.errno not in _MAY_MEND or now - self.failing_since >= wait_s
