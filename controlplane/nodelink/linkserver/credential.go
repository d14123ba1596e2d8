package linkserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"

	"github.com/wasmfleet/wasmfleet/controlplane/storage"
)

// Names and keys of the stored node credential.
const (
	// CredentialNamespace holds the credential Secrets.
	CredentialNamespace = "kube-system"
	// CredentialPrefix starts a credential Secret's name; the node name follows.
	CredentialPrefix = "wasmfleet-node-"
	// CredentialType is the Secret type of node credentials.
	CredentialType corev1.SecretType = "wasmfleet.io/node-credential"
	// HashKey is the Secret data key holding sha256(secret).
	HashKey = "sha256"
	// NodeNameKey is the Secret data key holding the node name.
	NodeNameKey = "nodeName"

	secretBytes = 32
)

// CredentialName is the name of node's credential Secret.
func CredentialName(node string) string { return CredentialPrefix + node }

// credentials reads and writes node credential Secrets in etcd. Safe for
// concurrent use.
type credentials struct {
	store *storage.Store
	now   func() time.Time
}

func credentialKey(node string) string {
	return storage.Key("secrets", CredentialNamespace, CredentialName(node))
}

// issue creates or rotates node's credential and returns the new secret.
// Only its hash is stored.
func (c *credentials) issue(ctx context.Context, node string) (string, error) {
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("node credential: random: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(secret))
	key := credentialKey(node)
	for attempt := 0; attempt < 5; attempt++ {
		old, err := c.store.Get(ctx, key)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			value, err := json.Marshal(c.newSecret(node, sum[:], nil))
			if err != nil {
				return "", err
			}
			_, err = c.store.CreateGuarded(ctx, key, value, storage.Key("namespaces", "", CredentialNamespace), 0)
			if errors.Is(err, storage.ErrExists) {
				continue
			}
			if err != nil {
				return "", fmt.Errorf("node credential %s: create: %w", node, err)
			}
			return secret, nil
		case err != nil:
			return "", fmt.Errorf("node credential %s: read: %w", node, err)
		}
		var prev corev1.Secret
		if err := json.Unmarshal(old.Value, &prev); err != nil {
			return "", fmt.Errorf("node credential %s: decode stored secret: %w", node, err)
		}
		value, err := json.Marshal(c.newSecret(node, sum[:], &prev))
		if err != nil {
			return "", err
		}
		_, err = c.store.Update(ctx, key, value, old.Rev, old.Lease)
		if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("node credential %s: update: %w", node, err)
		}
		return secret, nil
	}
	return "", fmt.Errorf("node credential %s: too many concurrent updates", node)
}

// newSecret builds the stored Secret as the apiserver would store it
// (kind/apiVersion, uid, creationTimestamp; no resourceVersion). prev, if
// any, keeps its uid, creation time and labels.
func (c *credentials) newSecret(node string, hash []byte, prev *corev1.Secret) *corev1.Secret {
	s := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{Kind: "Secret", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{
			Name:              CredentialName(node),
			Namespace:         CredentialNamespace,
			UID:               uuid.NewUUID(),
			CreationTimestamp: metav1.NewTime(c.now()),
			Labels:            map[string]string{"wasmfleet.io/node": node},
			Annotations:       map[string]string{"wasmfleet.io/rotated-at": c.now().UTC().Format(time.RFC3339)},
		},
		Type: CredentialType,
		Data: map[string][]byte{HashKey: hash, NodeNameKey: []byte(node)},
	}
	if prev != nil {
		s.UID = prev.UID
		s.CreationTimestamp = prev.CreationTimestamp
		if prev.Labels != nil {
			prev.Labels["wasmfleet.io/node"] = node
			s.Labels = prev.Labels
		}
	}
	return s
}

// verify reports whether secret is node's current credential. Errors
// reading etcd count as a refusal (and are returned for logging).
func (c *credentials) verify(ctx context.Context, node, secret string) (bool, error) {
	o, err := c.store.Get(ctx, credentialKey(node))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var s corev1.Secret
	if err := json.Unmarshal(o.Value, &s); err != nil {
		return false, fmt.Errorf("decode credential of node %s: %w", node, err)
	}
	if s.Type != CredentialType || string(s.Data[NodeNameKey]) != node || len(s.Data[HashKey]) != sha256.Size {
		return false, nil
	}
	sum := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(sum[:], s.Data[HashKey]) == 1, nil
}
