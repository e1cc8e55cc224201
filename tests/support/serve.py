"""Serve the generated test web by hand: ``python -m tests.support.serve --port 8000``.

Useful to try a crawl without the internet: it prints a seed URL for each host.
"""

from __future__ import annotations

import argparse
import time

from tests.support.testweb import TestWeb, add_sitemaps, make_site


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--pages", type=int, default=25, help="pages per host")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-latency", type=float, default=0.02, help="seconds per page, at most")
    parser.add_argument("--seconds", type=float, default=3600, help="stop after this long")
    parser.add_argument(
        "--sitemaps", type=int, default=0, metavar="N",
        help="give each host sitemaps (robots.txt, an index, gzip) listing N pages no link reaches",
    )  # fmt: skip
    args = parser.parse_args()
    with TestWeb(hosts=args.hosts) as web:
        web.site = make_site(
            web.port, seed=args.seed, hosts=args.hosts, pages_per_host=args.pages,
            max_latency=args.max_latency,
        )  # fmt: skip
        if args.sitemaps:
            add_sitemaps(web.site, web.port, args.hosts, args.sitemaps)
        for h in range(args.hosts):
            print(web.url(h, "/p/0.html"), flush=True)
        time.sleep(args.seconds)


if __name__ == "__main__":
    main()
