"""The options several commands take, each declared once: the crawl options of `seed` and `run`
(made into the spec), the worker options of `worker` and `run`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer

from crawlfleet.scheduler.cli import app
from crawlfleet.scheduler.options import CrawlOptions, ExtractorChoice, WorkerOptions
from crawlfleet.shared.crawl import CrawlSpec
from crawlfleet.shared.errors import UserError
from crawlfleet.shared.settings import Settings

SEED = "http://a.example/"


def options(**given: Any) -> CrawlOptions:
    return CrawlOptions(**{"urls": [SEED], "crawl_id": "opts", **given})


def test_the_defaults_are_the_specs() -> None:
    """Options left at their defaults make the spec's own defaults: the two cannot drift."""
    assert options().spec() == CrawlSpec(crawl_id="opts", seeds=[SEED])


def test_options_become_the_specs_fields() -> None:
    """Negative flags turn into the spec's positive fields, content types are normalized, the
    seeds canonicalized once each, and the named options go in as they are."""
    spec = options(
        urls=["HTTP://A.example:80/#top", SEED, "http://b.example"],
        ignore_robots=True,
        no_adaptive=True,
        content_type=[" Text/HTML ", "image/"],
        depth=5,
        scope="domain",
        deny=["/private/"],
        sitemaps=True,
        max_sitemap_urls=7,
    ).spec()
    assert spec.seeds == [SEED, "http://b.example/"]
    assert (spec.obey_robots, spec.adaptive) == (False, False)
    assert spec.content_types == ["text/html", "image/"]
    assert (spec.depth, spec.scope, spec.deny, spec.max_sitemap_urls) == (
        5,
        "domain",
        ["/private/"],
        7,
    )


def test_a_crawl_id_is_made_when_none_is_given() -> None:
    """Without --crawl-id the crawl is named by time and chance."""
    first, second = options(crawl_id=None).spec(), options(crawl_id=None).spec()
    assert first.crawl_id != second.crawl_id


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"scope": "planet"}, "invalid scope 'planet'"),
        ({"max_sitemap_urls": 5}, "give --sitemaps too"),
        ({"urls": ["ftp://a.example/"]}, "not an absolute http(s) URL"),
        ({"crawl_id": "../x"}, "invalid crawl id"),
        ({"allow": ["(unclosed"]}, "invalid regular expression"),
        ({"since": "opts"}, "cannot be crawled again since itself"),
    ],
)
def test_bad_options_are_the_users_mistake(given: dict[str, Any], words: str) -> None:
    """A bad option is a UserError (one line, exit 2 at the command line) saying what is wrong."""
    with pytest.raises(UserError, match=words.replace("(", r"\(").replace(")", r"\)")):
        options(**given).spec()


@pytest.mark.parametrize(
    ("command", "declared"),
    [
        ("seed", CrawlOptions),
        ("run", CrawlOptions),
        ("run", WorkerOptions),
        ("worker", WorkerOptions),
    ],
)
def test_commands_take_every_option_of_one_declaration(command: str, declared: type[Any]) -> None:
    """Each command taking an options object has each of its fields as a parameter, in its
    order, with its default."""
    group: Any = typer.main.get_command(app)  # typer's own click, whose types are not public
    params = group.commands[command].params
    names = [p.name for p in params]
    fields = dataclasses.fields(declared)
    start = names.index(fields[0].name)
    assert names[start : start + len(fields)] == [f.name for f in fields]
    for param, field in zip(params[start:], fields, strict=False):
        if field.default is not dataclasses.MISSING:
            assert param.default == field.default, field.name


def test_worker_options_are_settings() -> None:
    """The workers' options name settings; one not given leaves the setting alone."""
    given = WorkerOptions(concurrency=3, extractor=ExtractorChoice.fast, data_dir=Path("/d"))
    assert given.settings() == {"concurrency": 3, "extractor": "fast", "data_dir": Path("/d")}
    assert set(WorkerOptions().settings().values()) == {None}
    assert set(given.settings()) <= set(Settings.model_fields)
