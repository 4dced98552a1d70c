{{/*
The chart name, or nameOverride.
*/}}
{{- define "cri-enricherd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of every resource: fullnameOverride, or release-name, or just
the release name when it already contains the chart name. Truncated to 63
characters because some Kubernetes name fields are limited to that (DNS label).
*/}}
{{- define "cri-enricherd.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
chart-version, as the helm.sh/chart label wants it.
*/}}
{{- define "cri-enricherd.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "cri-enricherd.labels" -}}
helm.sh/chart: {{ include "cri-enricherd.chart" . }}
{{ include "cri-enricherd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: node-agent
app.kubernetes.io/part-of: cri-enricherd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the pods; they must never change across upgrades, since a
DaemonSet's selector is immutable.
*/}}
{{- define "cri-enricherd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cri-enricherd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "cri-enricherd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cri-enricherd.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference: [registry/]repository[:tag][@digest]. The registry is
empty unless the operator sets one.
*/}}
{{- define "cri-enricherd.image" -}}
{{- $repo := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo }}
{{- end }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" $repo $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}
{{- end }}

{{/*
Where the runtime's socket directory appears inside the container.
*/}}
{{- define "cri-enricherd.runtimeMountPath" -}}
{{- printf "/host%s" .Values.runtime.socketDir }}
{{- end }}

{{/*
The metrics listener's port: the one in config.metrics.address when set,
else the daemon's default (:9808; test/deploy checks the two agree). A
loopback address is refused: the kubelet's probes and Prometheus reach the
pod on its own IP.
*/}}
{{- define "cri-enricherd.metricsPort" -}}
{{- $addr := dig "metrics" "address" "" (.Values.config | default dict) }}
{{- if $addr }}
{{- $host := regexReplaceAll ":[0-9]+$" $addr "" | trimPrefix "[" | trimSuffix "]" }}
{{- if or (eq $host "localhost") (hasPrefix "127." $host) (eq $host "::1") }}
{{- fail (printf "config.metrics.address %q listens on loopback only: the kubelet's probes and Prometheus could not reach it; use :PORT" $addr) }}
{{- end }}
{{- regexFind "[0-9]+$" $addr }}
{{- else }}
{{- 9808 }}
{{- end }}
{{- end }}

{{/*
The metrics path: config.metrics.path when set, else the daemon's default.
*/}}
{{- define "cri-enricherd.metricsPath" -}}
{{- dig "metrics" "path" "/metrics" (.Values.config | default dict) }}
{{- end }}

{{/*
The keys the chart owns in the daemon's config: they must agree with the
volume mounts, so .Values.config may not set them.
*/}}
{{- define "cri-enricherd.ownedConfig" -}}
{{- if eq .Values.apiSocket.name .Values.apiSocket.grpcName }}
{{- fail "apiSocket.name and apiSocket.grpcName must differ" }}
{{- end }}
runtime:
  endpoint: {{ printf "unix://%s/%s" (include "cri-enricherd.runtimeMountPath" .) .Values.runtime.socketName | quote }}
cgroup:
  root: /host/sys/fs/cgroup
proc:
  root: /host/proc
api:
  socket: {{ printf "%s/%s" .Values.apiSocket.dir .Values.apiSocket.name | quote }}
  grpc_socket: {{ with .Values.apiSocket.grpcName }}{{ printf "%s/%s" $.Values.apiSocket.dir . | quote }}{{ else }}""{{ end }}
{{- end }}

{{/*
The daemon's config file: the chart-owned keys plus exactly what the user put
in .Values.config, nothing else, so every other key keeps the daemon's own
default. Values are written as JSON scalars (valid YAML) so that numbers are
never printed in exponent form and strings stay strings.
*/}}
{{- define "cri-enricherd.configFile" -}}
{{- $user := deepCopy (.Values.config | default dict) }}
{{- $owned := include "cri-enricherd.ownedConfig" . | fromYaml }}
{{- range $section, $keys := $owned }}
{{- range $key, $_ := $keys }}
{{- if hasKey (get $user $section | default dict) $key }}
{{- fail (printf "config.%s.%s is set by the chart from its host path values (runtime, hostPaths, apiSocket); set those instead" $section $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if hasKey $user "node_name" }}
{{- fail "config.node_name is set per node from the downward API (NODE_NAME); remove it" }}
{{- end }}
{{- $cfg := mergeOverwrite $user $owned -}}
# Written by the cri-enricherd chart: host paths from the chart's values, the
# rest from .Values.config. Keys not listed keep the daemon's defaults.
{{- range $section, $keys := $cfg }}
{{- if kindIs "map" $keys }}
{{ $section }}:
{{- range $key, $value := $keys }}
  {{ $key }}: {{ toJson $value }}
{{- end }}
{{- else }}
{{ $section }}: {{ toJson $keys }}
{{- end }}
{{- end }}
{{- end }}
