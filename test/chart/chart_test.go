// Package chart checks the Helm chart in charts/chart, rendered with helm's own packages as
// `helm template` renders it, against the kustomize build of config/: with its default
// values the chart installs exactly what dist/install.yaml installs, and each value the
// chart offers changes what it says and nothing else.
//
// The chart is generated (`make chart`: kubebuilder's Helm plugin, then hack/chart); this
// test is what keeps it in step with config/. When it fails after a change under config/,
// run `make chart` and commit what it writes.
package chart

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/release"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	chartDir = "../../charts/chart"
	// The release name and namespace that reproduce config/default's names: its namePrefix
	// is "segment-operator-" and its namespace segment-operator-system.
	releaseName = "segment-operator"
	namespace   = "segment-operator-system"
)

// object is one manifest, decoded the same way from either source.
type object = map[string]any

// objects are manifests by "Kind namespace/name".
type objects map[string]object

func (o objects) keys() []string { return slices.Sorted(maps.Keys(o)) }

func decode(t *testing.T, manifests []byte) objects {
	t.Helper()
	out := objects{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(manifests)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading manifests: %v", err)
		}
		var obj object
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			t.Fatalf("decoding %q: %v", doc, err)
		}
		if len(obj) == 0 {
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		ns, _ := meta["namespace"].(string)
		key := fmt.Sprintf("%s %s/%s", obj["kind"], ns, meta["name"])
		if _, dup := out[key]; dup {
			t.Fatalf("%s appears twice", key)
		}
		out[key] = obj
	}
}

// render renders the chart as `helm template segment-operator charts/chart -n
// segment-operator-system` does, with vals over the chart's values.yaml.
func render(t *testing.T, vals map[string]any) objects {
	t.Helper()
	out, err := renderErr(vals)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, []byte(out))
}

func renderErr(vals map[string]any) (string, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return "", fmt.Errorf("loading the chart: %w", err)
	}
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = namespace
	install.Replace = true
	install.IncludeCRDs = true
	rel, err := install.Run(chrt, vals)
	if err != nil {
		return "", fmt.Errorf("rendering the chart: %w", err)
	}
	acc, err := release.NewAccessor(rel)
	if err != nil {
		return "", err
	}
	if !strings.Contains(acc.Notes(), "create secret generic") {
		return "", fmt.Errorf("the notes say nothing of the credentials:\n%s", acc.Notes())
	}
	if hooks := acc.Hooks(); len(hooks) > 0 {
		return "", fmt.Errorf("the chart has %d hooks; this test does not check them", len(hooks))
	}
	return acc.Manifest(), nil
}

// build is `kustomize build dir`, with the kustomize the Makefile installs (the same API
// version), in memory.
func build(t *testing.T, dir string) objects {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	y, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, y)
}

// Labels that say who installed an object, which differ by installer and by nothing else:
// kustomize says app.kubernetes.io/managed-by: kustomize, Helm says Helm and adds the
// chart and release.
var installerLabels = []string{"app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "helm.sh/chart"}

// withoutInstallerLabels returns a copy of v with installerLabels taken out of every
// "labels" map (metadata's and a pod template's), never out of a selector.
func withoutInstallerLabels(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			if m, ok := e.(map[string]any); ok && k == "labels" {
				m = maps.Clone(m)
				for _, l := range installerLabels {
					delete(m, l)
				}
				if len(m) == 0 {
					continue
				}
				out[k] = m
				continue
			}
			out[k] = withoutInstallerLabels(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = withoutInstallerLabels(e)
		}
		return out
	default:
		return v
	}
}

