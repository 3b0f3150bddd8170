{{/* Names, labels and the rendered Tern configuration. */}}

{{- define "tern.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tern.fullname" -}}
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

{{- define "tern.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tern.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tern.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tern.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end -}}

{{- define "tern.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tern.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tern.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Tern's configuration: .Values.config (Helm has already deep-merged the
user's values over the defaults of values.yaml) with the presets applied.
*/}}
{{- define "tern.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if .Values.presets.hostMetrics.enabled -}}
{{- fail "presets.hostMetrics needs the hostmetrics receiver, which Tern does not have yet: leave presets.hostMetrics.enabled false" -}}
{{- end -}}
{{- if .Values.presets.loadBalancing.enabled -}}
{{- $config = include "tern.config.loadBalancing" (dict "config" $config "preset" .Values.presets.loadBalancing) | fromYaml -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/*
The loadBalancing preset: a load_balancing/gateway exporter that finds the
gateway pods through their headless Service (the dns resolver) and keeps
each trace (logs and metrics: each service) on one pod; settings given
under config.exporters["load_balancing/gateway"] win. It replaces `debug`
in every pipeline (and `debug` is removed).
*/}}
{{- define "tern.config.loadBalancing" -}}
{{- $config := .config -}}
{{- $preset := .preset -}}
{{- $endpoint := required "presets.loadBalancing.endpoint: host:port of the gateway's headless Service (e.g. tern-gateway-headless.observability.svc.cluster.local:4317)" $preset.endpoint -}}
{{- $parts := splitList ":" $endpoint -}}
{{- if ne (len $parts) 2 -}}
{{- fail (printf "presets.loadBalancing.endpoint: host:port of the gateway's headless Service, found %q" $endpoint) -}}
{{- end -}}
{{- $otlp := dict "compression" $preset.compression "tls" (dict "insecure" $preset.insecure) "retry_on_failure" (dict "max_elapsed_time" 0) -}}
{{- $exporter := dict "protocol" (dict "otlp" $otlp) "resolver" (dict "dns" (dict "hostname" (index $parts 0) "port" (index $parts 1))) -}}
{{- with $preset.routingKey -}}
{{- $_ := set $exporter "routing_key" . -}}
{{- end -}}
{{- $exporters := default dict $config.exporters -}}
{{- $given := default dict (get $exporters "load_balancing/gateway") -}}
{{- $_ := set $exporters "load_balancing/gateway" (mustMergeOverwrite $exporter $given) -}}
{{- range $name, $pipeline := $config.service.pipelines -}}
{{- $list := without (default list $pipeline.exporters) "debug" -}}
{{- if not (has "load_balancing/gateway" $list) -}}
{{- $list = append $list "load_balancing/gateway" -}}
{{- end -}}
{{- $_ := set $pipeline "exporters" $list -}}
{{- end -}}
{{- $_ := unset $exporters "debug" -}}
{{- $_ := set $config "exporters" $exporters -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The Service ports: every enabled port with a servicePort. */}}
{{- define "tern.servicePorts" -}}
{{- range $name, $port := .Values.ports }}
{{- if and $port.enabled $port.servicePort }}
- name: {{ $name }}
  port: {{ $port.servicePort }}
  targetPort: {{ $name }}
  protocol: {{ $port.protocol | default "TCP" }}
  {{- with $port.appProtocol }}
  appProtocol: {{ . }}
  {{- end }}
{{- end }}
{{- end }}
{{- end -}}
