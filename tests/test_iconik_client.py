"""The Iconik client, one behaviour per test: replayed from cassettes recorded against the sandbox, or over
real loopback HTTP where a cassette cannot hold the behaviour (a dropped connection is not a response)."""

import contextlib
import json
import os
import threading
import time
import urllib.parse

import pytest

from reversesync import errors
from reversesync.iconik import IconikClient, Pacer, Stats, parse_retry_after
from reversesync.sandbox import DEMO_APP_ID, DEMO_AUTH_TOKEN, Faults, Sandbox
from tests.conftest import CASSETTES, client_for, recorder

RECORD_PORT = 18931
RECORD_URL = f"http://127.0.0.1:{RECORD_PORT}"
ASSET = "5f0c1a9e-0000-4000-8000-0000000000a1"
SEGMENT_PATH = rf"/API/assets/v1/assets/{ASSET}/segments/[0-9a-f-]+/$"


@contextlib.contextmanager
def tape(name, setup, **options):
    """A client whose exchanges replay from cassettes/iconik_NAME.yaml.

    With REVERSESYNC_RECORD=once and no cassette yet, they are recorded against a sandbox built by setup."""
    path = CASSETTES / f"iconik_{name}.yaml"
    sandbox = None
    if not path.exists():
        if os.environ.get("REVERSESYNC_RECORD") != "once":
            pytest.fail(f"{path.name} is missing; record it with REVERSESYNC_RECORD=once")
        sandbox = Sandbox(port=RECORD_PORT)
        setup(sandbox)
        sandbox.start()
    options.setdefault("backoff", 0.01)
    try:
        with recorder().use_cassette(path.name, record_mode="once" if sandbox else "none") as cassette:
            yield IconikClient(RECORD_URL, DEMO_APP_ID, options.pop("auth_token", DEMO_AUTH_TOKEN), **options)
        assert sandbox or cassette.all_played, "every recorded exchange should be replayed"
    finally:
        if sandbox:
            sandbox.stop()


def with_asset(*segments, **asset):
    def setup(sandbox):
        sandbox.catalogue.add_asset(ASSET, title="clip", **asset)
        for kind, start, end, fields in segments:
            sandbox.catalogue.add_segment(ASSET, kind, start, end, **fields)
    return setup


def test_list_segments_follows_every_page():
    setup = with_asset(*[("GENERIC", n * 1000, n * 1000 + 500, {}) for n in range(7)],
                       *[("COMMENT", n, n, {}) for n in range(5)])
    with tape("pagination", setup, per_page=3) as client:
        found = client.list_segments(ASSET, "GENERIC")
        assert [s["time_start_milliseconds"] for s in found] == [n * 1000 for n in range(7)]
        assert client.stats.by_method["GET"] == 3


def test_a_patch_carries_the_two_times_only_and_every_other_field_stays():
    setup = with_asset(("GENERIC", 5000, 5000, {"metadata": {"Editor": ["kim"]}, "segment_text": "by hand",
                                                "segment_color": "#ff9900", "is_internal": True,
                                                "shot": {"shot_type": "CLOSE_UP"}}))
    with tape("patch_keeps_fields", setup) as client:
        [segment] = client.list_segments(ASSET, "GENERIC")
        sent = wire(client)
        answer = client.patch_segment_times(ASSET, segment["id"], 1000, 9000)
        after = client.get_segment(ASSET, segment["id"])
    assert sent[0][0] == "PATCH" and sent[0][2] == {"segment_type": "GENERIC", "time_start_milliseconds": 1000,
                                                    "time_end_milliseconds": 9000}
    assert (after["time_start_milliseconds"], after["time_end_milliseconds"]) == (1000, 9000)
    assert (after["metadata"], after["segment_text"], after["segment_color"], after["is_internal"], after["shot"]) == (
        {"Editor": ["kim"]}, "by hand", "#ff9900", True, {"shot_type": "CLOSE_UP"})
    assert answer == after


def test_read_is_retried_after_server_errors():
    def setup(sandbox):
        with_asset()(sandbox)
        sandbox.force("GET", f"/assets/{ASSET}/$", 503, {"errors": ["busy"]}, times=2)

    with tape("read_retries", setup) as client:
        assert client.get_asset(ASSET)["id"] == ASSET
        assert client.stats.by_method["GET"] == 3


