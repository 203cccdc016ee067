"""The event envelope: CloudEvents 1.0 structured JSON with the ledger extensions of
INTERFACES.md §6 (``sequence``, ``streamid``, ``hash``, ``prevhash``, ``correlationid``,
``causationid``), and the hash chain that makes every stream tamper-evident.

An event's ``hash`` is the SHA-256 of the canonical JSON of every other attribute, including
``prevhash`` (the hash of the previous event of the same stream). Editing any stored attribute
or removing an event breaks the chain at that point."""

from __future__ import annotations

import hashlib
import operator
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import orjson

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"

_TYPE = re.compile(r"^cn\.pension\.(?P<service>[a-z][a-z-]*)\.(?P<name>[A-Z][A-Za-z]*)\.v(?P<version>[1-9][0-9]*)$")


def event_type(service: str, name: str, version: int) -> str:
    """``cn.pension.<service>.<Name>.v<N>``."""
    candidate = f"cn.pension.{service}.{name}.v{version}"
    if not _TYPE.fullmatch(candidate):
        raise ValueError(f"{candidate!r} is not a valid event type")
    return candidate


@dataclass(frozen=True)
class EventType:
    service: str
    name: str
    version: int

    @classmethod
    def parse(cls, text: str) -> "EventType":
        match = _TYPE.fullmatch(text) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not an event type of the form cn.pension.<service>.<Name>.v<N>")
        return cls(match["service"], match["name"], int(match["version"]))

    def __str__(self) -> str:
        return f"cn.pension.{self.service}.{self.name}.v{self.version}"


_PARSED_TYPES: dict[str, EventType] = {}
"""Every projection and aggregate asks each event its type: parse each type text once (the
platform has a few dozen; the bound keeps a stream of junk types from growing it)."""
_PARSED_TYPES_MAX = 4096


def parsed_type(text: str) -> EventType:
    """``EventType.parse``, each type text parsed once."""
    parsed = _PARSED_TYPES.get(text) if isinstance(text, str) else None
    if parsed is None:
        parsed = EventType.parse(text)
        if len(_PARSED_TYPES) < _PARSED_TYPES_MAX:
            _PARSED_TYPES[text] = parsed
    return parsed


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no insignificant whitespace, UTF-8."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


_set_attribute = object.__setattr__


@dataclass(frozen=True, init=False)
class Envelope:
    """One recorded event, exactly as it is hashed, stored and published.

    Its ``__init__`` is written out rather than generated: the generated one of a frozen
    dataclass sets each of the thirteen fields through ``object.__setattr__`` (4.0 µs an
    envelope), this one sets the instance's dictionary at once (1.6 µs). Every read of events
    and every consumed message builds envelopes; ``test_envelope`` holds its parameters to the
    fields, names, order and defaults."""

    id: str
    source: str
    type: str
    time: str
    subject: str
    streamid: str
    sequence: int
    data: Mapping[str, Any]
    prevhash: str | None
    hash: str
    correlationid: str | None = None
    causationid: str | None = None
    position: int | None = field(default=None, compare=False)
    """The global position in the producing service's store (not part of the CloudEvent)."""

    def __init__(
        self, id: str, source: str, type: str, time: str, subject: str, streamid: str, sequence: int,
        data: Mapping[str, Any], prevhash: str | None, hash: str, correlationid: str | None = None,
        causationid: str | None = None, position: int | None = None,
    ) -> None:
        _set_attribute(self, "__dict__", {
            "id": id, "source": source, "type": type, "time": time, "subject": subject, "streamid": streamid,
            "sequence": sequence, "data": data, "prevhash": prevhash, "hash": hash, "correlationid": correlationid,
            "causationid": causationid, "position": position,
        })

    @property
    def event_type(self) -> EventType:
        return parsed_type(self.type)

    def to_cloudevent(self) -> dict[str, Any]:
        document = _hashed_attributes(
            id=self.id, source=self.source, type=self.type, time=self.time, subject=self.subject,
            streamid=self.streamid, sequence=self.sequence, data=self.data, prevhash=self.prevhash,
            correlationid=self.correlationid, causationid=self.causationid,
        )
        document["hash"] = self.hash
        return document

    def to_json(self) -> bytes:
        return canonical_json(self.to_cloudevent())

    def computed_hash(self) -> str:
        return chain_hash(
            id=self.id, source=self.source, type=self.type, time=self.time, subject=self.subject,
            streamid=self.streamid, sequence=self.sequence, data=self.data, prevhash=self.prevhash,
            correlationid=self.correlationid, causationid=self.causationid,
        )

    def with_data(self, type_: str, data: Mapping[str, Any]) -> "Envelope":
        """The same recorded event seen through a newer schema (used by upcasters only)."""
        return replace(self, type=type_, data=data)


class MalformedEvent(ValueError):
    """A message that is not a valid CloudEvents envelope of this platform."""


_REQUIRED = ("specversion", "id", "source", "type", "time", "subject", "streamid", "sequence", "data", "hash")
_required = operator.itemgetter(*_REQUIRED)
_STRINGS = ("id", "source", "type", "time", "subject", "streamid", "hash")
_OPTIONAL_STRINGS = ("prevhash", "correlationid", "causationid")
_STR = frozenset({str})
_STR_OR_NONE = frozenset({str, type(None)})


