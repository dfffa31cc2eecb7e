{{/*
Names, labels and the shared environment. Everything service-specific lives in _workload.tpl.
*/}}

{{- define "trackai.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "trackai.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trackai
{{- end -}}

{{/* Pod selector of one process: (dict "root" $ "name" <service> "processName" <process>). */}}
{{- define "trackai.selectorLabels" -}}
app.kubernetes.io/name: {{ default .root.Chart.Name .root.Values.nameOverride }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
trackai.io/process: {{ .processName }}
{{- end -}}

{{/* ServiceAccount of one service: (dict "root" $ "name" <service>). */}}
{{- define "trackai.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{- printf "%s-%s" (include "trackai.fullname" .root) .name -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{- define "trackai.secretName" -}}
{{- printf "%s-secrets" (include "trackai.fullname" .) -}}
{{- end -}}

{{/*
The Secret keys some enabled workload (or the migration Job, or the `helm test` Pod) reads, sorted and unique, space
separated: the ExternalSecret copies exactly these, a plain Secret must hold them all.
*/}}
{{- define "trackai.secretKeys" -}}
{{- $keys := list -}}
{{- range $name, $svc := .Values.services -}}
{{- if $svc.enabled -}}
{{- $keys = concat $keys (values $svc.secretEnv) -}}
{{- end -}}
{{- end -}}
{{- if .Values.migrations.enabled -}}
{{- $keys = concat $keys (values .Values.migrations.secretEnv) -}}
{{- end -}}
{{- if .Values.qaTest.enabled -}}
{{- $keys = concat $keys (values .Values.qaTest.secretEnv) -}}
{{- end -}}
{{- $keys | uniq | sortAlpha | join " " -}}
{{- end -}}

{{/*
Env entries that read a workload's own Secret keys: (dict "root" $ "secretEnv" <env → key>).
*/}}
{{- define "trackai.secretEnv" -}}
{{- $secretName := include "trackai.secretName" .root -}}
{{- range $env := keys .secretEnv | sortAlpha }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: {{ get $.secretEnv $env }}
{{- end }}
{{- end -}}

{{/*
Annotations that restart a workload's pods when its Secret keys change: a checksum of exactly
those values for a plain Secret, Stakater Reloader's annotation for an ExternalSecret (written
by its operator after Helm is done). (dict "root" $ "secretEnv" <env → key>).
*/}}
{{- define "trackai.secretRollAnnotations" -}}
{{- $s := .root.Values.secrets -}}
{{- if eq $s.mode "secret" -}}
{{- $picked := dict -}}
{{- range $key := values .secretEnv -}}
{{- $_ := set $picked $key (get $s.values $key) -}}
{{- end }}
checksum/secret: {{ toJson $picked | sha256sum }}
{{- else if $s.reloaderAnnotation }}
secret.reloader.stakater.com/reload: {{ include "trackai.secretName" .root }}
{{- end -}}
{{- end -}}

{{/* Mount point of the gRPC TLS Secret (grpc.tls.secretName). */}}
{{- define "trackai.grpcTlsDir" -}}
/etc/trackai/grpc-tls
{{- end -}}

{{/* Release-wide guards: unsafe or incomplete production values fail the render. */}}
{{- define "trackai.guards" -}}
{{- $c := .Values.config -}}
{{- $local := has $c.environment (list "local" "test") -}}
{{- if not $local -}}
{{- if not .Values.grpc.callers -}}
{{- fail (printf "grpc.callers is empty: outside local/test each caller needs its own token (environment %s)" $c.environment) -}}
{{- end -}}
{{- if not (or .Values.grpc.tls.secretName .Values.grpc.tls.mesh) -}}
{{- fail "gRPC must be encrypted outside local/test: set grpc.tls.secretName, or grpc.tls.mesh=true when a service mesh encrypts pod traffic" -}}
{{- end -}}
{{- if not (include "trackai.trackingScriptUrl" .) -}}
{{- fail "config.trackingScriptUrl is empty and the ingestion ingress has no host to derive it from" -}}
{{- end -}}
{{- end -}}
{{- $ing := .Values.services.ingestion -}}
{{- if and $ing.enabled $ing.ingress.enabled (not $ing.trustedProxies) -}}
{{- fail "services.ingestion.trustedProxies is required with the ingestion ingress on: the CIDRs of the load balancer / ingress controller, or every visitor gets the balancer's IP" -}}
{{- end -}}
{{- if eq .Values.secrets.mode "secret" -}}
{{- range $key := include "trackai.secretKeys" . | splitList " " -}}
{{- if not (hasKey $.Values.secrets.values $key) -}}
{{- fail (printf "secrets.values.%s is missing: an enabled workload reads it (use \"\" for an unused integration)" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* TRACKING_SCRIPT_URL: the value, else derived from the first ingestion ingress host. */}}
{{- define "trackai.trackingScriptUrl" -}}
{{- $ing := .Values.services.ingestion -}}
{{- if .Values.config.trackingScriptUrl -}}
{{- .Values.config.trackingScriptUrl -}}
{{- else if and $ing.enabled $ing.ingress.enabled $ing.ingress.hosts -}}
{{- printf "https://%s/sdk/v1/track.js" (first $ing.ingress.hosts).host -}}
{{- end -}}
{{- end -}}

{{- define "trackai.configMapName" -}}
{{- printf "%s-config" (include "trackai.fullname" .) -}}
{{- end -}}

{{/* Image reference of one service: (dict "root" $ "svc" <service values>). */}}
{{- define "trackai.image" -}}
{{- $img := .root.Values.image -}}
{{- printf "%s/%s:%s" $img.registry .svc.image.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}

{{/*
The non-secret environment as a YAML map, the single source for the ConfigMap (workloads) and
the migration Job (which runs before the ConfigMap exists). Listen hosts are 0.0.0.0 because
the kit defaults to loopback, which a kubelet probe or a peer pod cannot reach.
*/}}
{{- define "trackai.configEnv" -}}
{{- $c := .Values.config -}}
{{- $env := dict
  "TRACKAI_ENV" $c.environment
  "SENTRY_RELEASE" (printf "trackai@%s" (default .Chart.AppVersion .Values.image.tag))
  "LOG_LEVEL" $c.logLevel
  "OTEL_EXPORTER_OTLP_ENDPOINT" $c.otelExporterOtlpEndpoint
  "CF_BASE_DOMAIN" $c.cfBaseDomain
  "META_GRAPH_URL" $c.metaGraphUrl
  "META_API_VERSION" $c.metaApiVersion
  "INGESTION_RATE_LIMIT_PER_MINUTE" (toString (int64 $c.ingestionRateLimitPerMinute))
  "INGESTION_COLLECT_IP_RATE_LIMIT_PER_MINUTE" (toString (int64 $c.collectIpRateLimitPerMinute))
  "INGESTION_COLLECT_TENANT_RATE_LIMIT_PER_MINUTE" (toString (int64 $c.collectTenantRateLimitPerMinute))
  "CLOUDFLARE_ZONE_ID" $c.cloudflareZoneId
  "GTM_ACCOUNT_ID" $c.gtmAccountId
  "STAPE_API_URL" $c.stapeApiUrl
  "INGESTION_TRUSTED_PROXIES" (join "," .Values.services.ingestion.trustedProxies)
-}}
{{- with include "trackai.trackingScriptUrl" . -}}
{{- $_ := set $env "TRACKING_SCRIPT_URL" . -}}
{{- end -}}
{{- $g := .Values.grpc -}}
{{- if $g.callers -}}
{{- $_ := set $env "GRPC_CALLER_TOKENS" (toJson $g.callers) -}}
{{- end -}}
{{- if $g.tls.secretName -}}
{{- $dir := include "trackai.grpcTlsDir" . -}}
{{- $_ := set $env "GRPC_TLS_CERT_FILE" (printf "%s/tls.crt" $dir) -}}
{{- $_ := set $env "GRPC_TLS_KEY_FILE" (printf "%s/tls.key" $dir) -}}
{{- $_ := set $env "GRPC_TLS_CA_FILE" (printf "%s/ca.crt" $dir) -}}
{{- end -}}
{{- if $g.tls.mesh -}}
{{- $_ := set $env "GRPC_TLS_BY_MESH" "true" -}}
{{- end -}}
{{- $fullname := include "trackai.fullname" . -}}
{{- range $name, $svc := .Values.services -}}
{{- if $svc.enabled -}}
{{- $prefix := upper $name -}}
{{- $_ := set $env (printf "%s_HTTP_HOST" $prefix) "0.0.0.0" -}}
{{- $_ := set $env (printf "%s_HTTP_PORT" $prefix) (toString (int64 $svc.ports.http)) -}}
{{- if hasKey $svc.ports "grpc" -}}
{{- $_ := set $env (printf "%s_GRPC_HOST" $prefix) "0.0.0.0" -}}
{{- $_ := set $env (printf "%s_GRPC_PORT" $prefix) (toString (int64 $svc.ports.grpc)) -}}
{{- if and (hasKey $svc.processes "serve") $svc.processes.serve.enabled -}}
{{/* Where peers reach this service's gRPC server (its Service in this namespace). */}}
{{- $_ := set $env (printf "%s_GRPC_TARGET" $prefix) (printf "%s-%s:%d" $fullname $name (int64 $svc.ports.grpc)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with .Values.services.agent -}}
{{- if .enabled -}}
{{- $a := .assistant -}}
{{- $_ := set $env "AGENT_LLM_BASE_URL" $a.llmBaseUrl -}}
{{- $_ := set $env "AGENT_LLM_MODEL" $a.llmModel -}}
{{- $_ := set $env "AGENT_LLM_TIMEOUT_S" (toString $a.llmTimeoutSeconds) -}}
{{- $_ := set $env "AGENT_MAX_TOOL_CALLS_PER_TURN" (toString (int64 $a.maxToolCallsPerTurn)) -}}
{{- $_ := set $env "AGENT_MAX_SESSION_TOKENS" (toString (int64 $a.maxSessionTokens)) -}}
{{- $ing := $.Values.services.ingestion -}}
{{- if $a.webhookBaseUrl -}}
{{- $_ := set $env "AGENT_WEBHOOK_BASE_URL" $a.webhookBaseUrl -}}
{{- else if and $ing.enabled $ing.ingress.enabled $ing.ingress.hosts -}}
{{- $_ := set $env "AGENT_WEBHOOK_BASE_URL" (printf "https://%s" (first $ing.ingress.hosts).host) -}}
{{- end -}}
{{- $con := $.Values.services.console -}}
{{- if $a.transcriptUrlTemplate -}}
{{- $_ := set $env "AGENT_TRANSCRIPT_URL_TEMPLATE" $a.transcriptUrlTemplate -}}
{{- else if and $con.enabled $con.ingress.enabled $con.ingress.hosts -}}
{{- $_ := set $env "AGENT_TRANSCRIPT_URL_TEMPLATE" (printf "https://%s/operador/conversas/{session_id}" (first $con.ingress.hosts).host) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- with .Values.services.console -}}
{{- if .enabled -}}
{{- $_ := set $env "CONSOLE_LIVE_HISTORY" (toString (int64 .liveHistory.size)) -}}
{{- $_ := set $env "CONSOLE_LIVE_HISTORY_HOURS" (toString .liveHistory.hours) -}}
{{- end -}}
{{- if and .enabled .ingress.enabled .ingress.hosts -}}
{{/* One-time password links point at the console's public address. */}}
{{- $_ := set $env "CONSOLE_PUBLIC_URL" (printf "https://%s" (index .ingress.hosts 0).host) -}}
{{- end -}}
{{- end -}}
{{- range $key, $value := $c.extraEnv -}}
{{- if hasKey $env $key -}}
{{- fail (printf "config.extraEnv.%s collides with a variable the chart manages; set it through its own value" $key) -}}
{{- end -}}
{{- $_ := set $env $key $value -}}
{{- end -}}
{{- toYaml $env -}}
{{- end -}}

{{/* One step of the migration Job: (dict "root" $ "name" <service> "env" <config map>). */}}
{{- define "trackai.migrationContainer" -}}
{{- $root := .root -}}
{{- $svc := get $root.Values.services .name -}}
- name: migrate-{{ .name }}
  image: {{ include "trackai.image" (dict "root" $root "svc" $svc) }}
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["python", "-m", "trackai_{{ .name }}", "migrate"]
  env:
    {{- /* Only the shared keys and this service's own <SVC>_* keys: the rest is noise to a migration. */}}
    {{- $own := printf "%s_" (upper .name) }}
    {{- $others := list }}
    {{- range $other, $_ := $root.Values.services }}
    {{- if ne $other $.name }}
    {{- $others = append $others (printf "%s_" (upper $other)) }}
    {{- end }}
    {{- end }}
    - name: DATABASE_SERVICE_ROLE
      value: {{ $svc.databaseRole | quote }}
    {{- include "trackai.secretEnv" (dict "root" $root "secretEnv" $root.Values.migrations.secretEnv) | trim | nindent 4 }}
    {{- range $key, $value := .env }}
    {{- $foreign := false }}
    {{- range $others }}
    {{- if hasPrefix . $key }}
    {{- $foreign = true }}
    {{- end }}
    {{- end }}
    {{- if not $foreign }}
    - name: {{ $key }}
      value: {{ $value | quote }}
    {{- end }}
    {{- end }}
  resources:
    {{- toYaml $root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end -}}
