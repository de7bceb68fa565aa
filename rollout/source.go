package rollout

import (
	"os"
	"path/filepath"
)

// PlanSource is the text a scheduled plan with a select was read from,
// kept with each occurrence so that the next one resolves the selection
// again and cuts its waves over what matches then, as apply would. It is
// the plan and the instances files it names, keyed by the path the
// planner read each at; nothing else. It holds no secret: a plan may not
// (passwords are references, secret-looking keys are refused), and
// password and user data files are not kept (workers read those where
// they run, as they do for every reset).
type PlanSource struct {
	// Path is the plan file's path, as the planner was given it.
	Path string `json:"path"`
	// Dir is the working directory Path and the plan's relative paths
	// were read from, so that files not kept here (user data) are found
	// again by their absolute path.
	Dir string `json:"dir,omitempty"`
	// Files maps each path read to its content: Path and every
	// instancesFile.
	Files map[string][]byte `json:"files"`
}

// ReadFile reads path from the kept files, or else from the file system
// relative to Dir (user data files, which workers need anyway), through
// read (os.ReadFile when nil).
func (s PlanSource) ReadFile(read func(string) ([]byte, error)) func(string) ([]byte, error) {
	if read == nil {
		read = os.ReadFile
	}
	return func(path string) ([]byte, error) {
		if data, ok := s.Files[path]; ok {
			return data, nil
		}
		if !filepath.IsAbs(path) && s.Dir != "" {
			path = filepath.Join(s.Dir, path)
		}
		return read(path)
	}
}
