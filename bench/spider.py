"""The peer crawlers, run as their own process: ``python -m bench.spider CONFIG.json``.

One spider for both peers, configured for a broad breadth-first crawl as Scrapy's docs advise
(DEPTH_PRIORITY=1 with FIFO queues, INFO logging, cookies off, robots.txt not obeyed, as
crawlfleet is run here), at the bench's concurrency, or with ``"defaults": true`` at Scrapy's
own CONCURRENT_REQUESTS and CONCURRENT_REQUESTS_PER_DOMAIN (16 and 8, "scrapy (defaults)"):

- ``scrapy``: one Scrapy process (``scrapy.Spider``) with its in-memory scheduler and dupefilter;
- ``scrapy-redis``: one of N processes of a ``scrapy_redis`` ``RedisSpider`` sharing Redis's
  scheduler queue and dupefilter, fed its start URLs through Redis.

Each response is recorded like crawlfleet records a page: its body is written to a file (when
``store`` is on) and a JSON line (url, depth, status) is appended to ``manifest-<index>.jsonl``.
Links are followed from 2xx HTML responses only, found with Scrapy's ``LinkExtractor`` (``<a>``
and ``<area>`` ``href``) denying crawlfleet's own list of non-page extensions, so both crawlers
follow the same links. Error statuses reach the callback (HTTPERROR_ALLOW_ALL) to be recorded,
as crawlfleet records them.

When the spider closes it writes ``stats-<index>.json``: its CPU seconds (``getrusage``) when it
opened, at its last page and when it closed, wall-clock times, peak RSS and Scrapy's counters.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import scrapy
from scrapy import signals
from scrapy.crawler import CrawlerProcess
from scrapy.http import HtmlResponse, Response
from scrapy.linkextractors import LinkExtractor

from crawlfleet.shared.urls import NON_PAGE_EXTENSIONS


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Recorder:
    """Writes what the spider fetched and when; one per process."""

    def __init__(self, out_dir: Path, index: int, store: bool) -> None:
        self.out_dir = out_dir
        self.index = index
        self.store = store
        self.pages_dir = out_dir / "pages"
        self.manifest = (out_dir / f"manifest-{index}.jsonl").open("a", buffering=1)
        self.pages = 0
        self.opened = time.time()
        self.cpu_opened = _cpu()
        self.last = self.opened
        self.cpu_last = self.cpu_opened

    def opened_now(self) -> None:
        self.opened = self.last = time.time()
        self.cpu_opened = self.cpu_last = _cpu()
        (self.out_dir / f"ready-{self.index}").write_text(str(self.opened))

    def page(self, response: Response, depth: int) -> None:
        if self.store:
            fp = hashlib.sha1(response.url.encode(), usedforsecurity=False).hexdigest()
            folder = self.pages_dir / fp[:2]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{fp}.d{depth}.body").write_bytes(response.body)
        line = {
            "url": response.url,
            "depth": depth,
            "status": response.status,
            "latency": response.meta.get("download_latency"),
        }
        self.manifest.write(json.dumps(line) + "\n")
        self.pages += 1
        self.last = time.time()
        self.cpu_last = _cpu()

    def close(self, stats: dict[str, Any]) -> None:
        self.manifest.close()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        numbers = {k: v for k, v in stats.items() if isinstance(v, int | float)}
        out = {
            "pages": self.pages,
            "opened": self.opened,
            "last": self.last,
            "closed": time.time(),
            "cpu_opened": self.cpu_opened,
            "cpu_last": self.cpu_last,
            "cpu_closed": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": usage.ru_maxrss / 1024,
            "scrapy_stats": numbers,
        }
        (self.out_dir / f"stats-{self.index}.json").write_text(json.dumps(out, indent=1))


class _BenchMixin:
    """Records every response and follows the links of 2xx HTML ones."""

    recorder: Recorder
    extractor: LinkExtractor

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> Any:
        spider = super().from_crawler(crawler, *args, **kwargs)  # type: ignore[misc]
        recorder = cls.recorder
        crawler.signals.connect(recorder.opened_now, signal=signals.spider_opened)

        def closed() -> None:
            recorder.close(crawler.stats.get_stats())

        spider.closed_handler = closed  # keep a strong reference: signals hold weak ones
        crawler.signals.connect(closed, signal=signals.spider_closed)
        return spider

    def parse(self, response: Response, **kwargs: Any) -> Any:
        depth = int(response.meta.get("depth", 0))
        self.recorder.page(response, depth)
        if isinstance(response, HtmlResponse) and 200 <= response.status < 300:
            for link in self.extractor.extract_links(response):
                yield scrapy.Request(link.url, callback=self.parse)


def _make_spider(config: dict[str, Any], recorder: Recorder) -> type[scrapy.Spider]:
    attrs: dict[str, Any] = {
        "name": config["name"],
        # the crawl's hosts, as crawlfleet's host scope (no port: Scrapy matches host names)
        "allowed_domains": config["allowed_domains"],
        "recorder": recorder,
        "extractor": LinkExtractor(
            tags=("a", "area"),
            attrs=("href",),
            deny_extensions=sorted(NON_PAGE_EXTENSIONS),
            canonicalize=False,
            unique=True,
        ),
    }
    if config["mode"] == "scrapy-redis":
        from scrapy_redis.spiders import RedisSpider

        return type("BenchRedisSpider", (_BenchMixin, RedisSpider), attrs)
    attrs["start_urls"] = config["seeds"]
    return type("BenchSpider", (_BenchMixin, scrapy.Spider), attrs)


def scrapy_settings(config: dict[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "LOG_LEVEL": config.get("log_level", "INFO"),
        "TELNETCONSOLE_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "COOKIES_ENABLED": False,
        "USER_AGENT": "bench-scrapy (+loopback benchmark)",
        "DEPTH_LIMIT": config["depth"],
        "DEPTH_PRIORITY": 1,
        "SCHEDULER_DISK_QUEUE": "scrapy.squeues.PickleFifoDiskQueue",
        "SCHEDULER_MEMORY_QUEUE": "scrapy.squeues.FifoMemoryQueue",
        "HTTPERROR_ALLOW_ALL": True,
        "LOGSTATS_INTERVAL": 60,
    }
    if not config.get("defaults"):  # else Scrapy's own: 16 requests, 8 per domain
        settings["CONCURRENT_REQUESTS"] = config["concurrency"]
        settings["CONCURRENT_REQUESTS_PER_DOMAIN"] = config["per_domain"]
    settings.update(config.get("settings") or {})  # overrides, for experiments
    if config["mode"] == "scrapy-redis":
        settings.update(
            {
                "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
                "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
                "SCHEDULER_PERSIST": True,  # keep the keys, so their memory can be measured
                "REDIS_URL": config["redis_url"],
                "MAX_IDLE_TIME_BEFORE_CLOSE": config.get("max_idle_s", 120),
            }
        )
    return settings


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    out_dir = Path(config["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(out_dir, int(config.get("index", 0)), bool(config.get("store", True)))
    process = CrawlerProcess(scrapy_settings(config), install_root_handler=True)
    process.crawl(_make_spider(config, recorder))
    process.start()


if __name__ == "__main__":
    main()
