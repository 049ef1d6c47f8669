package image

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Registry is an in-memory OCI registry (go-containerregistry's pkg/registry) on 127.0.0.1.
// go-containerregistry, and so ko, speaks plain HTTP to a loopback registry without being
// told to, and asks no credentials of it.
type Registry struct {
	server *httptest.Server
	// Host is the registry's host:port, to prefix repositories with.
	Host string
}

// StartRegistry starts an empty registry; Close stops it and forgets what it held.
func StartRegistry() *Registry {
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	return &Registry{server: s, Host: s.Listener.Addr().String()}
}

// Close stops the registry.
func (r *Registry) Close() { r.server.Close() }

// Push pushes an index under repository:tag of this registry and returns its reference.
func (r *Registry) Push(repository, tag string, idx v1.ImageIndex) (name.Reference, error) {
	ref, err := name.NewTag(r.Host + "/" + repository + ":" + tag)
	if err != nil {
		return nil, err
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		return nil, fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// Index reads an index from this registry by a reference ko printed.
func (r *Registry) Index(ref string) (v1.ImageIndex, error) {
	parsed, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", ref, err)
	}
	if parsed.Context().RegistryStr() != r.Host {
		return nil, fmt.Errorf("%s is not in the local registry %s", ref, r.Host)
	}
	idx, err := remote.Index(parsed)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	return idx, nil
}

// Tags lists the tags of repository in this registry.
func (r *Registry) Tags(repository string) ([]string, error) {
	repo, err := name.NewRepository(r.Host + "/" + repository)
	if err != nil {
		return nil, err
	}
	return remote.List(repo)
}
