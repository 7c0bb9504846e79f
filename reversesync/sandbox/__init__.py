"""A local stand-in for Iconik on 127.0.0.1: the endpoints reversesync uses, with Iconik's behaviour,
its limits, and faults on demand. Good enough to rehearse a production run on a copy of the sheet.

Where the real service differs from a naive model, the sandbox does what Iconik does (ICONIK-FACTS 7):
segment lists and search come from an index that trails the stored records, a write can land after its
answer was lost, editing a segment that backs a SUBCLIP moves the subclip, assets come in every type and
some answer 403, and every answer carries RateLimit-Remaining.

Segments follow the live schema that Iconik's own SDK shows (ICONIK-FACTS 8): every editable field of
EditSegmentSchema, and for tests fields Iconik may add later (Catalogue extra_fields); a PUT replaces them all
while a PATCH changes only what it carries (Sandbox patch='replace' plays a PATCH that does not); a soft delete
leaves a segment readable, and listed, with status DELETED; statuses are ACTIVE, AWAITED and DELETED.

The modules, one concern each (arrows: imports):

    service       Sandbox: settings, start/stop, the request log, late writes  -> http_server, test_hooks
    test_hooks    Sandbox's methods for tests only: read, script answers, people at work, settle
    http_server   the server and handler: latency, log, faults, rate, auth, routing  -> api
    api           Iconik's answer to each endpoint, over the catalogue  -> catalogue
    catalogue     stored assets and segments, and the writes as the API makes them  -> index, seeding, state
    index         what the lagging search index shows
    seeding       scenarios dealt over a sheet's ids (the one reader of the sheet)
    state         dump files: check, read, write
    faults, rate  faults on demand; Iconik's rate budgets
    schema        Iconik's types, statuses, roles, fields and stamps

Everything a caller uses is importable from here."""

from .api import DEFAULT_PER_PAGE, FORBIDDEN_MESSAGE, MAX_PER_PAGE
from .catalogue import Catalogue
from .faults import Faults
from .http_server import WRITE_METHODS
from .index import DEFAULT_INDEX_LAG
from .rate import ICONIK_RATE, REMAINING_READINGS, WINDOW_SECONDS, RateLimiter
from .schema import (
    ALL_ROLES,
    ASSET_STATUSES,
    ASSET_TYPES,
    EDITABLE_DEFAULTS,
    OTHER_ASSET_TYPES,
    PATCH_MODES,
    READ_ONLY_ON_EDIT,
    READ_ONLY_SEGMENT_FIELDS,
    SEGMENT_STATUSES,
    SEGMENT_TYPES,
)
from .seeding import DEFAULT_MIX, EXPECTED, SCENARIOS
from .service import DEMO_APP_ID, DEMO_AUTH_TOKEN, Sandbox, mint_credentials
from .state import load_state, state_problem, write_state
from .test_hooks import FORCED_ACTIONS, TestHooks

__all__ = ["ALL_ROLES", "ASSET_STATUSES", "ASSET_TYPES", "DEFAULT_INDEX_LAG", "DEFAULT_MIX", "DEFAULT_PER_PAGE",
           "DEMO_APP_ID", "DEMO_AUTH_TOKEN", "EDITABLE_DEFAULTS", "EXPECTED", "FORBIDDEN_MESSAGE", "FORCED_ACTIONS",
           "ICONIK_RATE", "MAX_PER_PAGE", "OTHER_ASSET_TYPES", "PATCH_MODES", "READ_ONLY_ON_EDIT",
           "READ_ONLY_SEGMENT_FIELDS", "REMAINING_READINGS", "SCENARIOS", "SEGMENT_STATUSES", "SEGMENT_TYPES",
           "WINDOW_SECONDS", "WRITE_METHODS", "Catalogue", "Faults", "RateLimiter", "Sandbox", "TestHooks",
           "load_state", "mint_credentials", "state_problem", "write_state"]
