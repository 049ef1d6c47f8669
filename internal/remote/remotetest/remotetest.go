package remotetest

import (
	"net/http/httptest"
	"testing"

	"github.com/segment-operator/segment-operator/internal/chatbot/simulator"
	"github.com/segment-operator/segment-operator/internal/remote"
)

// Account starts a simulator, stopped when the test ends, and returns it with the account
// remote.Accounts hands out for it to the Segments of namespace.
func Account(t *testing.T, namespace string) (*simulator.Server, *remote.Account) {
	t.Helper()
	sim, err := simulator.New(simulator.Options{Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	acct, err := remote.NewAccounts(remote.AccountOptions{}).For(remote.Credentials{BaseURL: srv.URL, Token: "t"}, namespace)
	if err != nil {
		t.Fatal(err)
	}
	return sim, acct
}
