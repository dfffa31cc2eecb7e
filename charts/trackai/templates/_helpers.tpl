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

{{- define "trackai.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "trackai.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "trackai.secretName" -}}
{{- printf "%s-secrets" (include "trackai.fullname" .) -}}
{{- end -}}

{{/* The keys every process expects in its Secret (the ExternalSecret copies exactly these). */}}
{{- define "trackai.secretKeys" -}}
DATABASE_URL AMQP_URL GRPC_AUTH_TOKEN SENTRY_DSN TRACKAI_ENCRYPTION_KEYS META_APP_TOKEN CLOUDFLARE_API_TOKEN STAPE_API_KEY GTM_CREDENTIALS_JSON
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
  "LOG_LEVEL" $c.logLevel
  "OTEL_EXPORTER_OTLP_ENDPOINT" $c.otelExporterOtlpEndpoint
  "CF_BASE_DOMAIN" $c.cfBaseDomain
  "META_GRAPH_URL" $c.metaGraphUrl
  "META_API_VERSION" $c.metaApiVersion
  "INGESTION_RATE_LIMIT_PER_MINUTE" (toString (int64 $c.ingestionRateLimitPerMinute))
-}}
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
{{- with .Values.services.console -}}
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
  envFrom:
    - secretRef:
        name: {{ include "trackai.secretName" $root }}
  resources:
    {{- toYaml $root.Values.migrations.resources | nindent 4 }}
  securityContext:
    {{- toYaml $root.Values.containerSecurityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end -}}
