package export

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// listed is a listed segment created minutes after t0.
func listed(id, name string, minutes int) chatbot.Segment {
	return chatbot.Segment{ID: id, Name: name, Users: 3, CreatedAt: chatbot.Timestamp{Time: t0.Add(time.Duration(minutes) * time.Minute)}}
}

func TestName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"VIP Customers", "vip-customers"},
		{"vip_customers", "vip-customers"},
		{"  --Hello, World!--  ", "hello-world"},
		{"Café Olé", "cafe-ole"},
		{"ﬁnance", "finance"}, // a ligature, split by NFKD
		{"Ｆｕｌｌ Width", "full-width"},
		{"日本 VIP 2026", "vip-2026"},
		{"Покупатели", "segment"},
		{"🎉", "segment"},
		{"", "segment"},
		{"v1.2 beta", "v1.2-beta"},
		{"a..b", "a-b"},
		{"a.-b", "a-b"},
		{".hidden.", "hidden"},
		{strings.Repeat("a", 300), strings.Repeat("a", 253)},
		{strings.Repeat("a", 252) + " b", strings.Repeat("a", 252)},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got := Name(tc.in)
			if got != tc.want {
				t.Errorf("Name(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("Name(%q) = %q is not a DNS-1123 subdomain: %v", tc.in, got, errs)
			}
		})
	}
}

// names returns the metadata.name of each listed ID.
func names(res Result) map[string]string {
	out := map[string]string{}
	for _, it := range res.Items {
		out[it.Remote.ID] = it.Segment.Name
	}
	return out
}

func TestPlanNames(t *testing.T) {
	long := strings.Repeat("x", 255)
	for _, tc := range []struct {
		name   string
		listed []chatbot.Segment
		taken  []string
		want   map[string]string
	}{{
		name:   "distinct names",
		listed: []chatbot.Segment{listed("id1", "VIP", 0), listed("id2", "Churned", 1)},
		want:   map[string]string{"id1": "vip", "id2": "churned"},
	}, {
		name: "the oldest keeps the name, the others get a suffix of their ID",
		listed: []chatbot.Segment{listed("aaaaaaaaa111111", "vip", 2), listed("bbbbbbbbb222222", "VIP", 0),
			listed("ccccccccc333333", "Vip!", 1)},
		want: map[string]string{"bbbbbbbbb222222": "vip", "ccccccccc333333": "vip-333333", "aaaaaaaaa111111": "vip-111111"},
	}, {
		name:   "same creation time: the lowest ID keeps the name",
		listed: []chatbot.Segment{listed("Zz9999999", "Café", 0), listed("AB1234567", "cafe", 0)},
		want:   map[string]string{"AB1234567": "cafe", "Zz9999999": "cafe-999999"},
	}, {
		name: "a suffix that is another segment's name grows longer",
		listed: []chatbot.Segment{listed("x00abc123", "vip-abc123", 0), listed("y00aaa000", "vip", 1),
			listed("z0abc123", "vip", 2)},
		want: map[string]string{"x00abc123": "vip-abc123", "y00aaa000": "vip", "z0abc123": "vip-0abc123"},
	}, {
		name:   "IDs that differ only in case",
		listed: []chatbot.Segment{listed("abc", "a", 0), listed("ABC", "a", 1), listed("Abc", "a", 2)},
		want:   map[string]string{"abc": "a", "ABC": "a-abc", "Abc": "a-abc-2"},
	}, {
		name:   "names taken in the namespace, and kustomization, are avoided",
		listed: []chatbot.Segment{listed("id1aaaaaa", "VIP", 0), listed("id2bbbbbb", "Kustomization", 1)},
		taken:  []string{"vip"},
		want:   map[string]string{"id1aaaaaa": "vip-aaaaaa", "id2bbbbbb": "kustomization-bbbbbb"},
	}, {
		name:   "unicode-only names collide as segment",
		listed: []chatbot.Segment{listed("id1aaaaaa", "Покупатели", 0), listed("id2bbbbbb", "顧客", 1)},
		want:   map[string]string{"id1aaaaaa": "segment", "id2bbbbbb": "segment-bbbbbb"},
	}, {
		name:   "long names are cut to leave room for the suffix",
		listed: []chatbot.Segment{listed("id1aaaaaa", long, 0), listed("id2bbbbbb", long+"!", 1)},
		want:   map[string]string{"id1aaaaaa": strings.Repeat("x", 253), "id2bbbbbb": strings.Repeat("x", 246) + "-bbbbbb"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			// Every order of the listing gives the same names.
			for _, order := range permutations(tc.listed) {
				res := Plan(order, nil, Options{Taken: tc.taken})
				if diff := cmp.Diff(tc.want, names(res)); diff != "" {
					t.Fatalf("names (-want +got), listing %v:\n%s", ids(order), diff)
				}
				for _, it := range res.Items {
					if errs := validation.IsDNS1123Subdomain(it.Segment.Name); len(errs) > 0 {
						t.Errorf("%q is not a DNS-1123 subdomain: %v", it.Segment.Name, errs)
					}
				}
				if !slices.IsSortedFunc(res.Items, func(a, b Item) int { return strings.Compare(a.Segment.Name, b.Segment.Name) }) {
					t.Errorf("items not sorted by name: %v", names(res))
				}
			}
		})
	}
}

