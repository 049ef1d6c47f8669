package localenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InstallAdmission installs the admission policies of config/admission, as the install
// does, and waits until the API server applies them: a Segment created in a dry run comes
// back with the operator's finalizer.
func InstallAdmission(ctx context.Context, c client.Client, root string) error {
	policy, err := os.ReadFile(filepath.Join(root, "config", "admission", "segment_finalizer_policy.yaml"))
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(policy), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("read the admission policy: %w", err)
		}
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("install %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		probe := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "users.chatbot.com/v1alpha1", "kind": "Segment",
			"metadata": map[string]any{"name": "admission-probe", "namespace": metav1.NamespaceDefault},
		}}
		if err := c.Create(ctx, probe, client.DryRunAll); err != nil {
			return false, nil // the CRD may not be served yet: ask again
		}
		return len(probe.GetFinalizers()) > 0, nil
	})
}
