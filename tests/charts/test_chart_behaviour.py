"""What the rendered chart promises operators: probes, autoscaling, hooks, secrets, hardening."""

from __future__ import annotations

import json
from typing import Any

import pytest

# The chart must agree with the ports the services default to.
from trackai_ingestion.settings import Settings
from trackai_kit.settings import GRPC_PORTS, HTTP_PORTS

SERVICES = ("ingestion", "matcher", "dispatcher", "provisioner", "agent", "console")
PROCESSES = {
    "ingestion": ("serve", "relay"),
    "matcher": ("serve", "consume"),
    "dispatcher": ("serve", "consume"),
}
#: Keys of the release Secret with every service enabled.
RELEASE_LABELS = {"app.kubernetes.io/name": "trackai", "app.kubernetes.io/instance": "trackai"}
QA_TEST_KEYS = {"QA_OPERATOR_GRPC_TOKEN", "QA_META_TOKEN"}
SECRET_KEYS = {
    "DATABASE_URL_MIGRATIONS",
    *(f"DATABASE_URL_{svc.upper()}" for svc in SERVICES),
    "AMQP_URL",
    "REDIS_URL",
    *(f"GRPC_CLIENT_TOKEN_{svc.upper()}" for svc in SERVICES),
    "SENTRY_DSN",
    "TRACKAI_ENCRYPTION_KEYS",
    "META_APP_TOKEN",
    "CLOUDFLARE_API_TOKEN",
    "STAPE_API_KEY",
    "GTM_CREDENTIALS_JSON",
    "AGENT_LLM_API_KEY",
    "AGENT_SUPPORT_WEBHOOK_URL",
}
#: Secret keys only the provisioner may hold (keys and provider credentials).
PROVISIONER_ONLY = {
    "TRACKAI_ENCRYPTION_KEYS",
    "CLOUDFLARE_API_TOKEN",
    "STAPE_API_KEY",
    "GTM_CREDENTIALS_JSON",
}
HOOK_EVENTS = {"pre-install", "pre-upgrade"}


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def _containers(obj: dict[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(obj)
    return [*spec.get("initContainers", []), *spec["containers"]]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _secret_refs(container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """env name -> (Secret name, key) of every variable read from a Secret."""
    return {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _plain_env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in container.get("env", []) if "value" in e]


# --- workloads --------------------------------------------------------------------------


def test_every_process_of_every_service_is_a_deployment_running_its_command(by_name: Any) -> None:
    rendered = by_name("default-values")
    commands = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["command"]
        for d in rendered.of_kind("Deployment")
    }
    expected = {
        f"trackai-{svc}-{proc}": ["python", "-m", f"trackai_{svc}", proc]
        for svc in SERVICES
        for proc in PROCESSES.get(svc, ("serve",))
    }
    assert commands == expected


def test_ingestion_relays_in_its_own_process_not_in_serve(ci_render: Any) -> None:
    serve = _pod_spec(ci_render.one("Deployment", "trackai-ingestion-serve"))["containers"][0]
    env = {e["name"]: e.get("value") for e in serve.get("env", [])}
    assert env.get("INGESTION_RELAY_IN_SERVE") == "false"
    relay = ci_render.one("Deployment", "trackai-ingestion-relay")
    assert _pod_spec(relay)["containers"][0]["command"][-1] == "relay"


def test_every_deployment_probes_health_and_ready_on_its_http_port(ci_render: Any) -> None:
    assert ci_render.of_kind("Deployment")
    for deployment in ci_render.of_kind("Deployment"):
        (container,) = _pod_spec(deployment)["containers"]
        http = [p for p in container["ports"] if p["name"] == "http"]
        service = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert http == [{"name": "http", "containerPort": HTTP_PORTS[service], "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
        assert container["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_only_serve_processes_expose_grpc_and_get_a_service(ci_render: Any) -> None:
    services = {s["metadata"]["name"]: s for s in ci_render.of_kind("Service")}
    for deployment in ci_render.of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        svc, process = labels["app.kubernetes.io/component"], labels["trackai.io/process"]
        ports = {
            p["name"]: p["containerPort"] for p in _pod_spec(deployment)["containers"][0]["ports"]
        }
        if process == "serve":
            expected = {"http": HTTP_PORTS[svc]} | (
                {"grpc": GRPC_PORTS[svc]} if svc in GRPC_PORTS else {}
            )
            assert ports == expected
            service = services[f"trackai-{svc}"]
            assert _selects(service["spec"]["selector"], labels)
            assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == expected
        else:
            assert ports == {"http": HTTP_PORTS[svc]}
    # No Service may select consumer pods: they take no traffic.
    consumers = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in ci_render.of_kind("Deployment")
        if d["spec"]["template"]["metadata"]["labels"]["trackai.io/process"] == "consume"
    ]
    for service in services.values():
        assert not any(_selects(service["spec"]["selector"], labels) for labels in consumers)


def test_every_deployment_has_a_disruption_budget_selecting_only_its_pods(ci_render: Any) -> None:
    deployments = ci_render.of_kind("Deployment")
    budgets = {p["metadata"]["name"]: p for p in ci_render.of_kind("PodDisruptionBudget")}
    assert set(budgets) == {d["metadata"]["name"] for d in deployments}
    for deployment in deployments:
        budget = budgets[deployment["metadata"]["name"]]["spec"]
        assert ("minAvailable" in budget) != ("maxUnavailable" in budget)
        selected = [
            d["metadata"]["name"]
            for d in deployments
            if _selects(
                budget["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"]
            )
        ]
        assert selected == [deployment["metadata"]["name"]]


def test_single_replica_processes_never_block_node_drains(by_name: Any) -> None:
    rendered = by_name("dev-values")
    budgets = {p["metadata"]["name"]: p["spec"] for p in rendered.of_kind("PodDisruptionBudget")}
    for deployment in rendered.of_kind("Deployment"):
        assert deployment["spec"]["replicas"] == 1
        assert budgets[deployment["metadata"]["name"]].get("minAvailable") is None


@pytest.mark.parametrize(
    ("values", "min_replicas", "max_replicas"),
    [("default-values", 2, 10), ("production-values", 3, 30)],
)
def test_ingestion_is_autoscaled_and_the_hpa_owns_its_replica_count(
    by_name: Any, values: str, min_replicas: int, max_replicas: int
) -> None:
    rendered = by_name(values)
    (hpa,) = rendered.of_kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "trackai-ingestion-serve",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (min_replicas, max_replicas)
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    # A fixed replica count would reset the HPA's decision on every `helm upgrade`.
    assert "replicas" not in rendered.one("Deployment", "trackai-ingestion-serve")["spec"]


def test_dev_values_turn_autoscaling_off(by_name: Any) -> None:
    rendered = by_name("dev-values")
    assert rendered.of_kind("HorizontalPodAutoscaler") == []
    assert rendered.one("Deployment", "trackai-ingestion-serve")["spec"]["replicas"] == 1


def test_dispatcher_consumer_gets_time_to_hand_back_in_flight_batches(ci_render: Any) -> None:
    process = ci_render.effective["services"]["dispatcher"]["processes"]["consume"]
    expected = process["terminationGracePeriodSeconds"]
    consumer = ci_render.one("Deployment", "trackai-dispatcher-consume")
    assert _pod_spec(consumer)["terminationGracePeriodSeconds"] == expected >= 45
    # Consumers stop taking deliveries at once: no preStop delay eats into the grace period.
    assert "lifecycle" not in _pod_spec(consumer)["containers"][0]


# --- configuration and secrets -------------------------------------------------------------


def test_pods_listen_on_all_interfaces_on_the_configured_ports(ci_render: Any) -> None:
    data = ci_render.one("ConfigMap", "trackai-config")["data"]
    services = ci_render.effective["services"]
    for svc in [svc for svc in SERVICES if services[svc]["enabled"]]:
        prefix = svc.upper()
        assert data[f"{prefix}_HTTP_HOST"] == "0.0.0.0"
        assert data[f"{prefix}_HTTP_PORT"] == str(HTTP_PORTS[svc])
        if svc in GRPC_PORTS:
            assert data[f"{prefix}_GRPC_HOST"] == "0.0.0.0"
            assert data[f"{prefix}_GRPC_PORT"] == str(GRPC_PORTS[svc])
            target = data.get(f"{prefix}_GRPC_TARGET")
            if services[svc]["processes"]["serve"]["enabled"]:
                assert target == f"trackai-{svc}:{GRPC_PORTS[svc]}"
            else:
                assert target is None, "no Service answers there"
    for key in (
        "TRACKAI_ENV",
        "LOG_LEVEL",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "CF_BASE_DOMAIN",
        "META_GRAPH_URL",
        "META_API_VERSION",
        "INGESTION_RATE_LIMIT_PER_MINUTE",
        "INGESTION_COLLECT_IP_RATE_LIMIT_PER_MINUTE",
        "INGESTION_COLLECT_TENANT_RATE_LIMIT_PER_MINUTE",
    ):
        assert isinstance(data[key], str)
    secret_names = SECRET_KEYS | {"DATABASE_URL", "GRPC_CLIENT_TOKEN"}
    assert not secret_names & set(data), "secrets must not leak into the ConfigMap"


def test_production_values_reach_the_config_map(by_name: Any) -> None:
    data = by_name("production-values").one("ConfigMap", "trackai-config")["data"]
    assert data["TRACKAI_ENV"] == "production"
    assert data["INGESTION_RATE_LIMIT_PER_MINUTE"] == "1200"
    assert data["INGESTION_COLLECT_TENANT_RATE_LIMIT_PER_MINUTE"] == "12000"
    assert data["INGESTION_COLLECT_IP_RATE_LIMIT_PER_MINUTE"] == "300"
    assert data["DISPATCHER_BATCH_MAX"] == "1000"
    assert data["CLOUDFLARE_ZONE_ID"] == "023e105f4ecef8ad9ca31a8372d0c353"
    assert data["GTM_ACCOUNT_ID"] == "6012345678"
    assert data["STAPE_API_URL"] == "https://api.app.stape.io"
    assert data["INGESTION_TRUSTED_PROXIES"] == "10.20.0.0/20"
    # Tracking hosts are {slug}.track.{CF_BASE_DOMAIN}: the example must not double "track".
    assert f"acme.track.{data['CF_BASE_DOMAIN']}" == "acme.track.example.com"
    # Derived from the public ingestion host when not given.
    assert data["TRACKING_SCRIPT_URL"] == "https://hooks.trackai.example.com/sdk/v1/track.js"


def test_agent_settings_reach_the_config_map_and_its_secrets_only_the_agent(
    by_name: Any,
) -> None:
    rendered = by_name("production-values")
    data = rendered.one("ConfigMap", "trackai-config")["data"]
    assert data["AGENT_LLM_BASE_URL"] == "https://api.openai.com/v1"
    assert (data["AGENT_MAX_TOOL_CALLS_PER_TURN"], data["AGENT_MAX_SESSION_TOKENS"]) == (
        "4",
        "200000",
    )
    # Derived from the public hosts: the webhook URL sellers paste, the console's transcript link.
    assert data["AGENT_WEBHOOK_BASE_URL"] == "https://hooks.trackai.example.com"
    host = rendered.effective["services"]["console"]["ingress"]["hosts"][0]["host"]
    assert data["AGENT_TRANSCRIPT_URL_TEMPLATE"] == (
        f"https://{host}/operador/conversas/{{session_id}}"
    )
    for deployment in rendered.of_kind("Deployment"):
        (container,) = _pod_spec(deployment)["containers"]
        agent_keys = {"AGENT_LLM_API_KEY", "AGENT_SUPPORT_WEBHOOK_URL"} & set(
            _secret_refs(container)
        )
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert bool(agent_keys) == (component == "agent"), component


def test_defaults_follow_the_seed_and_set_redis(by_name: Any) -> None:
    rendered = by_name("default-values")
    data = rendered.one("ConfigMap", "trackai-config")["data"]
    assert data["INGESTION_RATE_LIMIT_PER_MINUTE"] == "100"
    # The service's own defaults for browser hits (docs/runbooks/collect.md).
    defaults = Settings(TRACKAI_ENV="test")
    assert data["INGESTION_COLLECT_IP_RATE_LIMIT_PER_MINUTE"] == str(
        defaults.collect_ip_rate_limit_per_minute
    )
    assert data["INGESTION_COLLECT_TENANT_RATE_LIMIT_PER_MINUTE"] == str(
        defaults.collect_tenant_rate_limit_per_minute
    )
    (container,) = _pod_spec(rendered.one("Deployment", "trackai-ingestion-serve"))["containers"]
    assert _secret_refs(container)["REDIS_URL"] == ("trackai-secrets", "REDIS_URL")
    # The console replicas share the live-update history there, sized by the chart.
    (console,) = _pod_spec(rendered.one("Deployment", "trackai-console-serve"))["containers"]
    assert _secret_refs(console)["REDIS_URL"] == ("trackai-secrets", "REDIS_URL")
    assert (data["CONSOLE_LIVE_HISTORY"], data["CONSOLE_LIVE_HISTORY_HOURS"]) == ("500", "24")


def test_every_workload_reads_only_its_own_secret_keys(ci_render: Any) -> None:
    services = ci_render.effective["services"]
    for deployment in ci_render.of_kind("Deployment"):
        name = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        (container,) = _pod_spec(deployment)["containers"]
        # Never the whole Secret.
        assert container["envFrom"] == [{"configMapRef": {"name": "trackai-config"}}]
        refs = _secret_refs(container)
        assert {key for _, key in refs.values()} == set(services[name]["secretEnv"].values())
        assert refs["DATABASE_URL"] == ("trackai-secrets", f"DATABASE_URL_{name.upper()}")
        if name != "provisioner":
            assert not PROVISIONER_ONLY & set(refs), f"{name} must not hold provider secrets"
            assert refs["GRPC_CLIENT_TOKEN"][1] == f"GRPC_CLIENT_TOKEN_{name.upper()}"
        # The Meta app token: the provisioner (test events) and the agent (debug_token) only.
        assert ("META_APP_TOKEN" in refs) == (name in {"provisioner", "agent"}), name


def test_exactly_one_secret_source_and_no_secret_data_with_external_secret(
    ci_render: Any,
) -> None:
    secrets = ci_render.effective["secrets"]
    if secrets["mode"] == "secret":
        assert ci_render.of_kind("ExternalSecret") == []
        assert len(ci_render.of_kind("Secret")) == 1
        return
    assert ci_render.of_kind("Secret") == []
    (external,) = ci_render.of_kind("ExternalSecret")
    spec = external["spec"]
    assert spec["target"]["name"] == "trackai-secrets"
    assert spec["secretStoreRef"]["kind"] == "ClusterSecretStore"
    enabled = [svc for svc in SERVICES if ci_render.effective["services"][svc]["enabled"]]
    expected = {"DATABASE_URL_MIGRATIONS"} | {
        key for svc in enabled for key in ci_render.effective["services"][svc]["secretEnv"].values()
    }
    qa_test = ci_render.effective["qaTest"]
    if qa_test["enabled"]:
        expected |= set(qa_test["secretEnv"].values())
    assert {item["secretKey"] for item in spec["data"]} == expected
    assert all(item["remoteRef"]["property"] == item["secretKey"] for item in spec["data"])
    remote_keys = {item["remoteRef"]["key"] for item in spec["data"]}
    assert remote_keys == {secrets["externalSecret"]["remoteKey"]}
    assert external["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"


def test_plain_secret_mode_renders_every_key_and_no_external_secret(by_name: Any) -> None:
    rendered = by_name("dev-values")
    assert rendered.of_kind("ExternalSecret") == []
    secret = rendered.one("Secret", "trackai-secrets")
    # dev-values turns `helm test` on: the QA Pod's two keys too.
    assert set(secret["stringData"]) == SECRET_KEYS | QA_TEST_KEYS
    assert secret["stringData"]["DATABASE_URL_INGESTION"].startswith("postgresql://")
    assert set(secret["metadata"]["annotations"]["helm.sh/hook"].split(",")) == HOOK_EVENTS
    # A changed secret rolls the pods, since env is read only at container start.
    for deployment in rendered.of_kind("Deployment"):
        assert "checksum/secret" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_a_rotated_secret_rolls_exactly_the_workloads_reading_it(
    by_name: Any, render_inline: Any, values_of: Any, chart_dir: Any
) -> None:
    dev = values_of(chart_dir / "ci" / "dev-values.yaml")

    def checksums(token: str) -> dict[str, str]:
        values = {**dev, "secrets": {**dev["secrets"], "values": {**dev["secrets"]["values"]}}}
        values["secrets"]["values"]["CLOUDFLARE_API_TOKEN"] = token
        rendered = render_inline(values)
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"][
                "checksum/secret"
            ]
            for d in rendered.of_kind("Deployment")
        }

    before, after = checksums("old"), checksums("new")
    assert {name for name in before if before[name] != after[name]} == {"trackai-provisioner-serve"}


def test_an_external_secret_rotation_restarts_pods_through_reloader(by_name: Any) -> None:
    for deployment in by_name("production-values").of_kind("Deployment"):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert annotations["secret.reloader.stakater.com/reload"] == "trackai-secrets"


def test_process_env_overrides_the_config_map_for_that_process_only(render_inline: Any) -> None:
    rendered = render_inline(
        {"services": {"matcher": {"processes": {"consume": {"env": {"LOG_LEVEL": "DEBUG"}}}}}}
    )
    consumer = rendered.one("Deployment", "trackai-matcher-consume")
    server = rendered.one("Deployment", "trackai-matcher-serve")
    # Kubernetes gives `env` precedence over `envFrom`.
    assert _plain_env(_pod_spec(consumer)["containers"][0]) == [
        {"name": "LOG_LEVEL", "value": "DEBUG"}
    ]
    assert _plain_env(_pod_spec(server)["containers"][0]) == []


def test_a_config_change_rolls_every_pod(render_inline: Any) -> None:
    def checksums(level: str) -> set[str]:
        rendered = render_inline({"config": {"logLevel": level}})
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in rendered.of_kind("Deployment")
        }

    info, debug = checksums("INFO"), checksums("DEBUG")
    assert len(info) == len(debug) == 1
    assert info != debug


# --- migrations -------------------------------------------------------------------------------


def test_migration_job_is_a_pre_install_and_pre_upgrade_hook(ci_render: Any) -> None:
    (job,) = ci_render.of_kind("Job")
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == HOOK_EVENTS
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {
        "before-hook-creation",
        "hook-succeeded",
    }
    secret_hook = [*ci_render.of_kind("Secret"), *ci_render.of_kind("ExternalSecret")]
    (secret,) = secret_hook
    # The Secret the Job reads must be created first: Helm applies hooks by ascending weight.
    assert int(secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(
        annotations["helm.sh/hook-weight"]
    )
    assert _pod_spec(job)["restartPolicy"] == "Never"


def test_migrations_run_in_order_for_every_enabled_service(ci_render: Any) -> None:
    (job,) = ci_render.of_kind("Job")
    services = ci_render.effective["services"]
    enabled = [
        svc
        for svc in ("provisioner", "ingestion", "matcher", "dispatcher", "agent", "console")
        if services[svc]["enabled"]
    ]
    steps = [(c["name"], c["command"]) for c in _containers(job)]
    assert steps == [
        (f"migrate-{svc}", ["python", "-m", f"trackai_{svc}", "migrate"]) for svc in enabled
    ]
    assert len(_pod_spec(job)["containers"]) == 1
    for container in _containers(job):
        assert "envFrom" not in container
        # The owner role migrates, then grants the service's own role its schema.
        assert _secret_refs(container) == {
            "DATABASE_URL": ("trackai-secrets", "DATABASE_URL_MIGRATIONS")
        }
        env = {e["name"]: e["value"] for e in _plain_env(container)}
        own = container["name"].removeprefix("migrate-").upper()
        assert env["DATABASE_SERVICE_ROLE"] == f"trackai_{own.lower()}"
        # Each step sees the shared settings and its own service's, never a peer's.
        assert "TRACKAI_ENV" in env
        assert all(
            not key.startswith(f"{svc.upper()}_")
            for key in env
            for svc in SERVICES
            if svc.upper() != own
        )


def test_migrations_can_be_turned_off(render_inline: Any) -> None:
    assert render_inline({"migrations": {"enabled": False}}).of_kind("Job") == []


# --- hardening --------------------------------------------------------------------------------


def test_every_container_runs_as_non_root_on_a_read_only_root_without_capabilities(
    ci_render: Any,
) -> None:
    workloads = [*ci_render.of_kind("Deployment"), *ci_render.of_kind("Job")]
    assert workloads
    for workload in workloads:
        pod = _pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        for container in _containers(workload):
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["requests"] and container["resources"]["limits"]
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_images_come_from_the_configured_registry_and_tag(by_name: Any) -> None:
    rendered = by_name("production-values")
    registry = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    for workload in [*rendered.of_kind("Deployment"), *rendered.of_kind("Job")]:
        for container in _containers(workload):
            svc = container["name"].removeprefix("migrate-")
            assert container["image"] == f"{registry}/trackai/{svc}:1.4.2"


# --- optional pieces ------------------------------------------------------------------------


def test_ingress_routes_public_hosts_to_the_serving_service(by_name: Any) -> None:
    rendered = by_name("production-values")
    services = {s["metadata"]["name"] for s in rendered.of_kind("Service")}
    ingresses = {i["metadata"]["name"]: i for i in rendered.of_kind("Ingress")}
    assert set(ingresses) == {"trackai-ingestion", "trackai-console"}
    for ingress in ingresses.values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                assert backend["name"] in services
                assert backend["port"] == {"name": "http"}
    public = ingresses["trackai-ingestion"]["spec"]
    assert public["rules"][0]["host"] == "hooks.trackai.example.com"
    assert public["tls"] == [
        {"secretName": "trackai-hooks-tls", "hosts": ["hooks.trackai.example.com"]}
    ]
    assert by_name("default-values").of_kind("Ingress") == []


def test_a_disabled_service_leaves_no_trace(by_name: Any) -> None:
    rendered = by_name("agent-disabled-values")
    for obj in rendered.objects:
        assert obj["metadata"].get("labels", {}).get("app.kubernetes.io/component") != "agent"
    data = rendered.one("ConfigMap", "trackai-config")["data"]
    assert not [key for key in data if key.startswith("AGENT_")]
    (job,) = rendered.of_kind("Job")
    assert "migrate-agent" not in [c["name"] for c in _containers(job)]
    # A disabled process of an enabled service: the matcher consumer runs, its server does not.
    names = {d["metadata"]["name"] for d in rendered.of_kind("Deployment")}
    assert "trackai-matcher-consume" in names
    assert "trackai-matcher-serve" not in names
    assert "trackai-matcher" not in {s["metadata"]["name"] for s in rendered.of_kind("Service")}


# --- references between objects ----------------------------------------------------------------


def _assert_references_resolve(rendered: Any) -> None:
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in rendered.objects}
    secret_names = {name for kind, name in names if kind == "Secret"} | {
        es["spec"]["target"]["name"] for es in rendered.of_kind("ExternalSecret")
    }
    accounts = {name for kind, name in names if kind == "ServiceAccount"}
    for workload in [*rendered.of_kind("Deployment"), *rendered.of_kind("Job")]:
        pod = _pod_spec(workload)
        if workload["kind"] == "Deployment":
            assert pod["serviceAccountName"] in accounts
        for container in _containers(workload):
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names
            for secret_name, _ in _secret_refs(container).values():
                assert secret_name in secret_names
    for hpa in rendered.of_kind("HorizontalPodAutoscaler"):
        assert ("Deployment", hpa["spec"]["scaleTargetRef"]["name"]) in names
    for ingress in rendered.of_kind("Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert ("Service", path["backend"]["service"]["name"]) in names
    config = rendered.of_kind("ConfigMap")[0]["data"]
    for key, target in config.items():
        if key.endswith("_GRPC_TARGET"):
            host, port = target.split(":")
            service = rendered.one("Service", host)
            assert int(port) in [p["port"] for p in service["spec"]["ports"] if p["name"] == "grpc"]


def test_every_reference_resolves_to_a_rendered_object(ci_render: Any) -> None:
    _assert_references_resolve(ci_render)


def test_another_release_name_prefixes_every_object_and_reference(render_inline: Any) -> None:
    rendered = render_inline({}, release="acme")
    assert {obj["metadata"]["name"].split("-")[0] for obj in rendered.objects} == {"acme"}
    assert rendered.one("Service", "acme-trackai-ingestion")
    _assert_references_resolve(rendered)


# --- identities, network policies, gRPC TLS ------------------------------------------------------


#: The Prometheus namespace allowed to scrape /metrics (monitoring.podMonitor.scrapeFrom).
SCRAPERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def _policy(rendered: Any, name: str) -> dict[str, Any]:
    """The NetworkPolicy's spec, without the scrape rule (tested on its own below)."""
    spec: dict[str, Any] = dict(rendered.one("NetworkPolicy", name)["spec"])
    if "ingress" in spec:
        spec["ingress"] = [rule for rule in spec["ingress"] if rule["from"] != SCRAPERS]
    return spec


def test_prometheus_may_scrape_every_process_http_port_and_nothing_else(by_name: Any) -> None:
    rendered = by_name("production-values")
    for svc in SERVICES:
        spec = rendered.one("NetworkPolicy", f"trackai-{svc}")["spec"]
        scrape = [rule for rule in spec["ingress"] if rule["from"] == SCRAPERS]
        assert [rule["ports"] for rule in scrape] == [
            [{"protocol": "TCP", "port": HTTP_PORTS[svc]}]
        ]
    # Without the PodMonitor, no scrape rule at all.
    for policy in by_name("default-values").of_kind("NetworkPolicy"):
        assert all(rule["from"] != SCRAPERS for rule in policy["spec"].get("ingress", []))


def _peers_components(rule: dict[str, Any]) -> set[str]:
    return {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in rule.get("from", rule.get("to", []))
        if "app.kubernetes.io/component" in peer.get("podSelector", {}).get("matchLabels", {})
    }


def _egress_ports(spec: dict[str, Any]) -> set[int]:
    return {port["port"] for rule in spec.get("egress", []) for port in rule.get("ports", [])}


def test_every_pod_of_the_release_is_denied_by_default(ci_render: Any) -> None:
    deny = _policy(ci_render, "trackai-default-deny")
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny
    # Only DNS (and the operator's extra rules) are open to every pod.
    assert {53} <= _egress_ports(deny)
    for obj in [*ci_render.of_kind("Deployment"), *ci_render.of_kind("Job")]:
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert _selects(deny["podSelector"]["matchLabels"], labels)
        component = labels["app.kubernetes.io/component"]
        own = _policy(ci_render, f"trackai-{component}")
        assert _selects(own["podSelector"]["matchLabels"], labels)


def test_grpc_is_open_only_between_the_pairs_that_call_each_other(by_name: Any) -> None:
    rendered = by_name("production-values")
    provisioner = _policy(rendered, "trackai-provisioner")
    (grpc_rule,) = provisioner["ingress"]
    assert _peers_components(grpc_rule) == {
        "ingestion",
        "matcher",
        "dispatcher",
        "agent",
        "console",
    }
    assert {"matchLabels": {"trackai.io/operator": "true"}} in [
        p["podSelector"] for p in grpc_rule["from"]
    ]
    assert [p["port"] for p in grpc_rule["ports"]] == [GRPC_PORTS["provisioner"]]
    matcher = _policy(rendered, "trackai-matcher")
    called = set().union(*(_peers_components(rule) for rule in matcher["egress"]))
    assert called == {"provisioner"}
    (matcher_in,) = matcher["ingress"]
    assert _peers_components(matcher_in) == {"console"}


def test_only_public_services_accept_traffic_from_the_ingress(by_name: Any) -> None:
    rendered = by_name("production-values")
    ingestion = _policy(rendered, "trackai-ingestion")
    http_rules = [
        r for r in ingestion["ingress"] if r["ports"][0]["port"] == HTTP_PORTS["ingestion"]
    ]
    qa_pod = {"matchLabels": {**RELEASE_LABELS, "app.kubernetes.io/component": "qa-test"}}
    # The load balancer, and the in-cluster `helm test` Pod (production-values turns it on).
    assert [r["from"] for r in http_rules] == [
        [{"ipBlock": {"cidr": "10.20.0.0/20"}}],
        [{"podSelector": qa_pod}],
    ]
    for internal in ("matcher", "dispatcher", "provisioner", "agent"):
        for rule in _policy(rendered, f"trackai-{internal}").get("ingress", []):
            assert HTTP_PORTS[internal] not in [p["port"] for p in rule["ports"]]


def test_external_egress_only_where_needed(by_name: Any) -> None:
    rendered = by_name("production-values")
    for svc in SERVICES:
        ports = _egress_ports(_policy(rendered, f"trackai-{svc}"))
        assert {5432, 5671} <= ports
        assert (443 in ports) == (svc in {"dispatcher", "provisioner", "agent"}), svc
        # Ingestion's rate limits; the console's shared live-update history.
        assert (6379 in ports) == (svc in {"ingestion", "console"}), svc
    assert _egress_ports(_policy(rendered, "trackai-migrations")) == {5432}


def test_network_policies_can_be_turned_off(render_inline: Any) -> None:
    assert render_inline({"networkPolicy": {"enabled": False}}).of_kind("NetworkPolicy") == []


def test_each_service_runs_under_its_own_service_account(render_inline: Any) -> None:
    irsa = {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/provisioner"}
    rendered = render_inline(
        {"services": {"provisioner": {"serviceAccount": {"annotations": irsa}}}}
    )
    accounts = {a["metadata"]["name"]: a for a in rendered.of_kind("ServiceAccount")}
    assert set(accounts) == {f"trackai-{svc}" for svc in SERVICES}
    for deployment in rendered.of_kind("Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert _pod_spec(deployment)["serviceAccountName"] == f"trackai-{component}"
    assert accounts["trackai-provisioner"]["metadata"]["annotations"] == irsa
    assert [n for n, a in accounts.items() if a["metadata"].get("annotations")] == [
        "trackai-provisioner"
    ]


def test_grpc_identities_and_tls_reach_every_pod(by_name: Any) -> None:
    rendered = by_name("production-values")
    data = rendered.one("ConfigMap", "trackai-config")["data"]
    callers = json.loads(data["GRPC_CALLER_TOKENS"])
    assert set(callers) == {"ingestion", "matcher", "dispatcher", "agent", "console", "operator"}
    assert data["GRPC_TLS_CERT_FILE"] == "/etc/trackai/grpc-tls/tls.crt"
    assert data["GRPC_TLS_CA_FILE"] == "/etc/trackai/grpc-tls/ca.crt"
    for deployment in rendered.of_kind("Deployment"):
        pod = _pod_spec(deployment)
        assert {"name": "grpc-tls", "secret": {"secretName": "trackai-grpc-tls"}} in pod["volumes"]
        (container,) = pod["containers"]
        assert {
            "name": "grpc-tls",
            "mountPath": "/etc/trackai/grpc-tls",
            "readOnly": True,
        } in container["volumeMounts"]


def test_helm_test_runs_the_non_destructive_qa_gate_as_the_operator(by_name: Any) -> None:
    """`helm test`: one hook Pod running `trackai qa --non-destructive` from the provisioner's
    image (which ships the CLI) against the in-cluster Services, admitted as the operator."""
    rendered = by_name("production-values")
    pod = rendered.one("Pod", "trackai-qa-gate")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["metadata"]["labels"]["trackai.io/operator"] == "true"
    assert pod["spec"]["restartPolicy"] == "Never"
    [container] = pod["spec"]["containers"]
    assert container["image"].endswith("/trackai/provisioner:" + container["image"].split(":")[-1])
    assert container["command"][:4] == ["trackai", "qa", "--non-destructive", "--print-report"]
    assert container["envFrom"] == [{"configMapRef": {"name": "trackai-config"}}]
    env = {e["name"]: e for e in container["env"]}
    assert env["QA_BASE_URL"]["value"] == f"http://trackai-ingestion:{HTTP_PORTS['ingestion']}"
    assert env["GRPC_CLIENT_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "QA_OPERATOR_GRPC_TOKEN"
    assert env["QA_META_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "QA_META_TOKEN"
    assert env["QA_PIXEL_ID"]["value"] == "987654321098765"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["grpc-tls"] == "/etc/trackai/grpc-tls"
    # Its NetworkPolicy: every gRPC server and ingestion's HTTP port, nothing else.
    policy = _policy(rendered, "trackai-qa-test")
    assert policy["policyTypes"] == ["Egress"]
    assert _egress_ports(policy) == {*GRPC_PORTS.values(), HTTP_PORTS["ingestion"]}
    # The chart's default leaves it off (it needs the operator's token in the Secret).
    assert by_name("default-values").of_kind("Pod") == []
