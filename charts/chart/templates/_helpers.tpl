{{/*
Expand the name of the chart.
*/}}
{{- define "segment-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
We truncate at 63 chars because some Kubernetes name fields are limited to this (by the DNS naming spec).
If release name contains chart name it will be used as a full name.
*/}}
{{- define "segment-operator.fullname" -}}
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
Namespace for generated references.
Always uses the Helm release namespace.
*/}}
{{- define "segment-operator.namespaceName" -}}
{{- .Release.Namespace }}
{{- end }}

{{/*
Resource name with proper truncation for Kubernetes 63-character limit.
Takes a dict with:
  - .suffix: Resource name suffix (e.g., "metrics", "webhook")
  - .context: Template context (root context with .Values, .Release, etc.)
Dynamically calculates safe truncation to ensure total name length <= 63 chars.
*/}}
{{- define "segment-operator.resourceName" -}}
{{- $fullname := include "segment-operator.fullname" .context }}
{{- $suffix := .suffix }}
{{- $maxLen := sub 62 (len $suffix) | int }}
{{- if gt (len $fullname) $maxLen }}
{{- printf "%s-%s" (trunc $maxLen $fullname | trimSuffix "-") $suffix | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" $fullname $suffix | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
ServiceAccount name to use.
When enabled, use the chart's ServiceAccount name.
When disabled, serviceAccount.name must be set; use "default" to pick the namespace default ServiceAccount.
*/}}
{{- define "segment-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.enabled }}
{{- include "segment-operator.resourceName" (dict "suffix" "controller-manager" "context" .) }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.enabled=false (set name: default explicitly to use the namespace default ServiceAccount)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The labels Helm puts on every object of the release.
*/}}
{{- define "segment-operator.labels" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/name: {{ include "segment-operator.name" . }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version | replace "+" "_" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
An object of config/ that is not in dist/install.yaml (config/prometheus,
config/network-policy), copied into files/ by `make chart`, placed in the release: in its
namespace, named with its prefix instead of "segment-operator-", with its labels.
Takes a dict with:
  - .file: the path under the chart (e.g., "files/prometheus/rules.yaml")
  - .context: Template context (root context with .Values, .Release, etc.)
  - .labels: more labels (optional)
*/}}
{{- define "segment-operator.fromConfig" -}}
{{- $ctx := .context }}
{{- $obj := $ctx.Files.Get .file | fromYaml }}
{{- if not $obj.metadata }}
{{- fail (printf "%s holds no object" .file) }}
{{- end }}
{{- $suffix := trimPrefix "segment-operator-" $obj.metadata.name }}
{{- $_ := set $obj.metadata "name" (include "segment-operator.resourceName" (dict "suffix" $suffix "context" $ctx)) }}
{{- $_ := set $obj.metadata "namespace" $ctx.Release.Namespace }}
{{- $_ := set $obj.metadata "labels" (merge (include "segment-operator.labels" $ctx | fromYaml) (.labels | default dict) ($obj.metadata.labels | default dict)) }}
{{- toYaml $obj }}
{{- end }}
