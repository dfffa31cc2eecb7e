"""What the rendered chart promises operators: probes, autoscaling, hooks, secrets, hardening."""

from __future__ import annotations

from typing import Any

import pytest

# The chart must agree with the ports the services default to.
from trackai_kit.settings import GRPC_PORTS, HTTP_PORTS

SERVICES = ("ingestion", "matcher", "dispatcher", "provisioner", "agent", "console")
PROCESSES = {
    "ingestion": ("serve", "relay"),
    "matcher": ("serve", "consume"),
    "dispatcher": ("serve", "consume"),
}
SECRET_KEYS = {
    "DATABASE_URL",
    "AMQP_URL",
    "GRPC_AUTH_TOKEN",
    "SENTRY_DSN",
    "TRACKAI_ENCRYPTION_KEYS",
    "META_APP_TOKEN",
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
    ):
        assert isinstance(data[key], str)
    assert not SECRET_KEYS & set(data), "secrets must not leak into the ConfigMap"


def test_production_values_reach_the_config_map(by_name: Any) -> None:
    data = by_name("production-values").one("ConfigMap", "trackai-config")["data"]
    assert data["TRACKAI_ENV"] == "production"
    assert data["CF_BASE_DOMAIN"] == "track.example.com"
    assert data["INGESTION_RATE_LIMIT_PER_MINUTE"] == "1200"
    assert data["DISPATCHER_BATCH_MAX"] == "1000"


def test_every_workload_reads_the_config_map_and_the_secret(ci_render: Any) -> None:
    for deployment in ci_render.of_kind("Deployment"):
        (container,) = _pod_spec(deployment)["containers"]
        assert container["envFrom"] == [
            {"configMapRef": {"name": "trackai-config"}},
            {"secretRef": {"name": "trackai-secrets"}},
        ]


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
    assert {item["secretKey"] for item in spec["data"]} == SECRET_KEYS
    assert all(item["remoteRef"]["property"] == item["secretKey"] for item in spec["data"])
    remote_keys = {item["remoteRef"]["key"] for item in spec["data"]}
    assert remote_keys == {secrets["externalSecret"]["remoteKey"]}
    assert external["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"


def test_plain_secret_mode_renders_every_key_and_no_external_secret(by_name: Any) -> None:
    rendered = by_name("dev-values")
    assert rendered.of_kind("ExternalSecret") == []
    secret = rendered.one("Secret", "trackai-secrets")
    assert set(secret["stringData"]) == SECRET_KEYS
    assert secret["stringData"]["DATABASE_URL"].startswith("postgresql://")
    assert set(secret["metadata"]["annotations"]["helm.sh/hook"].split(",")) == HOOK_EVENTS
    # A changed secret rolls the pods, since envFrom is read only at container start.
    for deployment in rendered.of_kind("Deployment"):
        assert "checksum/secret" in deployment["spec"]["template"]["metadata"]["annotations"]


def test_process_env_overrides_the_config_map_for_that_process_only(render_inline: Any) -> None:
    rendered = render_inline(
        {"services": {"matcher": {"processes": {"consume": {"env": {"LOG_LEVEL": "DEBUG"}}}}}}
    )
    consumer = rendered.one("Deployment", "trackai-matcher-consume")
    server = rendered.one("Deployment", "trackai-matcher-serve")
    # Kubernetes gives `env` precedence over `envFrom`.
    assert _pod_spec(consumer)["containers"][0]["env"] == [{"name": "LOG_LEVEL", "value": "DEBUG"}]
    assert "env" not in _pod_spec(server)["containers"][0]


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
        assert container["envFrom"] == [{"secretRef": {"name": "trackai-secrets"}}]
        env = {e["name"]: e["value"] for e in container["env"]}
        own = container["name"].removeprefix("migrate-").upper()
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
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                else:
                    assert source["secretRef"]["name"] in secret_names
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
