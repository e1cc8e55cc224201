"""The arq job functions, one module per kind of job: crawl one page (``page``), fetch one
robots.txt (``robots``), read one sitemap (``sitemap``), finalize one crawl (``finalize``).
``running`` runs each within its deadline and hands it back when it cannot be done now;
``gates`` says whether its crawl may go on. The worker registers the four functions under the
names ``shared.jobs`` gives them, which ``frontier.lua`` writes into payloads.
"""

from crawlfleet.workers.jobs.finalize import finalize_crawl
from crawlfleet.workers.jobs.page import crawl_page
from crawlfleet.workers.jobs.robots import fetch_robots
from crawlfleet.workers.jobs.sitemap import fetch_sitemap

__all__ = ["crawl_page", "fetch_robots", "fetch_sitemap", "finalize_crawl"]
