package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/wasmfleet/wasmfleet/controlplane/modules"
)

// defaultKubeconfig is the admin kubeconfig `wasmfleet up` and `wasmfleet
// server` write with their default data dir.
const defaultKubeconfig = ".wasmfleet/kubeconfig.yaml"

func moduleCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "module", Short: "Push and list WebAssembly modules in the cluster's module store"}
	var kubeconfig string
	cmd.PersistentFlags().StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of an admin (default: $KUBECONFIG, else "+defaultKubeconfig+", else ~/.kube/config)")

	push := &cobra.Command{
		Use:   "push NAME:TAG FILE",
		Short: "Store a module and point NAME:TAG at it; prints its digest (sha256:<hex>) last",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			rf, err := modules.ParseRef(args[0])
			if err != nil {
				return err
			}
			if rf.Tag == "" {
				return fmt.Errorf("%w %q: push to NAME:TAG", modules.ErrInvalidRef, args[0])
			}
			c, err := newModuleClient(kubeconfig)
			if err != nil {
				return err
			}
			digest, err := c.push(cmd.Context(), rf, args[1], stderr)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, digest)
			return nil
		},
	}
	ls := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the module store's tags and modules",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := newModuleClient(kubeconfig)
			if err != nil {
				return err
			}
			mods, err := c.list(cmd.Context())
			if err != nil {
				return err
			}
			return printModules(stdout, mods, time.Now())
		},
	}
	cmd.AddCommand(push, ls)
	return cmd
}

// moduleClient calls the module API of the cluster a kubeconfig names.
type moduleClient struct {
	http *http.Client
	base *url.URL
}

func newModuleClient(kubeconfig string) (*moduleClient, error) {
	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	return &moduleClient{http: hc, base: base}, nil
}

// restConfig loads the kubeconfig named by the flag, else $KUBECONFIG
// (a path list, as kubectl reads it), else .wasmfleet/kubeconfig.yaml if
// it exists, else ~/.kube/config.
func restConfig(flag string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{}
	what := ""
	switch env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); {
	case flag != "":
		rules.ExplicitPath, what = flag, flag
	case env != "":
		rules.Precedence, what = filepath.SplitList(env), "$KUBECONFIG="+env
	default:
		rules.ExplicitPath = clientcmd.RecommendedHomeFile
		if _, err := os.Stat(defaultKubeconfig); err == nil {
			rules.ExplicitPath = defaultKubeconfig
		}
		what = rules.ExplicitPath
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w (use --kubeconfig, or run `wasmfleet server` to write %s)", what, err, defaultKubeconfig)
	}
	return cfg, nil
}

// push uploads file as the tag rf, streaming it, and returns the digest
// the server computed after checking it against its own.
func (c *moduleClient) push(ctx context.Context, rf modules.Ref, file string, progress io.Writer) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s: not a regular file", file)
	}
	// Check the header here too: a wrong file fails before it is uploaded.
	head := make([]byte, modules.HeaderSize)
	n, _ := io.ReadFull(f, head)
	if err := modules.CheckHeader(head[:n]); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}

	fmt.Fprintf(progress, "Pushing %s (%s) as %s to %s\n", file, modules.FormatSize(st.Size()), rf, c.base.Host)
	h := sha256.New()
	body := &progressReader{r: io.TeeReader(f, h), total: st.Size(), w: progress}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.base.JoinPath(modules.CollectionPath, rf.String()).String(), body)
	if err != nil {
		return "", err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", modules.MediaType)
	req.Header.Set("Accept", "application/json")
	var res modules.PushResult
	if err := c.do(req, &res); err != nil {
		return "", fmt.Errorf("push %s: %w", rf, err)
	}
	if local := "sha256:" + hex.EncodeToString(h.Sum(nil)); res.Digest != local || res.Size != st.Size() {
		return "", fmt.Errorf("push %s: the server stored %s (%d bytes), but %s is %s (%d bytes)", rf, res.Digest, res.Size, file, local, st.Size())
	}
	fmt.Fprintf(progress, "Pushed %s:%s %s (%s)\n", res.Name, res.Tag, res.Digest, modules.FormatSize(res.Size))
	return res.Digest, nil
}

func (c *moduleClient) list(ctx context.Context) ([]modules.Module, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.JoinPath(modules.CollectionPath).String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	var list modules.ModuleList
	if err := c.do(req, &list); err != nil {
		return nil, fmt.Errorf("list modules: %w", err)
	}
	return list.Items, nil
}

// do sends req and decodes a 200 answer into out; any other answer
// becomes an error carrying the server's Status message.
func (c *moduleClient) do(req *http.Request, out any) error {
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var st metav1.Status
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			return fmt.Errorf("%s (HTTP %d %s)", st.Message, resp.StatusCode, st.Reason)
		}
		return fmt.Errorf("HTTP %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}

func printModules(w io.Writer, mods []modules.Module, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTAG\tDIGEST\tSIZE\tAGE")
	for _, m := range mods {
		name, tag := m.Name, m.Tag
		if name == "" {
			name, tag = "<none>", "<none>"
		}
		age := "<unknown>"
		if !m.Created.IsZero() {
			age = duration.HumanDuration(now.Sub(m.Created))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, tag, m.Digest, modules.FormatSize(m.Size), age)
	}
	return tw.Flush()
}

// progressReader reports upload progress: every 10% for files of 1 MiB
// or more.
type progressReader struct {
	r     io.Reader
	total int64
	n     int64
	shown int64 // last tenth reported
	w     io.Writer
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.total >= 1<<20 {
		if tenth := p.n * 10 / p.total; tenth > p.shown && tenth < 10 {
			p.shown = tenth
			fmt.Fprintf(p.w, "  %3d%%  %s of %s\n", tenth*10, modules.FormatSize(p.n), modules.FormatSize(p.total))
		}
	}
	return n, err
}
