"""The configuration store on a real Redis: versions, the generation counter, the file's load.

Every change is a new immutable version; a conversation pinned to an old one can still read
it after a PUT or a DELETE; writers racing on one configuration make exactly one version.
"""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
import redis.asyncio as aioredis

from workers.capture.configuration import ConfigurationError, parse_configuration
from workers.capture.file import load_into, reload
from workers.capture.store import (
    AlreadyExists,
    AsyncConfigStore,
    ConfigStore,
    GroupingTypeChanged,
    NotFound,
)


def cfg(id_="support", grouping="GROUP_BY_PARTICIPANT_ADDRESSES", description="", **over):
    return parse_configuration({
        "id": id_, "displayName": id_, "description": description,
        "conversationGroupingType": grouping,
        "channelSettings": {"SMS": {"captureRules": [{"from": "*", "to": "+15550000001"}]}}, **over,
    })


def test_every_change_is_a_new_version_and_old_versions_stay(redis_client):
    store = ConfigStore(redis_client)
    assert store.generation() == 0 and store.current() == []
    assert store.put(cfg(description="one")) == 1
    gen = store.generation()
    assert store.put(cfg(description="one")) == 1  # same content: same version, no generation move
    assert store.generation() == gen
    assert store.put(cfg(description="two")) == 2
    assert store.generation() == gen + 1
    [live] = store.current()
    assert (live.id, live.version, live.config.description, live.source) == ("support", 2, "two", "api")
    assert store.get("support", 1).config.description == "one"
    assert store.get("support").version == 2
    assert store.delete("support") is True
    assert store.delete("support") is False
    assert store.current() == [] and store.get("support") is None
    # pinned conversations still read their version after the delete
    assert store.get("support", 2).config.description == "two"
    assert store.get("support", 9) is None
    # a re-created id never reuses a version number
    assert store.put(cfg(description="again")) == 3


def test_grouping_type_is_immutable_while_the_configuration_lives(redis_client):
    store = ConfigStore(redis_client)
    store.put(cfg())
    with pytest.raises(GroupingTypeChanged) as info:
        store.put(cfg(grouping="GROUP_BY_PROFILE"))
    assert info.value.current == "GROUP_BY_PARTICIPANT_ADDRESSES"
    assert info.value.requested == "GROUP_BY_PROFILE"
    assert "immutable" in str(info.value)
    assert store.get("support").version == 1
    store.delete("support")
    assert store.put(cfg(grouping="GROUP_BY_PROFILE")) == 2  # a deleted id may come back as another type


def test_create_and_replace_modes(redis_client):
    store = ConfigStore(redis_client)
    with pytest.raises(NotFound):
        store.put(cfg(), mode="replace")
    store.put(cfg(), mode="create")
    with pytest.raises(AlreadyExists):
        store.put(cfg(description="x"), mode="create")
    assert store.put(cfg(description="x"), mode="replace") == 2


def test_racing_writers_of_the_same_content_make_one_version(redis_client, redis_url):
    import redis

    barrier = threading.Barrier(8)
    versions = []

    def write() -> None:
        client = redis.Redis.from_url(redis_url)
        barrier.wait()
        versions.append(ConfigStore(client).put(cfg(description="same")))
        client.close()

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert versions == [1] * 8
    assert ConfigStore(redis_client).generation() == 1


FILE = """
- id: support
  displayName: Support
  description: ''
  conversationGroupingType: GROUP_BY_PARTICIPANT_ADDRESSES
  channelSettings:
    SMS:
      captureRules: [{from: '*', to: '+15550000001'}]
- id: sales
  displayName: Sales
  description: ''
  conversationGroupingType: GROUP_BY_PROFILE
"""


def test_file_load_is_authoritative_for_its_ids_and_leaves_api_ones(redis_client, tmp_path):
    store = ConfigStore(redis_client)
    store.put(cfg("api-made"))
    path = tmp_path / "configs.yaml"
    path.write_text(FILE)
    result = load_into(store, path)
    assert result.versions == {"support": 1, "sales": 1} and result.removed == []
    assert {(v.id, v.source) for v in store.current()} == {
        ("api-made", "api"), ("support", "file"), ("sales", "file")}
    gen = store.generation()
    assert load_into(store, path).changed == 0 and store.generation() == gen  # idempotent
    # the file drops sales: it goes; the API's configuration stays
    path.write_text(FILE.split("- id: sales")[0])
    result = load_into(store, path)
    assert result.removed == ["sales"]
    assert {v.id for v in store.current()} == {"api-made", "support"}
    assert store.get("sales", 1) is not None


def test_a_bad_reload_changes_nothing(redis_client, tmp_path):
    store = ConfigStore(redis_client)
    path = tmp_path / "configs.yaml"
    path.write_text(FILE)
    assert reload(store, path) is True
    before = ([(v.id, v.version) for v in store.current()], store.generation())
    # one invalid field anywhere: nothing applied
    path.write_text(FILE.replace("'+15550000001'", "'15550000001'").replace("Sales", "Sales2"))
    with pytest.raises(ConfigurationError) as info:
        load_into(store, path)
    assert info.value.problems[0].startswith("[0] (support) channelSettings.SMS.captureRules[0].to:")
    assert reload(store, path) is False
    # a grouping change in one configuration: the other's change is not applied either
    path.write_text(FILE.replace("GROUP_BY_PROFILE", "GROUP_BY_PARTICIPANT_ADDRESSES")
                    .replace("displayName: Support", "displayName: Support2"))
    with pytest.raises(GroupingTypeChanged):
        load_into(store, path)
    assert reload(store, path) is False
    assert ([(v.id, v.version) for v in store.current()], store.generation()) == before
    total = {k.decode(): int(v) for k, v in redis_client.hgetall("tl:stats:total").items()}
    assert total["config_changes|file|invalid"] == 1 and total["config_changes|file|refused"] == 1
    assert total["config_changes|file|applied"] == 1


def test_async_store_sees_the_same_data(redis_client, redis_url):
    ConfigStore(redis_client).put(cfg(description="sync"))

    async def main():
        client = aioredis.Redis.from_url(redis_url)
        store = AsyncConfigStore(client)
        try:
            assert [v.config.description for v in await store.current()] == ["sync"]
            assert await store.put(cfg(description="async")) == 2
            with pytest.raises(GroupingTypeChanged):
                await store.put(cfg(grouping="GROUP_BY_PROFILE"))
            assert (await store.get("support", 1)).config.description == "sync"
            assert await store.generation() == 2
            assert await store.delete("support") is True
        finally:
            await client.aclose()

    asyncio.run(main())
    assert ConfigStore(redis_client).current() == []


def test_a_stored_version_that_no_longer_validates_is_skipped_not_half_read(redis_client):
    """Checks can tighten between releases: such a version stays in Redis, is left out of
    current() with an error log, and never reaches the matcher as a half-built object."""
    store = ConfigStore(redis_client)
    store.put(cfg("good"))
    store.put(cfg("old"))
    raw = json.loads(redis_client.get("tl:config:v:old:1"))
    raw["channelSettings"]["SMS"]["captureRules"][0]["to"] = "555-0100"  # refused since
    redis_client.set("tl:config:v:old:1", json.dumps(raw))
    fresh = ConfigStore(redis_client)
    assert [v.id for v in fresh.current()] == ["good"]
    assert fresh.get("old", 1) is None
    assert redis_client.get("tl:config:v:old:1") is not None
