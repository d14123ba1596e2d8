package apiserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Check is one named health check of /readyz.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

var ping = Check{Name: "ping", Check: func(context.Context) error { return nil }}

// serveHealth answers /livez, /healthz and /readyz as kube-apiserver does:
// "ok" when every check passes, else 503 with a line per check ("[+]NAME
// ok", "[-]NAME failed: reason withheld": the endpoints need no
// credentials); ?verbose lists the checks when they pass too, ?exclude=NAME
// skips one, and /readyz/NAME runs only NAME. /livez and /healthz have
// only ping: the process serves; /readyz adds the control plane's
// readiness checks.
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	endpoint, only, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	checks := []Check{ping}
	if endpoint == "readyz" {
		checks = append(checks, s.cfg.ReadyChecks...)
	}
	if only != "" {
		i := slices.IndexFunc(checks, func(c Check) bool { return c.Name == only })
		if i < 0 {
			http.NotFound(w, r)
			return
		}
		if err := checks[i].Check(r.Context()); err != nil {
			s.log.Debug("health check failed", "check", only, "err", err)
			writeText(w, http.StatusServiceUnavailable, "internal server error: "+only+" check failed\n")
			return
		}
		writeText(w, http.StatusOK, "ok")
		return
	}
	exclude := r.URL.Query()["exclude"]
	var out strings.Builder
	failed := false
	for _, c := range checks {
		if slices.Contains(exclude, c.Name) {
			fmt.Fprintf(&out, "[+]%s excluded: ok\n", c.Name)
			continue
		}
		if err := c.Check(r.Context()); err != nil {
			s.log.Debug("health check failed", "check", c.Name, "err", err)
			fmt.Fprintf(&out, "[-]%s failed: reason withheld\n", c.Name)
			failed = true
			continue
		}
		fmt.Fprintf(&out, "[+]%s ok\n", c.Name)
	}
	switch {
	case failed:
		writeText(w, http.StatusServiceUnavailable, out.String()+endpoint+" check failed\n")
	case r.URL.Query().Has("verbose"):
		writeText(w, http.StatusOK, out.String()+endpoint+" check passed\n")
	default:
		writeText(w, http.StatusOK, "ok")
	}
}

// healthPath reports whether p is endpoint or one of its checks.
func healthPath(p, endpoint string) bool {
	rest, ok := strings.CutPrefix(p, endpoint)
	return ok && (rest == "" || rest[0] == '/' && !strings.Contains(rest[1:], "/"))
}
