{{- define "type_members" -}}
{{- if eq .Name "metadata" -}}
Standard object metadata: name, namespace, labels, annotations, ...
{{- else -}}
{{ template "doc" .Doc }}
{{- end -}}
{{- end -}}

{{- define "type_members_type" -}}
{{- if eq .Type.UID "[]byte" -}}
string (base64)
{{- else -}}
{{ markdownRenderType .Type }}
{{- end -}}
{{- end -}}

{{- /* type_members_validation renders what admission checks of a field, and its default. */ -}}
{{- define "type_members_validation" -}}
{{- $v := list -}}
{{- with index .Markers "kubebuilder:default" -}}
{{- $d := (first .).Value -}}
{{- $v = append $v (printf "Default: `%s`" (ternary $d (toJson $d) (kindIs "string" $d))) -}}
{{- end -}}
{{- with index .Markers "kubebuilder:validation:Enum" -}}
{{- $values := list -}}
{{- range first . -}}
{{- $values = append $values (printf "`%v`" .) -}}
{{- end -}}
{{- $v = append $v (printf "One of: %s" (join ", " $values)) -}}
{{- end -}}
{{- range .Validation -}}
{{- if not (or (hasPrefix "Enum:" .) (eq . "Optional: {}") (eq . "Required: {}")) -}}
{{- $v = append $v (. | replace "items:" "Each item's " | replace "|" "\\|") -}}
{{- end -}}
{{- end -}}
{{- with index .Markers "listType" -}}
{{- $listType := printf "List type: `%s`" (first .) -}}
{{- with index $.Markers "listMapKey" -}}
{{- $keys := list -}}
{{- range . -}}
{{- $keys = append $keys (printf "`%s`" .) -}}
{{- end -}}
{{- $listType = printf "%s, keyed by %s" $listType (join ", " $keys) -}}
{{- end -}}
{{- $v = append $v $listType -}}
{{- end -}}
{{- range index .Markers "kubebuilder:validation:XValidation" -}}
{{- $v = append $v (ternary .Message (printf "`%s`" .Rule) (ne .Message "") | replace "|" "\\|") -}}
{{- end -}}
{{ join "<br />" $v }}
{{- end -}}
