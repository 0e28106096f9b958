{{/*
Names and labels, as `helm create` writes them, so the objects look like
every other chart's. The selector labels are name and instance: two releases
in one namespace select only their own pods.
*/}}
{{- define "tagwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tagwatch.fullname" -}}
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

{{- define "tagwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tagwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tagwatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tagwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tagwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tagwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tagwatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The ConfigMap's files: `config` as one tagwatch.toml, or as a map of files,
or manifests/tagwatch.toml when empty; plus [aws.events] for sqs.queueUrl.
*/}}
{{- define "tagwatch.configFiles" -}}
{{- $files := dict }}
{{- if kindIs "map" .Values.config }}
{{- $files = deepCopy .Values.config }}
{{- if not (hasKey $files "tagwatch.toml") }}
{{- fail "config: a map of files must have a \"tagwatch.toml\" key (the file `run --config` reads)" }}
{{- end }}
{{- else if .Values.config }}
{{- $_ := set $files "tagwatch.toml" .Values.config }}
{{- else }}
{{- $_ := set $files "tagwatch.toml" (.Files.Get "files/tagwatch.toml") }}
{{- end }}
{{- if .Values.sqs.queueUrl }}
{{- $main := get $files "tagwatch.toml" }}
{{- if regexMatch "(?m)^\\s*\\[\\s*aws\\s*\\.\\s*events\\s*\\]" $main }}
{{- fail "sqs.queueUrl is set, and config already has an [aws.events] table: set the queue in one place" }}
{{- end }}
{{- $_ := set $files "tagwatch.toml" (printf "%s\n\n# From the chart's sqs.queueUrl.\n[aws.events]\nsqs_queue_url = %s\n" (trimSuffix "\n" $main) (toJson .Values.sqs.queueUrl)) }}
{{- end }}
{{- toYaml $files }}
{{- end }}

{{/*
The pod template, shared by the Deployment and the sharded StatefulSet.
*/}}
{{- define "tagwatch.podTemplate" -}}
metadata:
  labels:
    {{- include "tagwatch.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Rolls the pod when the configuration changes; the new pod must become
    # ready before the old one stops, so a file that does not validate
    # (exit 64) leaves the running daemon in place.
    checksum/config: {{ include "tagwatch.configFiles" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "tagwatch.serviceAccountName" . }}
  # No Kubernetes API token in the pod: tagwatch never calls the API, and
  # IRSA's web identity token is a separate projected volume.
  automountServiceAccountToken: false
  enableServiceLinks: false
  # A cycle under way, push included, always finishes before exit.
  terminationGracePeriodSeconds: 180
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with .Values.podSecurityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: tagwatch
      image: {{ include "tagwatch.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        - --config
        - /etc/tagwatch/tagwatch.toml
        {{- if .Values.sharding.enabled }}
        - --shard
        - auto/{{ .Values.sharding.shards }}
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: RUST_LOG
          value: {{ .Values.logLevel | quote }}
        {{- if .Values.sharding.enabled }}
        # `auto/N` reads the ordinal from POD_NAME (HOSTNAME too holds it in
        # a StatefulSet; this is explicit).
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 9090
          protocol: TCP
      # /healthz: the process and its HTTP server are alive.
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 20
        timeoutSeconds: 5
        failureThreshold: 3
      # /readyz: a cycle finished recently (docs/operations.md).
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/tagwatch
          readOnly: true
        - name: checkout
          mountPath: /var/lib/tagwatch
        - name: tmp
          mountPath: /tmp
        {{- if .Values.existingSecret }}
        - name: secrets
          mountPath: /var/run/secrets/tagwatch
          readOnly: true
        {{- else }}
        - name: git-token
          mountPath: /var/run/secrets/tagwatch/git
          readOnly: true
        - name: forge-token
          mountPath: /var/run/secrets/tagwatch/forge
          readOnly: true
        - name: ssh
          mountPath: /var/run/secrets/tagwatch/ssh
          readOnly: true
        {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  # Whole-directory mounts (no subPath), so a rotated Secret reaches the
  # files, which tagwatch re-reads on every use.
  volumes:
    - name: config
      configMap:
        name: {{ include "tagwatch.fullname" . }}-config
    - name: checkout
      emptyDir:
        sizeLimit: {{ .Values.checkoutSizeLimit }}
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
    {{- if .Values.existingSecret }}
    - name: secrets
      secret:
        secretName: {{ .Values.existingSecret }}
        defaultMode: 0440
    {{- else }}
    # Optional: create only the Secrets the configuration names.
    - name: git-token
      secret:
        secretName: {{ include "tagwatch.fullname" . }}-git
        optional: true
        defaultMode: 0440
    - name: forge-token
      secret:
        secretName: {{ include "tagwatch.fullname" . }}-forge
        optional: true
        defaultMode: 0440
    - name: ssh
      secret:
        secretName: {{ include "tagwatch.fullname" . }}-ssh
        optional: true
        defaultMode: 0440
    {{- end }}
{{- end }}
