"""Repairs of annotated intervals (shared by every dataset reader), each one listed as a problem."""
from __future__ import annotations

import pytest

from micronbert.data.datasets.build import resolve_interval


@pytest.mark.parametrize("given, expected, problems", [
    ((10, 12, 15), (10, 12, 15), []),
    ((20, 12, 15), (None, 12, 15), ["onset 20 after apex 12 and offset 15; onset treated as missing"]),
    ((10, 14, 5), (10, 14, 14), ["offset 5 before onset 10 and apex 14; offset treated as missing",
                                 "offset missing; apex 14 used as offset"]),
    ((10, 7, 5), (None, 7, 7), ["onset 10 after offset 5; both treated as missing",
                                      "offset missing; apex 7 used as offset"]),
    ((10, None, 5), (None, None, None), ["onset 10 after offset 5; both treated as missing"]),
    ((10, 13, None), (10, 13, 13), ["offset missing; apex 13 used as offset"]),
    ((10, 30, 15), (10, None, 15), ["apex 30 outside [10, 15]; treated as missing"]),
    ((10, 3, None), (10, None, None), ["apex 3 outside [10, None]; treated as missing"]),
])
def test_interval_repairs(given: tuple, expected: tuple, problems: list[str]) -> None:
    result = resolve_interval(*given)
    assert (result.onset, result.apex, result.offset) == expected
    assert result.problems == problems
