"""Property: whatever reaches the admin API — any route, method, id, query, body or bearer
token — the answer is never a 500 and never a traceback, and every refused token is counted
(``auth_refused|<reason>``). Hypothesis drives the real ``threadline web`` over HTTP; half of the
examples carry the right token, so the handlers' own validation is explored too."""
from __future__ import annotations

import json
import string
import time
from collections import Counter

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_TOKEN
from tests.web_fixtures import counters

PATHS = ["/api/v1/configurations", "/api/v1/configurations/{id}", "/api/v1/conversations",
         "/api/v1/conversations/{id}", "/api/v1/dead-letters", "/api/v1/dead-letters/{id}",
         "/api/v1/dead-letters/{id}/replay", "/api/v1/profiles", "/api/v1/profiles/{id}",
         "/api/v1/profiles/{id}/addresses", "/api/v1/rules/explain", "/api/v1/stats"]
ids = st.one_of(st.sampled_from(["main", "tlc_x", "0-0", "1700000000000-0", "%2e%2e", "a" * 300]),
                st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=20))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "displayName", "status", "channel", "from", "to", "configurationId",
                         "conversationGroupingType", "channelSettings", "participants", "metadata",
                         "addresses", "x"]), inner, max_size=5),
    max_leaves=15)
TOKEN_CHARS = string.ascii_letters + string.digits + string.punctuation  # what a header can carry
queries = st.sampled_from(["", "status=ACTIVE", "limit=-1", "limit=abc", "offset=99999999999999999999",
                           "window=xyz", "channel=SMS&configuration=main", "cursor=%FF"])


@st.composite
def requests(draw):
    path = draw(st.sampled_from(PATHS)).replace("{id}", draw(ids))
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    auth = draw(st.sampled_from(["good", "good", "wrong", "none", "long", "scheme"]))
    headers = {"good": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
               "wrong": {"Authorization": "Bearer " + draw(st.text(TOKEN_CHARS, min_size=1, max_size=40))},
               "none": {}, "long": {"Authorization": "Bearer " + "t" * 2000},
               "scheme": {"Authorization": f"Basic {ADMIN_TOKEN}"}}[auth]
    if draw(st.booleans()):
        body = json.dumps(draw(json_values)).encode()
        headers["Content-Type"] = "application/json"
    else:
        body = draw(st.binary(max_size=200))
    query = draw(queries)
    return method, path + (f"?{query}" if query else ""), headers, body, auth


def _refused(redis_client) -> int:
    return sum(n for f, n in counters(redis_client).items() if f.startswith("auth_refused|"))


def test_the_admin_api_never_answers_500_and_counts_every_refused_token(web, redis_client):
    answers: Counter = Counter()
    before = _refused(redis_client)

    @settings(max_examples=200, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(req=requests())
    def one(req):
        method, target, headers, body, auth = req
        r = web.client.request(method, target, headers=headers, content=body)
        assert r.status_code < 500, (r.status_code, target, r.text[:300])
        assert "Traceback" not in r.text
        event(f"status {r.status_code}")
        if auth != "good":
            assert r.status_code in (401, 404, 405), (r.status_code, target)
            answers[r.status_code == 401] += 1

    one()
    deadline = time.monotonic() + 10
    while _refused(redis_client) - before < answers[True] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _refused(redis_client) - before == answers[True], answers
    assert "Traceback" not in web.proc.output()
