package keyring

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// NodeSearchPaths are the node's credential files in the kubelet's order:
// config.json in the root dir, the working dir, $HOME/.docker and
// /.docker; then .dockercfg in the root dir, the working dir, $HOME and /.
// The first one that reads and parses is used.
func NodeSearchPaths(rootDir, home string) []File {
	var out []File
	for _, dir := range []string{rootDir, "", filepath.Join(home, ".docker"), "/.docker"} {
		out = append(out, File{path: filepath.Join(dir, "config.json"), parse: ParseConfigJSON})
	}
	for _, dir := range []string{rootDir, "", home, "/"} {
		out = append(out, File{path: filepath.Join(dir, ".dockercfg"), parse: ParseDockercfg})
	}
	return out
}

// File is one candidate node credentials file and its format.
type File struct {
	path  string
	parse func([]byte) (Config, error)
}

// Path is where the file is looked for (relative: the working directory).
func (f File) Path() string { return f.path }

// maxConfigBytes bounds a node credentials file; real ones are a few KiB.
const maxConfigBytes = 1 << 20

// NodeConfig reads the node's credentials from the first of files that
// reads and parses; none is not an error. The files are the node
// administrator's, outside any container's reach.
func NodeConfig(files []File) (Config, string, error) {
	var errs []error
	for _, f := range files {
		data, err := readBounded(f.path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cfg, err := f.parse(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", f.path, err))
			continue
		}
		return cfg, f.path, nil
	}
	return nil, "", errors.Join(errs...)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if st.Size() > maxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfigBytes)
	}
	return os.ReadFile(path)
}
