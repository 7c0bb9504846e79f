"""Iconik's answers: for one request already routed and past the faults, the status and JSON body Iconik gives,
read from and written to the catalogue under its lock. Roles, 403/404 on assets, paging, segment bodies checked
against the live schema, PUT against PATCH, soft deletes, and the batch search (which, like segment lists,
reads the lagging index)."""

import copy
import math
import urllib.parse
from typing import TYPE_CHECKING, Any

from .schema import READ_ONLY_ON_EDIT, READ_ONLY_SEGMENT_FIELDS, SEGMENT_STATUSES, SEGMENT_TYPES, Record

if TYPE_CHECKING:  # the sandbox makes an Api per request and hands it itself
    from .service import Sandbox

Answer = tuple[int, Any]  # (HTTP status, JSON body)

DEFAULT_PER_PAGE = 10
MAX_PER_PAGE = 1000  # segment lists and search both take per_page up to 1000 (ICONIK-FACTS 7.6, 7.9)
FORBIDDEN_MESSAGE = "You do not have permission to access this asset"
SEARCH_TERMS = ("id", "asset_id", "segment_type", "type", "status")


class _Refused(Exception):
    """An error answer, raised by the checks a request must pass so that a handler reads as its success."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.answer: Answer = (status, body)


class Api:
    """Iconik's answers for one request: (status, JSON body)."""

    def __init__(self, sandbox: "Sandbox", method: str, route: str, match: dict[str, str],
                 query: dict[str, list[str]], body: Any, path: str = "") -> None:
        self.sandbox, self.method, self.route, self.match = sandbox, method, route, match
        self.query, self.body, self.path = query, body, path
        self.catalogue = sandbox.catalogue

    def answer(self) -> Answer:
        handler = getattr(self, f"{self.route}_{self.method.lower()}", None)
        if handler is None:
            return 405, {"errors": [f"{self.method} is not allowed here"]}
        with self.catalogue.lock:
            try:
                answer: Answer = handler()
            except _Refused as refused:
                return refused.answer
            return answer

    def _needs(self, role: str) -> None:
        if role not in self.sandbox.roles:
            raise _Refused(403, {"errors": [f"You do not have the role {role}"]})

    def _asset(self, role: str) -> Record:
        """The asset the path names; refused when the role is missing, the asset unknown or forbidden."""
        self._needs(role)
        asset_id = self.match["asset"].lower()
        asset = self.catalogue.assets.get(asset_id)
        if asset is None:
            raise _Refused(404, {"errors": ["Asset not found"]})
        if asset_id in self.catalogue.forbidden:
            raise _Refused(403, {"errors": [FORBIDDEN_MESSAGE]})
        return asset

    def _param(self, name: str) -> str | None:
        """A query parameter's first value, or None (parse_qs leaves blank values out)."""
        values = self.query.get(name)
        return values[0] if values else None

    def _flag(self, name: str, default: bool) -> bool:
        """A boolean query parameter; refused (400) when it is not one."""
        text = self._param(name)
        if text is None:
            return default
        if text.lower() not in ("true", "false", "1", "0"):
            raise _Refused(400, {"errors": {name: "Not a valid boolean."}})
        return text.lower() in ("true", "1")

    def _page(self, items: list[Record], copy_items: bool = True) -> dict[str, Any]:
        """One page of items as Iconik lists them; refused (400, 404) for a page that is no number or none."""
        try:
            per_page = min(MAX_PER_PAGE, max(1, int(self._param("per_page") or DEFAULT_PER_PAGE)))
            page = max(1, int(self._param("page") or 1))
        except ValueError:
            raise _Refused(400, {"errors": {"per_page": "must be a whole number"}}) from None
        pages = max(1, math.ceil(len(items) / per_page))
        if page > pages:
            raise _Refused(404, {"errors": ["Page not found"]})
        shown = items[(page - 1) * per_page: page * per_page]
        return {"objects": copy.deepcopy(shown) if copy_items else shown, "page": page, "pages": pages,
                "per_page": per_page, "total": len(items)}

    # --- users and auth -----------------------------------------------------------------------------

    def token_get(self) -> Answer:
        return 200, {"app_id": self.sandbox.app_id, "expires": None}

    def user_get(self) -> Answer:
        # UserSchema always carries type (ICONIK-FACTS 8.5).
        return 200, {"id": "7f3d2c10-0000-4000-8000-000000000002", "email": "sync@sandbox.invalid",
                     "first_name": "Sandbox", "last_name": "Sync", "status": "ACTIVE", "type": "STANDARD"}

    def roles_get(self) -> Answer:
        return 200, {"objects": list(self.sandbox.roles)}

    def state_get(self) -> Answer:
        return 200, self.catalogue.dump()

    # --- assets and segments ------------------------------------------------------------------------

    def asset_get(self) -> Answer:
        return 200, self._asset("can_read_assets")

    def segments_get(self, segment_type: str | None = None) -> Answer:
        """A segment list: it comes from the search index, so it shows the segments as they were list_lag
        seconds ago (ICONIK-FACTS 7.1)."""
        asset = self._asset("can_read_segments")
        segment_type = segment_type or self._param("segment_type")
        status = self._param("status")
        if status is not None and status not in SEGMENT_STATUSES:
            return 400, {"errors": {"status": f"one of {', '.join(SEGMENT_STATUSES)}"}}
        # Soft-deleted segments stay listed, with status DELETED, unless the status filter leaves them out.
        found = [s for s in self.catalogue.indexed_segments(asset["id"], self.sandbox.index_time())
                 if (segment_type is None or s["segment_type"] == segment_type)
                 and (status is None or s.get("status") == status)]
        body = self._page(found)
        body["next_url"] = None
        if body["page"] < body["pages"]:
            next_query: dict[str, Any] = {k: v[0] for k, v in self.query.items()}
            next_query.update(page=body["page"] + 1, per_page=body["per_page"])
            body["next_url"] = f"{self.path}?{urllib.parse.urlencode(next_query)}"
        return 200, body

    def segments_of_type_get(self) -> Answer:
        if self.match["type"] not in SEGMENT_TYPES:
            return 400, {"errors": {"segment_type": f"unknown segment type {self.match['type']}"}}
        return self.segments_get(self.match["type"])

    def segments_post(self) -> Answer:
        asset = self._asset("can_create_segments")
        problem = _check_segment_body(self.body, READ_ONLY_SEGMENT_FIELDS)
        if problem:
            return 400, {"errors": problem}
        if asset["type"] == "SUBCLIP" and asset.get("original_asset_id") in self.catalogue.assets:
            # Iconik files a segment posted on a SUBCLIP under its parent (ICONIK-FACTS 7.3).
            asset = self.catalogue.assets[asset["original_asset_id"]]
            if asset["id"] in self.catalogue.forbidden:
                return 403, {"errors": [FORBIDDEN_MESSAGE]}
        editable = self.catalogue.editable_defaults()
        fields = {k: v for k, v in self.body.items() if k in editable}
        segment = self.catalogue.create_segment(asset["id"], self.body["segment_type"],
                                                self.body.get("time_start_milliseconds"),
                                                self.body.get("time_end_milliseconds"),
                                                user_first_name="Sync", user_last_name="Bot", **fields)
        return 201, copy.deepcopy(segment)

    def _segment(self, role: str) -> Record:
        """The stored segment the path names (not a copy); refused like its asset, or 404."""
        asset = self._asset(role)
        for segment in self.catalogue.segments.get(asset["id"], []):
            if segment["id"] == self.match["segment"].lower():
                return segment
        raise _Refused(404, {"errors": ["Segment not found"]})

    def segment_get(self) -> Answer:
        return 200, copy.deepcopy(self._segment("can_read_segments"))

    def segment_put(self, merge: bool = False) -> Answer:
        segment = self._segment("can_write_segments")
        problem = _check_segment_body(self.body, READ_ONLY_ON_EDIT)
        if problem:
            return 400, {"errors": problem}
        # A PUT replaces every editable field of the live schema, extra fields included: what the body leaves
        # out is reset (ICONIK-FACTS 8.1).
        editable = self.catalogue.editable_defaults()
        fields = {k: v for k, v in self.body.items() if k in editable or k == "segment_type"}
        self.catalogue.edit_segment(segment, fields, replace=not merge)
        return 200, copy.deepcopy(segment)

    def segment_patch(self) -> Answer:
        # A PATCH changes only what it carries, unless the sandbox plays a PATCH that replaces (patch="replace").
        return self.segment_put(merge=self.sandbox.patch == "merge")

    def segment_delete(self) -> Answer:
        segment = self._segment("can_delete_segments")
        # Absent, the sandbox removes the segment as it always did: what Iconik does then is not documented
        # (its SDK always sends soft_delete, True unless told, ICONIK-FACTS 8.3).
        soft = self._flag("soft_delete", False)
        self.catalogue.delete_segment(segment, soft=soft)
        return 204, {}

    # --- search -------------------------------------------------------------------------------------

    def search_post(self) -> Answer:
        """Iconik's batch search, for the two document types and the terms reversesync uses. Like every
        index read it trails the store, by search_lag."""
        self._needs("can_search")
        body = self.body if isinstance(self.body, dict) else {}
        doc_types = body.get("doc_types") or []
        if doc_types not in (["assets"], ["segments"]):
            return 400, {"errors": {"doc_types": "the sandbox searches one of assets, segments"}}
        self._needs("can_read_assets" if doc_types == ["assets"] else "can_read_segments")
        options = {name: self._flag(name, True) for name in ("generate_signed_url", "save_search_history")}
        wanted = {}
        for term in (body.get("filter") or {}).get("terms") or []:
            values = term.get("value_in") or ([term["value"]] if "value" in term else [])
            wanted[term.get("name")] = {str(value) for value in values}
        unknown = set(wanted) - set(SEARCH_TERMS)
        if unknown:
            return 400, {"errors": {"filter": f"unsupported terms {sorted(unknown)}"}}
        include = body.get("include_fields")
        if include is not None and not (isinstance(include, list) and all(isinstance(f, str) for f in include)):
            return 400, {"errors": {"include_fields": "must be a list of field names"}}
        self.sandbox.record_search(options)
        as_of = self.sandbox.index_time("search")
        pick = self._assets_indexed if doc_types == ["assets"] else self._segments_indexed
        found = pick(wanted, as_of)
        hits = [_document(item, doc_types[0], include) for item in found
                if all(str(item.get(name)) in values for name, values in wanted.items())]
        return 200, self._page(hits, copy_items=False)

    def _assets_indexed(self, wanted: dict[str, set[str]], as_of: float) -> list[Record]:
        """Candidate asset documents: by id through the catalogue's dict, so a batch costs its ids only."""
        ids = wanted["id"] if "id" in wanted else self.catalogue.assets
        found = (self.catalogue.indexed_asset(asset_id, as_of) for asset_id in ids)
        return [a for a in found if a is not None and a["id"] not in self.catalogue.forbidden]

    def _segments_indexed(self, wanted: dict[str, set[str]], as_of: float) -> list[Record]:
        """Candidate segment documents: by asset id or id through dicts, never a scan when either is given."""
        forbidden = self.catalogue.forbidden
        if "id" in wanted:
            found = (self.catalogue.indexed_segment(segment_id, as_of) for segment_id in wanted["id"])
            return [s for s in found if s is not None and s["asset_id"] not in forbidden]
        asset_ids = wanted["asset_id"] if "asset_id" in wanted else list(self.catalogue.segments)
        return [s for asset_id in asset_ids if asset_id not in forbidden
                for s in self.catalogue.indexed_segments(asset_id, as_of)]


def _document(item: Record, doc_type: str, include: list[str] | None) -> Record:
    """A search document (SegmentElasticSchema and kin): unset fields are absent, include_fields trims it."""
    document = {key: copy.deepcopy(value) for key, value in item.items() if value is not None
                and (include is None or key in include)}
    document["object_type"] = doc_type
    return document


def _check_segment_body(body: Any, read_only: tuple[str, ...]) -> list[str] | dict[str, str]:
    """What is wrong with a segment body ({field: problem}, or a list when it is no object); empty if nothing."""
    if not isinstance(body, dict):
        return ["The body must be a JSON object"]
    problems = {}
    if body.get("segment_type") not in SEGMENT_TYPES:
        problems["segment_type"] = f"required, one of {', '.join(SEGMENT_TYPES)}"
    if "status" in body and body["status"] not in SEGMENT_STATUSES:
        problems["status"] = f"one of {', '.join(SEGMENT_STATUSES)}"
    for field in ("time_start_milliseconds", "time_end_milliseconds"):
        value = body.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            problems[field] = "must be an integer"
    for field in read_only:
        if field in body:
            problems[field] = "is read-only"
    return problems
