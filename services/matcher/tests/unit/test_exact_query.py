"""The stages 1-2 statement has only the branches a purchase has values for, as stable strings."""

from __future__ import annotations

from trackai_matcher.adapters.candidates import EXACT_BRANCHES, exact_query


def test_absent_branches_and_their_parameters_are_left_out() -> None:
    query = exact_query(("email_hash",))
    assert query.params == ("tenant", "at", "email_hash", "lookback")
    assert "$4" in query.sql and "$5" not in query.sql
    assert "'phone_hash' AS method" not in query.sql and "'fbclid' AS method" not in query.sql


def test_parameters_are_numbered_in_order_of_first_use_and_shared() -> None:
    query = exact_query(("carrier", "email_hash", "phone_hash", "fbc", "fbp"), carriers=2)
    assert query.params == (
        "tenant",
        "at",
        "carrier0",
        "carrier1",
        "email_hash",
        "lookback",
        "phone_hash",
        "fbc",
        "semi",
        "fbp",
    )
    assert query.sql.count("UNION ALL") == 4
    assert "IN ($3, $4)" in query.sql


def test_each_combination_is_one_stable_statement() -> None:
    # asyncpg prepares a statement per distinct string: the same combination must give the same.
    assert exact_query(EXACT_BRANCHES, 1) is exact_query(EXACT_BRANCHES, 1)
    assert exact_query(EXACT_BRANCHES, 1).sql != exact_query(EXACT_BRANCHES, 2).sql