def test_server_error_after_all_retries_is_raised_with_iconiks_message():
    def setup(sandbox):
        with_asset()(sandbox)
        sandbox.force("GET", f"/assets/{ASSET}/$", 503, {"errors": ["Service temporarily unavailable"]}, times=4)

    with tape("server_error", setup, retries=3) as client:
        with pytest.raises(errors.ServerError) as caught:
            client.get_asset(ASSET)
    assert str(caught.value) == (f"GET /API/assets/v1/assets/{ASSET}/ answered 503: "
                                 "Service temporarily unavailable")


def test_retry_after_is_honoured_and_slows_the_pace():
    def setup(sandbox):
        with_asset()(sandbox)
        sandbox.force("GET", f"/assets/{ASSET}/$", 429, {"errors": ["Too many requests"]},
                      headers={"Retry-After": "1"})

    with tape("retry_after", setup) as client:
        began = time.monotonic()
        assert client.get_asset(ASSET)["id"] == ASSET
        assert time.monotonic() - began >= 0.95
        assert client.stats.throttled == 1
        assert client.pacer.rate < client.pacer.max_rate


def test_rate_limited_without_hint_backs_off_then_gives_up():
    def setup(sandbox):
        with_asset()(sandbox)
        sandbox.force("GET", f"/assets/{ASSET}/$", 429, {"errors": ["Too many requests"]},
                      headers={"Retry-After": "0"}, times=24)

    with tape("rate_limited", setup, retries=3, backoff=0.001, max_backoff=0.01, pacer=Pacer(1000)) as client:
        with pytest.raises(errors.RateLimited) as caught:
            client.get_asset(ASSET)
        assert caught.value.retry_after is None
        assert client.stats.throttled == 24


@pytest.mark.parametrize("name, setup, call, error, message", [
    ("unauthorized", lambda sb: setattr(sb, "auth_token", "another-token"), lambda c: c.get_asset(ASSET),
     errors.AuthError, f"GET /API/assets/v1/assets/{ASSET}/ answered 401: Authentication failed: check App-ID "
                       "and Auth-Token"),
    ("forbidden", lambda sb: (with_asset()(sb), setattr(sb, "roles", ["can_read_assets"])),
     lambda c: c.list_segments(ASSET), errors.Forbidden,
     f"GET /API/assets/v1/assets/{ASSET}/segments/ answered 403: You do not have the role can_read_segments"),
    ("not_found", lambda sb: None, lambda c: c.get_asset(ASSET), errors.NotFound,
     f"GET /API/assets/v1/assets/{ASSET}/ answered 404: Asset not found"),
    ("conflict", lambda sb: (with_asset(("GENERIC", 1, 2, {}))(sb), sb.force("PATCH", SEGMENT_PATH, 409, {
        "errors": ["Segment was modified by another request"]})),
     lambda c: c.patch_segment_times(ASSET, c.list_segments(ASSET)[0]["id"], 5, 9), errors.Conflict,
     "answered 409: Segment was modified by another request"),
    ("bad_request", lambda sb: (with_asset()(sb), sb.force("POST", "/segments/$", 400, {
        "errors": {"time_end_milliseconds": "must be after time_start_milliseconds"}})),
     lambda c: c.create_segment(ASSET, 5, 9), errors.BadRequest,
     f"POST /API/assets/v1/assets/{ASSET}/segments/ answered 400: time_end_milliseconds: must be after "
     "time_start_milliseconds"),
])
def test_each_error_class(name, setup, call, error, message):
    with tape(name, setup) as client:
        with pytest.raises(error) as caught:
            call(client)
        assert client.stats.requests == (2 if name == "conflict" else 1), "terminal errors are not retried"
    assert message in str(caught.value)
    assert DEMO_AUTH_TOKEN not in str(caught.value)


# --- over real loopback HTTP: behaviours a cassette cannot hold --------------------------------------


@pytest.fixture
def sandbox():
    with Sandbox() as running:
        running.catalogue.add_asset(ASSET, title="clip")
        yield running


