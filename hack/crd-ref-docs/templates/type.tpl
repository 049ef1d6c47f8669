{{- define "type" -}}
{{- $type := . -}}
### {{ $type.Name }}
{{- if $type.IsAlias }}

Underlying type: {{ markdownRenderTypeLink $type.UnderlyingType }}.
{{- end }}

{{ $type.Doc | trim }}
{{- $validation := list -}}
{{- range $type.Validation -}}
{{- if not (or (hasPrefix "Enum:" .) (eq . "Optional: {}") (eq . "Required: {}")) -}}
{{- $validation = append $validation . -}}
{{- end -}}
{{- end -}}
{{- range index $type.Markers "kubebuilder:validation:XValidation" -}}
{{- $validation = append $validation (ternary .Message (printf "`%s`" .Rule) (ne .Message "") | replace "|" "\\|") -}}
{{- end -}}
{{- if $validation }}

Validation:
{{- range $validation }}
- {{ . }}
{{- end }}
{{- end }}
{{- if $type.References }}

Appears in:
{{- range $type.SortedReferences }}
- {{ markdownRenderTypeLink . }}
{{- end }}
{{- end }}
{{- if $type.Members }}

| Field | Type | Description | Validation |
| --- | --- | --- | --- |
{{- if $type.GVK }}
| `apiVersion` | string | `{{ $type.GVK.Group }}/{{ $type.GVK.Version }}` | |
| `kind` | string | `{{ $type.GVK.Kind }}` | |
{{- end }}
{{- range $type.Members }}
| `{{ .Name }}`{{ if has "Required: {}" .Validation }}<br />_required_{{ end }} | {{ template "type_members_type" . }} | {{ template "type_members" . }} | {{ template "type_members_validation" . }} |
{{- end }}
{{- end }}
{{- if $type.EnumValues }}

| Value | Description |
| --- | --- |
{{- range $type.EnumValues }}
{{- $doc := .Doc | trim | trimPrefix (printf "%s%s " $type.Name .Name) }}
| `{{ .Name }}` | {{ template "doc" printf "%s%s" (substr 0 1 $doc | upper) (substr 1 -1 $doc) }} |
{{- end }}
{{- end }}
{{- end -}}

{{- /* doc renders a doc comment in one table cell: the comment's line breaks are only
where gofmt wrapped it, so lines are joined; a blank line starts a new paragraph. */ -}}
{{- define "doc" -}}
{{ . | trim | replace "\n\n" "\x1f" | replace "\n" " " | replace "<" "&lt;" | replace "|" "\\|" | replace "\x1f" "<br /><br />" }}
{{- end -}}
