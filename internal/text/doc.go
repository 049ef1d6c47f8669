// Package text shortens text for the places that bound it: condition messages, event
// notes and error messages.
//
// The API server refuses an event note over 1024 bytes and bounds a condition message, and
// an answer from a broken or hostile API may be any size: Cut shortens text to a bound, on
// a rune boundary, and marks it as cut.
package text
