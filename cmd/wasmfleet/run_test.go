package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/wasmfleet/wasmfleet/controlplane/server"
	"github.com/wasmfleet/wasmfleet/internal/agentcmd"
	"github.com/wasmfleet/wasmfleet/internal/testcluster"
	"github.com/wasmfleet/wasmfleet/internal/testenv"
)

// TestServerYAMLDocumentsDefaults loads configs/server.yaml and checks that
// it documents exactly the defaults.
func TestServerYAMLDocumentsDefaults(t *testing.T) {
	cmd := serverCmd(context.Background(), &bytes.Buffer{}, "server", "")
	if err := cmd.Flags().Parse([]string{"--config", "../../configs/server.yaml"}); err != nil {
		t.Fatal(err)
	}
	v, err := agentcmd.LoadConfig(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	var got server.Config
	if err := v.Unmarshal(&got); err != nil {
		t.Fatal(err)
	}
	want := server.Defaults()
	// An empty YAML list and an unset slice mean the same.
	if len(got.EtcdEndpoints) == 0 && len(got.TLSSANs) == 0 {
		got.EtcdEndpoints, got.TLSSANs = nil, nil
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("configs/server.yaml gives\n%+v\nwant the defaults\n%+v", got, want)
	}
	// Every flag is a documented key.
	keys := v.AllKeys()
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Name == "config" {
			return
		}
		found := false
		for _, k := range keys {
			found = found || k == f.Name
		}
		if !found || !v.InConfig(f.Name) {
			t.Errorf("configs/server.yaml does not document %q", f.Name)
		}
	})
}

// TestConfigPrecedence: flags beat WASMFLEET_* env, env beats the file.
func TestConfigPrecedence(t *testing.T) {
	t.Setenv("WASMFLEET_API_LISTEN", "127.0.0.1:7443")
	t.Setenv("WASMFLEET_NATS_LISTEN", "127.0.0.1:5222")
	cmd := serverCmd(context.Background(), &bytes.Buffer{}, "server", "")
	if err := cmd.Flags().Parse([]string{"--config", "../../configs/server.yaml", "--nats-listen", "127.0.0.1:6222"}); err != nil {
		t.Fatal(err)
	}
	v, err := agentcmd.LoadConfig(cmd.Flags())
	if err != nil {
		t.Fatal(err)
	}
	var got server.Config
	if err := v.Unmarshal(&got); err != nil {
		t.Fatal(err)
	}
	if got.APIListen != "127.0.0.1:7443" || got.NATSListen != "127.0.0.1:6222" || got.EtcdClientListen != "127.0.0.1:2379" {
		t.Fatalf("precedence: %+v", got)
	}
}

func TestUnknownCommandAndBadConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code == 0 {
		t.Fatal("unknown command succeeded")
	}
	errb.Reset()
	if code := run(context.Background(), []string{"server", "--data-dir", t.TempDir(), "--api-listen", "nope"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "api-listen") {
		t.Fatalf("bad api-listen: code %d, stderr %s", code, errb.String())
	}
	// A config file's typo and a duration without its unit are refused,
	// for the agent as for the server.
	for _, tc := range []struct{ cmd, yaml, want string }{
		{"server", "api_listen: 127.0.0.1:7443\n", `unknown setting "api_listen"`},
		{"agent", "max_pods: 5\n", `unknown setting "max_pods"`},
		{"agent", "lease-duration: 40\n", "lease-duration: 40 is not a duration; write it with a unit"},
	} {
		file := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(file, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		errb.Reset()
		if code := run(context.Background(), []string{tc.cmd, "--config", file, "--data-dir", t.TempDir()}, &out, &errb); code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s with %q: code %d, stderr %s", tc.cmd, tc.yaml, code, errb.String())
		}
	}
	// A component may read the server's file.
	errb.Reset()
	run(context.Background(), []string{"scheduler", "--config", "../../configs/server.yaml", "--kubeconfig", filepath.Join(t.TempDir(), "none")}, &out, &errb)
	if strings.Contains(errb.String(), "unknown setting") {
		t.Errorf("scheduler with the server's config file: %s", errb.String())
	}
}

// TestWithAgentFromEnv: with-agent is a setting like the others, so
// WASMFLEET_WITH_AGENT (or the config file) runs the local agent too.
func TestWithAgentFromEnv(t *testing.T) {
	dir := t.TempDir()
	t.Cleanup(func() { stopGuestHost(t, filepath.Join(dir, "agent")) })
	t.Setenv("WASMFLEET_WITH_AGENT", "true")
	ctx, cancel := context.WithCancel(context.Background())
	var stderr testenv.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"server", "--data-dir", dir, "--api-listen", testenv.FreeAddr(t), "--nats-listen", "127.0.0.1:0",
			"--etcd-client-listen", testenv.FreeAddr(t), "--etcd-peer-listen", testenv.FreeAddr(t)}, &bytes.Buffer{}, &stderr)
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("server exited %d:\n%s", code, stderr.String())
		}
	}()
	cp := &testcluster.Cluster{DataDir: dir}
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := os.Stat(cp.Kubeconfig()); err == nil {
			if nodes, err := cp.Client(t).CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil && len(nodes.Items) == 1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no node after 1m:\n%s", stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBadWithAgentIsRefused: with-agent is decoded like the other
// settings: a value that is no boolean is an error, not false.
func TestBadWithAgentIsRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(file, []byte("with-agent: yes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--config", file}, {}} {
		if len(args) == 0 {
			t.Setenv("WASMFLEET_WITH_AGENT", "on")
		}
		var errb bytes.Buffer
		// A bad api-listen keeps the server from starting if with-agent passes.
		args = append(args, "--data-dir", t.TempDir(), "--api-listen", "nope")
		if code := run(context.Background(), append([]string{"server"}, args...), &bytes.Buffer{}, &errb); code == 0 || !strings.Contains(errb.String(), "'with-agent' cannot parse value as 'bool'") {
			t.Errorf("server %v: code %d, stderr %s", args, code, errb.String())
		}
	}
}

