package simulator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
)

const token = "T0k3n"

type fixture struct {
	t   *testing.T
	sim *simulator.Server
	url string
}

func start(t *testing.T, opts simulator.Options) *fixture {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	sim, err := simulator.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &fixture{t: t, sim: sim, url: srv.URL}
}

// call sends a raw request with the given Authorization header and returns status and body.
func (f *fixture) call(method, path, auth, body string) (int, map[string]any, string) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, f.url+path, rd)
	if auth != "" {
		req.Header.Set("authorization", auth)
	}
	req.Header.Set("content-type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	return resp.StatusCode, doc, string(raw)
}

func (f *fixture) do(method, path, body string) (int, map[string]any, string) {
	return f.call(method, path, "Bearer "+token, body)
}

// TestVendorExamples replays the requests of the reference's curl examples byte for byte
// (tab-indented bodies included), with the host swapped. The examples quote their header in
// single quotes, so the shell sends the literal text ${DEVELOPER_ACCESS_TOKEN} as the token.
func TestVendorExamples(t *testing.T) {
	f := start(t, simulator.Options{Token: "${DEVELOPER_ACCESS_TOKEN}"})
	auth := "Bearer ${DEVELOPER_ACCESS_TOKEN}"

	code, doc, raw := f.call("POST", "/users/segments", auth, "{\n\t\t\"name\": \"MySegment\"\n\t}")
	if code != 200 || doc["status"].(map[string]any)["type"] != "success" {
		t.Fatalf("create: %d %s", code, raw)
	}
	id := doc["id"].(string)
	if !regexp.MustCompile(`^[0-9A-Za-z]{24}$`).MatchString(id) {
		t.Errorf("id %q is not 24 alphanumeric characters", id)
	}
	if ts, _ := doc["timestamp"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`).MatchString(ts) {
		t.Errorf("write timestamp %q is not RFC 3339 with milliseconds", ts)
	}

	code, _, raw = f.call("GET", "/users/segments", auth, "")
	if code != 200 || !regexp.MustCompile(`^\[\{"id":"`+id+`","name":"MySegment","users":0,"createdAt":"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z"\}\]`).MatchString(raw) {
		t.Fatalf("list: %d %s", code, raw)
	}

	second := f.sim.Create("Other")
	code, _, raw = f.call("POST", "/users/segments/members", auth,
		"{\n\t\t\"segments\": [\n\t\t\t\""+id+"\",\n\t\t\t\""+second+"\"\n\t\t],\n\t\t\"users\": [\n\t\t\t\"628df988024ffc000778f534\",\n\t\t\t\"628df978f3fdab0007e15445\"\n\t\t]\n\t}")
	if code != 200 || !strings.Contains(raw, `"status":{"code":200,"type":"success"}`) || strings.Contains(raw, `"id"`) {
		t.Fatalf("add members: %d %s", code, raw)
	}
	code, _, raw = f.call("PUT", "/users/segments/"+id, auth, "{\n\t\t\"name\": \"NewFancySegmentName\"\n\t}")
	if code != 200 {
		t.Fatalf("rename: %d %s", code, raw)
	}
	code, _, raw = f.call("DELETE", "/users/segments/"+id, auth, "")
	if code != 200 {
		t.Fatalf("delete: %d %s", code, raw)
	}
	segs := f.sim.Segments()
	if len(segs) != 1 || segs[0].ID != second || len(segs[0].Members) != 2 {
		t.Fatalf("final state %+v", segs)
	}
}

func TestValidation(t *testing.T) {
	f := start(t, simulator.Options{})
	id := f.sim.Create("existing")
	long := strings.Repeat("é", 257)
	ok256 := strings.Repeat("é", 256)
	many := func(n int) string { return `[` + strings.TrimSuffix(strings.Repeat(`"`+id+`",`, n), ",") + `]` }
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		message                  string
	}{
		{"create ok at 256 characters", "POST", "/users/segments", `{"name":"` + ok256 + `"}`, 200, ""},
		{"create name 257 characters", "POST", "/users/segments", `{"name":"` + long + `"}`, 400, "1 to 256"},
		{"create empty name", "POST", "/users/segments", `{"name":""}`, 400, "1 to 256"},
		{"create missing name", "POST", "/users/segments", `{"title":"x"}`, 400, `"name" is required`},
		{"create name not a string", "POST", "/users/segments", `{"name":5}`, 400, `"name" must be of type string`},
		{"create malformed JSON", "POST", "/users/segments", `{"name":`, 400, "malformed JSON"},
		{"create no body", "POST", "/users/segments", ``, 400, "body is required"},
		{"create array body", "POST", "/users/segments", `["x"]`, 400, "malformed JSON"},
		{"add missing users", "POST", "/users/segments/members", `{"segments":["` + id + `"]}`, 400, `"users" is required`},
		{"add missing segments", "POST", "/users/segments/members", `{"users":["u"]}`, 400, `"segments" is required`},
		{"add no segments", "POST", "/users/segments/members", `{"segments":[],"users":["u"]}`, 400, "1 to 100"},
		{"add 101 segments", "POST", "/users/segments/members", `{"segments":` + many(101) + `,"users":["u"]}`, 400, "got 101"},
		{"add 100 segments", "POST", "/users/segments/members", `{"segments":` + many(100) + `,"users":["u"]}`, 200, ""},
		{"add no users", "POST", "/users/segments/members", `{"segments":["` + id + `"],"users":[]}`, 400, "1 to 1000"},
		{"add 1001 users", "POST", "/users/segments/members", `{"segments":["` + id + `"],"users":` + userList(1001) + `}`, 400, "got 1001"},
		{"add 1000 users", "POST", "/users/segments/members", `{"segments":["` + id + `"],"users":` + userList(1000) + `}`, 200, ""},
		{"add users not strings", "POST", "/users/segments/members", `{"segments":["` + id + `"],"users":[1]}`, 400, "array of strings"},
		{"add empty user", "POST", "/users/segments/members", `{"segments":["` + id + `"],"users":[""]}`, 400, "empty"},
		{"add unknown segment", "POST", "/users/segments/members", `{"segments":["` + id + `","nope"],"users":["zz"]}`, 404, "not found"},
		{"rename unknown", "PUT", "/users/segments/nope", `{"name":"x"}`, 404, "not found"},
		{"rename name too long", "PUT", "/users/segments/" + id, `{"name":"` + long + `"}`, 400, "1 to 256"},
		{"rename missing name", "PUT", "/users/segments/" + id, `{}`, 400, "required"},
		{"delete unknown", "DELETE", "/users/segments/nope", ``, 404, "not found"},
		{"legacy v1 path", "GET", "/segments", ``, 404, "no route"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, doc, raw := f.do(tc.method, tc.path, tc.body)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, raw)
			}
			if tc.code == 200 {
				return
			}
			st, _ := doc["status"].(map[string]any)
			if st["type"] != "error" || st["code"] != float64(tc.code) || !strings.Contains(st["message"].(string), tc.message) || doc["timestamp"] == nil {
				t.Fatalf("error body %s, want status {code %d, type error, message ~ %q} and a timestamp", raw, tc.code, tc.message)
			}
		})
	}
	// The 404 on a partly unknown add changed nothing.
	if seg, _ := f.sim.Segment(id); slices.Contains(seg.Members, "zz") {
		t.Error("a rejected add-members call added members")
	}
}

func TestAuthentication(t *testing.T) {
	f := start(t, simulator.Options{})
	for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + token, token} {
		code, doc, raw := f.call("GET", "/users/segments", auth, "")
		if code != 401 || doc["status"].(map[string]any)["code"] != float64(401) {
			t.Errorf("authorization %q: %d %s", auth, code, raw)
		}
	}
	if code, _, _ := f.call("GET", "/users/segments", "bearer "+token, ""); code != 200 {
		t.Errorf("lower-case scheme refused: %d", code)
	}
	if c := f.sim.Counts(); c.Unauthorized != 5 || c.Requests[simulator.EndpointList] != 6 {
		t.Errorf("counts %+v", c)
	}
}

func TestMembersAreDistinctAndAddIsIdempotent(t *testing.T) {
	f := start(t, simulator.Options{})
	id := f.sim.Create("s")
	for range 2 {
		if code, _, raw := f.do("POST", "/users/segments/members", `{"segments":["`+id+`"],"users":["a","b","a"]}`); code != 200 {
			t.Fatal(raw)
		}
	}
	_, _, raw := f.do("GET", "/users/segments", "")
	if !strings.Contains(raw, `"users":2`) {
		t.Errorf("list %s, want users 2", raw)
	}
}

func TestWrongMethodIs405(t *testing.T) {
	f := start(t, simulator.Options{})
	for path, allow := range map[string]string{
		"/users/segments":         "GET, POST",
		"/users/segments/members": "POST",
		"/users/segments/abc":     "PUT, DELETE",
	} {
		req, _ := http.NewRequest("PATCH", f.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allow {
			t.Errorf("PATCH %s = %d, Allow %q; want 405, Allow %q", path, resp.StatusCode, resp.Header.Get("Allow"), allow)
		}
	}
}

// The documented IDs look hexadecimal but one has a "g": the simulator's must not let a
// client get away with assuming hex.
func TestIDsAreNotAlwaysHex(t *testing.T) {
	sim, err := simulator.New(simulator.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	hex := regexp.MustCompile(`^[0-9a-f]{24}$`)
	for range 20 {
		if id := sim.Create("x"); !hex.MatchString(id) {
			return
		}
	}
	t.Error("20 IDs in a row were hexadecimal")
}

func TestRateLimit(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := start(t, simulator.Options{RateLimit: 3, Now: func() time.Time { return now }})
	for i := range 3 {
		if code, _, _ := f.do("GET", "/users/segments", ""); code != 200 {
			t.Fatalf("call %d: %d", i, code)
		}
	}
	req, _ := http.NewRequest("GET", f.url+"/users/segments", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if c := f.sim.Counts(); c.Throttled != 1 || c.Succeeded[simulator.EndpointList] != 3 {
		t.Errorf("counts %+v", c)
	}
}

func TestLatencyIsApplied(t *testing.T) {
	f := start(t, simulator.Options{Latency: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/users/segments", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("a call answered despite an hour of latency")
	}
	f.sim.SetLatency(0)
	if code, _, _ := f.do("GET", "/users/segments", ""); code != 200 {
		t.Fatalf("after removing latency: %d", code)
	}
}

func TestFaults(t *testing.T) {
	f := start(t, simulator.Options{})
	id := f.sim.Create("s")

	// Faults limited to one endpoint leave the others alone.
	_ = f.sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointRename}, ErrorRate: 1, ErrorCode: 503})
	if code, _, _ := f.do("GET", "/users/segments", ""); code != 200 {
		t.Errorf("list failed under a rename-only fault: %d", code)
	}
	if code, _, _ := f.do("PUT", "/users/segments/"+id, `{"name":"x"}`); code != 503 {
		t.Errorf("rename under fault: %d", code)
	}
	if seg, _ := f.sim.Segment(id); seg.Name != "s" {
		t.Error("a failed call changed state")
	}

	// A lost response: the change is made, the caller sees 500.
	_ = f.sim.SetFaults(simulator.Faults{LoseResponseRate: 1})
	if code, _, _ := f.do("POST", "/users/segments", `{"name":"ghost"}`); code != 500 {
		t.Errorf("lost response: %d", code)
	}
	if segs := f.sim.Segments(); len(segs) != 2 || segs[1].Name != "ghost" {
		t.Errorf("lost-response create did not create: %+v", segs)
	}

	// FailNext counts down.
	_ = f.sim.SetFaults(simulator.Faults{FailNext: 2})
	codes := []int{}
	for range 3 {
		code, _, _ := f.do("GET", "/users/segments", "")
		codes = append(codes, code)
	}
	if codes[0] != 500 || codes[1] != 500 || codes[2] != 200 {
		t.Errorf("FailNext 2: %v", codes)
	}
	if c := f.sim.Counts(); c.Faults != 4 {
		t.Errorf("faults counted %d, want 4", c.Faults)
	}
	if err := f.sim.SetFaults(simulator.Faults{ErrorRate: 2}); err == nil {
		t.Error("accepted an error rate of 2")
	}
}

func TestStateFileSurvivesRestart(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state.json")
	f := start(t, simulator.Options{StateFile: file})
	_, doc, _ := f.do("POST", "/users/segments", `{"name":"kept"}`)
	id := doc["id"].(string)
	f.do("POST", "/users/segments/members", `{"segments":["`+id+`"],"users":["u1","u2"]}`)

	again := start(t, simulator.Options{StateFile: file})
	segs := again.sim.Segments()
	if len(segs) != 1 || segs[0].ID != id || segs[0].Name != "kept" || len(segs[0].Members) != 2 {
		t.Fatalf("after restart: %+v", segs)
	}
}

func TestControlEndpoint(t *testing.T) {
	f := start(t, simulator.Options{})
	id := f.sim.Create("s", "m1")
	req, _ := http.NewRequest("PUT", f.url+"/_sim/faults", strings.NewReader(`{"failNext":1,"errorCode":503,"retryAfter":"3s"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT faults: %v %v", resp, err)
	}
	resp.Body.Close()
	if code, _, _ := f.do("GET", "/users/segments", ""); code != 503 {
		t.Errorf("fault set over HTTP not applied: %d", code)
	}
	req, _ = http.NewRequest("PUT", f.url+"/_sim/settings", strings.NewReader(`{"latency":"0s","rateLimit":50}`))
	if resp, err = http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PUT settings: %v %v", resp, err)
	}
	resp.Body.Close()

	resp, err = http.Get(f.url + "/_sim/state")
	if err != nil {
		t.Fatal(err)
	}
	var st simulator.State
	_ = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if len(st.Segments) != 1 || st.Segments[0].ID != id || st.Segments[0].Members[0] != "m1" ||
		st.Counts.Faults != 1 || st.Settings.RateLimit != 50 {
		t.Fatalf("state %+v", st)
	}
	resp, _ = http.Post(f.url+"/_sim/reset", "", nil)
	resp.Body.Close()
	if len(f.sim.Segments()) != 0 || f.sim.Counts().Faults != 0 {
		t.Error("reset left state behind")
	}
}

func userList(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(`"user-%d"`, i)
	}
	return "[" + strings.Join(ids, ",") + "]"
}

