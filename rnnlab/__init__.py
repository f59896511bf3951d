"""rnnlab: a research harness for recurrent networks. The command is `rnnlab`; from Python (see `rnnlab.api`):

    import rnnlab
    result = rnnlab.run("digits_bilstm", overrides={"train.epochs": 2})     # one trial in-process: its result
    summary = rnnlab.search("search_digits", overrides={"search.samples": 4})  # a search on local Ray: its summary
    table = rnnlab.load_search(summary.folder)                              # a search as a pandas DataFrame

Importing rnnlab is cheap: the names below load their modules (torch, Ray, ...) on first use.
"""

from __future__ import annotations

from typing import Any

API = ("run", "search", "load_search", "SearchSummary", "RunTerminated")
__all__ = ["ConfigError", "__version__", *API]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("rnnlab")
        except PackageNotFoundError:  # a checkout on sys.path that was never installed
            return "unknown"
    if name in API:
        from rnnlab import api

        return getattr(api, name)
    if name == "ConfigError":
        from rnnlab.config import ConfigError

        return ConfigError
    raise AttributeError(f"module 'rnnlab' has no attribute {name!r}")
