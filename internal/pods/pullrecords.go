package pods

import (
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"knode.io/knode/internal/keyring"
)

// pullRecords are the kubelet's image pull records (KEP-2535, "ensure
// secret pulled images", on by default since v1.35, with its default
// policy NeverVerifyPreloadedImages): an image knode pulled with a pull
// secret's credentials serves, under IfNotPresent or Never, only pods
// whose own pull secrets hold the same credential; others pull again with
// theirs (and fail without). An image pulled anonymously or with the
// node's own credentials serves every pod, and one knode never pulled
// (preloaded, imported) is not checked. Kept in
// <root-dir>/image_manager/pull-records.json, so a knode restart keeps them.
type pullRecords struct {
	mu   sync.Mutex
	path string
	log  *slog.Logger
	// loaded is set once the file was read.
	loaded bool
	state  pullState
}

type pullState struct {
	// Pulled: image ID → repository → who may use it.
	Pulled map[string]map[string]*pullAccess `json:"pulled"`
	// Intents are images whose pull started and has not ended: an image
	// found after a crash mid-pull is knode's, not preloaded.
	Intents map[string]int `json:"intents"`
}

// pullAccess says who may use an image pulled from one repository.
type pullAccess struct {
	// NodeWide: pulled anonymously or with the node's credentials.
	NodeWide bool         `json:"nodeWide,omitempty"`
	Secrets  []pullSecret `json:"secrets,omitempty"`
}

// pullSecret is a pull secret that pulled an image: its coordinates and
// its credential's hash.
type pullSecret struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Hash      string `json:"hash"`
}

func newPullRecords(rootDir string, log *slog.Logger) *pullRecords {
	path := ""
	if rootDir != "" {
		path = filepath.Join(rootDir, "image_manager", "pull-records.json")
	}
	return &pullRecords{path: path, log: log}
}

// loadLocked reads the records once; a missing or broken file starts empty
// (a broken one is logged: images it named are then taken as preloaded).
func (r *pullRecords) loadLocked() {
	if r.loaded {
		return
	}
	r.loaded = true
	r.state = pullState{Pulled: map[string]map[string]*pullAccess{}, Intents: map[string]int{}}
	if r.path == "" {
		return
	}
	data, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var st pullState
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		r.log.Warn("image pull records unreadable; starting without them", "file", r.path, "err", err)
		return
	}
	if st.Pulled != nil {
		r.state.Pulled = st.Pulled
	}
	if st.Intents != nil {
		r.state.Intents = st.Intents
	}
}

// saveLocked writes the records through a temporary file and a rename.
func (r *pullRecords) saveLocked() {
	if r.path == "" {
		return
	}
	data, err := json.Marshal(r.state)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(r.path), 0o700)
	}
	if err == nil {
		tmp := r.path + ".tmp"
		if err = os.WriteFile(tmp, data, 0o600); err == nil {
			err = os.Rename(tmp, r.path)
		}
	}
	if err != nil {
		r.log.Warn("write image pull records", "file", r.path, "err", err)
	}
}

// mustPull tells whether a pod must pull an image that is present
// (imageID) before using it, with creds its credentials for repo (lazy:
// looked up only when the records ask).
func (r *pullRecords) mustPull(image, imageID, repo string, creds func() []keyring.Entry) bool {
	r.mu.Lock()
	r.loadLocked()
	access := r.state.Pulled[imageID][repo]
	byKnode := r.state.Pulled[imageID] != nil || r.state.Intents[image] > 0
	var recorded []pullSecret
	if access != nil {
		recorded = slices.Clone(access.Secrets)
	}
	nodeWide := access != nil && access.NodeWide
	r.mu.Unlock()
	switch {
	case !byKnode:
		return false // preloaded: NeverVerifyPreloadedImages
	case access == nil:
		return true
	case nodeWide:
		return false
	}
	for _, e := range creds() {
		if e.Source == nil {
			continue
		}
		hash := e.Hash()
		for _, rec := range recorded {
			if rec.Hash == hash {
				r.recordSecret(imageID, repo, e)
				return false
			}
		}
	}
	return true
}

// intent notes a pull about to start; done ends it.
func (r *pullRecords) intent(image string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadLocked()
	r.state.Intents[image]++
	r.saveLocked()
}

// pulled records a finished pull: who may use the image from now on
// (used is the credential that worked, nil for an anonymous pull).
func (r *pullRecords) pulled(image, imageID, repo string, used *keyring.Entry, ok bool) {
	r.mu.Lock()
	r.loadLocked()
	if r.state.Intents[image] > 1 {
		r.state.Intents[image]--
	} else {
		delete(r.state.Intents, image)
	}
	if !ok || imageID == "" {
		r.saveLocked()
		r.mu.Unlock()
		return
	}
	if used == nil || used.Source == nil {
		r.accessLocked(imageID, repo).NodeWide = true
		r.saveLocked()
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	r.recordSecret(imageID, repo, *used)
}

// recordSecret adds a pull secret (by coordinates and credential hash) to
// those an image serves.
func (r *pullRecords) recordSecret(imageID, repo string, e keyring.Entry) {
	rec := pullSecret{Namespace: e.Source.Namespace, Name: e.Source.Name, UID: e.Source.UID, Hash: e.Hash()}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loadLocked()
	a := r.accessLocked(imageID, repo)
	if slices.Contains(a.Secrets, rec) {
		return
	}
	a.Secrets = append(a.Secrets, rec)
	r.saveLocked()
}

func (r *pullRecords) accessLocked(imageID, repo string) *pullAccess {
	byRepo := r.state.Pulled[imageID]
	if byRepo == nil {
		byRepo = map[string]*pullAccess{}
		r.state.Pulled[imageID] = byRepo
	}
	a := byRepo[repo]
	if a == nil {
		a = &pullAccess{}
		byRepo[repo] = a
	}
	return a
}
