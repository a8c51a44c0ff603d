"""Values of the edge's own settings (memory budget, token file) that must fail as one clear error."""

from __future__ import annotations

import pytest

from mvstylizer.edge.memory import parse_size


@pytest.mark.parametrize("text", ["1e309", "inf", "INF", "1e308G", "Infinity"])
def test_parse_size_too_large_is_a_value_error(text):
    # API callers (not only the CLI, which used to catch OverflowError itself) expect ValueError for bad sizes.
    with pytest.raises(ValueError, match="not a memory size"):
        parse_size(text)


@pytest.mark.parametrize("text", ["nan", "-inf", "0", "-1G"])
def test_parse_size_not_positive_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_size(text)
