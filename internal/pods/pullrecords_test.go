package pods

import (
	"io"
	"log/slog"
	"testing"

	"knode.io/knode/internal/keyring"
)

// KEP-2535 with NeverVerifyPreloadedImages: a preloaded image serves
// everyone, one pulled anonymously too, one pulled with a secret only
// pods holding the same credential (under any secret name), and the
// records outlive a restart.
func TestPullRecords(t *testing.T) {
	root := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r := newPullRecords(root, log)
	secretA := keyring.Entry{Username: "u", Password: "p", Source: &keyring.SecretRef{Namespace: "a", Name: "regcred", UID: "1"}}
	sameCredB := keyring.Entry{Username: "u", Password: "p", Source: &keyring.SecretRef{Namespace: "b", Name: "other", UID: "2"}}
	wrong := keyring.Entry{Username: "u", Password: "nope", Source: &keyring.SecretRef{Namespace: "b", Name: "wrong", UID: "3"}}
	nodeCred := keyring.Entry{Username: "u", Password: "p"}
	creds := func(es ...keyring.Entry) func() []keyring.Entry { return func() []keyring.Entry { return es } }

	if r.mustPull("reg/app:1", "sha256:pre", "reg/app", creds()) {
		t.Error("a preloaded image must not be verified")
	}
	r.intent("reg/app:1")
	r.pulled("reg/app:1", "sha256:priv", "reg/app", &secretA, true)
	r.intent("reg/pub:1")
	r.pulled("reg/pub:1", "sha256:pub", "reg/pub", nil, true)

	for _, tc := range []struct {
		name  string
		creds []keyring.Entry
		want  bool
	}{
		{"no credentials", nil, true},
		{"the node's credentials only", []keyring.Entry{nodeCred}, true},
		{"another credential", []keyring.Entry{wrong}, true},
		{"the same credential under another secret", []keyring.Entry{wrong, sameCredB}, false},
		{"the secret that pulled it", []keyring.Entry{secretA}, false},
	} {
		if got := r.mustPull("reg/app:1", "sha256:priv", "reg/app", creds(tc.creds...)); got != tc.want {
			t.Errorf("%s: mustPull %v, want %v", tc.name, got, tc.want)
		}
	}
	if r.mustPull("reg/pub:1", "sha256:pub", "reg/pub", creds()) {
		t.Error("an anonymously pulled image must serve every pod")
	}
	// The same image ID from another repository was not pulled from there.
	if !r.mustPull("other/app:1", "sha256:priv", "other/app", creds()) {
		t.Error("an image knode pulled from one repository served another's name unchecked")
	}
	// A pull that never ended makes the image knode's, not preloaded.
	r.intent("reg/crash:1")
	again := newPullRecords(root, log)
	if !again.mustPull("reg/crash:1", "sha256:crash", "reg/crash", creds()) {
		t.Error("an image whose pull was cut off passed for preloaded")
	}
	if again.mustPull("reg/app:1", "sha256:priv", "reg/app", creds(secretA)) || !again.mustPull("reg/app:1", "sha256:priv", "reg/app", creds()) {
		t.Error("the records did not outlive a restart")
	}
}
