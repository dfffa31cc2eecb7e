"""The three matching stages for one purchase, on the caller's connection (and transaction)."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence

from trackai_matcher.domain.model import Candidate, Click, Evidence, MatchDecision, Purchase, Stage
from trackai_matcher.domain.scoring import ProbabilisticModel, PurchaseTraits, TenantProfile
from trackai_matcher.service_layer.ports import CandidateStore, Connection, Row

#: Stage 2 keys, strongest first: an fbclid names one ad click, fbp a browser.
_SEMI_ORDER = ("fbclid", "fbc", "fbp")
PROFILE_SAMPLE = 5000
PROFILE_TTL_S = 300.0


class ProfileCache:
    """Per-tenant value frequencies from the tenant's most recent sessions, kept a few minutes."""

    def __init__(self, ttl_s: float = PROFILE_TTL_S, sample: int = PROFILE_SAMPLE) -> None:
        self._ttl = ttl_s
        self._sample = sample
        self._entries: dict[str, tuple[float, TenantProfile]] = {}

    async def get(self, store: CandidateStore, conn: Connection, tenant_id: str) -> TenantProfile:
        now = time.monotonic()
        entry = self._entries.get(tenant_id)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        profile = build_profile(await store.tenant_sample(conn, tenant_id, self._sample))
        self._entries[tenant_id] = (now, profile)
        return profile


def build_profile(rows: Sequence[Row]) -> TenantProfile:
    n = len(rows)
    if n == 0:
        return TenantProfile(0.0, 0, {}, {})
    families = Counter((r["browser_family"], r["os_family"], r["device_type"]) for r in rows)
    campaigns = Counter(r["campaign"] for r in rows if r["campaign"])
    span = (rows[0]["last_seen_at"] - rows[-1]["last_seen_at"]).total_seconds()
    # A sample spanning (almost) no time says nothing about the rate: assume it spans an hour.
    rate = n / max(span, 3600.0)
    return TenantProfile(
        session_rate=rate,
        sample_size=n,
        family_share={k: v / n for k, v in families.items()},
        campaign_share={k: v / n for k, v in campaigns.items()},
    )


class MatchEngine:
    """Deterministic, then semi-deterministic, then probabilistic; the first stage that answers
    decides."""

    def __init__(
        self,
        model: ProbabilisticModel,
        store: CandidateStore,
        profiles: ProfileCache | None = None,
    ) -> None:
        self.model = model
        self._store = store
        self.profiles = profiles or ProfileCache()

    async def decide(
        self,
        conn: Connection,
        purchase: Purchase,
        at: dt.datetime,
        lookback: dt.timedelta,
        *,
        deterministic_only: bool = False,
    ) -> MatchDecision:
        """``deterministic_only``: a sale that will wait for its session's hit when no
        deterministic stage answers (``SessionNotSeenYet``) skips the others, whose answer would
        be thrown away (NONE, with the reason)."""
        # Windows count back from the purchase; "began before it" allows for the gateway's
        # time precision (Purchase.candidates_as_of).
        as_of = purchase.candidates_as_of(at)
        found = await self._store.exact_candidates(conn, purchase, as_of, lookback)
        decision = self._exact(purchase, found)
        if deterministic_only and (decision is None or decision.stage is not Stage.DETERMINISTIC):
            return MatchDecision(
                Stage.NONE,
                None,
                None,
                threshold=self.model.params.threshold,
                facts={"reason": "waiting for the session the sale names"},
            )
        if decision is not None:
            return decision
        return await self._probabilistic(conn, purchase, at, as_of)

    def _exact(
        self, purchase: Purchase, found: Sequence[tuple[str, Click]]
    ) -> MatchDecision | None:
        by_branch: dict[str, list[Click]] = {}
        for branch, click in found:
            by_branch.setdefault(branch, []).append(click)
        carriers = {c.session_id: c for c in by_branch.get("carrier", [])}
        for name, value in purchase.session_carriers():
            carried = carriers.get(value)
            if carried is not None:
                return _certain(Stage.DETERMINISTIC, name, carried, "session id carried through")
        for branch in ("email_hash", "phone_hash"):
            if branch in by_branch:
                return _certain(
                    Stage.DETERMINISTIC,
                    branch,
                    by_branch[branch][0],
                    "seen on a lead form of this session",
                )
        for branch in _SEMI_ORDER:
            if branch in by_branch:
                return _certain(
                    Stage.SEMI, branch, by_branch[branch][0], "same value within 7 days before"
                )
        return None

    async def _probabilistic(
        self, conn: Connection, purchase: Purchase, at: dt.datetime, as_of: dt.datetime
    ) -> MatchDecision:
        params = self.model.params
        if not purchase.client_ip and not purchase.user_agent:
            return MatchDecision(
                Stage.NONE,
                None,
                None,
                threshold=params.threshold,
                facts={"reason": "purchase carries no IP or user agent"},
            )
        found = await self._store.probabilistic_candidates(
            conn,
            purchase.tenant_id,
            client_ip=purchase.client_ip,
            user_agent=purchase.user_agent or None,
            at=as_of,
            window=params.window,
        )
        if not found.clicks:
            return MatchDecision(
                Stage.NONE,
                None,
                None,
                threshold=params.threshold,
                facts={"reason": "no session shares the IP, network or user agent"},
            )
        profile = await self.profiles.get(self._store, conn, purchase.tenant_id)
        sessions = max(profile.sessions_in(params.window), float(len(found.clicks)))
        traits = PurchaseTraits.of(
            purchase.client_ip,
            found.purchase_network,
            purchase.user_agent or None,
            purchase.tracking.campaign,
            at,
        )
        scored = self.model.score_all(traits, found.clicks, found.counts, profile, sessions)
        return self.model.decide(traits, scored, sessions)


def _certain(stage: Stage, method: str, click: Click, detail: str) -> MatchDecision:
    evidence = (Evidence(method, "exact", 0.0, detail),)
    return MatchDecision(stage, method, Candidate(click, 1.0, evidence))
