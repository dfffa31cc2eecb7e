"""The closed values schema and the template guards refuse what would deploy something wrong."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

#: case -> (values, a fragment of the message that names the offending key)
REFUSED_BY_SCHEMA: dict[str, tuple[dict[str, Any], str]] = {
    "unknown top-level key": (
        {"replicaCount": 3},
        "'replicaCount' not allowed",
    ),
    "unknown key in a service": (
        {"services": {"ingestion": {"replicas": 3}}},
        "'replicas' not allowed",
    ),
    "unknown key in a process": (
        {"services": {"dispatcher": {"processes": {"consume": {"gracePeriod": 45}}}}},
        "'gracePeriod' not allowed",
    ),
    "unknown service": (
        {"services": {"billing": {"enabled": True}}},
        "'billing' not allowed",
    ),
    "misspelt image key": (
        {"image": {"registery": "ghcr.io"}},
        "'registery' not allowed",
    ),
    "consumer on a service without one": (
        {
            "services": {
                "ingestion": {
                    "processes": {
                        "consume": {
                            "enabled": True,
                            "replicas": 1,
                            "terminationGracePeriodSeconds": 30,
                            "env": {},
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "256Mi"},
                            },
                            "pdb": {"policy": "maxUnavailable", "value": 1},
                        }
                    }
                }
            }
        },
        "invalid propertyName 'consume'",
    ),
    "an unknown port on the console": (
        {"services": {"console": {"ports": {"metrics": 9090}}}},
        "invalid propertyName 'metrics'",
    ),
    "ingress on an internal service": (
        {
            "services": {
                "matcher": {
                    "ingress": {
                        "enabled": False,
                        "className": "",
                        "annotations": {},
                        "hosts": [],
                        "tls": [],
                    }
                }
            }
        },
        "/services/matcher': 'not' failed",
    ),
    "ingress enabled without hosts": (
        {"services": {"ingestion": {"ingress": {"enabled": True}}}},
        "/ingress/hosts': minItems",
    ),
    "wrong type": (
        {"services": {"ingestion": {"processes": {"serve": {"replicas": "two"}}}}},
        "/serve/replicas': got string, want integer",
    ),
    "unknown secrets mode": (
        {"secrets": {"mode": "vault"}},
        "/secrets/mode'",
    ),
    "secret key not an environment name": (
        {"secrets": {"values": {"db-password": "x"}}},
        "invalid propertyName 'db-password'",
    ),
    "caller token given instead of its digest": (
        {"grpc": {"callers": {"matcher": "a-plain-token"}}},
        "/grpc/callers/matcher'",
    ),
    "unknown gRPC caller": (
        {"grpc": {"callers": {"everyone": "ab" * 32}}},
        "invalid propertyName 'everyone'",
    ),
    "trusted proxies on an internal service": (
        {"services": {"matcher": {"trustedProxies": ["10.0.0.0/8"]}}},
        "/services/matcher'",
    ),
    "root containers": (
        {"containerSecurityContext": {"runAsNonRoot": False}},
        "/containerSecurityContext/runAsNonRoot'",
    ),
    "writable root filesystem": (
        {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
        "/containerSecurityContext/readOnlyRootFilesystem'",
    ),
    "migrations before their Secret": (
        {"migrations": {"hookWeight": -10}},
        "/migrations/hookWeight': minimum",
    ),
    "unknown environment": (
        {"config": {"environment": "prod"}},
        "/config/environment'",
    ),
    "unquoted number in extra env": (
        {"config": {"extraEnv": {"DISPATCHER_BATCH_MAX": 1000}}},
        "/config/extraEnv/DISPATCHER_BATCH_MAX': got number, want string",
    ),
    "lowercase extra env name": (
        {"config": {"extraEnv": {"batch_max": "10"}}},
        "invalid propertyName 'batch_max'",
    ),
}


@pytest.mark.parametrize(
    ("values", "reason"), REFUSED_BY_SCHEMA.values(), ids=REFUSED_BY_SCHEMA.keys()
)
def test_schema_refuses(chart: helm.Chart, values: dict[str, Any], reason: str) -> None:
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.validate_schema(values)
    assert reason in str(refused.value)
    # `helm upgrade` renders through the same gate: nothing reaches the cluster.
    with pytest.raises(helm.HelmValuesError):
        chart.render(values=values, name="trackai", namespace="trackai")


def test_lint_reports_an_unknown_key_as_an_error(chart_dir: Path) -> None:
    report = helm.lint(chart_dir, values={"services": {"console": {"replica": 1}}})

    assert any("replica" in error for error in report["errors"])
    assert any(m["severity"] == 3 for m in report["messages"])


def test_every_ci_values_file_passes_the_schema(
    chart: helm.Chart, ci_values_file: Path, values_of: Any
) -> None:
    chart.validate_schema(values_of(ci_values_file))


def test_a_pdb_policy_override_replaces_the_default_instead_of_adding_one(
    render_inline: Any,
) -> None:
    rendered = render_inline(
        {
            "services": {
                "provisioner": {"processes": {"serve": {"pdb": {"policy": "maxUnavailable"}}}}
            }
        }
    )
    spec = rendered.one("PodDisruptionBudget", "trackai-provisioner-serve")["spec"]
    assert spec["maxUnavailable"] == 1
    assert "minAvailable" not in spec


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"config": {"extraEnv": {"LOG_LEVEL": "DEBUG"}}},
            "config.extraEnv.LOG_LEVEL collides",
        ),
        (
            {
                "services": {
                    "ingestion": {
                        "processes": {"serve": {"hpa": {"minReplicas": 5, "maxReplicas": 2}}}
                    }
                }
            },
            "minReplicas (5) exceeds maxReplicas (2)",
        ),
        (
            {
                "services": {
                    "console": {
                        "ingress": {
                            "enabled": True,
                            "hosts": [
                                {
                                    "host": "c.example.com",
                                    "paths": [{"path": "/", "pathType": "Prefix"}],
                                }
                            ],
                        },
                        "processes": {"serve": {"enabled": False}},
                    }
                }
            },
            "services.console.ingress needs the serve process",
        ),
        (
            {
                "services": {
                    "ingestion": {
                        "ingress": {
                            "enabled": True,
                            "hosts": [
                                {
                                    "host": "hooks.example.com",
                                    "paths": [{"path": "/", "pathType": "Prefix"}],
                                }
                            ],
                        }
                    }
                }
            },
            "services.ingestion.trustedProxies is required with the ingestion ingress on",
        ),
        # The first key in order: the agent's language-model key.
        ({"secrets": {"mode": "secret"}}, "secrets.values.AGENT_LLM_API_KEY is missing"),
        (
            {"services": {"provisioner": {"processes": {"serve": {"env": {"SENTRY_DSN": "x"}}}}}},
            "env.SENTRY_DSN collides with a Secret key",
        ),
    ],
    ids=[
        "extra env shadows a managed key",
        "hpa min above max",
        "ingress without a server",
        "public ingestion without trusted proxies",
        "plain Secret without its keys",
        "process env shadows a secret",
    ],
)
def test_template_guards_fail_the_render(
    chart: helm.Chart, values: dict[str, Any], message: str, required: Any
) -> None:
    values = required(values)
    chart.validate_schema(values)
    with pytest.raises(helm.HelmRenderError, match=message.replace("(", r"\(").replace(")", r"\)")):
        chart.render(values=values, name="trackai", namespace="trackai")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "grpc.callers is empty"),
        ({"grpc": {"callers": {"operator": "ab" * 32}}}, "gRPC must be encrypted"),
        (
            {"grpc": {"callers": {"operator": "ab" * 32}, "tls": {"mesh": True}}},
            "config.trackingScriptUrl is empty",
        ),
    ],
    ids=["no caller identities", "plaintext gRPC", "no tracking script URL"],
)
def test_production_defaults_refuse_what_cannot_be_defaulted(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    chart.validate_schema(values)
    with pytest.raises(helm.HelmRenderError, match=message):
        chart.render(values=values, name="trackai", namespace="trackai")


def test_local_environment_renders_without_identities(chart: helm.Chart) -> None:
    assert chart.render(values={"config": {"environment": "local"}}, name="t", namespace="t")
