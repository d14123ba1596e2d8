package pki

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// kubeconfigName names the cluster and the context in written kubeconfigs.
const kubeconfigName = "wasmfleet"

// WriteKubeconfig atomically writes a kubeconfig (mode 0600) with one
// cluster and one context, both named "wasmfleet", set as current context:
// the cluster is serverURL (https) with caPEM embedded as
// certificate-authority-data, the user is named user and authenticates with
// the bearer token. The parent directory is created (0700) if missing. A
// file that already says exactly that, with mode 0600, is left alone.
func WriteKubeconfig(path, serverURL string, caPEM []byte, user, token string) error {
	u, err := url.Parse(serverURL)
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: server URL: %w", path, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("write kubeconfig %s: server URL %q must be https://HOST[:PORT]", path, serverURL)
	}
	if _, err := parseCertPEM(caPEM); err != nil {
		return fmt.Errorf("write kubeconfig %s: CA: %w", path, err)
	}
	if user == "" || token == "" {
		return fmt.Errorf("write kubeconfig %s: %w", path, errors.New("user and token must not be empty"))
	}

	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[kubeconfigName] = &clientcmdapi.Cluster{Server: serverURL, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts[kubeconfigName] = &clientcmdapi.Context{Cluster: kubeconfigName, AuthInfo: user}
	cfg.CurrentContext = kubeconfigName
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if unchanged(path, data, 0o600) {
		return nil
	}
	return writeFileAtomic(path, data, 0o600)
}

// unchanged reports whether the file path holds data with mode perm.
func unchanged(path string, data []byte, perm os.FileMode) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != perm {
		return false
	}
	have, err := os.ReadFile(path)
	return err == nil && bytes.Equal(have, data)
}