@pytest.mark.parametrize("action", ["drop_before", "drop_after"])
def test_post_with_lost_answer_is_raised_as_unknown_outcome_and_never_resent(sandbox, action):
    sandbox.force("POST", "/segments/$", action=action)
    client = client_for(sandbox)
    with pytest.raises(errors.UnknownOutcome, match="the write may or may not have been applied"):
        client.create_segment(ASSET, 1000, 2000)
    assert len(sandbox.requests("POST")) == 1
    assert len(sandbox.generic_segments(ASSET)) == (1 if action == "drop_after" else 0)


def test_a_patch_with_read_timeout_is_unknown_outcome_not_resent(sandbox):
    sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    client = client_for(sandbox, timeout=(2, 0.3))
    [segment] = client.list_segments(ASSET)
    sandbox.faults = Faults(slow=1.0, slow_ms=600)
    with pytest.raises(errors.UnknownOutcome):
        client.patch_segment_times(ASSET, segment["id"], 5, 9)
    assert len(sandbox.requests("PATCH")) == 1


def test_read_timeout_on_a_read_is_retried(sandbox):
    client = client_for(sandbox, timeout=(2, 0.2), retries=2)
    sandbox.faults = Faults(slow=1.0, slow_ms=400)
    with pytest.raises(errors.ConnectionFailed, match="the connection failed"):
        client.get_asset(ASSET)
    time.sleep(0.5)  # let the sandbox finish answering the abandoned requests
    assert len(sandbox.requests("GET")) == 3


def test_a_write_that_never_left_is_handed_back_not_retried():
    """A re-send comes only after a fresh read (issue #15): the caller decides again, not the client."""
    client = IconikClient("http://127.0.0.1:9", DEMO_APP_ID, DEMO_AUTH_TOKEN, backoff=0.001, retries=2)
    with pytest.raises(errors.ConnectionFailed) as caught:
        client.create_segment(ASSET, 1, 2)
    assert caught.value.never_sent
    assert client.stats.by_method["POST"] == 1


@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
def test_a_write_answered_429_is_handed_back_at_once_and_every_request_waits_out_retry_after(sandbox, method):
    segment = sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    sandbox.force(method, "/segments/", 429, {"errors": ["Too many requests"]}, headers={"Retry-After": "1"})
    client = client_for(sandbox)
    with pytest.raises(errors.RateLimited) as caught:
        WRITES[method](client, segment)
    assert caught.value.retry_after == 1.0 and len(sandbox.requests(method)) == 1
    began = time.monotonic()
    client.get_segment(ASSET, segment["id"])  # the caller's fresh read waits for the pause like every request
    assert time.monotonic() - began >= 0.9


def test_ids_are_checked_before_any_request(sandbox):
    client = client_for(sandbox)
    for bad in ("../x", f"{ASSET}/../..", f"{ASSET}?a=1", ""):
        with pytest.raises(ValueError, match="is not a canonical UUID"):
            client.get_asset(bad)
    assert sandbox.requests() == []


def test_missing_credentials_fail_before_any_request(monkeypatch):
    monkeypatch.delenv("ICONIK_APP_ID", raising=False)
    monkeypatch.delenv("ICONIK_AUTH_TOKEN", raising=False)
    with pytest.raises(errors.ConfigError, match="set ICONIK_APP_ID and ICONIK_AUTH_TOKEN"):
        IconikClient("http://127.0.0.1:9")


def test_token_never_appears_in_repr_or_errors(sandbox):
    client = client_for(sandbox)
    assert sandbox.auth_token not in repr(client)
    sandbox.auth_token = "rotated"
    with pytest.raises(errors.AuthError) as caught:
        client.get_asset(ASSET)
    assert DEMO_AUTH_TOKEN not in str(caught.value) and DEMO_AUTH_TOKEN not in repr(caught.value)


# --- pacing and headers ---------------------------------------------------------------------------------


def test_pacer_spaces_requests_from_every_thread():
    pacer = Pacer(rate=40)
    stamps = []

    def worker():
        for _ in range(5):
            stamps.append(pacer.wait())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    # 20 starts at 40/s span at least 19 intervals, less the one interval of catch-up the pacer allows
    assert stamps[-1] - stamps[0] >= 18 / 40


def test_pacer_window_caps_requests_in_any_window():
    pacer = Pacer(rate=1000, window_requests=5, window_seconds=0.5)
    stamps = [pacer.wait() for _ in range(11)]
    assert stamps[5] - stamps[0] >= 0.5 and stamps[10] - stamps[5] >= 0.5


