// Package credentials decides which ChatBot account a Segment uses (Resolver.Account), and
// keeps the Secret it uses from going while the Segment still needs it.
//
// # Which account
//
// A Segment with spec.credentialsRef uses the token of that Secret, which must be in the
// Segment's own namespace (there is no cross-namespace reference) and labelled
// users.chatbot.com/credentials=true. A Segment without it uses the manager's own token,
// where its namespace is granted it: listed in --default-credentials-namespaces, or
// labelled users.chatbot.com/default-credentials=true. A Secret may name another API base
// URL (apiURL) only if --allowed-api-urls allows it. Credentials that cannot be had or used
// are an *Error: retrying does not mend them, a change to the spec, the Secret or the
// grant does.
//
// # Where Secrets are read
//
// SecretScope (--namespace-credentials) says in which namespaces Segments may name a
// Secret: every one (the manager's cache, cluster-wide access to Secrets), listed ones (a
// cache of each namespace, with access granted there by the RoleBinding named
// RoleBinding), or none (no Secret is read or watched).
//
// # In use
//
// A Secret carries the credentials-in-use finalizer from before its first call until no
// Segment needs it any more: a namespace's deletion deletes Secrets and Segments in no
// particular order, and a Segment whose Secret went first could not delete its remote
// segment. In a listed namespace, the RoleBinding carries the finalizer as long as one of
// its Secrets does, so that the manager can read and let go of them to the end.
package credentials
