package chatbot_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// Whatever answers on an allowed API URL may be hostile or broken: these tests are the
// client's side of the tenancy boundary.

// A redirect is never followed, to another origin or the same one: the token would go
// with it. The answer is an error naming where it pointed, without the token.
func TestRedirectsAreNotFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		fmt.Fprintf(w, "[]")
	}))
	defer target.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL+"/steal?u=admin", code)
		}))
		// A caller's own HTTP client (default redirect policy) changes nothing.
		for _, opts := range [][]chatbot.Option{nil, {chatbot.WithHTTPClient(&http.Client{})}} {
			c, err := chatbot.New(srv.URL, token, opts...)
			if err != nil {
				t.Fatal(err)
			}
			_, listErr := c.ListSegments(context.Background())
			_, createErr := c.CreateSegment(context.Background(), "x")
			for _, err := range []error{listErr, createErr} {
				e := apiError(t, fmt.Sprintf("%d", code), err, code, false)
				if !e.Terminal() || !strings.Contains(e.Message, target.URL) || !strings.Contains(e.Message, "not followed") {
					t.Errorf("%d: terminal %v, message %q", code, e.Terminal(), e.Message)
				}
			}
		}
		srv.Close()
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target was called %d times", n)
	}
}

// A listing over MaxListingBytes is refused (retryable: it may shrink) without being read
// whole, and a smaller one is read one segment at a time.
func TestListingOverTheCapIsRefused(t *testing.T) {
	entry := `{"id":"0123456789abcdef01234567","name":"` + strings.Repeat("n", 200) + `","users":1,"createdAt":"2019-01-23 13:32:30.163Z"},`
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 0
		if r.URL.Query().Get("big") == "" {
			n = 1000
		}
		_, _ = w.Write([]byte("["))
		for i := 0; n == 0 || i < n; i++ {
			k, err := w.Write([]byte(entry))
			written.Add(int64(k))
			if err != nil || written.Load() > 64<<20 {
				return // the client stopped reading (or never will): give up
			}
		}
		_, _ = w.Write([]byte(`{"id":"last","name":"x"}]`))
	}))
	defer srv.Close()

	small, _ := chatbot.New(srv.URL, token)
	segs, err := small.ListSegments(context.Background())
	if err != nil || len(segs) != 1001 || segs[0].Name != strings.Repeat("n", 200) || segs[1000].ID != "last" {
		t.Fatalf("a listing under the cap: %d segments, %v", len(segs), err)
	}

	written.Store(0)
	big, _ := chatbot.New(srv.URL+"/?big=1", token)
	_, err = big.ListSegments(context.Background())
	e := apiError(t, "a listing over the cap", err, http.StatusOK, true)
	if !strings.Contains(e.Message, "larger than 16 MiB") {
		t.Errorf("message %q", e.Message)
	}
}

// A huge error message is cut to what conditions and events can hold; the body kept is
// bounded too.
func TestErrorTextIsBounded(t *testing.T) {
	for what, body := range map[string]string{
		"a 60 KiB JSON message": `{"status":{"code":400,"type":"error","message":"` + strings.Repeat("é", 30<<10) + `"}}`,
		"a 6 MiB body":          strings.Repeat("é", 3<<20),
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(body))
		}))
		c, _ := chatbot.New(srv.URL, token)
		_, err := c.ListSegments(context.Background())
		e := apiError(t, what, err, http.StatusBadRequest, false)
		if len(e.Message) > 512 || len(e.Body) > 4096 || len(err.Error()) > 600 || !strings.HasPrefix(e.Message, "éé") {
			t.Errorf("%s: message %d bytes, body %d bytes, error %d bytes", what, len(e.Message), len(e.Body), len(err.Error()))
		}
		srv.Close()
	}
}

// The token is redacted however the server echoes it: in another letter case,
// JSON-escaped, URL-encoded, or in part.
func TestTokenEchoesAreRedactedInEveryForm(t *testing.T) {
	const tok = `Ab+/=<&"x\9KZqLmN0pQrStUv`
	jsonForm, _ := json.Marshal(tok)
	forms := map[string]string{
		"exact":          tok,
		"upper":          strings.ToUpper(tok),
		"lower":          strings.ToLower(tok),
		"json":           strings.Trim(string(jsonForm), `"`),
		"query-escaped":  url.QueryEscape(tok),
		"path-escaped":   url.PathEscape(tok),
		"lower-escaped":  strings.ToLower(url.QueryEscape(tok)),
		"first 12 chars": tok[:12],
		"last 9 chars":   tok[len(tok)-9:],
		"middle 8 chars": tok[9:17],
		"twice":          tok + tok,
	}
	for what, echo := range forms {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, "bad token: %s (%s)", echo, r.Header.Get("X-Nothing"))
		}))
		c, _ := chatbot.New(srv.URL, tok)
		_, err := c.ListSegments(context.Background())
		e := apiError(t, what, err, http.StatusUnauthorized, false)
		for _, text := range []string{e.Message, e.Body, err.Error()} {
			if leaked := windowOf(text, forms); leaked != "" {
				t.Errorf("%s: %q shows %q", what, text, leaked)
			}
			if !strings.Contains(text, "bad token: [redacted] (") {
				t.Errorf("%s: %q: the echo is not replaced by [redacted], or too much is", what, text)
			}
		}
		srv.Close()
	}
}

// windowOf returns an 8-byte piece of any form found in text, in any case, or "".
func windowOf(text string, forms map[string]string) string {
	low := strings.ToLower(text)
	for _, f := range forms {
		f = strings.ToLower(f)
		for i := 0; i+8 <= len(f); i++ {
			if strings.Contains(low, f[i:i+8]) {
				return f[i : i+8]
			}
		}
	}
	return ""
}

// An API URL that does not parse is refused without being quoted: it may hold a password.
func TestBadURLIsNotQuoted(t *testing.T) {
	for _, u := range []string{"http://admin:hunter2@[::1", "http://admin:hunter2@host:port/x", "http://admin:hunter2@host\x7f/"} {
		_, err := chatbot.New(u, token)
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}