func ids(segs []chatbot.Segment) []string {
	var out []string
	for _, s := range segs {
		out = append(out, s.ID)
	}
	return out
}

func permutations(s []chatbot.Segment) [][]chatbot.Segment {
	if len(s) <= 1 {
		return [][]chatbot.Segment{slices.Clone(s)}
	}
	var out [][]chatbot.Segment
	for i := range s {
		rest := append(slices.Clone(s[:i]), s[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]chatbot.Segment{s[i]}, p...))
		}
	}
	return out
}

func TestPlanSkips(t *testing.T) {
	in := []chatbot.Segment{
		listed("owned1", "VIP", 0),
		listed("free1", "Free", 1),
		listed("bad-id", "Dashed ID", 2),
		listed(strings.Repeat("a", 65), "Long ID", 3),
		listed("noname", "", 4),
		listed("longname", strings.Repeat("é", 129), 5), // 258 bytes
		listed("control", "tab\there", 6),
		listed("blank", " \u00a0\u200b", 7),
	}
	res := Plan(in, map[string]string{"owned1": "team/vip", "gone": "team/gone"}, Options{})
	want := map[string]string{
		"owned1":                "managed by Segment team/vip",
		"bad-id":                "its ID is not 1 to 64 letters and digits, as spec.id must be",
		strings.Repeat("a", 65): "its ID is not 1 to 64 letters and digits, as spec.id must be",
		"noname":                "it has no name",
		"longname":              "its name is over 256 bytes, the most spec.name may have",
		"control":               "its name holds control characters, which spec.name may not",
		"blank":                 "its name is blank, which spec.name may not be",
	}
	got := map[string]string{}
	for _, s := range res.Skipped {
		got[s.Remote.ID] = s.Reason
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("skipped (-want +got):\n%s", diff)
	}
	if res.Skipped[len(res.Skipped)-1].Owner != "team/vip" || !slices.IsSortedFunc(res.Skipped, func(a, b Skipped) int { return strings.Compare(a.Remote.ID, b.Remote.ID) }) {
		t.Errorf("skipped not sorted by ID, or owner lost: %+v", res.Skipped)
	}
	if diff := cmp.Diff(map[string]string{"free1": "free"}, names(res)); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
}

func TestPlanSpec(t *testing.T) {
	s := listed("5b7ff8476f7g3fb33c9249a8", "Foo Bar", 0)
	for _, tc := range []struct {
		name string
		opts Options
		want usersv1alpha1.Segment
	}{{
		name: "defaults: Orphan, no namespace, the manager's credentials",
		want: segment("", "foo-bar", usersv1alpha1.SegmentSpec{ID: s.ID, Name: "Foo Bar", DeletionPolicy: "Orphan"}),
	}, {
		name: "namespace, credentialsRef and Delete",
		opts: Options{Namespace: "team", CredentialsRef: "chatbot", DeletionPolicy: usersv1alpha1.DeletionPolicyDelete},
		want: segment("team", "foo-bar", usersv1alpha1.SegmentSpec{ID: s.ID, Name: "Foo Bar", DeletionPolicy: "Delete",
			CredentialsRef: &usersv1alpha1.CredentialsReference{Name: "chatbot"}}),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			res := Plan([]chatbot.Segment{s}, nil, tc.opts)
			if len(res.Items) != 1 {
				t.Fatalf("items: %+v", res.Items)
			}
			if diff := cmp.Diff(tc.want, res.Items[0].Segment); diff != "" {
				t.Errorf("Segment (-want +got):\n%s", diff)
			}
		})
	}
}

