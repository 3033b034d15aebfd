{{/*
Names. Every object's name is <namePrefix>-<what>; with the default prefix they are deploy/'s.
*/}}
{{- define "noma.prefix" -}}
{{- required "namePrefix must not be empty" .Values.namePrefix -}}
{{- end -}}

{{- define "noma.agent" -}}
{{- include "noma.prefix" . }}-agent
{{- end -}}

{{- define "noma.coordinator" -}}
{{- include "noma.prefix" . }}-coordinator
{{- end -}}

{{- define "noma.tlsSecret" -}}
{{- if eq .Values.tls.mode "secret" -}}
{{- required "tls.mode secret: set tls.secretName to your Secret (tls.crt, tls.key, ca.crt)" .Values.tls.secretName -}}
{{- else -}}
{{- .Values.tls.secretName | default (printf "%s-coordinator-tls" (include "noma.prefix" .)) -}}
{{- end -}}
{{- end -}}

{{- define "noma.caConfigMap" -}}
{{- include "noma.prefix" . }}-coordinator-ca
{{- end -}}

{{- define "noma.labelKeysConfigMap" -}}
{{- include "noma.prefix" . }}-agent-label-keys
{{- end -}}

{{- define "noma.imageAllowList" -}}
{{- include "noma.prefix" . }}-image-allow-list
{{- end -}}

{{/* The label the ClusterRoles of noma-admin's aggregation carry. */}}
{{- define "noma.aggregateLabel" -}}
noma.dev/aggregate-to-{{ include "noma.prefix" . }}-admin
{{- end -}}

{{/*
The CEL test "this request comes from a ServiceAccount named <name>, in any namespace" (the
policies recognise noma's identities by name, so that they hold wherever noma is installed).
*/}}
{{- define "noma.isServiceAccount" -}}
request.userInfo.username.startsWith('system:serviceaccount:') &&
        request.userInfo.username.endsWith(':{{ . }}')
{{- end -}}

{{- define "noma.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/*
Labels of an object: deploy/'s (app.kubernetes.io/name, component, and part-of, which
kustomize adds), then Helm's own. Call with (dict "root" $ "component" "agent"); an empty
component leaves the label out, as deploy/'s Namespace and default-deny policy do.
*/}}
{{- define "noma.labels" -}}
app.kubernetes.io/name: noma
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/part-of: noma
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector (and pod template) labels: deploy/'s, without Helm's. */}}
{{- define "noma.selector" -}}
app.kubernetes.io/name: noma
app.kubernetes.io/component: {{ . }}
{{- end -}}

{{/* One item a line, each ending with a newline (agent/labels/keys.ts, labelKeysConfigMap). */}}
{{- define "noma.lines" -}}
{{- range . }}{{ . }}
{{ end -}}
{{- end -}}

