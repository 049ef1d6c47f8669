package localenv

import (
	"context"
	"os"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// RBACControlPlane is an envtest control plane, of the binaries hack/envtest.sh builds under
// root, that authorizes by RBAC as a cluster does: for suites that act as a user with only
// the install's roles. The caller starts and stops it.
func RBACControlPlane(root string) (*envtest.Environment, error) {
	assets, err := Assets(root)
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	env.ControlPlane.GetAPIServer().Configure().Set("authorization-mode", "RBAC")
	return env, nil
}

// InstallClusterRole creates the ClusterRole of the install's file path (under config/rbac),
// named as kustomize names it (segment-operator-<name>), and returns that name.
func InstallClusterRole(ctx context.Context, c client.Client, path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	role := &rbacv1.ClusterRole{}
	if err := yaml.Unmarshal(raw, role); err != nil {
		return "", err
	}
	role.Name = "segment-operator-" + role.Name
	return role.Name, c.Create(ctx, role)
}

// BindClusterRole binds ClusterRole role to subject, in a ClusterRoleBinding called name.
func BindClusterRole(ctx context.Context, c client.Client, name, role string, subject rbacv1.Subject) error {
	return c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{subject},
	})
}