// TestConfigFileAnyName: --config reads YAML whatever the file is called
// (a mounted ConfigMap key, /etc/wasmfleet/server.conf).
func TestConfigFileAnyName(t *testing.T) {
	for _, name := range []string{"config", "server.conf", "server.yml"} {
		file := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(file, []byte("api-listen: from-the-file\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		if code := run(context.Background(), []string{"server", "--config", file, "--data-dir", t.TempDir()}, &bytes.Buffer{}, &errb); code == 0 || !strings.Contains(errb.String(), `api-listen "from-the-file"`) {
			t.Errorf("--config %s: code %d, stderr %s", name, code, errb.String())
		}
	}
}

// TestBadValuesOnOneLine: values that do not decode are reported on one
// line that names each setting.
func TestBadValuesOnOneLine(t *testing.T) {
	t.Setenv("WASMFLEET_EVENTS_MAX_AGE", "40")
	t.Setenv("WASMFLEET_MODULE_MAX_SIZE", "12MB")
	var errb bytes.Buffer
	code := run(context.Background(), []string{"server", "--data-dir", t.TempDir(), "--api-listen", "nope"}, &bytes.Buffer{}, &errb)
	out := errb.String()
	if code == 0 || strings.Count(out, "\n") != 1 || !strings.Contains(out, "'events-max-age' time: missing unit") || !strings.Contains(out, "'module-max-size' cannot parse") {
		t.Errorf("code %d, stderr:\n%s", code, out)
	}
}

// TestWithAgentNeedsEmbeddedNATS: nodes join only through the embedded
// NATS, so with-agent and an external NATS are refused at once; the agent
// retried its join (401) for ever.
func TestWithAgentNeedsEmbeddedNATS(t *testing.T) {
	var errb bytes.Buffer
	code := run(context.Background(), []string{"server", "--data-dir", t.TempDir(), "--with-agent", "--nats-url", "nats://127.0.0.1:1",
		"--api-listen", "nope"}, &bytes.Buffer{}, &errb)
	if code == 0 || !strings.Contains(errb.String(), "with-agent needs the embedded NATS") {
		t.Errorf("code %d, stderr %s", code, errb.String())
	}
}

// TestServerProcs: two spare Ps for the embedded etcd's fsyncs, unless
// GOMAXPROCS is set, etcd is external or does not sync.
func TestServerProcs(t *testing.T) {
	embedded := server.Defaults()
	external := embedded
	external.EtcdEndpoints = []string{"http://127.0.0.1:2379"}
	noSync := embedded
	noSync.EtcdUnsafeNoFsync = true
	for _, c := range []struct {
		name string
		cfg  server.Config
		env  string
		want int
	}{
		{"embedded etcd", embedded, "", 4},
		{"GOMAXPROCS set", embedded, "2", 0},
		{"external etcd", external, "", 0},
		{"no fsync", noSync, "", 0},
	} {
		if got := serverProcs(c.cfg, c.env, 2); got != c.want {
			t.Errorf("%s: serverProcs = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestBadServiceRanges: a service CIDR too large or not a network, and a
// node port range that does not parse, are refused before anything starts.
func TestBadServiceRanges(t *testing.T) {
	for _, tc := range []struct{ flag, value, want string }{
		{"--service-cluster-ip-range", "10.0.0.0/8", "service-cluster-ip-range: service CIDR 10.0.0.0/8: want 2 to 20 host bits, not 24"},
		{"--service-cluster-ip-range", "10.43.0.1/16", "service-cluster-ip-range: service CIDR 10.43.0.1/16: not a network address"},
		{"--service-cluster-ip-range", "nope", "service-cluster-ip-range"},
		{"--service-node-port-range", "32767-30000", "service-node-port-range"},
	} {
		var errb bytes.Buffer
		// A bad api-listen too: nothing starts even if the range passed.
		code := run(context.Background(), []string{"server", "--data-dir", t.TempDir(), "--api-listen", "nope", tc.flag, tc.value}, &bytes.Buffer{}, &errb)
		if code == 0 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s %s: code %d, stderr %s", tc.flag, tc.value, code, errb.String())
		}
	}
}
