"""What operators are there for: a tampered ledger, services that disagree, a parked message."""

from __future__ import annotations

import uuid

import orjson
import sqlalchemy as sa

from operator_support.scenario import Running, eventually, pension
from pension_cli.operations import OPS_STREAM
from pension_cli.platform import embedded_platform
from pension_shared.envelope import Envelope, chain_hash
from pension_shared.ledger import Metadata, NewEvent
from pension_shared.messaging import OutgoingRecord
from pension_shared.messaging.embedded import EmbeddedLog, partition_for
from pension_shared.schema import events


def _contributing_participant(tmp_path) -> tuple[Running, str, str]:
    running = Running.start(tmp_path)
    running.set_clock("2025-10-01T10:00:00+08:00")
    participant_id, fund_account_id = running.register_and_open()
    running.contribute(fund_account_id, "800.00")
    running.quiet()
    return running, participant_id, fund_account_id


def test_an_edited_event_breaks_the_ledger_and_verify_names_it(tmp_path, capsys):
    running, _, fund_account_id = _contributing_participant(tmp_path)
    try:
        with running.platform.context("fund-account").engine.begin() as conn:
            tampered = conn.execute(sa.select(events).where(events.c.type.like("%ContributionReceived%"))).one()
            conn.execute(events.update().where(events.c.position == tampered.position)
                         .values(data=tampered.data.replace("80000", "8000000")))

        code, out = pension(capsys, "ledger", "verify", "--var", str(tmp_path))

        assert code == 1
        assert "fund-account  BROKEN" in out and "account       intact" in out
        assert (f"first break: stream fund-account-{fund_account_id} sequence {tampered.sequence} "
                f"position {tampered.position} event {tampered.event_id}: content does not match its hash") in out
        code, out = pension(capsys, "ledger", "verify", "--service", "tax", "--json", "--var", str(tmp_path))
        assert code == 0 and orjson.loads(out)["intact"]
    finally:
        running.stop()


def test_a_contribution_recorded_on_the_platform_but_never_received_is_a_break(tmp_path, capsys):
    running, participant_id, fund_account_id = _contributing_participant(tmp_path)
    try:
        assert pension(capsys, "reconcile", "--var", str(tmp_path))[0] == 0
        ctx = running.platform.context("account")
        with ctx.engine.begin() as conn:
            stream = ctx.store.load(conn, f"participant-{participant_id}")
            [bogus] = ctx.store.append(conn, stream.stream_id, stream.version, [NewEvent("ContributionRecorded", {
                "participant_id": participant_id, "fund_account_id": fund_account_id, "contribution_id": "C-BOGUS",
                "year": 2025, "amount": 50_000, "channel": "bank_transfer", "contributed_this_year": 130_000,
                "remaining_quota": 1_070_000, "source_event": {"id": "none", "type": "none", "source": "none"},
            }, subject=participant_id)], Metadata(time="2025-10-01T11:00:00+08:00"))

        code, out = pension(capsys, "reconcile", "--var", str(tmp_path))

        assert code == 1 and "1 break(s)" in out
        assert f"participant {participant_id} year 2025" in out
        assert "fund-account 800.00, platform 1300.00, vouchers 800.00" in out
        assert f"contribution C-BOGUS recorded on the platform (event {bogus.id}) but never received" in out
        code, out = pension(capsys, "reconcile", "--as-of", "2025-09-30", "--var", str(tmp_path))
        assert code == 0
    finally:
        running.stop()


def _parked_contribution(participant_id: str, fund_account_id: str, contribution_id: str, offset: int) -> tuple[OutgoingRecord, Envelope]:
    """A valid fund-account event, parked by hand in the dead-letter format, with an ID number in its error."""
    attributes = dict(
        id=str(uuid.uuid4()), source="/pension/fund-account", type="cn.pension.fund-account.ContributionReceived.v1",
        time="2025-10-01T12:00:00+08:00", subject=participant_id, streamid=f"fund-account-{fund_account_id}",
        sequence=90 + offset, prevhash=None, correlationid=None, causationid=None, data={
            "fund_account_id": fund_account_id, "participant_id": participant_id, "contribution_id": contribution_id,
            "amount": 10_000, "channel": "bank_transfer", "reference": "parked", "year": 2025,
            "contributed_this_year": 90_000, "remaining_quota": 1_110_000, "cash_after": 90_000,
        },
    )
    envelope = Envelope(**attributes, hash=chain_hash(**attributes))
    letter = {
        "consumer": "pension.account", "topic": "pension.fund-account", "partition": partition_for(participant_id, 3),
        "offset": 1000 + offset, "key": participant_id, "event_id": envelope.id, "event_type": envelope.type,
        "error": "LookupError: taxpayer 11010519491231002X is not known yet", "attempts": 3,
        "failed_at": "2025-10-01T04:00:00+00:00", "value": envelope.to_json().decode(),
    }
    return OutgoingRecord("pension.fund-account.dlq", participant_id, orjson.dumps(letter)), envelope


