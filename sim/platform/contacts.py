"""What a messaging conversation leaves behind (API reference §11): the external contacts identity resolution
creates from a customer's ``from.id`` — listable and deletable through ``/api/v2/externalcontacts/contacts``,
so a harness's clean-up can be tested — and the ``externalTag`` a program puts on a conversation
(``PUT /api/v2/conversations/{id}/tags``).

[U] choices: identity resolution makes one contact per (idType, from.id), reused by a later conversation from
the same id, with one identifier (Email → ``Email``, Phone → ``Phone``, Opaque → ``ExternalId``); ``q`` matches
a substring of an identifier's value or the contact's first name; a tag answers 202 with the tag; the
permissions are ``externalContacts:contact:view/delete`` and ``conversation:externalTag:edit``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sim.platform.analytics import iso_ms
from sim.platform.auth import Token
from sim.platform.http import JSON, SimState, error, invalid, ok, read_json, requires

__all__ = ["Contacts", "ROUTES", "PERM_CONTACT_VIEW", "PERM_CONTACT_DELETE", "PERM_TAG"]

PERM_CONTACT_VIEW = "externalContacts:contact:view"
PERM_CONTACT_DELETE = "externalContacts:contact:delete"
PERM_TAG = "conversation:externalTag:edit"
_IDENTIFIER = {"Email": "Email", "Phone": "Phone", "Opaque": "ExternalId"}


class Contacts:
    """External contacts by id, found again by (identifier type, value); oldest evicted beyond ``max``."""

    def __init__(self, *, max_contacts: int) -> None:
        self._by_id: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._by_identity: dict[tuple[str, str], str] = {}
        self.max = max_contacts

    def resolve(self, id_type: str, value: str, nickname: str, *, new_id: str, now: float) -> str:
        """The contact of this identity: the existing one, or one made now. Its id."""
        kind = _IDENTIFIER.get(id_type, "ExternalId")
        found = self._by_identity.get((kind, value))
        if found is not None and found in self._by_id:
            return found
        self._by_id[new_id] = {"id": new_id, "firstName": nickname or value[:64], "type": "Ephemeral",
                               "identifiers": [{"type": kind, "value": value, "dateCreated": iso_ms(now)}],
                               "createDate": iso_ms(now), "modifyDate": iso_ms(now),
                               "selfUri": f"/api/v2/externalcontacts/contacts/{new_id}"}
        self._by_identity[(kind, value)] = new_id
        while len(self._by_id) > self.max:
            old_id, old = self._by_id.popitem(last=False)
            self._drop_identities(old)
        return new_id

    def delete(self, contact_id: str) -> bool:
        contact = self._by_id.pop(contact_id, None)
        if contact is not None:
            self._drop_identities(contact)
        return contact is not None

    def _drop_identities(self, contact: dict[str, Any]) -> None:
        for ident in contact["identifiers"]:
            self._by_identity.pop((ident["type"], ident["value"]), None)

    def search(self, q: str | None) -> list[dict[str, Any]]:
        return [c for c in self._by_id.values()
                if not q or q in c["firstName"] or any(q in i["value"] for i in c["identifiers"])]


@requires(PERM_CONTACT_VIEW)
async def _list(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    q = request.query_params
    try:
        size, number = int(q.get("pageSize", "25")), int(q.get("pageNumber", "1"))
        if not 1 <= size <= 500 or number < 1:
            raise ValueError
    except ValueError:
        return invalid(state, cid, rl, "pageSize must be 1-500 and pageNumber 1 or more", "pageSize")
    found = state.contacts.search(q.get("q"))
    page = found[(number - 1) * size:number * size]
    return ok({"entities": page, "pageSize": size, "pageNumber": number, "total": len(found),
               "pageCount": math.ceil(len(found) / size)}, cid, rl)


@requires(PERM_CONTACT_DELETE)
async def _delete(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    if not state.contacts.delete(request.path_params["contact_id"]):
        return error(state, 404, "not.found", "The requested external contact could not be found.", cid=cid,
                     headers=rl)
    return ok({}, cid, rl)


@requires(PERM_TAG)
async def _tag(state: SimState, request: Request, _t: Token, cid: str, rl: dict[str, str]) -> Response:
    conv = state.messaging.conversations.get(request.path_params["conversation_id"])
    if conv is None:
        return error(state, 404, "not.found", "The requested conversation could not be found.", cid=cid, headers=rl)
    got = await read_json(state, request, cid, rl, "ConversationTagsUpdate")
    if isinstance(got, JSON):
        return got
    tag = got[1].get("externalTag")
    if not isinstance(tag, str) or not tag or len(tag) > 1024:
        return invalid(state, cid, rl, "externalTag is required (a string of 1-1024 characters)", "externalTag")
    conv.external_tag = tag
    return JSON(tag, status_code=202, headers={"ININ-Correlation-Id": cid, **rl})


ROUTES = [
    Route("/api/v2/externalcontacts/contacts", _list, methods=["GET"]),
    Route("/api/v2/externalcontacts/contacts/{contact_id}", _delete, methods=["DELETE"]),
    Route("/api/v2/conversations/{conversation_id}/tags", _tag, methods=["PUT"]),
]
