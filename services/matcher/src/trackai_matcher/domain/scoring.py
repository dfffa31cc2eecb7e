"""Stage 3: a Fellegi-Sunter record-linkage model with a Bayesian acceptance rule.

Each comparison between the purchase and a candidate session falls into a level (IP exact /
same network / different; user agent exact / same family / different; time-gap bucket; campaign
agree / disagree). A level's weight is ``log2(m / u)``: ``m`` = P(level | same person), fixed priors
documented in docs/matching.md; ``u`` = P(level | different person), estimated from the tenant's
own sessions, per value (a carrier IP shared by hundreds of sessions has a large ``u``, so it
weighs little). Missing values weigh 0. A candidate's total weight ``W`` is its log2 likelihood
ratio; the posterior that it is the buyer's session weighs it against every other session in the
window and against "no tracked session". The score stored is that posterior probability.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from trackai_matcher.domain.model import Candidate, Click, Evidence, MatchDecision, Stage
from trackai_matcher.domain.useragent import UaTraits, parse_user_agent

_MIN_SCORE = -60.0
_MAX_SCORE = 60.0


@dataclass(frozen=True)
class TimeBucket:
    upper: dt.timedelta
    m: float
    label: str


@dataclass(frozen=True)
class ModelParams:
    """The model's fixed parameters (the m-probabilities and priors of docs/matching.md)."""

    window: dt.timedelta = dt.timedelta(hours=72)
    #: Acceptance threshold on the posterior probability that the best candidate is the buyer's.
    threshold: float = 0.97
    #: Prior probability that a purchase reaching stage 3 has its session in the window.
    prior_tracked: float = 0.5
    m_ip: Mapping[str, float] = field(
        default_factory=lambda: {"exact": 0.55, "same_network": 0.15, "differ": 0.30}
    )
    m_ua: Mapping[str, float] = field(
        default_factory=lambda: {"exact": 0.80, "same_family": 0.10, "differ": 0.10}
    )
    m_campaign: Mapping[str, float] = field(
        default_factory=lambda: {"agree": 0.90, "disagree": 0.10}
    )
    time_buckets: tuple[TimeBucket, ...] = (
        TimeBucket(dt.timedelta(minutes=15), 0.45, "<15m"),
        TimeBucket(dt.timedelta(hours=1), 0.25, "15m-1h"),
        TimeBucket(dt.timedelta(hours=6), 0.15, "1h-6h"),
        TimeBucket(dt.timedelta(hours=24), 0.10, "6h-24h"),
        TimeBucket(dt.timedelta(hours=72), 0.05, "24h-72h"),
    )


@dataclass(frozen=True)
class TenantProfile:
    """How common things are among a tenant's sessions (from a recent sample of them)."""

    #: Sessions per second over the sample's time span.
    session_rate: float
    sample_size: int
    family_share: Mapping[tuple[str | None, str | None, str | None], float]
    campaign_share: Mapping[str, float]

    def sessions_in(self, window: dt.timedelta) -> float:
        return self.session_rate * window.total_seconds()


@dataclass(frozen=True)
class ValueCounts:
    """Sessions in the window sharing the purchase's IP, /24-/64 network and user agent."""

    same_ip: int
    same_network: int
    same_ua: int


@dataclass(frozen=True)
class PurchaseTraits:
    client_ip: str | None
    ip_network: str | None
    user_agent: str | None
    ua: UaTraits
    campaign: str
    time: dt.datetime

    @classmethod
    def of(
        cls,
        client_ip: str | None,
        ip_network: str | None,
        user_agent: str | None,
        campaign: str,
        time: dt.datetime,
    ) -> PurchaseTraits:
        return cls(client_ip, ip_network, user_agent, parse_user_agent(user_agent), campaign, time)


def _weight(m: float, u: float) -> float:
    return math.log2(m / u)


def _clamp_u(u: float, floor: float) -> float:
    return min(max(u, floor), 0.999)


