"""The package picture holds: scheduler -> shared <- workers, tests never import the bench, and
arq's private parts are touched by one adapter module only, whose reliance on them is pinned
here."""

from __future__ import annotations

import ast
import inspect
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from arq.jobs import Job
from arq.worker import Worker

ARQ_CLASSES = {"Worker", "ArqRedis", "Job"}
ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "scheduler", "workers")
ADAPTER = ROOT / "workers" / "arq_worker.py"
# the arq internals the adapter overrides or calls, with the parameters arq 0.26-0.28 gives
# them: a release of arq that changes one fails here, not in a crawl
ARQ_PRIVATES = {
    "_poll_iteration": (["self"], True),
    "_cancel_aborted_jobs": (["self"], True),
    "_release_sem_dec_counter_on_complete": (["self"], False),
}
# the public methods the adapter overrides or calls with positions of its own
ARQ_PUBLIC = {
    "run_job": ["self", "job_id", "score"],
    "finish_failed_job": ["self", "job_id", "result_data"],
    "finish_job": [
        "self", "job_id", "finish", "result_data", "result_timeout_s", "keep_result_forever",
        "incr_score", "keep_in_progress",
    ],
}  # fmt: skip


def product_files(package: str) -> Iterator[Path]:
    yield from sorted((ROOT / package).rglob("*.py"))


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, anywhere in it (lazy imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(_package(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(_package(node.module))
    return names


def _package(module: str) -> str:
    """``crawlfleet.shared.keys`` -> ``crawlfleet.shared``; ``os.path`` -> ``os``."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "crawlfleet" else parts[0]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("scheduler", {"crawlfleet.workers"}),
        ("shared", {"crawlfleet.workers", "crawlfleet.scheduler"}),
    ],
)
def test_no_import_against_the_arrows(package: str, forbidden: set[str]) -> None:
    """The scheduler starts workers as processes and never imports them; shared imports
    neither side."""
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(imported_packages(path) & forbidden)
        for path in product_files(package)
        if imported_packages(path) & forbidden
    }
    assert offenders == {}


@pytest.mark.parametrize("folder", [*PACKAGES, "tests", "bench"])
def test_every_import_names_the_installed_package(folder: str) -> None:
    """The packages install as crawlfleet.shared, .scheduler and .workers only: an import by
    the folder's own name would find it in a checkout and nowhere else (and load it twice)."""
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(found)
        for path in product_files(folder)
        if (found := imported_packages(path) & set(PACKAGES))
    }
    assert offenders == {}


def test_the_distribution_lists_every_package_folder() -> None:
    """pyproject.toml's package list names each folder with an ``__init__.py`` below the
    three packages, under its installed name: a folder left out would be missing from the
    wheel (and the container image) while a checkout still finds it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {
        "crawlfleet." + init.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for package in PACKAGES
        for init in (ROOT / package).rglob("__init__.py")
    }
    assert listed == folders


def test_tests_never_import_the_bench() -> None:
    """The bench may build on tests/support (its synthetic web, the docs site), never the other
    way: no module under tests/ imports bench, so the product's tests run without it."""
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in product_files("tests")
        if "bench" in imported_packages(path)
    ]
    assert offenders == []


def private_attributes(path: Path, own: bool = True) -> set[str]:
    """The ``_name`` attributes (not dunders) a module reads of any object, and the methods
    it defines; with ``own=False`` neither its methods nor what it reads of ``self`` (a
    module that subclasses nothing of arq's: they are its own)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute)
        and (own or not (isinstance(n.value, ast.Name) and n.value.id == "self"))
    }
    if own:
        names |= {
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def subclasses_arq(path: Path) -> bool:
    """Whether a module defines a class on one of arq's (then it is the adapter)."""
    return any(
        isinstance(n, ast.ClassDef) and any(ast.unparse(b) in ARQ_CLASSES for b in n.bases)
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
    )


def arq_privates() -> set[str]:
    return {
        name
        for cls in (Worker, ArqRedis, Job)
        for name in dir(cls)
        if name.startswith("_") and not name.startswith("__")
    }


def test_arq_privates_only_in_the_adapter() -> None:
    """No module but workers/arq_worker.py subclasses arq's classes or names a private
    attribute of arq's."""
    others = [path for package in PACKAGES for path in product_files(package) if path != ADAPTER]
    assert [p.name for p in others if subclasses_arq(p)] == []
    offenders = {
        path.relative_to(ROOT).as_posix(): sorted(found)
        for path in others
        if (found := private_attributes(path, own=False) & arq_privates())
    }
    assert offenders == {}


def test_the_adapter_relies_on_the_arq_it_was_written_for() -> None:
    """Every arq private the adapter uses is pinned above, and arq still has it as pinned."""
    assert private_attributes(ADAPTER) & arq_privates() == set(ARQ_PRIVATES)
    for name, (params, is_async) in ARQ_PRIVATES.items():
        method = getattr(Worker, name)
        assert list(inspect.signature(method).parameters) == params, name
        assert inspect.iscoroutinefunction(method) is is_async, name
    for name, params in ARQ_PUBLIC.items():
        assert list(inspect.signature(getattr(Worker, name)).parameters) == params, name


def test_jobs_read_arqs_context_through_one_typed_object() -> None:
    """Only workers/jobs/job_context.py reads arq's job context dict (``ctx[...]``): the jobs
    take a JobContext."""
    jobs = ROOT / "workers" / "jobs"
    readers = {
        path.name
        for path in sorted(jobs.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Subscript | ast.Call)
        and "ctx" in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        and (isinstance(node, ast.Subscript) or ast.unparse(node.func).startswith("ctx."))
    }
    assert readers == {"job_context.py"}
