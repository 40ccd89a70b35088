"""The benchmark scripts as modules (``benchmarks/`` is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Iterator

import pytest

BENCHMARK_DIR = Path(__file__).resolve().parents[2] / "benchmarks"


def _benchmark_module(name: str) -> Iterator[object]:
    """``benchmarks/<name>.py`` loaded as the module ``name`` for the duration of a test module."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARK_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    del sys.modules[name]


@pytest.fixture(scope="module")
def bench_pipeline():
    yield from _benchmark_module("bench_pipeline")


@pytest.fixture(scope="module")
def bench_materials():
    yield from _benchmark_module("bench_materials")
