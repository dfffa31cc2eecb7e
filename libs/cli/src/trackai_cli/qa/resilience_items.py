"""Checklist items 14-15, failure handling: Meta 5xx through the retry ladder to the DLQ and a
replay, and the alarms and Sentry events the failure raises."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml

from trackai.dispatcher.v1 import dispatcher_service_pb2 as disp_pb
from trackai_cli.qa.harness import (
    DEAD_GAUGE,
    DEAD_SALES,
    LADDER_OUTCOMES,
    Failed,
    Trail,
    expect,
    kiwify_sale,
    until,
)
from trackai_cli.qa.run import ChecklistRun


class ResilienceItems(ChecklistRun):
    """Items 14-15 (docs/qa-checklist.md)."""

    async def item14(self, t: Trail) -> None:
        t.path = "API/CLI + Meta fake fault"
        t.step(f"Meta fake: every POST for pixel {self.s.pixel_id} answers 500 (until cleared)")
        fault = await self.http.post(
            self.sandbox("meta") + "/_sandbox/faults",
            json={"kind": "http_500", "pixel_id": self.s.pixel_id, "count": None},
        )
        fault.raise_for_status()
        try:
            for n in range(DEAD_SALES):
                order = f"qa-{self.run_tag}-dead-{n}"
                answer = await self.post_sale(t, kiwify_sale(order, None))
                expect(answer.status_code == 200, "200", f"{answer.status_code} {answer.text}")
                self.dead_orders.append(order)
            t.step("dispatcher ListDeadLetters tenant (wait for every sale)")
            dead = await until(
                self._all_dead, self.s.settle_s * 2, "every sale dead-lettered", "not all dead"
            )
            attempts = (
                await self.dispatcher.ListAttempts(
                    disp_pb.ListAttemptsRequest(
                        tenant_id=self.tenant_id, event_id=dead[0].event_id
                    ),
                    timeout=30,
                )
            ).attempts
            expect(
                sum(a.outcome == disp_pb.ATTEMPT_OUTCOME_RETRYABLE for a in attempts) >= 2
                and all(a.outcome in LADDER_OUTCOMES for a in attempts),
                "the retry ladder climbed (≥ 2 retryable attempts) before the DLQ",
                f"attempts {[disp_pb.AttemptOutcome.Name(a.outcome) for a in attempts]}",
            )
            if self.s.dispatcher_metrics_url:
                # The gauge follows the database every health round (10 s): wait for it.
                t.step(f"GET {self.s.dispatcher_metrics_url} until dead_events ≥ {DEAD_SALES}")
                with contextlib.suppress(Failed):
                    await until(self._dead_gauge, 60, "the gauge", "below the dead count")
        finally:
            t.step("Meta fake: faults cleared (Meta recovers)")
            await self.http.delete(self.sandbox("meta") + "/_sandbox/faults")
        t.step("dispatcher ReplayDeadLetters filter tenant (twice: a double click)")
        for _ in range(2):
            await self.dispatcher.ReplayDeadLetters(
                disp_pb.ReplayDeadLettersRequest(
                    filter=disp_pb.DeadLetterFilter(tenant_id=self.tenant_id),
                    requested_by=self.s.approver,
                    note="release gate",
                ),
                timeout=60,
            )
        ids = [d.event_id for d in dead]
        await until(
            lambda: self._all_at_meta(ids),
            self.s.settle_s,
            "every replayed sale at Meta",
            "not all replayed sales at Meta",
        )
        sentinel = f"qa-{self.run_tag}-after-replay"
        await self.post_sale(t, kiwify_sale(sentinel, None))
        later = await until(lambda: self.match_of(sentinel), self.s.settle_s, "a match", sentinel)
        await until(lambda: self.meta_events(later.event_id), self.s.settle_s, "at Meta", sentinel)
        counts = [len(await self.meta_events(i)) for i in ids]
        expect(counts == [1] * len(ids), "each replayed sale at Meta once", f"counts {counts}")
        t.saw(
            f"{len(ids)} sales: {len(attempts)} attempts each up the ladder, dead "
            f"({dead[0].reason}), replayed twice, each delivered once"
        )

    async def _all_dead(self) -> list[disp_pb.DeadLetter] | None:
        letters = (
            await self.dispatcher.ListDeadLetters(
                disp_pb.ListDeadLettersRequest(
                    filter=disp_pb.DeadLetterFilter(tenant_id=self.tenant_id), page_size=100
                ),
                timeout=30,
            )
        ).dead_letters
        return list(letters) if len(letters) >= len(self.dead_orders) else None

    async def _dead_gauge(self) -> bool:
        self.metrics_at_dlq = (await self.http.get(self.s.dispatcher_metrics_url)).text
        values = [float(v) for _, v in _samples(self.metrics_at_dlq, DEAD_GAUGE)]
        return bool(values) and max(values) >= DEAD_SALES

    async def _all_at_meta(self, ids: list[str]) -> bool:
        return all([await self.meta_events(i) for i in ids])

    async def item15(self, t: Trail) -> None:
        t.path = "promtool + Sentry fake"
        expect(
            self.metrics_at_dlq,
            "the dispatcher's /metrics scraped while the DLQ held the dead sales",
            "no scrape (QA_DISPATCHER_METRICS_URL unset or item 14 did not reach the DLQ)",
        )
        t.step(
            "promtool test rules: the alarms of monitoring/alarms.yaml against the scraped "
            "trackai_dispatcher_dead_events"
        )
        fired = await asyncio.to_thread(self._alarm_fires, self.metrics_at_dlq)
        t.saw(fired)
        sentry = self.sandbox("sentry")
        t.step("Meta fake: the next POST answers 'token expired' (190/463); one sale")
        await self.http.post(
            self.sandbox("meta") + "/_sandbox/faults",
            json={"kind": "token_expired", "pixel_id": self.s.pixel_id, "count": 1},
        )
        await self.post_sale(t, kiwify_sale(f"qa-{self.run_tag}-token", None))
        t.step("Sentry fake /_sandbox/events: the dispatcher's error")
        event = await until(
            lambda: self._sentry_event(sentry, "Meta rejected the access token"),
            self.s.settle_s,
            "the dispatcher's error at Sentry",
            "no Sentry event",
        )
        trace_id = str(event.get("contexts", {}).get("trace", {}).get("trace_id", ""))
        t.saw(f"Sentry got '{_sentry_message(event)[:80]}' (trace {trace_id or '-'})")

    async def _sentry_event(self, url: str, text: str) -> dict[str, Any] | None:
        events: list[dict[str, Any]] = (await self.http.get(url + "/_sandbox/events")).json()[
            "events"
        ]
        return next((e for e in events if text in _sentry_message(e)), None)

    def _alarm_fires(self, exposition: str) -> str:
        """Evaluate the alarm rules with promtool over the scraped samples, held for longer
        than the alarm's ``for:``: TrackaiDlqDepth must fire."""
        promtool = shutil.which(self.s.promtool)
        if promtool is None:
            raise Failed(
                "promtool available", f"{self.s.promtool} not found (apt-get install prometheus)"
            )
        alarms = yaml.safe_load(Path(self.s.alarms_file).read_text())
        rules = [
            {
                "alert": a["alert"],
                "expr": a["expr"].replace("$THRESHOLD", str(a["threshold"])),
                "for": a["for"],
                "labels": {"severity": a["severity"]},
            }
            for a in alarms["alarms"]
        ]
        series = [
            {"series": name, "values": f"{value}x15"}
            for name, value in _samples(exposition, DEAD_GAUGE)
        ]
        expect(series, "trackai_dispatcher_dead_events exported", "the series is not in /metrics")
        dlq = next(a for a in alarms["alarms"] if a["alert"] == "TrackaiDlqDepth")
        test = {
            "rule_files": ["rules.yaml"],
            "evaluation_interval": "1m",
            "tests": [
                {
                    "interval": "1m",
                    "input_series": series,
                    "alert_rule_test": [
                        {
                            "eval_time": "10m",
                            "alertname": "TrackaiDlqDepth",
                            "exp_alerts": [{"exp_labels": {"severity": dlq["severity"]}}],
                        }
                    ],
                }
            ],
        }
        with tempfile.TemporaryDirectory() as tmp:
            Path(tmp, "rules.yaml").write_text(
                yaml.safe_dump({"groups": [{"name": alarms["group"], "rules": rules}]})
            )
            Path(tmp, "test.yaml").write_text(yaml.safe_dump(test))
            done = subprocess.run(
                [promtool, "test", "rules", "test.yaml"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        expect(
            done.returncode == 0,
            "TrackaiDlqDepth fires on the scraped dead-event count",
            (done.stdout + done.stderr).strip()[-1500:],
        )
        values = ", ".join(f"{name}={value}" for name, value in _samples(exposition, DEAD_GAUGE))
        return f"TrackaiDlqDepth fires on the scraped {values}"


def _samples(exposition: str, metric: str) -> list[tuple[str, str]]:
    """``(series with labels, value)`` of one metric in a Prometheus text exposition."""
    found = []
    for line in exposition.splitlines():
        if line.startswith(metric) and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            if name.split("{", 1)[0] == metric:
                found.append((name, value))
    return found


def _sentry_message(event: dict[str, Any]) -> str:
    logentry = event.get("logentry") or {}
    return str(logentry.get("formatted") or logentry.get("message") or event.get("message") or "")
