package chatbot

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":     0,
		"3":    3 * time.Second,
		" 3 ":  3 * time.Second,
		"0.5":  500 * time.Millisecond,
		"0":    0,
		"-5":   0,
		"soon": 0,
		"NaN":  0,
		"Inf":  maxRetryAfter,
		"1e10": maxRetryAfter,
		"7200": maxRetryAfter,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(48 * time.Hour).Format(http.TimeFormat):   maxRetryAfter,
		now.Add(-time.Minute).Format(http.TimeFormat):     0,
	} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q = %v, want %v", v, got, want)
		}
	}
}