def test_a_429_pause_holds_every_worker():
    pacer = Pacer(rate=1000)
    pacer.pause(0.3)
    began = time.monotonic()
    done = []
    thread = threading.Thread(target=lambda: done.append(pacer.wait()))
    thread.start()
    thread.join()
    assert done[0] - began >= 0.29


@pytest.mark.parametrize("value, seconds", [
    ("3", 3.0), ("0.5", 0.5), ("0", None), ("-2", None), ("soon", None), (None, None), ("", None),
    ("Wed, 21 Oct 2015 07:28:05 GMT", 5.0), ("Wed, 21 Oct 2015 07:27:00 GMT", None), ("nan", None),
])
def test_parse_retry_after(value, seconds):
    import datetime

    now = datetime.datetime(2015, 10, 21, 7, 28, 0, tzinfo=datetime.timezone.utc)
    assert parse_retry_after(value, now=now) == seconds


# --- what a status means -----------------------------------------------------------------------------


def test_403_on_one_asset_is_a_terminal_refusal_not_an_auth_error(sandbox):
    sandbox.force("GET", f"/assets/{ASSET}/$", 403, {"errors": ["Shares are restricted"]})
    client = client_for(sandbox)
    with pytest.raises(errors.Forbidden, match="answered 403: Shares are restricted") as caught:
        client.get_asset(ASSET)
    assert isinstance(caught.value, errors.TerminalError) and not isinstance(caught.value, errors.AuthError)
    assert len(sandbox.requests()) == 1


WRITES = {
    "POST": lambda client, segment: client.create_segment(ASSET, 1000, 2000),
    "PATCH": lambda client, segment: client.patch_segment_times(ASSET, segment["id"], 5, 9),
    "DELETE": lambda client, segment: client.delete_segment(ASSET, segment["id"]),
}


@pytest.mark.parametrize("method, status", [("POST", 503), ("PATCH", 502), ("DELETE", 500)])
def test_a_write_answered_5xx_is_an_unknown_outcome_never_resent(sandbox, method, status):
    sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    client = client_for(sandbox)
    [segment] = client.list_segments(ASSET)
    sandbox.force(method, "/segments/([0-9a-f-]+/)?$", status, {"errors": ["Bad gateway"]})
    with pytest.raises(errors.UnknownOutcome) as caught:
        WRITES[method](client, segment)
    assert f"answered {status}: Bad gateway; the write may or may not have been applied" in str(caught.value)
    assert caught.value.status == status
    assert len(sandbox.requests(method)) == 1


def test_a_search_answered_5xx_is_retried_like_a_read(sandbox):
    sandbox.force("POST", "/search/$", 503, {"errors": ["busy"]}, times=2)
    client = client_for(sandbox)
    assert [a["id"] for a in client.search("assets", {"id": [ASSET]})] == [ASSET]
    assert len(sandbox.requests("POST")) == 3


# --- search -----------------------------------------------------------------------------------------


def wire(client):
    """Every request the client puts on the wire, as prepared: (method, url, JSON body)."""
    sent = []
    send = client._adapter.send

    def spy(prepared, **kwargs):
        sent.append((prepared.method, prepared.url, json.loads(prepared.body) if prepared.body else None))
        return send(prepared, **kwargs)

    client._adapter.send = spy
    return sent


def test_search_asks_only_for_the_fields_given_and_no_signed_urls_or_history(sandbox):
    client = client_for(sandbox)
    sent = wire(client)
    client.search("assets", {"id": [ASSET]}, fields=("id", "type", "status"))
    [(method, url, body)] = sent
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert method == "POST" and urllib.parse.urlsplit(url).path == "/API/search/v1/search/"
    assert query == {"per_page": ["1000"], "page": ["1"], "generate_signed_url": ["false"],
                     "save_search_history": ["false"]}
    # include_fields belongs in the body (SearchCriteriaSchema), not in the query string
    assert body == {"doc_types": ["assets"], "include_fields": ["id", "type", "status"],
                    "filter": {"operator": "AND", "terms": [{"name": "id", "value_in": [ASSET]}]}}


def test_search_without_fields_sends_no_include_fields(sandbox):
    client = client_for(sandbox)
    sent = wire(client)
    client.search("assets", {"id": [ASSET]})
    assert "include_fields" not in sent[0][2]


