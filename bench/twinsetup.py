"""What several benchmarks ask of the twin before they measure: a completed v2 Configuration."""
from __future__ import annotations

import time

import httpx


def v2_configuration(twin: httpx.Client) -> str:
    """Create a v2 Configuration on the twin, wait for its 202 operation, return its id."""
    body = {"displayName": "bench", "description": "bench", "memoryStoreId": "mem_store_bench",
            "conversationGroupingType": "GROUP_BY_PARTICIPANT_ADDRESSES_AND_CHANNEL_TYPE"}
    r = twin.post("/v2/ControlPlane/Configurations", json=body)
    r.raise_for_status()
    cid = r.json()["related"]["configurationId"]
    op = "/" + r.json()["statusUrl"].split("/", 3)[3]
    while twin.get(op).json()["status"] == "PENDING":
        time.sleep(0.05)
    return cid
