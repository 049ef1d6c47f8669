package controller

import (
	"context"
	"errors"
	"slices"

	"sigs.k8s.io/controller-runtime/pkg/client"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/sources"
)

// desiredMembers returns the Segment's members (see sources.Reader.Members); sources it
// cannot use stop the Segment (MembersSourceError) until they change.
func desiredMembers(ctx context.Context, reader *sources.Reader, seg *usersv1alpha1.Segment) ([]string, error) {
	members, err := reader.Members(ctx, seg)
	if bad := (*sources.Error)(nil); errors.As(err, &bad) {
		return nil, stall(usersv1alpha1.ReasonMembersSourceError, "%s", bad.Error())
	}
	return members, err
}

// indexMembersFrom names the ConfigMaps a Segment reads its members from.
const indexMembersFrom = "spec.membersFrom.configMap"

func indexByMembersFrom(o client.Object) []string {
	var names []string
	for _, src := range o.(*usersv1alpha1.Segment).Spec.MembersFrom {
		if !slices.Contains(names, src.ConfigMap) {
			names = append(names, src.ConfigMap)
		}
	}
	return names
}
