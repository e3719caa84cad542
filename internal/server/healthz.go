package server

import (
	"fmt"
	"net/http"
	"strings"
)

// healthz serves /healthz (all checks) and /healthz/<name> (one check) in
// the apiserver's format: "ok", or "[-]name failed: reason" lines and 500.
func (s *Server) healthz() http.Handler {
	checks := append([]HealthCheck{{Name: "ping", Check: func() error { return nil }}}, s.cfg.Health...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "405: Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		selected := checks
		if name := r.PathValue("check"); name != "" {
			selected = nil
			for _, c := range checks {
				if c.Name == name {
					selected = []HealthCheck{c}
				}
			}
			if selected == nil {
				http.NotFound(w, r)
				return
			}
		}
		var out strings.Builder
		failed := false
		for _, c := range selected {
			if err := c.Check(); err != nil {
				failed = true
				fmt.Fprintf(&out, "[-]%s failed: %v\n", c.Name, err)
			} else {
				fmt.Fprintf(&out, "[+]%s ok\n", c.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if failed {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "%shealthz check failed\n", out.String())
			return
		}
		if r.URL.Query().Has("verbose") {
			fmt.Fprintf(w, "%shealthz check passed\n", out.String())
			return
		}
		fmt.Fprint(w, "ok")
	})
}
