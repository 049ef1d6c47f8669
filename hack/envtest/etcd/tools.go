//go:build tools

// Package tools pins go.etcd.io/etcd/server/v3 in this module's go.mod.
package tools

import _ "go.etcd.io/etcd/server/v3"
