package metadata

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Each lists the metadata only of the core objects of listKind ("SecretList",
// "ConfigMapList") that opts select, a page of limit at a time, and calls visit on each
// until it returns false. For lists the cache does not hold, or must not be trusted for:
// a page at a time, so that a namespace of many large objects costs a bounded amount of
// memory per call. visit must not keep the pointer: the page is reused.
func Each(ctx context.Context, r client.Reader, listKind string, limit int64,
	visit func(*metav1.PartialObjectMetadata) bool, opts ...client.ListOption) error {
	page := &metav1.PartialObjectMetadataList{}
	page.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind(listKind))
	for cont := ""; ; {
		if err := r.List(ctx, page, append(opts, client.Limit(limit), client.Continue(cont))...); err != nil {
			return err
		}
		for i := range page.Items {
			if !visit(&page.Items[i]) {
				return nil
			}
		}
		if cont = page.Continue; cont == "" {
			return nil
		}
	}
}
