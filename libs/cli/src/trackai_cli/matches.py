"""`trackai matches ...`: the matcher's results (export, one explanation)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from trackai.matcher.v1 import matcher_service_pb2 as pb
from trackai.matcher.v1 import matcher_service_pb2_grpc as pb_grpc
from trackai_cli.core import Context, SubParsers, command
from trackai_cli.tenants import tenant_id_of

if TYPE_CHECKING:
    from trackai.matcher.v1.matcher_service_pb2_grpc import MatcherServiceAsyncStub

STAGE_WORDS = {0: "none", 1: "none", 2: "deterministic", 3: "semi", 4: "probabilistic"}
PAGE_SIZE = 500


def _matcher(ctx: Context) -> MatcherServiceAsyncStub:
    return pb_grpc.MatcherServiceStub(ctx.channel("matcher"))


def export_record(m: pb.MatchSummary) -> dict[str, Any]:
    """One conversion as the export prints it (null for what the match does not have)."""
    matched = m.stage not in (0, 1)
    return {
        "order_id": m.order_id,
        "gateway": m.gateway,
        "event_id": m.event_id,
        "event_name": m.event_name,
        "stage": STAGE_WORDS.get(m.stage, "none"),
        "session_id": m.session_id or None,
        "score": round(m.score, 6) if matched else None,
        "runner_up_margin": round(m.runner_up_margin, 6) if m.runner_up_margin else None,
        "emq": round(m.emq, 2),
        "conversion_id": m.conversion_id or None,
        "event_time": m.event_time.ToDatetime().isoformat() + "Z"
        if m.HasField("event_time")
        else None,
    }


async def _export(args: argparse.Namespace, ctx: Context) -> None:
    tenant = await tenant_id_of(args.tenant, ctx)
    stub = _matcher(ctx)
    token = ""
    records: list[dict[str, Any]] = []
    while True:
        page = await stub.ListMatches(
            pb.ListMatchesRequest(tenant_id=tenant, page_size=PAGE_SIZE, page_token=token),
            timeout=ctx.deadline_s,
        )
        batch = [export_record(m) for m in page.matches]
        if ctx.out.as_json:
            ctx.out.json_lines(batch)  # streamed page by page: exports can be large
        else:
            records.extend(batch)
        token = page.next_page_token
        if not token:
            break
    if not ctx.out.as_json:
        lines = [
            f"{r['order_id']:<24} {r['gateway']:<11} {r['event_name']:<17} {r['stage']:<13} "
            f"score={r['score'] if r['score'] is not None else '-'} emq={r['emq']}"
            for r in records
        ]
        ctx.out.records([], lines, f"{len(records)} conversion(s)")


async def _explain(args: argparse.Namespace, ctx: Context) -> None:
    tenant = await tenant_id_of(args.tenant, ctx)
    request = (
        pb.ExplainMatchRequest(tenant_id=tenant, event_id=args.id)
        if len(args.id) == 64
        else pb.ExplainMatchRequest(tenant_id=tenant, conversion_id=args.id)
    )
    resp = await _matcher(ctx).ExplainMatch(request, timeout=ctx.deadline_s)
    e = resp.explanation
    evidence = ", ".join(
        f"{ev.feature}={ev.outcome}({ev.weight:+.2f})" for ev in e.matched.evidence
    )
    ctx.out.record(
        e,
        f"{e.summary.order_id} {STAGE_WORDS.get(e.summary.stage, 'none')} "
        f"session={e.summary.session_id or '-'} score={e.summary.score:.4f} "
        f"margin={e.summary.runner_up_margin:.4f} evidence: {evidence or '-'}",
    )


def register(groups: SubParsers) -> None:
    matches = groups.add_parser("matches", help="click-to-purchase match results").add_subparsers(
        dest="command", required=True
    )
    export = matches.add_parser("export", help="one line per conversion with its match")
    export.add_argument("--tenant", required=True, help="tenant id or slug")
    command(export, _export)
    explain = matches.add_parser("explain", help="how one conversion was matched")
    explain.add_argument("--tenant", required=True, help="tenant id or slug")
    explain.add_argument("id", help="event id (64 hex) or ingestion conversion id")
    command(explain, _explain)