func TestWithoutInstallerLabels(t *testing.T) {
	in := map[string]any{
		"metadata": map[string]any{"labels": map[string]any{
			"app.kubernetes.io/managed-by": "Helm", "helm.sh/chart": "x-1", "app.kubernetes.io/instance": "r",
			"app.kubernetes.io/name": "segment-operator",
		}},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/instance": "r"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"helm.sh/chart": "x-1"}}},
			"list":     []any{map[string]any{"labels": map[string]any{"app.kubernetes.io/managed-by": "kustomize", "a": "b"}}},
		},
	}
	want := map[string]any{
		"metadata": map[string]any{"labels": map[string]any{"app.kubernetes.io/name": "segment-operator"}},
		"spec": map[string]any{
			"selector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/instance": "r"}},
			"template": map[string]any{"metadata": map[string]any{}},
			"list":     []any{map[string]any{"labels": map[string]any{"a": "b"}}},
		},
	}
	if d := cmp.Diff(want, withoutInstallerLabels(in)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// sameObjects fails t unless got and want hold the same objects, installer labels aside.
func sameObjects(t *testing.T, got, want objects) {
	t.Helper()
	if d := cmp.Diff(want.keys(), got.keys()); d != "" {
		t.Fatalf("the chart renders other objects than config/ builds (-config +chart):\n%s", d)
	}
	for _, k := range want.keys() {
		if d := cmp.Diff(withoutInstallerLabels(want[k]), withoutInstallerLabels(got[k])); d != "" {
			t.Errorf("%s differs (-config +chart):\n%s", k, d)
		}
	}
}

const crdKey = "CustomResourceDefinition /segments.users.chatbot.com"

// The chart with its default values installs what `make build-installer` writes into
// dist/install.yaml (config/default, image ghcr.io/segment-operator/segment-operator:latest),
// but that it keeps the CRD on `helm uninstall`, as `make undeploy` does.
func TestDefaultValuesInstallWhatInstallYAMLInstalls(t *testing.T) {
	got := render(t, nil)
	crd := got[crdKey]
	if crd == nil {
		t.Fatalf("no CRD in %v", got.keys())
	}
	ann := crd["metadata"].(map[string]any)["annotations"].(map[string]any)
	if ann["helm.sh/resource-policy"] != "keep" {
		t.Errorf("the CRD is not kept on uninstall: annotations %v", ann)
	}
	delete(ann, "helm.sh/resource-policy")
	want := build(t, "../../config/default")
	// Helm does not install the release's namespace: `helm install --create-namespace` does.
	if _, ok := want["Namespace /"+namespace]; !ok {
		t.Fatalf("config/default has no Namespace %s: %v", namespace, want.keys())
	}
	delete(want, "Namespace /"+namespace)
	sameObjects(t, got, want)

	// Every object Helm installs is labelled as the chart's, so that `helm uninstall`
	// and a label selector find them all.
	for _, k := range got.keys() {
		labels, _ := got[k]["metadata"].(map[string]any)["labels"].(map[string]any)
		if k != crdKey && (labels["app.kubernetes.io/instance"] != releaseName || labels["app.kubernetes.io/managed-by"] != "Helm") {
			t.Errorf("%s has labels %v", k, labels)
		}
	}
}

const deploymentKey = "Deployment " + namespace + "/segment-operator-controller-manager"

// container returns the Deployment's manager container.
func container(t *testing.T, o objects) map[string]any {
	t.Helper()
	d := o[deploymentKey]
	if d == nil {
		t.Fatalf("no %s in %v", deploymentKey, o.keys())
	}
	return d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
}

func podSpec(o objects) map[string]any {
	return o[deploymentKey]["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
}

func args(t *testing.T, o objects) []string {
	var out []string
	for _, a := range container(t, o)["args"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

// Each value the chart documents changes what it says it changes.
func TestValues(t *testing.T) {
	defaults := render(t, nil)
	tests := []struct {
		name  string
		vals  string
		check func(t *testing.T, got objects)
	}{{
		name: "image",
		vals: "manager: {image: {repository: registry.example/segment-operator, tag: v1.2.3}}",
		check: func(t *testing.T, got objects) {
			if img := container(t, got)["image"]; img != "registry.example/segment-operator:v1.2.3" {
				t.Errorf("image %v", img)
			}
		},
	}, {
		name: "image by digest",
		vals: "manager: {image: {repository: 'registry.example/segment-operator@sha256:" + strings.Repeat("a", 64) + "'}}",
		check: func(t *testing.T, got objects) {
			if img := container(t, got)["image"]; img != "registry.example/segment-operator@sha256:"+strings.Repeat("a", 64) {
				t.Errorf("image %v", img)
			}
		},
	}, {
		name: "replicas",
		vals: "manager: {replicas: 3}",
		check: func(t *testing.T, got objects) {
			if r := got[deploymentKey]["spec"].(map[string]any)["replicas"]; r != float64(3) {
				t.Errorf("replicas %v", r)
			}
		},
	}, {
		name: "resources",
		vals: "manager: {resources: {limits: {memory: 1Gi}, requests: {cpu: 100m, memory: 512Mi}}}",
		check: func(t *testing.T, got objects) {
			// Helm merges maps: the default CPU limit stays.
			want := map[string]any{"limits": map[string]any{"cpu": "500m", "memory": "1Gi"}, "requests": map[string]any{"cpu": "100m", "memory": "512Mi"}}
			if d := cmp.Diff(want, container(t, got)["resources"]); d != "" {
				t.Errorf("resources (-want +got):\n%s", d)
			}
		},
	}, {
		name: "flags",
		vals: "manager: {args: [--leader-elect, --namespace-credentials=team-a, --chatbot-api-token-file=/var/run/secrets/chatbot/token]}",
		check: func(t *testing.T, got objects) {
			a := args(t, got)
			if !slices.Contains(a, "--namespace-credentials=team-a") || slices.Contains(a, "--chatbot-api-url=https://api.chatbot.com") {
				t.Errorf("args %v", a)
			}
		},
	}, {
		name: "default-credentials Secret",
		vals: "credentials: {secretName: chatbot-token-prod}",
		check: func(t *testing.T, got objects) {
			want := map[string]any{"name": "chatbot-api-token", "secret": map[string]any{"secretName": "chatbot-token-prod", "optional": true}}
			if d := cmp.Diff([]any{want}, podSpec(got)["volumes"]); d != "" {
				t.Errorf("volumes (-want +got):\n%s", d)
			}
		},
	}, {
		name: "a flag added, the defaults kept",
		vals: "manager: {extraArgs: [--drift-interval=10m]}",
		check: func(t *testing.T, got objects) {
			a, def := args(t, got), args(t, defaults)
			if want := append(slices.Clone(def), "--drift-interval=10m"); !slices.Equal(a, want) {
				t.Errorf("args %q, want %q", a, want)
			}
		},
	}, {
		name: "flags are strings, whatever YAML would make of them",
		vals: "manager: {args: [--leader-elect, --namespace-credentials, '*', '10', 'true', '--x=a #b']}",
		check: func(t *testing.T, got objects) {
			a := args(t, got)
			if want := []string{"--leader-elect", "--namespace-credentials", "*", "10", "true", "--x=a #b"}; !slices.Equal(a[len(a)-len(want):], want) {
				t.Errorf("args %q", a)
			}
		},
	}, {
		name:  "no Segment may name a Secret: no access to Secrets",
		vals:  "credentials: {namespaces: none}",
		check: noClusterWideSecrets("none"),
	}, {
		name:  "listed namespaces: no cluster-wide access to Secrets",
		vals:  "credentials: {namespaces: 'team-a,team-b'}",
		check: noClusterWideSecrets("team-a,team-b"),
	}, {
		name: "one replica: no PodDisruptionBudget, which would block every drain",
		vals: "manager: {replicas: 1}",
		check: func(t *testing.T, got objects) {
			if _, ok := got["PodDisruptionBudget "+namespace+"/segment-operator-controller-manager"]; ok || len(got) != len(defaults)-1 {
				t.Errorf("objects %v", got.keys())
			}
		},
	}, {
		name: "a parent chart's global values",
		vals: "global: {imageRegistry: registry.example}",
		check: func(t *testing.T, got objects) {
			if len(got) != len(defaults) {
				t.Errorf("objects %v", got.keys())
			}
		},
	}, {
		name: "metrics over plain HTTP",
		vals: "metrics: {secure: false}",
		check: func(t *testing.T, got objects) {
			if !slices.Contains(args(t, got), "--metrics-secure=false") {
				t.Errorf("args %v", args(t, got))
			}
			svc := got["Service "+namespace+"/segment-operator-controller-manager-metrics-service"]
			if port := svc["spec"].(map[string]any)["ports"].([]any)[0].(map[string]any); port["name"] != "http" {
				t.Errorf("Service port %v", port)
			}
		},
	}, {
		name: "metrics off",
		vals: "metrics: {enabled: false}",
		check: func(t *testing.T, got objects) {
			if _, ok := got["Service "+namespace+"/segment-operator-controller-manager-metrics-service"]; ok {
				t.Error("the metrics Service is rendered")
			}
			if !slices.Contains(args(t, got), "--metrics-bind-address=0") {
				t.Errorf("args %v", args(t, got))
			}
		},
	}, {
		name: "no CRD",
		vals: "crd: {enabled: false}",
		check: func(t *testing.T, got objects) {
			if _, ok := got[crdKey]; ok || len(got) != len(defaults)-1 {
				t.Errorf("objects %v", got.keys())
			}
		},
	}, {
		name: "ServiceMonitor, rules and dashboard: config/prometheus",
		vals: "prometheus: {enabled: true}",
		check: func(t *testing.T, got objects) {
			sameObjects(t, added(defaults, got), build(t, "../../config/prometheus"))
		},
	}, {
		name: "labels for a Prometheus that selects by label",
		vals: "prometheus: {enabled: true, labels: {release: kube-prometheus-stack}}",
		check: func(t *testing.T, got objects) {
			for _, k := range []string{"ServiceMonitor " + namespace + "/segment-operator-controller-manager-metrics-monitor", "PrometheusRule " + namespace + "/segment-operator-alerts"} {
				labels, _ := got[k]["metadata"].(map[string]any)["labels"].(map[string]any)
				if labels["release"] != "kube-prometheus-stack" || labels["app.kubernetes.io/name"] != "segment-operator" {
					t.Errorf("%s labels %v", k, labels)
				}
			}
		},
	}, {
		name: "NetworkPolicy: config/network-policy",
		vals: "networkPolicy: {enabled: true}",
		check: func(t *testing.T, got objects) {
			sameObjects(t, added(defaults, got), build(t, "../../config/network-policy"))
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, render(t, values(t, tc.vals)))
		})
	}
}

func values(t *testing.T, s string) map[string]any {
	t.Helper()
	var vals map[string]any
	if err := yaml.Unmarshal([]byte(s), &vals); err != nil {
		t.Fatal(err)
	}
	return vals
}

// values.schema.json refuses what the chart would ignore or get wrong, before anything is
// installed: helm install fails with the message.
func TestValuesRefused(t *testing.T) {
	tests := []struct{ name, vals, want string }{
		{"a typo", "manager: {replica: 3}", "replica"},
		{"kubebuilder's namespaced RBAC, which would stop the manager", "rbac: {namespaced: true}", "namespaced"},
		{"kubebuilder's cert-manager, which this chart does not wire", "certManager: {enabled: true}", "certManager"},
		{"no image", "manager: {image: {repository: ''}}", "repository"},
		{"a Secret name that is not one", "credentials: {secretName: 'Not A Name'}", "secretName"},
		{"a flag that is not a string", "manager: {args: [--leader-elect, 3]}", "args"},
		{"a port out of range", "metrics: {port: 70000}", "port"},
		{"nameOverride, which the bundles' selectors would not follow", "nameOverride: other", "nameOverride"},
		{"credentials namespaces that are not a list of names", "credentials: {namespaces: 'team a'}", "namespaces"},
		{"a ServiceMonitor with no HTTPS to scrape", "{prometheus: {enabled: true}, metrics: {secure: false}}", "metrics.secure"},
		{"a ServiceMonitor with no metrics at all", "{prometheus: {enabled: true}, metrics: {enabled: false}}", "metrics.enabled"},
		{"a NetworkPolicy for another metrics port", "{networkPolicy: {enabled: true}, metrics: {port: 9443}}", "metrics.port"},
		{"a shard name that is not a DNS label", "shards: [Shard_1]", "shards"},
		{"a shard name too long for its pods' label", "shards: [" + strings.Repeat("a", 39) + "]", "shards"},
		{"a shard twice", "shards: [shard1, shard1]", "shards"},
		{"a selector of one's own beside the shards'", "{shards: [shard1], manager: {extraArgs: ['--watch-label-selector=team=a']}}", "--watch-label-selector"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderErr(values(t, tc.vals))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

// noClusterWideSecrets checks a render for credentials.namespaces: the flag says them, and
// of the defaults only the binding to every Secret is gone (the role listed namespaces bind
// stays).
func noClusterWideSecrets(namespaces string) func(*testing.T, objects) {
	return func(t *testing.T, got objects) {
		t.Helper()
		defaults := render(t, nil)
		const binding = "ClusterRoleBinding /segment-operator-credentials-rolebinding"
		if _, ok := defaults[binding]; !ok {
			t.Fatalf("no %s by default: %v", binding, defaults.keys())
		}
		delete(defaults, binding)
		if d := cmp.Diff(defaults.keys(), got.keys()); d != "" {
			t.Errorf("objects (-want +got):\n%s", d)
		}
		if !slices.Contains(args(t, got), "--namespace-credentials="+namespaces) {
			t.Errorf("args %v", args(t, got))
		}
	}
}

// added returns the objects of got that are not in base.
func added(base, got objects) objects {
	out := objects{}
	for k, o := range got {
		if _, ok := base[k]; !ok {
			out[k] = o
		}
	}
	return out
}

// Each name in shards is one more manager (docs/operations/sharding.md): a Deployment that
// runs as the main one does, with its own pods and selector and --watch-label-selector;
// whatever selects the main manager's pods (the metrics Service, the PodDisruptionBudget,
// the NetworkPolicy, the pods' own anti-affinity) selects each shard's as well, each
// manager's pods once, and no Deployment selects another's pods.
func TestShards(t *testing.T) {
	const main = "segment-operator-controller-manager"
	tests := []struct {
		name string
		vals string
		// want is the Deployments by name, each with its --watch-label-selector ("": none).
		want map[string]string
	}{{
		name: "none: one manager for every Segment",
		vals: "{}",
		want: map[string]string{main: ""},
	}, {
		name: "two shards, with the NetworkPolicy and the ServiceMonitor",
		vals: "{shards: [shard1, shard2], prometheus: {enabled: true}, networkPolicy: {enabled: true}}",
		want: map[string]string{
			main:                            "sharding.fluxcd.io/key notin (shard1,shard2)",
			"segment-operator-shard-shard1": "sharding.fluxcd.io/key=shard1",
			"segment-operator-shard-shard2": "sharding.fluxcd.io/key=shard2",
		},
	}, {
		name: "one shard, one replica each, no metrics",
		vals: "{shards: [eu], manager: {replicas: 1}, metrics: {enabled: false}}",
		want: map[string]string{main: "sharding.fluxcd.io/key notin (eu)", "segment-operator-shard-eu": "sharding.fluxcd.io/key=eu"},
	}, {
		name: "the manager's values go to every shard",
		vals: `{shards: [eu], manager: {extraArgs: [--drift-interval=10m], pod: {labels: {team: ops}},
			topologySpreadConstraints: [{maxSkew: 1, topologyKey: topology.kubernetes.io/zone, whenUnsatisfiable: ScheduleAnyway,
				labelSelector: {matchLabels: {app.kubernetes.io/name: segment-operator, control-plane: controller-manager}}}]}}`,
		want: map[string]string{main: "sharding.fluxcd.io/key notin (eu)", "segment-operator-shard-eu": "sharding.fluxcd.io/key=eu"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := render(t, values(t, tc.vals))
			deployments := map[string]object{}
			for _, o := range ofKind(got, "Deployment") {
				deployments[o["metadata"].(map[string]any)["name"].(string)] = o
			}
			if d := cmp.Diff(slices.Sorted(maps.Keys(tc.want)), slices.Sorted(maps.Keys(deployments))); d != "" {
				t.Fatalf("Deployments (-want +got):\n%s", d)
			}
			mainArgs, mainPod := shardless(t, deployments[main])
			for name, d := range deployments {
				var selectors []string
				for _, a := range containerArgs(d) {
					if s, ok := strings.CutPrefix(a, "--watch-label-selector="); ok {
						selectors = append(selectors, s)
					}
				}
				if want := tc.want[name]; !slices.Equal(selectors, slices.DeleteFunc([]string{want}, func(s string) bool { return s == "" })) {
					t.Errorf("%s: --watch-label-selector %q, want %q", name, selectors, want)
				}
				a, pod := shardless(t, d)
				if diff := cmp.Diff(mainArgs, a); diff != "" {
					t.Errorf("%s: args other than the main manager's (-main +shard):\n%s", name, diff)
				}
				if diff := cmp.Diff(mainPod, pod); diff != "" {
					t.Errorf("%s: a pod other than the main manager's (-main +shard):\n%s", name, diff)
				}
			}

			// Each Deployment selects its own pods and no other's, and so does each
			// manager's pod (anti-)affinity or spread constraint that selects a manager's.
			for name, d := range deployments {
				spec := d["spec"].(map[string]any)
				for other, o := range deployments {
					pods := podLabels(o)
					if matches(t, spec["selector"], pods) != (name == other) {
						t.Errorf("Deployment %s's selector %v, pods of %s labelled %v", name, spec["selector"], other, pods)
					}
					for _, s := range podSelectors(spec["template"].(map[string]any)["spec"].(map[string]any)) {
						if matches(t, s, podLabels(deployments[main])) && !matches(t, s, podLabels(d)) || matches(t, s, pods) && name != other {
							t.Errorf("%s: a pod of it prefers or spreads by %v, pods of %s labelled %v", name, s, other, pods)
						}
					}
				}
			}

			// Each manager's pods are selected as the main manager's are, never twice.
			for _, kind := range []string{"Service", "PodDisruptionBudget", "NetworkPolicy"} {
				want := len(selecting(t, got, kind, deployments[main]))
				for name, d := range deployments {
					if by := selecting(t, got, kind, d); len(by) != want || len(by) > 1 {
						t.Errorf("%s's pods are selected by %d %ss %v; the main manager's by %d", name, len(by), kind, by, want)
					}
				}
			}
			// The ServiceMonitor scrapes every metrics Service.
			for _, m := range ofKind(got, "ServiceMonitor") {
				for _, svc := range ofKind(got, "Service") {
					if !matches(t, m["spec"].(map[string]any)["selector"], svc["metadata"].(map[string]any)["labels"].(map[string]any)) {
						t.Errorf("the ServiceMonitor does not select the Service %v", svc["metadata"])
					}
				}
			}
		})
	}
}

func ofKind(o objects, kind string) []object {
	var out []object
	for _, k := range o.keys() {
		if o[k]["kind"] == kind {
			out = append(out, o[k])
		}
	}
	return out
}

func containerArgs(d object) []string {
	c := d["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
	var out []string
	for _, a := range c["args"].([]any) {
		out = append(out, a.(string))
	}
	return out
}

func podLabels(d object) map[string]any {
	return d["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
}

// shardless returns what a shard's Deployment must have as the main one has it: its flags
// but --watch-label-selector, and its pod template but the labels and selectors that tell
// one manager's pods from another's.
func shardless(t *testing.T, d object) ([]string, map[string]any) {
	t.Helper()
	args := slices.DeleteFunc(containerArgs(d), func(a string) bool { return strings.HasPrefix(a, "--watch-label-selector=") })
	var pod map[string]any
	b, err := yaml.Marshal(d["spec"].(map[string]any)["template"])
	if err == nil {
		err = yaml.Unmarshal(b, &pod)
	}
	if err != nil {
		t.Fatal(err)
	}
	delete(pod["metadata"].(map[string]any)["labels"].(map[string]any), "control-plane")
	spec := pod["spec"].(map[string]any)
	delete(spec["containers"].([]any)[0].(map[string]any), "args")
	for _, s := range podSelectors(spec) {
		if s, ok := s.(map[string]any); ok {
			if m, ok := s["matchLabels"].(map[string]any); ok {
				delete(m, "control-plane")
			}
		}
	}
	return args, pod
}

// podSelectors returns the label selectors of a pod spec's pod (anti-)affinity terms and
// topology spread constraints.
func podSelectors(spec map[string]any) []any {
	var out []any
	aff, _ := spec["affinity"].(map[string]any)
	for _, kind := range []string{"podAffinity", "podAntiAffinity"} {
		a, _ := aff[kind].(map[string]any)
		req, _ := a["requiredDuringSchedulingIgnoredDuringExecution"].([]any)
		for _, term := range req {
			out = append(out, term.(map[string]any)["labelSelector"])
		}
		pref, _ := a["preferredDuringSchedulingIgnoredDuringExecution"].([]any)
		for _, w := range pref {
			out = append(out, w.(map[string]any)["podAffinityTerm"].(map[string]any)["labelSelector"])
		}
	}
	tsc, _ := spec["topologySpreadConstraints"].([]any)
	for _, c := range tsc {
		out = append(out, c.(map[string]any)["labelSelector"])
	}
	return out
}

// podSelector returns the selector of the pods a Service, PodDisruptionBudget or
// NetworkPolicy applies to.
func podSelector(o object) any {
	spec := o["spec"].(map[string]any)
	switch o["kind"] {
	case "Service":
		return map[string]any{"matchLabels": spec["selector"]}
	case "NetworkPolicy":
		return spec["podSelector"]
	default:
		return spec["selector"]
	}
}

// selecting returns the names of the objects of the kind that select the Deployment's pods.
func selecting(t *testing.T, got objects, kind string, d object) []string {
	t.Helper()
	var out []string
	for _, o := range ofKind(got, kind) {
		if matches(t, podSelector(o), podLabels(d)) {
			out = append(out, o["metadata"].(map[string]any)["name"].(string))
		}
	}
	return out
}

// matches says whether a label selector (matchLabels, matchExpressions) selects labels.
func matches(t *testing.T, selector any, labels map[string]any) bool {
	t.Helper()
	var s metav1.LabelSelector
	b, err := yaml.Marshal(selector)
	if err == nil {
		err = yaml.Unmarshal(b, &s)
	}
	if err != nil {
		t.Fatal(err)
	}
	sel, err := metav1.LabelSelectorAsSelector(&s)
	if err != nil {
		t.Fatal(err)
	}
	set := k8slabels.Set{}
	for k, v := range labels {
		set[k] = v.(string)
	}
	return sel.Matches(set)
}
