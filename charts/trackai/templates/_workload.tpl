{{/*
The one workload template. Called once per enabled (service, process) pair with
  (dict "root" $ "name" <service name> "svc" <service values> "processName" <process name> "process" <process values>)
it renders the Deployment, the PodDisruptionBudget, the optional HorizontalPodAutoscaler and, for
the `serve` process (the one with the HTTP + gRPC servers), the Service. Adding a service means
adding a values block, never a template.
*/}}
{{- define "trackai.workload" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
{{- $process := .process -}}
{{- $fullname := include "trackai.fullname" $root -}}
{{- $workloadName := printf "%s-%s-%s" $fullname .name .processName -}}
{{- $isServe := eq .processName "serve" -}}
{{- $hasGrpc := and $isServe (hasKey $svc.ports "grpc") -}}
{{- $hpaEnabled := and (hasKey $process "hpa") $process.hpa.enabled -}}
{{- if and $hpaEnabled (gt (int $process.hpa.minReplicas) (int $process.hpa.maxReplicas)) -}}
{{- fail (printf "services.%s.processes.%s.hpa: minReplicas (%v) exceeds maxReplicas (%v)" .name .processName $process.hpa.minReplicas $process.hpa.maxReplicas) -}}
{{- end -}}
{{- $selector := include "trackai.selectorLabels" (dict "root" $root "name" .name "processName" .processName) -}}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $workloadName }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "trackai.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
    trackai.io/process: {{ .processName }}
spec:
  {{- /* With an HPA the replica count belongs to it; setting it here would undo scaling on every upgrade. */}}
  {{- if not $hpaEnabled }}
  replicas: {{ $process.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "trackai.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .name }}
        trackai.io/process: {{ .processName }}
      annotations:
        {{- /* envFrom is read at container start only: a changed value must roll the pods. */}}
        checksum/config: {{ include "trackai.configEnv" $root | sha256sum }}
        {{- include "trackai.secretRollAnnotations" (dict "root" $root "secretEnv" $svc.secretEnv) | trim | nindent 8 }}
    spec:
      serviceAccountName: {{ include "trackai.serviceAccountName" (dict "root" $root "name" .name) }}
      automountServiceAccountToken: false
      terminationGracePeriodSeconds: {{ $process.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .name }}
          image: {{ include "trackai.image" (dict "root" $root "svc" $svc) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", "trackai_{{ .name }}", "{{ .processName }}"]
          ports:
            - name: http
              containerPort: {{ $svc.ports.http }}
              protocol: TCP
            {{- if $hasGrpc }}
            - name: grpc
              containerPort: {{ $svc.ports.grpc }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "trackai.configMapName" $root }}
          {{- /* Only this service's own Secret keys, one by one: never the whole Secret. */}}
          env:
            {{- include "trackai.secretEnv" (dict "root" $root "secretEnv" $svc.secretEnv) | trim | nindent 12 }}
            {{- range $key, $value := $process.env }}
            {{- if hasKey $svc.secretEnv $key }}
            {{- fail (printf "services.%s.processes.%s.env.%s collides with a Secret key of the service" $.name $.processName $key) }}
            {{- end }}
            - name: {{ $key }}
              value: {{ $value | quote }}
            {{- end }}
          startupProbe:
            httpGet: { path: /health, port: http }
            {{- toYaml $root.Values.probes.startup | nindent 12 }}
          livenessProbe:
            httpGet: { path: /health, port: http }
            {{- toYaml $root.Values.probes.liveness | nindent 12 }}
          readinessProbe:
            httpGet: { path: /ready, port: http }
            {{- toYaml $root.Values.probes.readiness | nindent 12 }}
          {{- if and $isServe $process.preStopSleepSeconds }}
          {{- /* Keep serving while the endpoint removal reaches every kube-proxy and ingress. */}}
          lifecycle:
            preStop:
              exec:
                command: ["sleep", "{{ $process.preStopSleepSeconds }}"]
          {{- end }}
          resources:
            {{- toYaml $process.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            {{- /* The root filesystem is read-only; Python and TLS libraries still want a /tmp. */}}
            - name: tmp
              mountPath: /tmp
            {{- if $root.Values.grpc.tls.secretName }}
            - name: grpc-tls
              mountPath: {{ include "trackai.grpcTlsDir" $root }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with $root.Values.grpc.tls.secretName }}
        - name: grpc-tls
          secret:
            secretName: {{ . }}
        {{- end }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- $selector | nindent 14 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $workloadName }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "trackai.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
    trackai.io/process: {{ .processName }}
spec:
  {{ $process.pdb.policy }}: {{ $process.pdb.value }}
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
{{- if $hpaEnabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ $workloadName }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "trackai.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
    trackai.io/process: {{ .processName }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ $workloadName }}
  minReplicas: {{ $process.hpa.minReplicas }}
  maxReplicas: {{ $process.hpa.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $process.hpa.targetCPUUtilizationPercentage }}
  behavior:
    {{- /* Webhook bursts are short: scale up at once, scale down only after 5 quiet minutes. */}}
    scaleUp:
      stabilizationWindowSeconds: 0
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end }}
{{- if $isServe }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $fullname }}-{{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "trackai.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  type: ClusterIP
  selector:
    {{- $selector | nindent 4 }}
  ports:
    - name: http
      port: {{ $svc.ports.http }}
      targetPort: http
      protocol: TCP
      appProtocol: http
    {{- if $hasGrpc }}
    - name: grpc
      port: {{ $svc.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    {{- end }}
{{- end }}
{{- end -}}
