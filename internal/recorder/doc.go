// Package recorder writes the manager's Events (events.k8s.io/v1), as client-go's
// events.EventRecorder does, in memory that no number of Segments grows.
//
// An occurrence is an Event's type, reason and action about one object (its UID and
// resourceVersion, so a Segment that changed gets a new Event) and the related object. The
// first occurrence is written as a new Event. A repeat within 6 minutes of the last is
// counted in that Event's series (series.count, series.lastObservedTime), patched at most
// every few seconds however often it repeats, as client-go does for repeats, so a Segment
// that fails the same way at every retry has one Event, not one per retry.
//
// client-go's broadcaster keeps a copy of every Event it wrote for 6 to 12 minutes, however
// many there are: 10,000 new Segments held 10 MB of Events, and two goroutines each while
// it was written. Here an occurrence is remembered in a cache of fixed size (the least
// recently seen forgotten first: its next repeat is a new Event), and Events wait to be
// written in a queue of fixed length, past which they are dropped and counted, as
// client-go drops them when its queue is full. Eventf never blocks a reconcile. An Event
// that could not be written, or is gone when its count is, is forgotten: its next repeat
// is a new Event. A stopping Recorder writes what it holds for at most 5 s in all.
package recorder
