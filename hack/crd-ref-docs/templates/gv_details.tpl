{{- define "gvDetails" -}}
{{- $gv := . -}}
## {{ $gv.GroupVersionString }}

{{ $gv.Doc | trim }}
{{- if $gv.Kinds }}

Resource types:
{{- range $gv.SortedKinds }}
- {{ $gv.TypeForKind . | markdownRenderTypeLink }}
{{- end }}
{{- end }}
{{- /* Each kind, then its spec and status, then the other types by name. */ -}}
{{- $order := list -}}
{{- range $gv.SortedKinds -}}
{{- $order = append $order . -}}
{{- range ($gv.TypeForKind .).Members -}}
{{- if and (or (eq .Name "spec") (eq .Name "status")) (index $gv.Types .Type.Name) -}}
{{- $order = append $order .Type.Name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range $gv.SortedTypes -}}
{{- if not (has .Name $order) -}}
{{- $order = append $order .Name -}}
{{- end -}}
{{- end -}}
{{- range $order -}}
{{- $type := index $gv.Types . -}}
{{- if markdownShouldRenderType $type }}

{{ template "type" $type }}
{{- end -}}
{{- end -}}
{{- end -}}
