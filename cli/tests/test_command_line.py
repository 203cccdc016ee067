"""The `pension` command line itself: help everywhere, and a clear refusal without a deployment."""

from __future__ import annotations

import threading

import pytest

from pension_cli.log_access import EmbeddedLogAccess
from pension_cli.main import main
from pension_shared.messaging import OutgoingRecord

COMMANDS = ["", "run", "ledger", "ledger verify", "replay", "reconcile", "consumers", "dlq", "dlq show", "dlq retry",
            "dlq skip", "events", "events tail", "report", "report monthly"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exited:
        main([*command.split(), "--help"])
    assert exited.value.code == 0 and "usage: pension" in capsys.readouterr().out


def test_an_operator_command_without_a_platform_says_so_and_exits_2(tmp_path, capsys):
    assert main(["ledger", "verify", "--var", str(tmp_path / "none")]) == 2
    assert "holds no embedded platform" in capsys.readouterr().err


def test_production_without_settings_says_which_variables_to_set(capsys, monkeypatch):
    for name in ("PENSION_KAFKA_BOOTSTRAP", "PENSION_ACCOUNT_DATABASE_URL", "PENSION_FUND_ACCOUNT_DATABASE_URL",
                 "PENSION_TAX_DATABASE_URL", "PENSION_PAYOUT_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["consumers", "--target", "production"]) == 2
    assert "PENSION_FUND_ACCOUNT_DATABASE_URL" in capsys.readouterr().err


def test_following_the_embedded_log_delivers_what_is_published_after_it_started(tmp_path):
    log = EmbeddedLogAccess(tmp_path / "eventlog.db", partitions=3, poll_interval_s=0.05)
    log._log.migrate()
    log.publish([OutgoingRecord("pension.tax", "P1", b"before")])
    stop, seen = threading.Event(), []

    def follow() -> None:
        for record in log.records(["pension.tax"], from_beginning=False, follow=True, stop=stop):
            seen.append(record.value)
            stop.set()

    follower = threading.Thread(target=follow)
    follower.start()
    threading.Event().wait(0.3)
    log.publish([OutgoingRecord("pension.tax", "P1", b"after")])
    follower.join(timeout=5)
    assert seen == [b"after"]
    log.close()
