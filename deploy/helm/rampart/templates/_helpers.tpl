{{/* The release's name prefix of every object. */}}
{{- define "rampart.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "rampart.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object; dict root, component. */}}
{{- define "rampart.labels" -}}
{{ include "rampart.selectorLabels" . }}
app.kubernetes.io/part-of: rampart
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The NATS URL the services connect to. */}}
{{- define "rampart.natsURL" -}}
{{- if .Values.nats.enabled -}}
nats://{{ include "rampart.fullname" . }}-nats.{{ .Release.Namespace }}.svc:4222
{{- else -}}
{{- required "nats.url is required when nats.enabled is false" .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* Stream and bucket replicas: 1, 3 or 5. */}}
{{- define "rampart.replicas" -}}
{{- if .Values.replicas -}}{{ .Values.replicas }}
{{- else if .Values.nats.enabled -}}{{ .Values.nats.replicas }}
{{- else -}}1{{- end -}}
{{- end -}}

{{/* The image of one service; dict root, name. */}}
{{- define "rampart.image" -}}
{{- $img := .root.Values.image -}}
{{- $repo := printf "%s/rampart-%s" $img.registry .name -}}
{{- with get $img.digests .name -}}
{{ $repo }}@{{ . }}
{{- else -}}
{{ $repo }}:{{ $img.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Whether a monitoring.coreos.com object renders; dict root, mode. */}}
{{- define "rampart.monitoring" -}}
{{- if or (eq (toString .mode) "true") (and (eq (toString .mode) "auto") (.root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}
true
{{- end -}}
{{- end -}}

{{/*
The secret flags of each service, by the name values.<service>.secrets uses:
the flag the file is passed to, and whether the flag takes a reference
(file:PATH) or a plain path.
*/}}
{{- define "rampart.secretFlags" -}}
scanner:
  verdict-key: {flag: verdict-key, ref: false}
  registries: {flag: registries, ref: false}
  registry-webhook-token: {flag: registry-webhook-token, ref: true}
  registry-webhook-password: {flag: registry-webhook-password, ref: true}
  registry-webhook-header: {flag: registry-webhook-header, ref: true}
  github-webhook-secret: {flag: github-webhook-secret, ref: true}
  gitlab-webhook-token: {flag: gitlab-webhook-token, ref: true}
  sarif-token: {flag: sarif-token, ref: true}
  github-token: {flag: github-token, ref: true}
  admin-token: {flag: admin-token, ref: true}
deployer:
  scanner-key: {flag: scanner-key, ref: false}
  admin-token: {flag: admin-token-file, ref: false}
watcher:
  alertmanager-token: {flag: alertmanager-token, ref: true}
  alertmanager-password: {flag: alertmanager-password, ref: true}
  siem-secret: {flag: siem-secret, ref: true}
notifier: {}
ledger: {}
{{- end -}}

{{/* RAMPART_<FLAG> for a flag name. */}}
{{- define "rampart.env" -}}
RAMPART_{{ . | upper | replace "-" "_" }}
{{- end -}}

{{/*
One service's Deployment. dict root, name, env (YAML list of extra
variables), volumes and mounts (YAML lists), required (secret names that
must be set).
*/}}
{{- define "rampart.deployment" -}}
{{- $root := .root -}}
{{- $name := .name -}}
{{- $svc := get $root.Values $name -}}
{{- $full := include "rampart.fullname" $root -}}
{{- $flags := get (include "rampart.secretFlags" $root | fromYaml) $name -}}
{{- range .required }}
{{- if not (hasKey $svc.secrets .) }}
{{- fail (printf "%s.secrets.%s is required: {name: <existing Secret>, key: <key>}" $name .) }}
{{- end }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $full }}-{{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "rampart.labels" (dict "root" $root "component" $name) | nindent 4 }}
spec:
  replicas: {{ $svc.replicas }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "rampart.selectorLabels" (dict "root" $root "component" $name) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "rampart.labels" (dict "root" $root "component" $name) | nindent 8 }}
      {{- with $svc.podAnnotations }}
      annotations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    spec:
      serviceAccountName: {{ $full }}-{{ $name }}
      automountServiceAccountToken: {{ eq $name "deployer" }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        fsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ $name }}
          image: {{ include "rampart.image" (dict "root" $root "name" $name) | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          env:
            - name: RAMPART_NATS
              value: {{ include "rampart.natsURL" $root | quote }}
            - name: RAMPART_HTTP
              value: "0.0.0.0:8080"
            - name: RAMPART_STREAM_REPLICAS
              value: {{ include "rampart.replicas" $root | quote }}
            - name: RAMPART_POLICY
              value: /etc/rampart/policy/rampart.yaml
            {{- range $key, $ref := $svc.secrets }}
            {{- with get $flags $key }}
            - name: {{ include "rampart.env" .flag }}
              value: {{ printf "%s/etc/rampart/secrets/%s" (ternary "file:" "" .ref) $key | quote }}
            {{- end }}
            {{- end }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- range $k, $v := $svc.env }}
            - name: {{ $k }}
              value: {{ $v | quote }}
            {{- end }}
            {{- range $svc.secretEnv }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ .secret.name }}
                  key: {{ .secret.key }}
            {{- end }}
          ports:
            - name: http
              containerPort: 8080
              protocol: TCP
          startupProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 2
            failureThreshold: 60
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /readyz, port: http}
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            privileged: false
            capabilities:
              drop: [ALL]
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: policy
              mountPath: /etc/rampart/policy
              readOnly: true
            {{- if $svc.secrets }}
            - name: secrets
              mountPath: /etc/rampart/secrets
              readOnly: true
            {{- end }}
            {{- with .mounts }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        - name: policy
          configMap:
            name: {{ $root.Values.policy.existingConfigMap | default (printf "%s-policy" $full) }}
            items:
              - key: rampart.yaml
                path: rampart.yaml
        {{- if $svc.secrets }}
        - name: secrets
          projected:
            defaultMode: 0440
            sources:
              {{- range $key, $ref := $svc.secrets }}
              - secret:
                  name: {{ $ref.name }}
                  items:
                    - key: {{ $ref.key }}
                      path: {{ $key }}
              {{- end }}
        {{- end }}
        {{- with .volumes }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
