"""The docstring examples of every reward module run and give what they show."""

import doctest
import importlib

import pytest

MODULES = ["parsing", "attributes", "format", "category", "retrieval", "grounding", "length", "pairwise",
           "registry", "guard", "identifier_format"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"reward_fns.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
