"""crawlfleet's benchmark: a synthetic web on loopback, crawled by crawlfleet, Scrapy and
scrapy-redis, measured side by side (``make bench``; see bench/README.md)."""