// A late answer shows the account as it was when the call arrived, not when it is answered.
func TestLateAnswerShowsTheAccountAsItWas(t *testing.T) {
	f := start(t, simulator.Options{})
	if err := f.sim.SetFaults(simulator.Faults{Endpoints: []simulator.Endpoint{simulator.EndpointList},
		LateRate: 1, LateDelay: simulator.Duration(300 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		code int
		body string
	}
	got := make(chan answer)
	go func() {
		code, _, raw := f.do("GET", "/users/segments", "")
		got <- answer{code, raw}
	}()
	time.Sleep(100 * time.Millisecond) // the listing has been handled, not yet answered
	f.sim.Create("made while the answer travels")
	a := <-got
	if a.code != 200 || strings.Contains(a.body, "made while the answer travels") {
		t.Fatalf("late listing: %d %s", a.code, a.body)
	}
}

// BenchmarkMillionMembers adds 1,000,000 members to one segment through the API, in calls
// of 1,000, then lists the account: the large-segment bench relies on the simulator holding
// such a segment in memory, and listing it by count, not by members. Run it with
// `go test -run x -bench MillionMembers -benchtime 1x ./internal/chatbot/simulator/`.
func BenchmarkMillionMembers(b *testing.B) {
	for b.Loop() {
		sim, err := simulator.New(simulator.Options{Token: token})
		if err != nil {
			b.Fatal(err)
		}
		id := sim.Create("million")
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for call := range 1000 {
			var body strings.Builder
			fmt.Fprintf(&body, `{"segments":[%q],"users":[`, id)
			for u := range 1000 {
				if u > 0 {
					body.WriteByte(',')
				}
				fmt.Fprintf(&body, `"u%07d"`, call*1000+u)
			}
			body.WriteString("]}")
			req := httptest.NewRequest(http.MethodPost, "/users/segments/members", strings.NewReader(body.String()))
			req.Header.Set("authorization", "Bearer "+token)
			req.Header.Set("content-type", "application/json")
			rec := httptest.NewRecorder()
			sim.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("call %d: %d %s", call, rec.Code, rec.Body)
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/users/segments", nil)
		req.Header.Set("authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if !strings.Contains(rec.Body.String(), `"users":1000000`) {
			b.Fatalf("listing: %.200s", rec.Body)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "MiB-held")
		runtime.KeepAlive(sim)
	}
}
