package logging

import (
	"github.com/go-logr/logr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// New returns controller-runtime's zap logger made from opts (the manager's --zap-* flags),
// with key-value pairs encoded when a line is written, not when they are added.
func New(opts *zap.Options) logr.Logger {
	return zap.New(zap.UseFlagOptions(opts), zap.RawZapOpts(uberzap.WrapCore(lazy)))
}

// lazyCore is a zapcore.Core whose With encodes nothing until a line is written through
// it (zapcore.NewLazyWith), and returns a lazyCore, so that a chain of With encodes nothing
// either. A line filtered out by its level encodes nothing at all.
type lazyCore struct{ zapcore.Core }

func lazy(c zapcore.Core) zapcore.Core { return lazyCore{c} }

func (c lazyCore) With(fields []zapcore.Field) zapcore.Core {
	return lazyCore{zapcore.NewLazyWith(c.Core, fields)}
}