def test_search_pages_hold_at_most_1000_and_every_page_is_followed(sandbox):
    for n in range(7):
        sandbox.catalogue.add_segment(ASSET, "GENERIC", n, n + 1)
    client = client_for(sandbox)
    sent = wire(client)
    found = client.search("segments", {"asset_id": [ASSET], "segment_type": ["GENERIC"]}, per_page=3)
    assert len(found) == 7 and len(sent) == 3
    client.search("assets", {"id": [ASSET]}, per_page=5000)
    assert "per_page=1000" in sent[-1][1]


def test_missing_roles_names_the_roles_the_token_lacks(sandbox):
    sandbox.roles = ["can_read_assets", "can_search"]
    client = client_for(sandbox)
    assert client.missing_roles(["can_search", "can_read_segments", "can_read_assets"]) == ["can_read_segments"]


# --- delete, on_send and when Iconik last answered ------------------------------------------------------


def test_a_delete_is_soft_so_a_person_can_restore_the_segment_from_the_bin(sandbox):
    sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    client = client_for(sandbox)
    [segment] = client.list_segments(ASSET)
    sent = wire(client)
    assert client.delete_segment(ASSET, segment["id"]) == {}
    assert sent[0][1].endswith(f"/segments/{segment['id']}/?soft_delete=true")
    assert client.get_segment(ASSET, segment["id"])["status"] == "DELETED"


def test_on_send_is_called_for_each_write_attempt_before_it_reaches_iconik(sandbox):
    sandbox.catalogue.add_segment(ASSET, "GENERIC", 1, 2)
    client = client_for(sandbox)
    [segment] = client.list_segments(ASSET)
    arrived_before = []

    def on_send():
        arrived_before.append(len(sandbox.requests()))

    created = client.create_segment(ASSET, 10, 20, on_send=on_send)
    client.patch_segment_times(ASSET, segment["id"], 5, 9, on_send=on_send)
    client.delete_segment(ASSET, created["id"], on_send=on_send)
    assert arrived_before == [1, 2, 3]  # each was called before its own request reached the sandbox


def test_on_send_is_called_once_for_a_write_that_never_left():
    client = IconikClient("http://127.0.0.1:9", DEMO_APP_ID, DEMO_AUTH_TOKEN, backoff=0.001, retries=2)
    calls = []
    with pytest.raises(errors.ConnectionFailed):
        client.create_segment(ASSET, 1, 2, on_send=lambda: calls.append(time.monotonic()))
    assert len(calls) == 1


def test_a_failing_on_send_stops_the_write_before_it_is_sent(sandbox):
    client = client_for(sandbox)

    def on_send():
        raise errors.LedgerUnavailable("disk full")

    with pytest.raises(errors.LedgerUnavailable):
        client.create_segment(ASSET, 1, 2, on_send=on_send)
    assert sandbox.requests("POST") == []


def test_stats_say_when_a_request_was_last_sent_and_answered(sandbox):
    client = client_for(sandbox)
    assert client.stats.last_sent is None and client.stats.last_answer is None
    client.get_asset(ASSET)
    sent, answered = client.stats.last_sent, client.stats.last_answer
    assert sent <= answered <= time.monotonic()
    with pytest.raises(errors.NotFound):
        client.get_asset("6a1d0f3c-0000-4000-8000-00000000ffff")
    assert client.stats.last_answer > answered, "an error answer is an answer"
    assert client.stats.waiting_for() == 0.0


def test_stats_count_how_long_a_request_has_waited_for_its_answer():
    now = [0.0]
    stats = Stats(clock=lambda: now[0])
    stats.sent()
    now[0] = 4.0
    assert stats.waiting_for() == 4.0
    stats.count("GET", 200)
    assert stats.waiting_for() == 0.0 and stats.last_answer == 4.0


def test_no_answer_leaves_last_answer_alone():
    client = IconikClient("http://127.0.0.1:9", DEMO_APP_ID, DEMO_AUTH_TOKEN, backoff=0.001, retries=0)
    with pytest.raises(errors.ConnectionFailed):
        client.get_asset(ASSET)
    assert client.stats.last_sent is not None and client.stats.last_answer is None
    assert client.stats.waiting_for() == 0.0
