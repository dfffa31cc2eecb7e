"""`trackai provision ...`: run the provisioning saga and its review gate in the provisioner.

    trackai provision TENANT [--funnel FUNNEL]     start or resume; streams progress
    trackai provision show RUN|TENANT [--funnel F] [--snippet PLATFORM]
    trackai provision test-event RUN               test Purchase with the funnel's test code
    trackai provision approve RUN --by NAME [--note TEXT]   record approval and publish
    trackai provision rollback RUN --by NAME [--note TEXT]  re-publish what was live before

Exit codes: 0 done (awaiting approval / published), 1 failed, rolled back or refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from trackai.provisioner.v1 import provisioner_service_pb2 as prov
from trackai.provisioner.v1 import provisioner_service_pb2_grpc as prov_grpc
from trackai_cli.core import EXIT_OK, EXIT_REFUSED, EXIT_USAGE, Context, SubParsers, command

if TYPE_CHECKING:
    from trackai.provisioner.v1.provisioner_service_pb2_grpc import ProvisioningServiceAsyncStub

ACTIONS = ("show", "test-event", "approve", "rollback")
_FAILED = (prov.RUN_STATUS_FAILED, prov.RUN_STATUS_ROLLED_BACK)


def _stub(ctx: Context) -> ProvisioningServiceAsyncStub:
    return prov_grpc.ProvisioningServiceStub(ctx.channel("provisioner"))


def _status(value: int, enum: str) -> str:
    name = prov.DESCRIPTOR.enum_types_by_name[enum].values_by_number[value].name
    return name.split("_STATUS_", 1)[1].lower()


def _line(message: prov.ProvisionTenantResponse) -> str:
    clock = message.time.ToDatetime().strftime("%H:%M:%S")
    status = _status(message.step_status, "StepStatus")
    return f"{clock}  {message.step:<24} {status:<12} {message.detail}"


def _result_text(result: prov.ProvisioningResult, run_id: str) -> str:
    return "\n".join(
        (
            f"tagging server   {result.tagging_server_url} (domain {result.custom_domain})",
            f"stape container  {result.stape_container_id}",
            f"dns record       {result.dns_record_id}",
            f"gtm containers   server {result.gtm_server_container_id}, "
            f"web {result.gtm_web_container_id}",
            f"gtm versions     server {result.gtm_server_version_id}, web {result.gtm_version_id} "
            "(not published)",
            f"snippets         {', '.join(s.platform for s in result.snippets)} "
            f"(trackai provision show {run_id} --snippet PLATFORM)",
            f"next             trackai provision test-event {run_id}",
            f"                 trackai provision approve {run_id} --by YOUR_NAME",
        )
    )


async def _provision(args: argparse.Namespace, ctx: Context) -> int:
    stream = _stub(ctx).ProvisionTenant(
        prov.ProvisionTenantRequest(tenant_ref=args.target, funnel_slug=args.funnel or "")
    )
    last: prov.ProvisionTenantResponse | None = None
    async for message in stream:
        last = message
        if ctx.out.as_json:
            sys.stdout.write(json.dumps(ctx.out.as_dict(message)) + "\n")
        else:
            sys.stdout.write(_line(message) + "\n")
        sys.stdout.flush()
    if last is None:
        sys.stderr.write("error: the provisioner closed the stream without a word\n")
        return EXIT_REFUSED
    if last.run_status in _FAILED:
        sys.stderr.write(f"provisioning {_status(last.run_status, 'RunStatus')}: {last.detail}\n")
        return EXIT_REFUSED
    if not ctx.out.as_json and last.HasField("result"):
        sys.stdout.write(_result_text(last.result, last.run_id) + "\n")
    return EXIT_OK


def _run_request(ref: str, funnel: str) -> prov.GetProvisioningRunRequest:
    looks_like_uuid = len(ref) == 36 and ref.count("-") == 4
    if looks_like_uuid:
        return prov.GetProvisioningRunRequest(run_id=ref)
    return prov.GetProvisioningRunRequest(funnel=prov.FunnelRef(tenant_ref=ref, funnel_slug=funnel))


async def _show(args: argparse.Namespace, ctx: Context, ref: str) -> int:
    resp = await _stub(ctx).GetProvisioningRun(
        _run_request(ref, args.funnel or ""), timeout=ctx.deadline_s
    )
    run = resp.run
    if args.snippet:
        for snippet in run.result.snippets:
            if snippet.platform == args.snippet:
                sys.stdout.write(snippet.content)
                return EXIT_OK
        known = ", ".join(s.platform for s in run.result.snippets) or "none yet"
        sys.stderr.write(f"error: no snippet {args.snippet!r}; this run has: {known}\n")
        return EXIT_REFUSED
    lines = [
        f"run {run.run_id}  {_status(run.run_status, 'RunStatus')}"
        + (f"  ({run.error})" if run.error else ""),
        *(f"  {s.step:<24} {_status(s.status, 'StepStatus'):<12} {s.detail}" for s in run.steps),
    ]
    if run.approved_by:
        lines.append(f"  approved by {run.approved_by}")
    if run.test_event_id:
        lines.append(f"  test event {run.test_event_id}")
    ctx.out.record(run, "\n".join(lines))
    return EXIT_OK


async def _test_event(args: argparse.Namespace, ctx: Context, run_id: str) -> int:
    resp = await _stub(ctx).SendTestEvent(
        prov.SendTestEventRequest(run_id=run_id), timeout=ctx.deadline_s
    )
    ctx.out.record(
        resp,
        f"test Purchase sent (event_id {resp.event_id}, {resp.events_received} received, "
        f"test code {resp.test_event_code}); check Events Manager → Test events, then "
        f"`trackai provision approve {run_id} --by YOUR_NAME`",
    )
    return EXIT_OK


async def _approve(args: argparse.Namespace, ctx: Context, run_id: str) -> int:
    resp = await _stub(ctx).ApproveAndPublish(
        prov.ApproveAndPublishRequest(run_id=run_id, approved_by=args.by or "", note=args.note),
        timeout=max(ctx.deadline_s, 120.0),
    )
    previous = resp.previous_version_id or "none"
    ctx.out.record(
        resp,
        f"published: web version {resp.published_version_id} (was {previous}), server version "
        f"{resp.published_server_version_id} (was {resp.previous_server_version_id or 'none'})",
    )
    return EXIT_OK


async def _rollback(args: argparse.Namespace, ctx: Context, run_id: str) -> int:
    resp = await _stub(ctx).RollbackPublish(
        prov.RollbackPublishRequest(run_id=run_id, rolled_back_by=args.by or "", note=args.note),
        timeout=max(ctx.deadline_s, 120.0),
    )

    def side(name: str, restored: str, replaced: str) -> str:
        if not restored:
            return f"{name}: nothing was live before, left as is"
        return f"{name} version {restored} live again (was {replaced})"

    ctx.out.record(
        resp,
        "publish rolled back: "
        + "; ".join(
            (
                side("web", resp.restored_version_id, resp.replaced_version_id),
                side("server", resp.restored_server_version_id, resp.replaced_server_version_id),
            )
        ),
    )
    return EXIT_OK


async def _dispatch(args: argparse.Namespace, ctx: Context) -> int:
    if args.target not in ACTIONS:
        if args.rest:
            sys.stderr.write(f"error: unexpected arguments {args.rest}\n")
            return EXIT_USAGE
        return await _provision(args, ctx)
    if len(args.rest) != 1:
        sys.stderr.write(f"error: `trackai provision {args.target}` takes one RUN id\n")
        return EXIT_USAGE
    handler = {
        "show": _show,
        "test-event": _test_event,
        "approve": _approve,
        "rollback": _rollback,
    }[args.target]
    return await handler(args, ctx, args.rest[0])


def register(groups: SubParsers) -> None:
    parser = groups.add_parser(
        "provision",
        help="provision a tenant's tracking (Cloudflare, Stape, GTM) and review it",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("target", help=f"tenant id or slug, or one of: {', '.join(ACTIONS)}")
    parser.add_argument(
        "rest", nargs="*", help="RUN id (or tenant) for show/test-event/approve/rollback"
    )
    parser.add_argument("--funnel", help="funnel slug (default: the tenant's only funnel)")
    parser.add_argument("--snippet", help="show: print this platform's snippet")
    parser.add_argument("--by", help="approve/rollback: who reviewed and approves (or rolls back)")
    parser.add_argument("--note", default="", help="approve/rollback: a note kept on the run")
    command(parser, _dispatch)
