package plan

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	usersv1alpha1 "github.com/segment-operator/segment-operator/api/v1alpha1"
	"github.com/segment-operator/segment-operator/internal/chatbot"
)

// Record copies what the API reports of the remote segment into the Segment's status: its
// name, member count and creation time. Recorded reads them back, so that a plan computed
// from status alone (kubectl segments plan) sees what the controller saw.
func Record(seg *usersv1alpha1.Segment, observed chatbot.Segment) {
	seg.Status.Name = observed.Name
	seg.Status.RemoteMembers = int32(observed.Users)
	if !observed.CreatedAt.IsZero() {
		// metav1.Time is stored in whole seconds: keeping the API's milliseconds would make
		// every reconcile see a change, and send a status write, where there is none.
		t := metav1.NewTime(observed.CreatedAt.Truncate(time.Second))
		seg.Status.CreatedAt = &t
	}
}

// Recorded is the remote segment status.id as the Segment's status last recorded it
// (Record), or nil when status names none. Its member count is the one the operator last
// wrote, which its own adds may have raised: not the API's own count (see Manage's
// counted).
func Recorded(seg *usersv1alpha1.Segment) *chatbot.Segment {
	if seg.Status.ID == "" {
		return nil
	}
	s := &chatbot.Segment{ID: seg.Status.ID, Name: seg.Status.Name, Users: int(seg.Status.RemoteMembers)}
	if t := seg.Status.CreatedAt; t != nil {
		s.CreatedAt = chatbot.Timestamp{Time: t.UTC()}
	}
	return s
}
