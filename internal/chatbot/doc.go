// Package chatbot is a typed client for the ChatBot.com user segments API.
//
// The API has five endpoints: list segments, create a segment, add users to segments,
// rename a segment and delete a segment. It has no get-by-id (observing one segment means
// listing them all), no list-members (the member set of a segment cannot be read back, only
// its member count) and no remove-member (a member, once added, stays until the segment is
// deleted). Callers must design around all three.
//
// Every call that fails returns an *APIError, with the status, the server's message and no
// trace of the token, that says what to do next: Retryable (429, 5xx, network failures),
// Terminal (a 4xx the same request will get again), NoEffect (a create that certainly made
// nothing). So that a throttled or refused account costs no call per caller, the client
// sends nothing while a Retry-After runs (a pause), and after a 401 answers every call with
// that refusal, unsent, until a growing wait is over and one call asks again.
package chatbot
