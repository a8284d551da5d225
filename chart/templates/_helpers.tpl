{{/* Names and labels. */}}
{{- define "sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sidecar.fullname" -}}
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

{{- define "sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sidecar.labels" -}}
helm.sh/chart: {{ include "sidecar.chart" . }}
{{ include "sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: interlink-plugin
{{- end }}

{{- define "sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "repository:tag", "repository:tag@digest" or "repository@digest"; takes (dict "image" .. "defaultTag" ..). */}}
{{- define "sidecar.imageRef" -}}
{{- $ref := .image.repository }}
{{- $tag := .image.tag | default .defaultTag | toString }}
{{- if $tag }}{{ $ref = printf "%s:%s" $ref $tag }}{{ end }}
{{- if .image.digest }}{{ $ref = printf "%s@%s" $ref .image.digest }}{{ end }}
{{- $ref }}
{{- end }}

{{/* Paths inside the pod. The config points at the mounts through these. */}}
{{- define "sidecar.configDir" -}}/etc/interlink-sidecar/config{{- end }}
{{- define "sidecar.kubeconfigDir" -}}/etc/interlink-sidecar/remote{{- end }}
{{- define "sidecar.sshDir" -}}/etc/interlink-sidecar/ssh{{- end }}
{{- define "sidecar.stateDir" -}}/var/lib/interlink-k8s-sidecar{{- end }}
{{- define "sidecar.interlinkConfigDir" -}}/etc/interlink{{- end }}
{{- define "sidecar.interlinkDataDir" -}}/var/lib/interlink{{- end }}

{{/* Secret names: the chart's own, or the existing ones named in values. */}}
{{- define "sidecar.kubeconfigSecretName" -}}
{{- .Values.remoteKubeconfig.existingSecret | default (printf "%s-remote-kubeconfig" (include "sidecar.fullname" .)) }}
{{- end }}
{{- define "sidecar.sshSecretName" -}}
{{- .Values.ssh.existingSecret | default (printf "%s-ssh" (include "sidecar.fullname" .)) }}
{{- end }}

{{/* The claim of app.state_dir: the user's, or the chart's own. */}}
{{- define "sidecar.stateClaimName" -}}
{{- .Values.state.existingClaim | default (printf "%s-state" (include "sidecar.fullname" .)) }}
{{- end }}

{{/* "true" when a config.ini boolean in values is on (true, "true", 1, "yes", "on"). */}}
{{- define "sidecar.truthy" -}}
{{- if has (toString . | lower | trim) (list "true" "1" "yes" "on") }}true{{ end }}
{{- end }}

{{- define "sidecar.tunnelEnabled" -}}
{{- include "sidecar.truthy" ((.Values.config.tcp_tunnel | default dict).enabled) }}
{{- end }}

{{- define "sidecar.tunnelInsecure" -}}
{{- include "sidecar.truthy" ((.Values.config.tcp_tunnel | default dict).insecure_skip_host_key_check) }}
{{- end }}

{{/* Values that must be one of a few. */}}
{{- define "sidecar.validate" -}}
{{- if not (has .Values.mode (list "deployment" "sidecar")) }}
{{- fail (printf "mode: expected deployment or sidecar, got %v" .Values.mode) }}
{{- end }}
{{- if and .Values.state.existingClaim (not .Values.state.persistent) }}
{{- fail "state: existingClaim is set but persistent is false; set one or the other" }}
{{- end }}
{{- if and .Values.remoteKubeconfig.kubeconfig .Values.remoteKubeconfig.existingSecret }}
{{- fail "remoteKubeconfig: set kubeconfig or existingSecret, not both" }}
{{- end }}
{{- if and (or .Values.ssh.privateKey .Values.ssh.knownHosts) .Values.ssh.existingSecret }}
{{- fail "ssh: set privateKey/knownHosts or existingSecret, not both" }}
{{- end }}
{{- if and (include "sidecar.tunnelEnabled" .) (not (or .Values.ssh.privateKey .Values.ssh.existingSecret)) }}
{{- fail "config.tcp_tunnel.enabled needs the gateway's SSH key: set ssh.privateKey or ssh.existingSecret" }}
{{- end }}
{{- end }}

{{/*
config.ini. Every key the sidecar accepts, by section (sidecar/settings/keys.py; the
chart tests compare the two), and the keys the chart sets itself or refuses.
*/}}
{{- define "sidecar.knownKeys" -}}
app: [name, description, version, api_versions, api_docs_path, socket_address, socket_port, socket_mode, ops_address, ops_port, shutdown_timeout_seconds, state_dir, janitor_max_backoff_seconds, delete_tombstone_seconds, janitor_max_attempts, delete_give_up_seconds, request_header_timeout_seconds, request_body_timeout_seconds, max_concurrent_requests, create_deadline_seconds]
log: [level, dir, rich_enabled, requests_enabled]
k8s: [kubeconfig_path, kubeconfig, client_configuration, request_timeout_seconds, validation_version, watch_timeout_seconds, watch_inactivity_seconds, watch_stall_seconds, watch_max_backoff_seconds, local_kubeconfig_path]
offloading: [namespace_prefix, namespace_prefix_exclusions, node_selector, node_tolerations, capacity, orphan_after_seconds, orphan_policy, orphan_objects_grace_seconds, namespace_deny, namespace_allow]
mesh: [init_container, startup_probe, slurm_setup_script, image, packages]
tcp_tunnel: [enabled, bastion_namespace, bastion_chart_path, gateway_host, gateway_port, gateway_ssh_private_key, user, private_key_file, known_hosts_file, insecure_skip_host_key_check, bind_address, dial_mode, port_policy, port_range, connect_timeout_seconds, keepalive_interval_seconds, keepalive_count, reconnect_max_backoff_seconds, ciphers, pods]
{{- end }}

{{- define "sidecar.refusedKeys" -}}
app.socket_address: set by mode and plugin.host / plugin.socketPath
app.socket_port: set by mode and plugin.port
app.ops_address: set by ops.address
app.ops_port: set by ops.port
app.state_dir: set by the chart (the state volume)
k8s.kubeconfig_path: set by the chart (use remoteKubeconfig)
k8s.kubeconfig: a credential; use remoteKubeconfig (a Secret)
tcp_tunnel.private_key_file: set by the chart (use ssh)
tcp_tunnel.known_hosts_file: set by the chart (use ssh.knownHosts)
tcp_tunnel.gateway_ssh_private_key: a credential; use ssh.privateKey (a Secret)
{{- end }}

{{/* One config.ini value: maps and lists as JSON, booleans true/false, whole numbers without exponent. */}}
{{- define "sidecar.iniValue" -}}
{{- $v := .value }}
{{- if or (kindIs "map" $v) (kindIs "slice" $v) }}
{{- toJson $v }}
{{- else if kindIs "bool" $v }}
{{- ternary "true" "false" $v }}
{{- else if kindIs "float64" $v }}
{{- if eq $v (floor $v) }}{{ int64 $v }}{{ else }}{{ $v }}{{ end }}
{{- else }}
{{- $s := toString $v }}
{{- if contains "\n" $s }}
{{- fail (printf "config.%s: must be one line" .key) }}
{{- end }}
{{- $s }}
{{- end }}
{{- end }}

{{- define "sidecar.configIni" -}}
{{- $known := include "sidecar.knownKeys" . | fromYaml }}
{{- $refused := include "sidecar.refusedKeys" . | fromYaml }}
{{- $config := .Values.config | default dict }}
{{- range $section, $_ := $config }}
{{- if not (hasKey $known $section) }}
{{- fail (printf "config.%s: unknown section (known: %s)" $section (keys $known | sortAlpha | join ", ")) }}
{{- end }}
{{- end }}
{{- $app := dict "ops_address" .Values.ops.address "ops_port" .Values.ops.port "state_dir" (include "sidecar.stateDir" .) }}
{{- if eq .Values.mode "sidecar" }}
{{- $_ := set $app "socket_address" (printf "unix://%s" .Values.plugin.socketPath) }}
{{- else }}
{{- $_ := set $app "socket_address" (printf "http://%s" .Values.plugin.host) }}
{{- $_ := set $app "socket_port" .Values.plugin.port }}
{{- end }}
{{- $tunnel := dict }}
{{- if include "sidecar.tunnelEnabled" . }}
{{- $_ := set $tunnel "private_key_file" (printf "%s/id_key" (include "sidecar.sshDir" .)) }}
{{- if not (include "sidecar.tunnelInsecure" .) }}
{{- $_ := set $tunnel "known_hosts_file" (printf "%s/known_hosts" (include "sidecar.sshDir" .)) }}
{{- end }}
{{- end }}
{{- $forced := dict "app" $app "k8s" (dict "kubeconfig_path" (printf "%s/kubeconfig" (include "sidecar.kubeconfigDir" .))) "tcp_tunnel" $tunnel }}
{{- printf "; config.ini of the sidecar, rendered by the %s chart from its values." .Chart.Name }}
{{- range $section := list "app" "log" "k8s" "offloading" "mesh" "tcp_tunnel" }}
{{- $given := get $config $section | default dict }}
{{- range $key, $value := $given }}
{{- if not (has $key (get $known $section)) }}
{{- fail (printf "config.%s.%s: unknown key (known: %s)" $section $key (get $known $section | join ", ")) }}
{{- end }}
{{- $reason := get $refused (printf "%s.%s" $section $key) }}
{{- if and $reason (not (kindIs "invalid" $value)) }}
{{- fail (printf "config.%s.%s: not allowed here: %s" $section $key $reason) }}
{{- end }}
{{- end }}
{{- if and (eq $section "app") (hasKey $given "socket_mode") (not (kindIs "string" $given.socket_mode)) }}
{{- fail "config.app.socket_mode: quote it (\"0660\"); YAML reads 0660 as a decimal or octal number" }}
{{- end }}
{{- $merged := merge (deepCopy (get $forced $section | default dict)) $given }}
{{- $lines := list }}
{{- range $key := keys $merged | sortAlpha }}
{{- $value := get $merged $key }}
{{- if not (kindIs "invalid" $value) }}
{{- $lines = append $lines (printf "%s = %s" $key (include "sidecar.iniValue" (dict "key" (printf "%s.%s" $section $key) "value" $value))) }}
{{- end }}
{{- end }}
{{- if $lines }}

[{{ $section }}]
{{- range $lines }}
{{ . }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* InterLinkConfig.yaml of interLink's API server (sidecar mode). */}}
{{- define "sidecar.interlinkConfig" -}}
{{- $forced := dict
  "InterlinkAddress" "http://0.0.0.0"
  "InterlinkPort" (toString .Values.interlink.port)
  "SidecarURL" (printf "unix://%s" .Values.plugin.socketPath)
  "SidecarPort" "0"
  "DataRootFolder" (printf "%s/" (include "sidecar.interlinkDataDir" .)) }}
{{- merge $forced (deepCopy (.Values.interlink.config | default dict)) | toYaml }}
{{- end }}
