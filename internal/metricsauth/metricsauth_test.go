package metricsauth

import (
	"fmt"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	clocktesting "k8s.io/utils/clock/testing"
)

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		header, token string
		ok            bool
	}{
		{"Bearer abc.def", "abc.def", true},
		{"bearer abc", "abc", true},
		{"BEARER  abc ", "abc", true},
		{"", "", false},
		{"Bearer", "", false},
		{"Bearer ", "", false},
		{"Basic dXNlcjpwYXNz", "", false},
		{"Bearer a b", "", false},
		{"Bearerabc", "", false},
	} {
		token, ok := bearerToken(tc.header)
		if ok != tc.ok || (ok && token != tc.token) {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", tc.header, token, ok, tc.token, tc.ok)
		}
	}
}

func TestAccessKeyTellsQuestionsApart(t *testing.T) {
	alice := authenticationv1.UserInfo{Username: "alice", UID: "1", Groups: []string{"a", "b"},
		Extra: map[string]authenticationv1.ExtraValue{"scopes": {"x"}}}
	same := alice
	same.Groups = []string{"b", "a"}
	if accessKey(alice, "get", "/metrics") != accessKey(same, "get", "/metrics") {
		t.Errorf("the order of groups changed the key")
	}
	variants := map[string]func() (authenticationv1.UserInfo, string, string){
		"user": func() (authenticationv1.UserInfo, string, string) {
			u := alice
			u.Username = "bob"
			return u, "get", "/metrics"
		},
		"uid": func() (authenticationv1.UserInfo, string, string) {
			u := alice
			u.UID = "2"
			return u, "get", "/metrics"
		},
		"verb": func() (authenticationv1.UserInfo, string, string) { return alice, "post", "/metrics" },
		"path": func() (authenticationv1.UserInfo, string, string) { return alice, "get", "/metrics/x" },
		"group": func() (authenticationv1.UserInfo, string, string) {
			u := alice
			u.Groups = []string{"a"}
			return u, "get", "/metrics"
		},
		"groups joined": func() (authenticationv1.UserInfo, string, string) {
			u := alice
			u.Groups = []string{"a b"}
			return u, "get", "/metrics"
		},
		"extra": func() (authenticationv1.UserInfo, string, string) {
			u := alice
			u.Extra = map[string]authenticationv1.ExtraValue{"scopes": {"y"}}
			return u, "get", "/metrics"
		},
		"name in path": func() (authenticationv1.UserInfo, string, string) {
			u := alice
			u.Username = `alice" "1`
			u.UID = ""
			return u, "get", "/metrics"
		},
	}
	want := accessKey(alice, "get", "/metrics")
	for name, variant := range variants {
		if got := accessKey(variant()); got == want {
			t.Errorf("%s: a different question has the same key %s", name, got)
		}
	}
}

func TestTTLCacheForgetsExpiredAndLeastRecentlyUsed(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Unix(0, 0))
	c := newTTLCache[int](3, clk)
	c.add("short", 1, time.Second)
	c.add("long", 2, time.Minute)
	clk.SetTime(clk.Now().Add(2 * time.Second))
	if _, ok := c.get("short"); ok {
		t.Errorf("an answer past its time was kept")
	}
	if v, ok := c.get("long"); !ok || v != 2 {
		t.Errorf("get(long) = %d, %v; want 2, true", v, ok)
	}
	// The budget holds however many keys come.
	for i := range 10 {
		c.add(fmt.Sprint("k", i), i, time.Minute)
	}
	if n := c.entries.Len(); n != 3 {
		t.Errorf("the cache holds %d entries; want its budget, 3", n)
	}
	if _, ok := c.get("k9"); !ok {
		t.Errorf("the newest answer was forgotten")
	}
}
