import inspect
from dataclasses import MISSING, FrozenInstanceError, fields, replace

import orjson
import pytest

from pension_shared.envelope import (
    DATACONTENTTYPE, SPECVERSION, Envelope, EventType, MalformedEvent, Upcasters, canonical_json, chain_hash,
    event_type, parse_cloudevent,
)

HASHED = dict(
    id="6f1c2a7e-0000-4000-8000-000000000001", source="/pension/tally", type="cn.pension.tally.Added.v1",
    time="2025-08-15T09:00:00.000000+08:00", subject="P-1", streamid="tally-P-1", sequence=2,
    data={"amount": 120000, "note": "养老金"}, prevhash="a" * 64, correlationid="corr-1", causationid="cause-1",
)


def make_envelope(**changes: object) -> Envelope:
    attributes = {**HASHED, **changes}
    return Envelope(**attributes, hash=chain_hash(**attributes))  # type: ignore[arg-type]


# -- event types ---------------------------------------------------------------------------


def test_event_type_names_are_service_name_and_version() -> None:
    assert event_type("account", "ParticipantOpened", 1) == "cn.pension.account.ParticipantOpened.v1"
    assert event_type("fund-account", "ContributionRecorded", 12) == "cn.pension.fund-account.ContributionRecorded.v12"
    parsed = EventType.parse("cn.pension.fund-account.ContributionRecorded.v12")
    assert parsed == EventType("fund-account", "ContributionRecorded", 12)
    assert str(parsed) == "cn.pension.fund-account.ContributionRecorded.v12"


@pytest.mark.parametrize(
    ("service", "name", "version"),
    [("Account", "Opened", 1), ("account", "opened", 1), ("account", "Opened", 0), ("account", "Opened", -1),
     ("acc0unt", "Opened", 1), ("account", "Open-ed", 1), ("account", "Opened.v1", 1), ("", "Opened", 1),
     ("account", "", 1), ("-account", "Opened", 1), ("account", "Opened\n", 1)],
)
def test_event_type_refuses_malformed_names(service: str, name: str, version: int) -> None:
    with pytest.raises(ValueError):
        event_type(service, name, version)


@pytest.mark.parametrize(
    "text",
    ["cn.pension.account.Opened", "cn.pension.account.Opened.v0", "cn.pension.account.Opened.1",
     "org.pension.account.Opened.v1", "cn.pension.account.Opened.v1\n", " cn.pension.account.Opened.v1",
     "cn.pension.account.Opened.v01", "cn.pension.Account.Opened.v1", ""],
)
def test_event_type_parse_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        EventType.parse(text)


def test_an_envelope_knows_its_event_type() -> None:
    assert make_envelope().event_type == EventType("tally", "Added", 1)


# -- CloudEvents -----------------------------------------------------------------------------


def test_to_cloudevent_has_every_cloudevents_attribute_and_ledger_extension() -> None:
    envelope = make_envelope()
    document = envelope.to_cloudevent()
    assert set(document) == {
        "specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data",
        "sequence", "streamid", "hash", "prevhash", "correlationid", "causationid",
    }
    assert document["specversion"] == SPECVERSION == "1.0"
    assert document["datacontenttype"] == DATACONTENTTYPE == "application/json"
    for name in ("id", "source", "type", "time", "subject", "data", "sequence", "streamid", "prevhash",
                 "correlationid", "causationid"):
        assert document[name] == HASHED[name]
    assert document["hash"] == envelope.hash == envelope.computed_hash()


def test_the_first_event_of_a_stream_has_a_null_prevhash_and_optional_ids_are_left_out() -> None:
    document = make_envelope(prevhash=None, correlationid=None, causationid=None, sequence=1).to_cloudevent()
    assert document["prevhash"] is None
    assert "correlationid" not in document and "causationid" not in document


def test_to_json_is_canonical_sorted_compact_utf8() -> None:
    raw = make_envelope().to_json()
    assert raw == canonical_json(orjson.loads(raw))
    assert b" " not in raw.replace("养老金".encode(), b"")
    keys = list(orjson.loads(raw))
    assert keys == sorted(keys)
    assert "养老金".encode() in raw