class ProbabilisticModel:
    """Scores candidates and decides; pure computation over what the repository fetched."""

    def __init__(self, params: ModelParams) -> None:
        self.params = params

    def score(
        self,
        purchase: PurchaseTraits,
        click: Click,
        counts: ValueCounts,
        profile: TenantProfile,
        sessions: float,
    ) -> Candidate:
        return self.score_all(purchase, [click], counts, profile, sessions)[0]

    def score_all(
        self,
        purchase: PurchaseTraits,
        clicks: Sequence[Click],
        counts: ValueCounts,
        profile: TenantProfile,
        sessions: float,
    ) -> list[Candidate]:
        """Score every candidate. The IP, user agent and campaign comparisons depend only on a
        candidate's level (its values are compared with the purchase's, the frequencies are the
        purchase's), so each level is weighed once per purchase, not once per candidate."""
        floor = 1.0 / max(sessions, 1.0)
        ip_levels: dict[tuple[bool, bool, bool], Evidence] = {}
        ua_levels: dict[tuple[bool, bool, bool], Evidence] = {}
        campaign_levels: dict[str, Evidence] = {}
        scored = []
        for click in clicks:
            ip_key = (
                bool(click.client_ip),
                click.client_ip == purchase.client_ip,
                click.ip_network == purchase.ip_network,
            )
            ip = ip_levels.get(ip_key)
            if ip is None:
                ip = ip_levels[ip_key] = self._ip(purchase, click, counts, sessions, floor)
            ua_key = (
                bool(click.user_agent),
                click.user_agent == purchase.user_agent,
                (click.browser_family, click.os_family, click.device_type) == purchase.ua.key,
            )
            ua = ua_levels.get(ua_key)
            if ua is None:
                ua = ua_levels[ua_key] = self._ua(
                    purchase, click=click, counts=counts, profile=profile, n=sessions, floor=floor
                )
            campaign = campaign_levels.get(click.campaign)
            if campaign is None:
                campaign = campaign_levels[click.campaign] = self._campaign(
                    purchase, click, profile, floor
                )
            evidence = (ip, ua, self._time(purchase, click), campaign)
            total = sum(e.weight for e in evidence)
            scored.append(Candidate(click=click, score=total, evidence=evidence))
        return scored

    def _ip(
        self, purchase: PurchaseTraits, click: Click, counts: ValueCounts, n: float, floor: float
    ) -> Evidence:
        m = self.params.m_ip
        if not purchase.client_ip or not click.client_ip:
            return Evidence("ip", "missing", 0.0)
        u_exact = _clamp_u(counts.same_ip / n, floor)
        u_network = _clamp_u(max(counts.same_network - counts.same_ip, 0) / n, floor)
        if click.client_ip == purchase.client_ip:
            return Evidence(
                "ip", "exact", _weight(m["exact"], u_exact), f"shared by {counts.same_ip} sessions"
            )
        if purchase.ip_network and click.ip_network == purchase.ip_network:
            return Evidence(
                "ip",
                "same_network",
                _weight(m["same_network"], u_network),
                f"network shared by {counts.same_network} sessions",
            )
        return Evidence("ip", "differ", _weight(m["differ"], max(1 - u_exact - u_network, 0.05)))

    def _ua(
        self,
        purchase: PurchaseTraits,
        *,
        click: Click,
        counts: ValueCounts,
        profile: TenantProfile,
        n: float,
        floor: float,
    ) -> Evidence:
        m = self.params.m_ua
        if not purchase.user_agent or not click.user_agent:
            return Evidence("user_agent", "missing", 0.0)
        u_exact = _clamp_u(counts.same_ua / n, floor)
        family = purchase.ua.key
        share = profile.family_share.get(family, 1.0 / max(profile.sample_size, 1))
        u_family = _clamp_u(share - u_exact, floor)
        if click.user_agent == purchase.user_agent:
            return Evidence(
                "user_agent",
                "exact",
                _weight(m["exact"], u_exact),
                f"shared by {counts.same_ua} sessions",
            )
        if (click.browser_family, click.os_family, click.device_type) == family:
            return Evidence(
                "user_agent",
                "same_family",
                _weight(m["same_family"], u_family),
                f"{family[0]}/{family[1]}/{family[2]}, {share:.1%} of sessions",
            )
        return Evidence(
            "user_agent", "differ", _weight(m["differ"], max(1 - u_exact - u_family, 0.05))
        )

    @functools.cached_property
    def _time_weights(self) -> tuple[tuple[dt.timedelta, str, float], ...]:
        """(upper bound, label, weight) per time bucket; the last one takes any longer gap."""
        window = self.params.window
        weights = []
        lower = dt.timedelta(0)
        for bucket in self.params.time_buckets:
            # Sessions of other people are spread evenly over the window.
            u = (min(bucket.upper, window) - lower) / window
            weights.append((bucket.upper, bucket.label, _weight(bucket.m, max(u, 1e-6))))
            lower = bucket.upper
        return tuple(weights)

    def _time(self, purchase: PurchaseTraits, click: Click) -> Evidence:
        gap = max(purchase.time - click.last_seen_at, dt.timedelta(0))
        buckets = self._time_weights
        level = buckets[-1]  # the last bucket takes any longer gap
        for bucket in buckets:
            if gap < bucket[0]:
                level = bucket
                break
        _, label, weight = level
        return Evidence("time_gap", label, weight, f"gap {int(gap.total_seconds() // 60)}m")

    def _campaign(
        self, purchase: PurchaseTraits, click: Click, profile: TenantProfile, floor: float
    ) -> Evidence:
        m = self.params.m_campaign
        if not purchase.campaign or not click.campaign:
            return Evidence("campaign", "missing", 0.0)
        share = profile.campaign_share.get(purchase.campaign, 1.0 / max(profile.sample_size, 1))
        u_agree = _clamp_u(share, floor)
        if click.campaign == purchase.campaign:
            return Evidence(
                "campaign", "agree", _weight(m["agree"], u_agree), f"{share:.1%} of sessions"
            )
        return Evidence("campaign", "disagree", _weight(m["disagree"], 1 - u_agree))

    def rest_likelihood(self, purchase: PurchaseTraits) -> float:
        """Expected likelihood ratio of a session in the window that was not retrieved.

        Not retrieved means it shares neither the IP, the network nor the exact user agent; the
        expectation of m/u over the remaining levels under u is the sum of their m (time and
        campaign average to 1).
        """
        ratio = 1.0
        if purchase.client_ip:
            ratio *= self.params.m_ip["differ"]
        if purchase.user_agent:
            ratio *= self.params.m_ua["same_family"] + self.params.m_ua["differ"]
        return ratio

    def decide(
        self, purchase: PurchaseTraits, candidates: Sequence[Candidate], sessions: float
    ) -> MatchDecision:
        """Posterior of each candidate; accept the best when its log2-odds pass the threshold."""
        p = self.params
        if not candidates:
            return MatchDecision(Stage.NONE, None, None, threshold=p.threshold)
        n = max(sessions, float(len(candidates)), 1.0)
        prior = p.prior_tracked / n
        rest = max(n - len(candidates), 0.0) * prior * self.rest_likelihood(purchase)
        # Work in log space: weights can reach 40+ bits on large tenants.
        logs = [math.log2(prior) + c.score for c in candidates]
        top = max(logs)
        # Everything below is scaled by 2**-top; "no tracked session" and the unretrieved
        # sessions form the base mass every candidate competes with.
        mass = sum(2 ** (x - top) for x in logs)
        base = ((1 - p.prior_tracked) + rest) * 2 ** min(-top, 1000.0)
        ranked = sorted(zip(logs, candidates, strict=True), key=lambda pair: -pair[0])

        def log_odds(log_a: float) -> float:
            a = 2 ** (log_a - top)
            others = mass - a + base
            if others <= 0:
                return _MAX_SCORE
            return max(_MIN_SCORE, min(_MAX_SCORE, math.log2(a / others)))

        def posterior(log_a: float) -> float:
            return 1 / (1 + 2 ** (-log_odds(log_a)))

        best_log, best = ranked[0]
        scored_best = Candidate(best.click, posterior(best_log), best.evidence)
        runner_up = None
        if len(ranked) > 1:
            second_log, second = ranked[1]
            runner_up = Candidate(second.click, posterior(second_log), second.evidence)
        facts = {
            "sessions_in_window": round(n, 1),
            "candidates": len(candidates),
            "likelihood_bits": round(best.score, 4),
            "posterior_log2_odds": round(log_odds(best_log), 4),
            "window_hours": p.window.total_seconds() / 3600,
        }
        if scored_best.score >= p.threshold:
            return MatchDecision(
                Stage.PROBABILISTIC,
                "ip_ua_time",
                scored_best,
                runner_up,
                threshold=p.threshold,
                facts=facts,
            )
        # Rejected: the best candidate stays visible as the runner-up of a "none" decision.
        return MatchDecision(
            Stage.NONE, None, None, scored_best, threshold=p.threshold, facts=facts
        )
