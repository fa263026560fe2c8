"""Memory v1: enough of stores, profiles and identifiers to test grouping by profile.

Stores are made through the control API (``POST /_twin/memory/stores``) or ``--memory-store``;
any other store id is a 404. A profile is created with ``POST …/Profiles`` (traits; the
``phone``, ``email`` and ``whatsapp`` traits of any trait group are promoted to identifiers, and
a profile that already holds one of them is returned instead of a new one) and given more
identifiers with ``POST …/Identifiers``. ``POST …/Profiles/Lookup`` finds the profiles holding a
value: 200 with ``profiles: []`` when none does.

Normalization (what Memory's identity-resolution settings do for these types): ``phone`` and
``whatsapp`` values become E.164 (``whatsapp:``/``tel:`` prefixes and punctuation dropped,
ten digits get ``+1``), ``email`` is lower-cased; other types are trimmed.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service.twin import ids
from service.twin.errors import invalid, not_found
from service.twin.http import read_json
from service.twin.schemas import Identifier, ProfileCreate, parse
from service.twin.store import Json, now_iso

PROMOTED = ("phone", "email", "whatsapp")


def normalize(id_type: str, value: str) -> str:
    value = value.strip()
    if id_type in ("phone", "whatsapp"):
        bare = re.sub(r"^(whatsapp|tel):", "", value, flags=re.IGNORECASE)
        digits = re.sub(r"\D", "", bare)
        if not bare.startswith("+") and len(digits) == 10:
            digits = "1" + digits
        return "+" + digits if digits else value
    if id_type == "email":
        return value.lower()
    return value


@dataclass
class Profile:
    id: str
    created_at: str
    traits: Json
    identifiers: dict[str, list[str]] = field(default_factory=dict)

    def add(self, id_type: str, value: str) -> None:
        values = self.identifiers.setdefault(id_type, [])
        if value not in values:
            values.append(value)

    def view(self) -> Json:
        return {"id": self.id, "createdAt": self.created_at, "traits": copy.deepcopy(self.traits)}


@dataclass
class MemoryState:
    initial_stores: list[str] = field(default_factory=list)
    stores: dict[str, dict[str, Profile]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset(self.initial_stores)

    def reset(self, stores: list[str]) -> None:
        self.stores = {store_id: {} for store_id in stores}

    def create_store(self, store_id: str | None = None) -> str:
        store_id = store_id or ids.new_id("mem_store_")
        self.stores.setdefault(store_id, {})
        return store_id

    def snapshot(self) -> Json:
        return {store_id: [{**p.view(), "identifiers": copy.deepcopy(p.identifiers)}
                           for p in profiles.values()]
                for store_id, profiles in self.stores.items()}


def _memory(request: Request) -> MemoryState:
    return request.app.state.twin.memory


def _profiles(request: Request) -> dict[str, Profile]:
    store_id = request.path_params["storeId"]
    profiles = _memory(request).stores.get(store_id)
    if profiles is None:
        raise not_found(f"Store {store_id}")
    return profiles


def _profile(request: Request) -> Profile:
    profile = _profiles(request).get(request.path_params["profileId"])
    if profile is None:
        raise not_found(f"Profile {request.path_params['profileId']}")
    return profile


def _holders(profiles: dict[str, Profile], id_type: str, value: str) -> list[str]:
    return [p.id for p in profiles.values() if value in p.identifiers.get(id_type, [])]


async def create_profile(request: Request) -> JSONResponse:
    profiles = _profiles(request)
    body = parse(ProfileCreate, await read_json(request))
    traits = body.traits or {}
    found = [(t, normalize(t, v)) for group in traits.values() for t, v in group.items()
             if t in PROMOTED and isinstance(v, str)]
    if not found:
        raise invalid("traits: at least one trait promoted to an identifier "
                      f"({', '.join(PROMOTED)}) is required")
    for id_type, value in found:
        existing = _holders(profiles, id_type, value)
        if existing:
            return JSONResponse({"id": existing[0], "message": "Profile resolved and "
                                 "accepted for processing."}, status_code=202)
    profile = Profile(ids.new_id("mem_profile_"), now_iso(), copy.deepcopy(traits))
    for id_type, value in found:
        profile.add(id_type, value)
    profiles[profile.id] = profile
    return JSONResponse({"id": profile.id, "message": "Profile resolved and accepted for "
                         "processing."}, status_code=202)


async def fetch_profile(request: Request) -> JSONResponse:
    return JSONResponse(_profile(request).view())


async def add_identifier(request: Request) -> JSONResponse:
    profile = _profile(request)
    body = parse(Identifier, await read_json(request))
    profile.add(body.idType, normalize(body.idType, body.value))
    return JSONResponse({"message": "Identifier accepted for processing."}, status_code=202)


async def list_identifiers(request: Request) -> JSONResponse:
    profile = _profile(request)
    return JSONResponse({"identifiers": [{"idType": t, "values": list(v)}
                                         for t, v in profile.identifiers.items()]})


async def fetch_identifier(request: Request) -> JSONResponse:
    profile = _profile(request)
    id_type = request.path_params["idType"]
    if id_type not in profile.identifiers:
        raise not_found(f"Identifier {id_type} of profile {profile.id}")
    return JSONResponse({"idType": id_type, "values": list(profile.identifiers[id_type])})


async def lookup(request: Request) -> JSONResponse:
    profiles = _profiles(request)
    body = parse(Identifier, await read_json(request))
    value = normalize(body.idType, body.value)
    return JSONResponse({"normalizedValue": value,
                         "profiles": _holders(profiles, body.idType, value)})


_P = "/v1/Stores/{storeId}/Profiles"
ROUTES = [
    Route(_P + "/Lookup", lookup, methods=["POST"]),
    Route(_P, create_profile, methods=["POST"]),
    Route(_P + "/{profileId}", fetch_profile, methods=["GET"]),
    Route(_P + "/{profileId}/Identifiers", add_identifier, methods=["POST"]),
    Route(_P + "/{profileId}/Identifiers", list_identifiers, methods=["GET"]),
    Route(_P + "/{profileId}/Identifiers/{idType}", fetch_identifier, methods=["GET"]),
]