@pytest.mark.parametrize(
    ("attribute", "other"),
    [("id", "6f1c2a7e-0000-4000-8000-000000000002"), ("source", "/pension/other"),
     ("type", "cn.pension.tally.Added.v2"), ("time", "2025-08-15T09:00:00.000001+08:00"), ("subject", "P-2"),
     ("streamid", "tally-P-2"), ("sequence", 3), ("data", {"amount": 120001, "note": "养老金"}),
     ("data", {"amount": 120000}), ("data", {"amount": "120000", "note": "养老金"}), ("prevhash", "b" * 64),
     ("prevhash", None), ("correlationid", "corr-2"), ("correlationid", None), ("causationid", "cause-2"),
     ("causationid", None)],
)
def test_the_hash_changes_when_any_attribute_changes(attribute: str, other: object) -> None:
    original = make_envelope()
    assert chain_hash(**{**HASHED, attribute: other}) != original.hash
    edited = replace(original, **{attribute: other})
    assert edited.computed_hash() != edited.hash  # a stored event edited in place no longer verifies


def test_the_hash_does_not_depend_on_key_order_or_the_store_position() -> None:
    envelope = make_envelope()
    reordered = dict(reversed(list(HASHED["data"].items())))  # type: ignore[union-attr]
    assert chain_hash(**{**HASHED, "data": reordered}) == envelope.hash
    assert replace(envelope, position=99).computed_hash() == envelope.hash


def test_parse_cloudevent_round_trips_an_envelope() -> None:
    envelope = make_envelope()
    parsed = parse_cloudevent(envelope.to_json())
    assert parsed == envelope
    assert parsed.computed_hash() == parsed.hash
    assert parse_cloudevent(envelope.to_json().decode()) == envelope
    first = make_envelope(prevhash=None, correlationid=None, causationid=None, sequence=1)
    assert parse_cloudevent(first.to_json()) == first


def _document(**changes: object) -> dict:
    document = make_envelope().to_cloudevent()
    for name, value in changes.items():
        if value is _DROP:
            document.pop(name)
        else:
            document[name] = value
    return document


_DROP = object()


@pytest.mark.parametrize("raw", [b"", b"not json", b"{\"id\": ", b"\xff\xfe", b"[1, 2]", b"\"text\"", b"null", b"42"])
def test_parse_cloudevent_refuses_what_is_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(MalformedEvent):
        parse_cloudevent(raw)


@pytest.mark.parametrize(
    "missing", ["specversion", "id", "source", "type", "time", "subject", "streamid", "sequence", "data", "hash"],
)
def test_parse_cloudevent_refuses_a_missing_attribute(missing: str) -> None:
    with pytest.raises(MalformedEvent, match=missing):
        parse_cloudevent(orjson.dumps(_document(**{missing: _DROP})))


@pytest.mark.parametrize(
    "changes",
    [{"type": "cn.pension.tally.added.v1"}, {"type": "Added"}, {"type": "cn.pension.tally.Added.v0"},
     {"type": 7}, {"specversion": "0.3"}, {"data": [1, 2]}, {"data": "text"}, {"data": None},
     {"sequence": 0}, {"sequence": -1}, {"sequence": "1"}, {"sequence": 1.5}, {"sequence": True}],
)
def test_parse_cloudevent_refuses_bad_attribute_values(changes: dict) -> None:
    with pytest.raises(MalformedEvent):
        parse_cloudevent(orjson.dumps(_document(**changes)))


def test_malformed_event_is_a_value_error() -> None:
    assert issubclass(MalformedEvent, ValueError)


# -- upcasters -----------------------------------------------------------------------------------

V1, V2, V3 = (f"cn.pension.tally.Added.v{n}" for n in (1, 2, 3))


def chain() -> Upcasters:
    upcasters = Upcasters()
    upcasters.register(V1, V2, lambda d: {"amount_fen": d["amount"]})
    upcasters.register(V2, V3, lambda d: {**d, "currency": "CNY"})
    return upcasters


def test_upcasters_apply_the_whole_chain_on_read() -> None:
    stored = make_envelope(type=V1, data={"amount": 5})
    seen = chain().upcast(stored)
    assert seen.type == V3
    assert seen.data == {"amount_fen": 5, "currency": "CNY"}
    assert (seen.id, seen.sequence, seen.subject, seen.hash) == (stored.id, stored.sequence, stored.subject, stored.hash)


