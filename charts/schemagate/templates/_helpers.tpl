{{/* Names and labels, as `helm create` makes them. */}}
{{- define "schemagate.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "schemagate.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "schemagate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "schemagate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "schemagate.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "schemagate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "schemagate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "schemagate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
What the operator does on the API in the namespaces it watches, and nothing more.
A ClusterRole when it watches every namespace, a Role in each one otherwise.
*/}}
{{- define "schemagate.namespacedRules" -}}
# DatabaseSchemas: Kopf lists and watches them, and patches them for its own
# bookkeeping (progress and last-handled annotations, the finalizer).
- apiGroups: [schemagate.io]
  resources: [databaseschemas]
  verbs: [get, list, watch, patch]
# The migration Job is owned by its DatabaseSchema with blockOwnerDeletion; where the
# OwnerReferencesPermissionEnforcement admission plugin is on (OpenShift), that takes
# update on the owner's finalizers subresource.
- apiGroups: [schemagate.io]
  resources: [databaseschemas/finalizers]
  verbs: [update]
# Conditions, missing tables, the gate: written through the status subresource.
- apiGroups: [schemagate.io]
  resources: [databaseschemas/status]
  verbs: [patch]
# Pods that carry a readiness gate: watched and listed; it only sets their gate
# condition, through pods/status, and never updates a pod. database.verifyFrom: Pod -
# the verify pods (label schemagate.io/verify-of) are created, listed by label and name,
# and deleted once finished (the last few kept) or when their DatabaseSchema goes.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch, create, delete]
- apiGroups: [""]
  resources: [pods/status]
  verbs: [patch]
{{- if and .Values.gateInjection.enabled .Values.gateInjection.holdStart }}
# gateInjection.holdStart - the scheduling gate schemagate.io/<name> is removed from a
# held pod with a patch; the chart's start-gate-only policy refuses any other change.
- apiGroups: [""]
  resources: [pods]
  verbs: [patch]
{{- end }}
# The backends' database URLs: read to verify, watched so a change is verified at once
# (secrets.watch: false grants get only; the operator then re-reads them on every check).
- apiGroups: [""]
  resources: [secrets]
  verbs: {{ if .Values.secrets.watch }}[get, list, watch]{{ else }}[get]{{ end }}
# One Event per transition; Kopf posts core v1 Events and never updates them.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# migrations.run: Job - the migration Job, started and followed by name. Never deleted
# by the operator: it is owned by its DatabaseSchema and goes with it.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, get]
# migrations.job.fromDeployment and database.verifyPod.fromDeployment - the Job and the
# verify pod copy the backend Deployment's pod template; watched so a change of it is
# verified at once (a new generation wakes the schemas that clone it).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch]
# migrations.run: Alembic - the migration scripts come from a ConfigMap, watched for changes.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
# migrations.run: Alembic - the migration Job's pods run as the ServiceAccount
# schemagate-migrator, bound to nothing and mounting no token; the operator creates it
# (create only: it never reads, changes or deletes a ServiceAccount).
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
{{- end }}

{{/*
Cluster-scoped, in either mode: Kopf follows the CRDs of the resources it serves.
*/}}
{{- define "schemagate.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- if .Values.authorRights.enabled }}
# run: Job, run: Alembic and verifyFrom: Pod wait until the binding of the author-rights
# policy is in force: the operator reads that one binding, nothing else.
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingadmissionpolicybindings]
  resourceNames: [{{ include "schemagate.authorRightsName" . }}]
  verbs: [get]
{{- end }}
{{- end }}

{{/* The author-rights ValidatingAdmissionPolicy and its binding. */}}
{{- define "schemagate.authorRightsName" -}}
{{- printf "%s-author-rights" (include "schemagate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Cluster-scoped, watching listed namespaces only: Kopf lists and watches namespaces to
learn which of them exist. Refused, it retries for about a minute before falling back
to the names it was given. Watching every namespace, it lists none.
*/}}
{{- define "schemagate.namespaceRules" -}}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/* The operator's image: by digest when one is given (immutable), else by tag. */}}
{{- define "schemagate.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* The pod template's labels: every app.kubernetes.io/* label, then the user's. */}}
{{- define "schemagate.podLabels" -}}
{{ include "schemagate.labels" . }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: schemagate
{{- with .Values.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}
