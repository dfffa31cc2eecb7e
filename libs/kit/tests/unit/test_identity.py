"""event_id: the canonical key, fixed test vectors, validation, and parity with the documented JS."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from trackai_kit.identity import (
    canonical_event_key,
    canonical_event_name,
    event_id,
    is_event_id,
)
from trackai_testing.plugin import require_tool

TENANT = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
FROZEN = "9f67a49ec5a1a950207c957e84b8fda4ea574c18f7136671d9b7c209d93c3230"
DOC = Path(__file__).resolve().parents[4] / "docs" / "schema" / "event_id.md"

# (tenant_id, gateway, order_id, event_name, canonical key); their ids are published in
# docs/schema/event_id.md, which the tests read so the page and the code cannot drift apart.
VECTORS = [
    (
        TENANT,
        "kiwify",
        "a1b2c3d4",
        "Purchase",
        f"trackai:v1|{TENANT}|kiwify|a1b2c3d4|Purchase",
    ),
    (
        TENANT.upper(),
        " PerfectPay ",
        "  PPCPMTB5Q3NP01  ",
        "purchase",
        f"trackai:v1|{TENANT}|perfectpay|PPCPMTB5Q3NP01|Purchase",
    ),
    (
        TENANT,
        "hotmart",
        "HP1234|5",
        "InitiateCheckout",
        f"trackai:v1|{TENANT}|hotmart|HP1234|5|InitiateCheckout",
    ),
    (
        TENANT,
        "cakto",
        "pedido-ção-1",
        "lead_qualified",
        f"trackai:v1|{TENANT}|cakto|pedido-ção-1|lead_qualified",
    ),
]


def test_canonical_keys_follow_the_documented_rule() -> None:
    for tenant, gateway, order, name, key in VECTORS:
        assert canonical_event_key(tenant, gateway, order, name) == key


def test_event_ids_match_the_published_vectors() -> None:
    published = _doc_vectors()
    assert len(published) >= len(VECTORS)
    for tenant, gateway, order, name, key in VECTORS:
        got = event_id(tenant, gateway, order, name)
        assert got == published[key]


def test_event_id_is_frozen() -> None:
    # A change here breaks deduplication with every pixel already deployed: use a new version.
    assert event_id(TENANT, "kiwify", "a1b2c3d4", "Purchase") == FROZEN


def test_same_order_same_id_whatever_the_spelling() -> None:
    a = event_id(TENANT, "kiwify", "A1", "Purchase")
    assert event_id(uuid.UUID(TENANT), "KIWIFY", " A1\n", "PURCHASE") == a
    assert is_event_id(a)


def test_each_input_changes_the_id() -> None:
    base = event_id(TENANT, "kiwify", "A1", "Purchase")
    others = {
        event_id("00000000-0000-0000-0000-000000000001", "kiwify", "A1", "Purchase"),
        event_id(TENANT, "hotmart", "A1", "Purchase"),
        event_id(TENANT, "kiwify", "a1", "Purchase"),  # order ids keep their case
        event_id(TENANT, "kiwify", "A1", "InitiateCheckout"),
    }
    assert base not in others
    assert len(others) == 4


def test_separator_in_order_id_cannot_forge_another_key() -> None:
    # "A|x" + event "Purchase" vs order "A" + event "x|Purchase": the second is rejected because
    # event names cannot contain "|", so no two inputs share a canonical key.
    with pytest.raises(ValueError, match="event_name"):
        event_id(TENANT, "kiwify", "A", "x|Purchase")


@pytest.mark.parametrize(
    ("tenant", "gateway", "order", "name", "field"),
    [
        ("not-a-uuid", "kiwify", "1", "Purchase", "tenant_id"),
        ("3f2504e04f8911d39a0c0305e82c3301", "kiwify", "1", "Purchase", "tenant_id"),
        (TENANT, "", "1", "Purchase", "gateway"),
        (TENANT, "kiwi|fy", "1", "Purchase", "gateway"),
        (TENANT, "kiwify", "   ", "Purchase", "order_id"),
        (TENANT, "kiwify", "1", "", "event_name"),
        (TENANT, "kiwify", "1", "Compra Aprovada", "event_name"),
    ],
)
def test_invalid_inputs_are_refused_with_the_field_named(
    tenant: str, gateway: str, order: str, name: str, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        event_id(tenant, gateway, order, name)


def test_standard_event_names_take_metas_spelling() -> None:
    assert canonical_event_name("addpaymentinfo") == "AddPaymentInfo"
    assert canonical_event_name(" initiatecheckout ") == "InitiateCheckout"
    assert canonical_event_name("MyCustom_Event") == "MyCustom_Event"


def _doc_vectors() -> dict[str, str]:
    """The vector table of docs/schema/event_id.md: canonical key -> event_id."""
    rows = re.findall(r"^([0-9a-f]{64})  (trackai:v1\|.+)$", DOC.read_text(), re.M)
    return {key: digest for digest, key in rows}


def _doc_javascript() -> str:
    match = re.search(r"```js\n(.*?)```", DOC.read_text(), re.S)
    assert match, "docs/schema/event_id.md must contain the reference JavaScript"
    return match.group(1)


def test_documented_javascript_computes_the_same_ids() -> None:
    node = require_tool("node", "apt-get install nodejs")
    cases = [list(v[:4]) for v in VECTORS] + [
        [TENANT, "eduzz", "\tINV-77 ", "addtocart"],
        [TENANT, "kiwify", "ção|€|𝄞", "Purchase"],
    ]
    script = (
        _doc_javascript()
        + "\nconst cases = JSON.parse(process.argv[1]);\n"
        + "Promise.all(cases.map((c) => trackaiEventId(...c)))"
        + ".then((ids) => process.stdout.write(JSON.stringify(ids)));\n"
    )
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, json.dumps(cases)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(out.stdout) == [event_id(*c) for c in cases]
