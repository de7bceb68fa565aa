package rollout

import "os"

// PlanSource is the text a scheduled plan with a select was read from,
// kept with each occurrence so that the next one resolves the selection
// again and cuts its waves over what matches then, as apply would. It is
// the plan and the instances files it names, keyed by the path the
// planner read each at; nothing else. It holds no secret: a plan may not
// (passwords are references, secret-looking keys are refused), and
// password and user data files are not kept (workers read those where
// they run, as they do for every reset).
type PlanSource struct {
	// Path is the plan file's absolute path where it was applied.
	Path string `json:"path"`
	// Files maps each absolute path read to its content, without comments:
	// Path and every instancesFile.
	Files map[string][]byte `json:"files"`
}

// ReadFile reads path from the kept files, or else through read
// (os.ReadFile when nil): the user data and password files, which the
// workers have at the paths apply resolved, as they need them anyway.
func (s PlanSource) ReadFile(read func(string) ([]byte, error)) func(string) ([]byte, error) {
	if read == nil {
		read = os.ReadFile
	}
	return func(path string) ([]byte, error) {
		if data, ok := s.Files[path]; ok {
			return data, nil
		}
		return read(path)
	}
}
