package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// A forgotten account's series go with it; another account's stay.
func TestForgetAccountDropsItsSeries(t *testing.T) {
	for _, acct := range []string{"gone", "kept"} {
		ObserveAPICall(acct, chatbot.OpList, 200, time.Millisecond)
		ObserveAPICall(acct, chatbot.OpCreate, 429, time.Millisecond)
	}
	ForgetAccount("gone")
	if n := testutil.CollectAndCount(apiRequests); n != 2 {
		t.Errorf("%d request series left, want the 2 of the kept account", n)
	}
	if n := testutil.CollectAndCount(apiLatency); n != 2 {
		t.Errorf("%d latency series left, want the 2 of the kept account", n)
	}
	if got := testutil.ToFloat64(apiRequests.WithLabelValues("kept", "list", "200")); got != 1 {
		t.Errorf("the kept account's count is %v, want 1", got)
	}
}
