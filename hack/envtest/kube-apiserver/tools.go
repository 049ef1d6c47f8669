//go:build tools

// Package tools pins k8s.io/kubernetes/cmd/kube-apiserver and cmd/kubectl in this module's
// go.mod.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
