"""The Memory v1 calls profile resolution makes: lookup, create, add an identifier.

They ride on the process's :class:`workers.twilio.client.V2Client` (one pooled HTTP client, its
retries with backoff and ``Retry-After``, ``User-Agent: threadline/…``, null-free bodies, URLs
through ``workers.twilio.urls.api_url``, every attempt counted). This module only shapes the
requests and reads the answers; ``workers.delivery.profiles`` decides what a failure means.
"""
from __future__ import annotations

from workers.foundations.text import path_segment as _q
from workers.twilio.client import V2Client
from workers.twilio.wire import V2Error

IDENTIFIERS_ROUTE = "POST /v1/Stores/{id}/Profiles/{id}/Identifiers"


class MemoryClient:
    def __init__(self, v2: V2Client) -> None:
        self.v2 = v2

    async def lookup(self, store_id: str, id_type: str, value: str) -> list[str]:
        """Profile ids holding identifier ``id_type``=``value`` (canonical first); [] if none.

        Memory answers an unknown identifier with an empty list or a 404; both mean "no
        profile". A missing *store* shows itself on the create that follows (404 there)."""
        try:
            data = await self.v2.lookup_profile(store_id, {"idType": id_type, "value": value})
        except V2Error as exc:
            if exc.status == 404:
                return []
            raise
        profiles = data.get("profiles")
        if not isinstance(profiles, list):
            return []
        return [p for p in profiles if isinstance(p, str) and p]

    async def create_profile(self, store_id: str, traits: dict) -> str:
        """A new profile (202: Memory processes it asynchronously, the id is final at once)."""
        data = await self.v2.create_profile(store_id, {"traits": traits})
        return str(data["id"])

    async def add_identifier(self, store_id: str, profile_id: str, id_type: str, value: str) -> None:
        """Attach an identifier, so the next lookup (by any worker, or by Orchestrator) finds it."""
        await self.v2.request(
            "POST", IDENTIFIERS_ROUTE,
            f"/v1/Stores/{_q(store_id)}/Profiles/{_q(profile_id)}/Identifiers",
            json={"idType": id_type, "value": value},
        )