def test_upcasting_starts_from_the_stored_version() -> None:
    stored = make_envelope(type=V2, data={"amount_fen": 7})
    assert chain().upcast(stored).data == {"amount_fen": 7, "currency": "CNY"}
    newest = make_envelope(type=V3, data={"amount_fen": 7, "currency": "CNY"})
    assert chain().upcast(newest) is newest
    other = make_envelope(type="cn.pension.tally.Removed.v1", data={"amount": 1})
    assert chain().upcast(other) is other


def test_the_stored_event_is_unchanged_and_still_verifies_after_upcasting() -> None:
    stored = make_envelope(type=V1, data={"amount": 5})
    before = stored.to_json()
    seen = chain().upcast(stored)
    assert stored.to_json() == before
    assert stored.type == V1 and stored.data == {"amount": 5}
    assert stored.computed_hash() == stored.hash
    # the upcast view is not what was hashed: its hash belongs to the stored original
    assert seen.computed_hash() != seen.hash


@pytest.mark.parametrize(
    ("old", "new"),
    [(V1, V3), (V2, V1), (V1, V1), ("cn.pension.tally.Added.v1", "cn.pension.tally.Removed.v2"),
     ("cn.pension.tally.Added.v1", "cn.pension.other.Added.v2")],
)
def test_an_upcaster_must_go_from_one_version_to_the_next_of_the_same_event(old: str, new: str) -> None:
    with pytest.raises(ValueError):
        Upcasters().register(old, new, lambda d: d)


def test_only_one_upcaster_per_version() -> None:
    upcasters = chain()
    with pytest.raises(ValueError, match="already"):
        upcasters.register(V1, V2, lambda d: d)


def test_upcaster_types_must_be_valid_event_types() -> None:
    with pytest.raises(ValueError):
        Upcasters().register("Added.v1", "Added.v2", lambda d: d)


@pytest.mark.parametrize(
    "changes",
    [{"id": None}, {"id": 17}, {"id": ""}, {"subject": {"a": 1}}, {"streamid": None}, {"hash": 0},
     {"source": ["x"]}, {"time": 20250815}, {"prevhash": 5}, {"correlationid": {"x": 1}}, {"causationid": 1}],
)
def test_parse_cloudevent_refuses_attributes_of_the_wrong_json_type(changes: dict) -> None:
    (name,) = changes
    with pytest.raises(MalformedEvent, match=f"^{name} must be a"):
        parse_cloudevent(orjson.dumps(_document(**changes)))


def test_parse_cloudevent_names_the_first_bad_attribute_when_several_are() -> None:
    with pytest.raises(MalformedEvent, match="^source must be a non-empty string"):
        parse_cloudevent(orjson.dumps(_document(source="", time=5, hash=None)))
    with pytest.raises(MalformedEvent, match="^correlationid must be a string or null"):
        parse_cloudevent(orjson.dumps(_document(prevhash=None, correlationid=3, causationid=4)))


def test_parse_cloudevent_leaves_absent_or_null_optional_attributes_none() -> None:
    parsed = parse_cloudevent(orjson.dumps(_document(prevhash=None, correlationid=_DROP, causationid=None)))
    assert (parsed.prevhash, parsed.correlationid, parsed.causationid) == (None, None, None)


# -- the envelope's own constructor ----------------------------------------------------------------

def test_the_written_out_constructor_takes_the_fields_in_order_with_their_defaults() -> None:
    parameters = list(inspect.signature(Envelope.__init__).parameters.values())[1:]
    assert [(p.name, p.default) for p in parameters] == [
        (f.name, inspect.Parameter.empty if f.default is MISSING else f.default) for f in fields(Envelope)
    ]
    assert all(f.default_factory is MISSING for f in fields(Envelope))


def test_an_envelope_is_built_positionally_or_by_name_and_stays_frozen() -> None:
    envelope = make_envelope()
    values = [getattr(envelope, f.name) for f in fields(Envelope)]
    assert Envelope(*values) == envelope == Envelope(**{f.name: getattr(envelope, f.name) for f in fields(Envelope)})
    assert vars(Envelope(*values)) == {f.name: value for f, value in zip(fields(Envelope), values)}
    with pytest.raises(FrozenInstanceError):
        envelope.hash = "0" * 64  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        del envelope.subject  # type: ignore[misc]
    moved = replace(envelope, position=7)
    assert (moved.position, moved == envelope, moved == replace(envelope, data={})) == (7, True, False)
    assert Envelope(*values[:10]).position is None and Envelope(*values[:10]).correlationid is None
