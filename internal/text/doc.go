// Package text shapes the words of conditions, events and errors: it shortens them for the
// places that bound them, and counts and lists things the same way everywhere.
//
// The API server refuses an event note over 1024 bytes and bounds a condition message, and
// an answer from a broken or hostile API may be any size: Cut shortens text to a bound, on
// a rune boundary, and marks it as cut. Plural ("1 member", "2 members") and Sample (the
// first three items and how many more) keep messages short and stable: a message that
// changes with nothing else changing would cost a status write.
package text
