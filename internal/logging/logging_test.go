package logging

import (
	"bytes"
	"encoding/json"
	"testing"

	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// countingCore counts the With calls that reach the core that encodes.
type countingCore struct {
	zapcore.Core
	withs *int
}

func (c countingCore) With(fields []zapcore.Field) zapcore.Core {
	*c.withs++
	return countingCore{c.Core.With(fields), c.withs}
}

func (c countingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

// Values added to a logger reach the core only when a line is written, and then all of
// them, in order; a line below the level encodes none.
func TestValuesAreEncodedWhenALineIsWritten(t *testing.T) {
	obs, logs := observer.New(zapcore.InfoLevel)
	withs := 0
	core := lazy(countingCore{obs, &withs})
	chained := core.With([]zapcore.Field{{Key: "controller", Type: zapcore.StringType, String: "segment"}}).
		With([]zapcore.Field{{Key: "reconcileID", Type: zapcore.StringType, String: "r1"}})
	if ce := chained.Check(zapcore.Entry{Level: zapcore.DebugLevel, Message: "quiet"}, nil); ce != nil {
		t.Fatal("a debug line passed an info core")
	}
	if withs != 0 {
		t.Fatalf("%d values encoded before any line was written", withs)
	}
	if ce := chained.Check(zapcore.Entry{Level: zapcore.InfoLevel, Message: "created"}, nil); ce != nil {
		ce.Write(zapcore.Field{Key: "remoteID", Type: zapcore.StringType, String: "s1"})
	}
	if withs != 2 || logs.Len() != 1 {
		t.Fatalf("%d With calls and %d lines, want 2 and 1", withs, logs.Len())
	}
	got := logs.All()[0].ContextMap()
	for k, want := range map[string]string{"controller": "segment", "reconcileID": "r1", "remoteID": "s1"} {
		if got[k] != want {
			t.Errorf("%s = %v, want %q", k, got[k], want)
		}
	}
}

// The manager's logger writes its JSON lines with every value added, and honours the
// level of its flags.
func TestNew(t *testing.T) {
	var buf bytes.Buffer
	log := New(&zap.Options{DestWriter: &buf})
	log.WithValues("namespace", "team-a").WithValues("name", "vip").V(1).Info("not at the default level")
	log.WithValues("namespace", "team-a").WithValues("name", "vip").Info("created remote segment", "remoteID", "s1")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("want one JSON line, got %q: %v", buf.String(), err)
	}
	for k, want := range map[string]string{"msg": "created remote segment", "namespace": "team-a", "name": "vip", "remoteID": "s1"} {
		if line[k] != want {
			t.Errorf("%s = %v, want %q (line %s)", k, line[k], want, buf.String())
		}
	}
}
