// Package logging makes the manager's logger: controller-runtime's zap logger, whose
// key-value pairs (WithValues) are encoded only when a line is written.
//
// controller-runtime gives every reconcile a logger with the controller, the object and a
// reconcile ID, and the reconciler adds the remote ID: zap encodes each pair into a copy of
// the encoder at once, whether any line is logged or not. Most reconciles log nothing at
// the default level, and at 10,000 Segments those copies were 6% of the manager's CPU.
package logging
