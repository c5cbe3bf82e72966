{{/* Names and labels shared by every template of the chart. */}}

{{- define "upshift.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "upshift.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "upshift.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "upshift.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component (api, worker, migrate): pass (list $ "api"). */}}
{{- define "upshift.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "upshift.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "upshift.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "upshift.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "upshift.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* Environment of every process: store secrets, the config map, extra sources. */}}
{{- define "upshift.env" -}}
- name: UPSHIFT_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.existingSecret }}
      key: {{ .Values.store.databaseUrlKey }}
{{- if .Values.store.redisUrlKey }}
- name: UPSHIFT_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.existingSecret }}
      key: {{ .Values.store.redisUrlKey }}
{{- end }}
{{- end -}}

{{- define "upshift.envFrom" -}}
- configMapRef:
    name: {{ include "upshift.fullname" . }}
{{- with .Values.extraEnvFrom }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The /data volume: the shared uploads claim, or an emptyDir per pod. */}}
{{- define "upshift.dataVolume" -}}
- name: data
{{- if .Values.uploads.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.uploads.persistence.existingClaim | default (printf "%s-uploads" (include "upshift.fullname" .)) }}
{{- else }}
  emptyDir: {}
{{- end }}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "upshift.dataMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end -}}
