// Package remotetest starts a ChatBot API simulator for a test and hands out the
// remote.Account of it, as the manager's remote.Accounts would: the account the tests of
// the remote package and of the controller's steps call.
package remotetest