def parse_cloudevent(raw: bytes | str) -> Envelope:
    """Parse and structurally validate a structured-mode CloudEvent of this platform.

    Every consumer parses every message it is sent, so the checks are made on all attributes at
    once (the types of the values as a set, C loops), and name the attribute only on failure.
    orjson gives exact types (``str``, ``int``, ``bool``, ``dict``), so ``type(...) is`` checks
    say what ``isinstance`` said, a boolean sequence refused as before."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedEvent(f"not JSON: {exc}") from exc
    if type(document) is not dict:
        raise MalformedEvent("a CloudEvent must be a JSON object")
    try:
        specversion, id_, source, type_, time, subject, streamid, sequence, data, hash_ = _required(document)
    except KeyError:
        missing = [name for name in _REQUIRED if name not in document]
        raise MalformedEvent(f"missing attributes: {', '.join(missing)}") from None
    if specversion != SPECVERSION:
        raise MalformedEvent(f"unsupported specversion {specversion!r}")
    if type(data) is not dict:
        raise MalformedEvent("data must be a JSON object")
    if type(sequence) is not int or sequence < 1:
        raise MalformedEvent("sequence must be a positive integer")
    strings = (id_, source, type_, time, subject, streamid, hash_)  # in the order of _STRINGS
    if not _STR.issuperset(map(type, strings)) or not all(strings):
        name = next(name for name, value in zip(_STRINGS, strings) if type(value) is not str or not value)
        raise MalformedEvent(f"{name} must be a non-empty string")
    optional = prevhash, correlationid, causationid = (
        document.get("prevhash"), document.get("correlationid"), document.get("causationid"))  # _OPTIONAL_STRINGS
    if not _STR_OR_NONE.issuperset(map(type, optional)):
        name = next(name for name, value in zip(_OPTIONAL_STRINGS, optional) if value is not None and type(value) is not str)
        raise MalformedEvent(f"{name} must be a string or null")
    try:
        parsed_type(type_)
    except ValueError as exc:
        raise MalformedEvent(str(exc)) from exc
    return Envelope(id_, source, type_, time, subject, streamid, sequence, data, prevhash, hash_, correlationid,
                    causationid)


def chain_hash(**attributes: Any) -> str:
    return hashlib.sha256(canonical_json(_hashed_attributes(**attributes))).hexdigest()


_DATA_PLACEHOLDER = b'"data":0'


def chain_hash_of_stored(*, data_json: bytes, **attributes: Any) -> str:
    """``chain_hash`` of an event whose data is given as the canonical JSON the event store keeps,
    without parsing it and serialising it again. Equal to ``chain_hash(data=orjson.loads(data_json))``
    whenever ``data_json`` is canonical (sorted keys, no whitespace), which every stored event's is;
    for any other text it may differ, so a caller that finds a mismatch must check again the slow way.

    The data is spliced in where a placeholder stands: the key ``"data"`` sorts after the only keys
    before it (``causationid``, ``correlationid``), whose values are JSON strings, where a quote is
    always escaped, so the first ``"data":0`` is the key's."""
    document = canonical_json(_hashed_attributes(data=0, **attributes))  # type: ignore[arg-type]
    return hashlib.sha256(document.replace(_DATA_PLACEHOLDER, b'"data":' + data_json, 1)).hexdigest()


def _hashed_attributes(
    *, id: str, source: str, type: str, time: str, subject: str, streamid: str, sequence: int,
    data: Mapping[str, Any], prevhash: str | None, correlationid: str | None, causationid: str | None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": id,
        "source": source,
        "type": type,
        "time": time,
        "subject": subject,
        "datacontenttype": DATACONTENTTYPE,
        "data": data,
        "streamid": streamid,
        "sequence": sequence,
        "prevhash": prevhash,
    }
    if correlationid is not None:
        document["correlationid"] = correlationid
    if causationid is not None:
        document["causationid"] = causationid
    return document


Upcaster = Callable[[Mapping[str, Any]], Mapping[str, Any]]


class Upcasters:
    """Explicit, pure upcasters from an old event version to the next, applied on read.

    History is never rewritten: the stored (and hashed) event keeps its original type and
    data; readers see it through the newest schema."""

    def __init__(self) -> None:
        self._steps: dict[str, tuple[str, Upcaster]] = {}

    def register(self, old_type: str, new_type: str, upcast: Upcaster) -> None:
        old, new = EventType.parse(old_type), EventType.parse(new_type)
        if (old.service, old.name) != (new.service, new.name) or new.version != old.version + 1:
            raise ValueError(f"an upcaster goes from one version to the next: {old_type} → {new_type}")
        if old_type in self._steps:
            raise ValueError(f"an upcaster from {old_type} is already registered")
        self._steps[old_type] = (new_type, upcast)

    def upcast_types(self) -> frozenset[str]:
        """The stored types that are read as a newer version."""
        return frozenset(self._steps)

    def upcast(self, envelope: Envelope) -> Envelope:
        current = envelope
        while current.type in self._steps:
            new_type, step = self._steps[current.type]
            current = current.with_data(new_type, step(current.data))
        return current
