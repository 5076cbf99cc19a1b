{{/* Common labels. */}}
{{- define "stowage.labels" -}}
app.kubernetes.io/part-of: stowage
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{/* The Stowage image reference. */}}
{{- define "stowage.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* --etcd value: the endpoints joined by commas. */}}
{{- define "stowage.etcd" -}}
{{ join "," .Values.etcd.endpoints }}
{{- end -}}

{{/* The Secret holding the management API token (key "token"). */}}
{{- define "stowage.clusterTokenSecret" -}}
{{- .Values.clusterToken.existingSecret | default "stowage-cluster-token" -}}
{{- end }}