def _recorded_contributions(running: Running) -> set[str]:
    with running.platform.context("account").engine.connect() as conn:
        rows = conn.execute(sa.select(events.c.data).where(events.c.type == "cn.pension.account.ContributionRecorded.v1"))
        return {orjson.loads(r.data)["contribution_id"] for r in rows}


def test_a_parked_message_is_shown_masked_retried_once_and_applied(tmp_path, capsys):
    running, participant_id, fund_account_id = _contributing_participant(tmp_path)
    restarted = None
    try:
        running.platform.stop_workers()
        log = EmbeddedLog(tmp_path / "eventlog.db")
        retried_record, retried = _parked_contribution(participant_id, fund_account_id, "C-PARKED-1", 0)
        skipped_record, _ = _parked_contribution(participant_id, fund_account_id, "C-PARKED-2", 1)
        log.append([retried_record, skipped_record])
        dlq_partition = partition_for(participant_id, 3)
        first, second = f"pension.fund-account.dlq:{dlq_partition}:0", f"pension.fund-account.dlq:{dlq_partition}:1"

        code, out = pension(capsys, "consumers", "--json", "--var", str(tmp_path))
        depth = {row["topic"]: row for row in orjson.loads(out)["dead_letters"]}
        assert code == 0 and depth["pension.fund-account.dlq"] == {
            "topic": "pension.fund-account.dlq", "parked": 2, "handled": 0, "waiting": 2}

        code, out = pension(capsys, "dlq", "show", "--value", "--var", str(tmp_path))
        assert code == 0 and first in out and second in out and "2 letter(s) waiting" in out
        assert "1101**********002X" in out and "11010519491231002X" not in out

        code, out = pension(capsys, "dlq", "retry", first, "--operator", "alice", "--var", str(tmp_path))
        assert code == 0 and "DeadLetterRetried by alice" in out
        code, out = pension(capsys, "dlq", "skip", second, "--operator", "bob", "--reason", "duplicate of a bank file",
                            "--var", str(tmp_path))
        assert code == 0 and "DeadLetterSkipped by bob" in out

        code, out = pension(capsys, "consumers", "--json", "--var", str(tmp_path))
        report = orjson.loads(out)
        lag = {(r["group"], r["topic"], r["partition"]): r["lag"] for r in report["lag"]}
        assert lag[("pension.account", "pension.fund-account", partition_for(participant_id, 3))] == 1
        depth = {row["topic"]: row for row in report["dead_letters"]}
        assert depth["pension.fund-account.dlq"]["waiting"] == 0 and depth["pension.fund-account.dlq"]["handled"] == 2
        code, out = pension(capsys, "consumers", "--var", str(tmp_path))
        assert "pension.fund-account.dlq  2       2        0" in out

        code, out = pension(capsys, "dlq", "show", "--var", str(tmp_path))
        assert "0 letter(s) waiting" in out
        code, out = pension(capsys, "dlq", "retry", first, "--var", str(tmp_path))
        assert code == 1 and "already handled (DeadLetterRetried by alice" in out
        code, out = pension(capsys, "dlq", "show", "--all", "--json", "--var", str(tmp_path))
        handled = {orjson.loads(line)["letter"]: orjson.loads(line)["handled"] for line in out.splitlines()}
        assert handled[first]["by"] == "alice" and handled[second]["action"] == "DeadLetterSkipped"

        restarted = embedded_platform(tmp_path)
        restarted.start_workers()
        assert eventually(lambda: "C-PARKED-1" in _recorded_contributions(running))
        assert "C-PARKED-2" not in _recorded_contributions(running)

        code, out = pension(capsys, "ledger", "verify", "--service", "account", "--var", str(tmp_path))
        assert code == 0, out
        with running.platform.context("account").engine.connect() as conn:
            operations = running.platform.context("account").store.load(conn, OPS_STREAM).events
        assert [(e.type, e.data["operator"], e.data["event_id"]) for e in operations][0] == (
            "cn.pension.account.DeadLetterRetried.v1", "alice", retried.id)
        assert operations[1].data["reason"] == "duplicate of a bank file"
    finally:
        if restarted is not None:
            restarted.stop()
        running.stop()