func segment(ns, name string, spec usersv1alpha1.SegmentSpec) usersv1alpha1.Segment {
	var s usersv1alpha1.Segment
	s.APIVersion, s.Kind = "users.chatbot.com/v1alpha1", "Segment"
	s.Namespace, s.Name, s.Spec = ns, name, spec
	return s
}

// example is an export of a few segments, one of them skipped.
func example() Result {
	return Plan([]chatbot.Segment{
		listed("id1aaaaaa", "VIP", 0), listed("id2bbbbbb", "vip", 1), listed("id3cccccc", "Café \"Olé\"", 2),
		listed("id4dddddd", "Owned", 3), {ID: "id5eeeeee", Name: "Undated"},
	}, map[string]string{"id4dddddd": "team/owned"}, Options{Namespace: "team", CredentialsRef: "chatbot"})
}

// segments reads a YAML stream into Segments, refusing unknown fields.
func segments(t *testing.T, stream []byte) []usersv1alpha1.Segment {
	t.Helper()
	var out []usersv1alpha1.Segment
	for doc := range bytes.SplitSeq(stream, []byte("\n---\n")) {
		var s usersv1alpha1.Segment
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			t.Fatalf("%v in:\n%s", err, doc)
		}
		out = append(out, s)
	}
	return out
}

func wantSegments(res Result) []usersv1alpha1.Segment {
	var out []usersv1alpha1.Segment
	for _, it := range res.Items {
		out = append(out, it.Segment)
	}
	return out
}

func TestYAMLRoundTrips(t *testing.T) {
	res := example()
	b, err := res.YAML()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantSegments(res), segments(t, b)); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, noise := range []string{"status", "creationTimestamp", "members"} {
		if bytes.Contains(b, []byte(noise+":")) {
			t.Errorf("the YAML has %s:\n%s", noise, b)
		}
	}
	for _, comment := range []string{
		`# ChatBot segment id1aaaaaa "VIP": 3 users, created 2026-03-01T12:00:00Z.`,
		`# ChatBot segment id3cccccc "Café \"Olé\"": 3 users, created 2026-03-01T12:02:00Z.`,
		`# ChatBot segment id5eeeeee "Undated": 0 users, created at an unknown time.`,
		"# Its members cannot be read from the ChatBot API, so spec.members is left empty",
	} {
		if !bytes.Contains(b, []byte(comment)) {
			t.Errorf("no comment %q in:\n%s", comment, b)
		}
	}
	if n := bytes.Count(b, []byte("# Its members cannot be read")); n != len(res.Items) {
		t.Errorf("%d member notes for %d Segments", n, len(res.Items))
	}
}

func TestJSONIsAList(t *testing.T) {
	res := example()
	b, err := res.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		APIVersion, Kind string
		Items            []usersv1alpha1.Segment
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		t.Fatal(err)
	}
	if list.APIVersion != "v1" || list.Kind != "List" {
		t.Errorf("apiVersion %q kind %q, want v1 List", list.APIVersion, list.Kind)
	}
	if diff := cmp.Diff(wantSegments(res), list.Items); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if b, _ := (Result{}).JSON(); !bytes.Contains(b, []byte(`"items": []`)) {
		t.Errorf("an empty export is not an empty List: %s", b)
	}
}

func TestFiles(t *testing.T) {
	res := example()
	files, err := res.Files()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var segs []usersv1alpha1.Segment
	for _, f := range files[:len(files)-1] {
		got = append(got, f.Name)
		segs = append(segs, segments(t, f.Data)...)
	}
	want := []string{"cafe-ole.yaml", "undated.yaml", "vip-bbbbbb.yaml", "vip.yaml"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	slices.SortFunc(segs, func(a, b usersv1alpha1.Segment) int { return strings.Compare(a.Name, b.Name) })
	if diff := cmp.Diff(wantSegments(res), segs); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	kust := files[len(files)-1]
	var k struct {
		APIVersion, Kind string
		Resources        []string
	}
	if err := yaml.UnmarshalStrict(kust.Data, &k); err != nil || kust.Name != KustomizationFile {
		t.Fatalf("%s: %v", kust.Name, err)
	}
	if k.Kind != "Kustomization" || fmt.Sprint(k.Resources) != fmt.Sprint(want) {
		t.Errorf("kustomization: %+v, want resources %v", k, want)
	}
}
