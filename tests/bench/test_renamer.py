"""How the benchmark's ledgers rename identifiers in each clone (bench/ledgers.py): consistently,
one to one, and with the clones' ids differing early, as the uuid4 ids of real participants do."""

from __future__ import annotations

import re
import uuid

from bench.ledgers import renamer


def _own(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:20].upper()}"


def test_an_id_keeps_its_letters_its_first_digits_and_its_length() -> None:
    rename = renamer(12345)
    for token in (_own("P"), _own("FA"), _own("WA"), "V2025" + uuid.uuid4().hex[:16].upper()):
        renamed = rename(token)
        assert renamed != token and len(renamed) == len(token)
        assert renamed[:5] == token[:5]
        assert re.fullmatch(r"[A-Z]{1,3}[0-9A-F]{12,}", renamed)


def test_the_clones_of_one_id_differ_in_their_first_eight_characters() -> None:
    token = _own("C")
    heads = {renamer(clone)(token)[:8] for clone in range(1, 2001)}
    # 3 digits of the first 8 are renamed: 4,096 values, nearly all taken by 2,000 clones.
    assert len(heads) > 1500


def test_renaming_is_one_to_one_within_a_clone_and_across_clones() -> None:
    tokens = [_own("P") for _ in range(300)] + ["V2025" + uuid.uuid4().hex[:16].upper() for _ in range(300)]
    renamed = [renamer(clone)(token) for clone in range(1, 40) for token in tokens]
    assert len(set(renamed)) == len(renamed)
    assert not set(renamed) & set(tokens)


def test_the_same_id_is_renamed_alike_wherever_it_appears_and_digests_keep_their_head() -> None:
    participant, digest, correlation = _own("P"), uuid.uuid4().hex * 2, str(uuid.uuid4())
    rename = renamer(7)
    text = f'{{"participant_id": "{participant}", "of": "participant-{participant}", "hash": "{digest}", "c": "{correlation}"}}'
    out = rename(text)
    assert out.count(rename(participant)) == 2 and participant not in out
    assert rename(digest)[:-8] == digest[:-8] and rename(digest) != digest
    assert rename(correlation)[:-8] == correlation[:-8] and rename(correlation) != correlation
