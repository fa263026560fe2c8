"""Token pagination (service/twin/store.page), a pure function: no twin process needed."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.twin.errors import TwinError
from service.twin.store import page


@given(n=st.integers(0, 120), size=st.integers(1, 1000))
def test_following_next_tokens_yields_every_item_once_in_order(n: int, size: int) -> None:
    items = [{"id": i} for i in range(n)]
    seen, query, pages = [], {"pageSize": str(size)}, 0
    while True:
        got = page("things", items, query)
        pages += 1
        assert got["meta"]["key"] == "things"
        assert got["meta"]["pageSize"] == len(got["things"]) <= size
        seen += [x["id"] for x in got["things"]]
        if "nextToken" not in got["meta"]:
            break
        query = {"pageSize": str(size), "pageToken": got["meta"]["nextToken"]}
    assert seen == list(range(n))
    assert pages == max(1, -(-n // size))


def test_previous_token_goes_back_and_foreign_tokens_are_refused() -> None:
    items = [{"id": i} for i in range(10)]
    second = page("things", items, {"pageSize": "4",
                                    "pageToken": page("things", items, {"pageSize": "4"})
                                    ["meta"]["nextToken"]})
    assert [x["id"] for x in second["things"]] == [4, 5, 6, 7]
    back = page("things", items, {"pageSize": "4", "pageToken": second["meta"]["previousToken"]})
    assert [x["id"] for x in back["things"]] == [0, 1, 2, 3]
    other = page("others", items, {"pageSize": "4"})["meta"]["nextToken"]
    for bad in ({"pageToken": other}, {"pageToken": "!!"}, {"pageSize": "1001"},
                {"pageSize": "ten"}):
        with pytest.raises(TwinError) as refused:
            page("things", items, bad)
        assert refused.value.status == 400
