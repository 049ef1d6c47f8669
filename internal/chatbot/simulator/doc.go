// Package simulator is a faithful, in-memory fake of the ChatBot.com user segments API, for
// tests, benchmarks and local demos. It serves the vendor's paths (GET/POST /users/segments,
// POST /users/segments/members, PUT/DELETE /users/segments/:id) with the documented request
// validation and response shapes, plus what a test needs and the real service does not offer:
// call counters, member lists, injectable latency, faults and a rate limit, and a control
// endpoint under /_sim/.
//
// Where the vendor documents nothing, the simulator makes a choice and says so in a comment
// marked "Undocumented:".
package simulator
